// Package cache holds one value for a short time, for instances that may
// serve a read a few seconds stale (settings, public models) but not more.
package cache

import (
	"sync"
	"time"
)

// Value is one cached value of type T, valid for a fixed time after it is
// set. It is safe for concurrent use. The zero Value, or one with a TTL of
// zero, never holds anything.
//
// A reader that misses loads the value and caches it with SetIf and the
// generation it saw before loading, so that a value loaded before a write
// (which calls Set or Forget) is never cached after it.
type Value[T any] struct {
	TTL time.Duration

	mu    sync.Mutex
	v     T
	until time.Time
	gen   uint64
}

// Generation returns the current generation, to pass to SetIf.
func (c *Value[T]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// SetIf holds v from now for the TTL, unless a Set or Forget came after
// the generation gen was read.
func (c *Value[T]) SetIf(v T, now time.Time, gen uint64) {
	if c.TTL <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.v, c.until = v, now.Add(c.TTL)
}

// Get returns the value if it is still valid at now.
func (c *Value[T]) Get(now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Before(c.until) {
		return c.v, true
	}
	var zero T
	return zero, false
}

// Set holds v, just written, from now for the TTL.
func (c *Value[T]) Set(v T, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if c.TTL > 0 {
		c.v, c.until = v, now.Add(c.TTL)
	}
}

// Forget drops the value, so that the next Get misses and no load begun
// before is cached.
func (c *Value[T]) Forget() {
	c.mu.Lock()
	c.gen++
	c.until = time.Time{}
	c.mu.Unlock()
}
