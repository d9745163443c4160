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
type Value[T any] struct {
	TTL time.Duration

	mu    sync.Mutex
	v     T
	until time.Time
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

// Set holds v from now for the TTL.
func (c *Value[T]) Set(v T, now time.Time) {
	if c.TTL <= 0 {
		return
	}
	c.mu.Lock()
	c.v, c.until = v, now.Add(c.TTL)
	c.mu.Unlock()
}

// Forget drops the value, so that the next Get misses.
func (c *Value[T]) Forget() {
	c.mu.Lock()
	c.until = time.Time{}
	c.mu.Unlock()
}
