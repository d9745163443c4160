package cache_test

import (
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/cache"
)

func TestValue(t *testing.T) {
	now := time.Unix(1000, 0)
	c := cache.Value[string]{TTL: time.Second}
	if _, ok := c.Get(now); ok {
		t.Fatal("an empty cache held a value")
	}
	c.Set("a", now)
	if v, ok := c.Get(now.Add(999 * time.Millisecond)); !ok || v != "a" {
		t.Fatalf("Get within the TTL = %q, %v", v, ok)
	}
	if _, ok := c.Get(now.Add(time.Second)); ok {
		t.Fatal("the value outlived its TTL")
	}
	c.Set("b", now)
	c.Forget()
	if _, ok := c.Get(now); ok {
		t.Fatal("Forget kept the value")
	}
	off := cache.Value[int]{}
	off.Set(1, now)
	if _, ok := off.Get(now); ok {
		t.Fatal("a cache without a TTL held a value")
	}
}

// TestSetIfAfterWrite loads a value, lets a write come between, and caches
// what was loaded: it is not cached, so the write's value is what reads
// see.
func TestSetIfAfterWrite(t *testing.T) {
	now := time.Now()
	v := cache.Value[string]{TTL: time.Minute}
	gen := v.Generation()
	v.Set("written", now) // the write lands while the load is in flight
	v.SetIf("loaded before the write", now, gen)
	if got, ok := v.Get(now); !ok || got != "written" {
		t.Fatalf("Get = %q, %v; want the written value", got, ok)
	}
	gen = v.Generation()
	v.Forget()
	v.SetIf("stale", now, gen)
	if _, ok := v.Get(now); ok {
		t.Fatal("a load begun before Forget was cached")
	}
}

func TestMap(t *testing.T) {
	now := time.Unix(1000, 0)
	c := cache.Map[string, int]{TTL: time.Second, Max: 2}
	c.SetIf("a", 1, now, c.Generation())
	if v, ok := c.Get("a", now.Add(999*time.Millisecond)); !ok || v != 1 {
		t.Fatalf("Get a = %d, %v", v, ok)
	}
	if _, ok := c.Get("a", now.Add(time.Second)); ok {
		t.Fatal("a outlived its TTL")
	}
	// A load that began before a Forget is not cached.
	gen := c.Generation()
	c.Forget("b")
	c.SetIf("b", 2, now, gen)
	if _, ok := c.Get("b", now); ok {
		t.Fatal("a load from before Forget was cached")
	}
	// Full: a new key waits for room; expired entries make room.
	c.SetIf("b", 2, now, c.Generation())
	c.SetIf("c", 3, now, c.Generation())
	if _, ok := c.Get("c", now); ok {
		t.Fatal("the map went past Max")
	}
	c.SetIf("c", 3, now.Add(2*time.Second), c.Generation())
	if v, ok := c.Get("c", now.Add(2*time.Second)); !ok || v != 3 {
		t.Fatal("expired entries did not make room")
	}
	var zero cache.Map[string, int]
	zero.SetIf("a", 1, now, zero.Generation())
	if _, ok := zero.Get("a", now); ok {
		t.Fatal("the zero Map cached")
	}
}
