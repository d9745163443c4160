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

// Map holds values by key, each for a fixed time after it is set, at most
// Max of them (an entry that would go past Max is not cached, after the
// expired ones are dropped): for lookups by a key the caller does not
// choose (API keys). It is safe for concurrent use; the zero Map, or one
// with a TTL or Max of zero, never holds anything. Loads use Generation and
// SetIf as with Value.
type Map[K comparable, V any] struct {
	TTL time.Duration
	Max int

	mu  sync.Mutex
	m   map[K]entry[V]
	gen uint64
}

type entry[V any] struct {
	v     V
	until time.Time
}

// Generation returns the current generation, to pass to SetIf.
func (c *Map[K, V]) Generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Get returns the value of k if it is still valid at now.
func (c *Map[K, V]) Get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok && now.Before(e.until) {
		return e.v, true
	}
	var zero V
	return zero, false
}

// SetIf holds v under k from now for the TTL, unless a Forget came after
// the generation gen was read.
func (c *Map[K, V]) SetIf(k K, v V, now time.Time, gen uint64) {
	if c.TTL <= 0 || c.Max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.m == nil {
		c.m = map[K]entry[V]{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= c.Max {
		for k, e := range c.m {
			if !now.Before(e.until) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.Max {
			return
		}
	}
	c.m[k] = entry[V]{v: v, until: now.Add(c.TTL)}
}

// Forget drops k, so that the next Get misses and no load begun before is
// cached.
func (c *Map[K, V]) Forget(k K) {
	c.mu.Lock()
	c.gen++
	delete(c.m, k)
	c.mu.Unlock()
}
