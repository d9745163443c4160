package memstore_test

import (
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"

	"github.com/aigateway/aigateway/internal/testkit/storagetest"
	"github.com/aigateway/aigateway/shared/memstore"
)

func TestKV(t *testing.T)      { storagetest.TestKV(t, memstore.New(nil).KV()) }
func TestRecords(t *testing.T) { storagetest.TestRecords(t, memstore.New(nil).Records()) }
func TestBlobs(t *testing.T)   { storagetest.TestBlobs(t, memstore.New(nil).Blobs()) }

// The store must not share memory with its callers: changing a slice after
// Put, or one that Get returned, must not change what is stored.
func TestStoredBytesAreNotShared(t *testing.T) {
	ctx := t.Context()
	s := memstore.New(nil)

	v := []byte("kept")
	if err := s.KV().Put(ctx, "k", v); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	got, _ := s.KV().Get(ctx, "k")
	got[1] = 'X'
	if again, _ := s.KV().Get(ctx, "k"); string(again) != "kept" {
		t.Fatalf("KV value changed through a caller's slice: %q", again)
	}

	item := storage.Item{PK: "p", SK: "s", Value: []byte("kept")}
	if _, err := s.Records().Put(ctx, item, storage.Cond{}); err != nil {
		t.Fatal(err)
	}
	item.Value[0] = 'X'
	if _, err := s.Records().Incr(ctx, "p", "s", map[string]int64{"n": 1}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	it, _ := s.Records().Get(ctx, "p", "s")
	it.Value[1] = 'X'
	it.Counters["n"] = 99
	page, _ := s.Records().Query(ctx, "p", storage.Query{})
	page.Items[0].Value[2] = 'X'
	it, _ = s.Records().Get(ctx, "p", "s")
	if string(it.Value) != "kept" || it.Counters["n"] != 1 {
		t.Fatalf("record changed through a caller's slice or map: %q %v", it.Value, it.Counters)
	}
}

// An expired item is gone for every read and condition once the injected
// clock passes its expiry, without waiting on the wall clock.
func TestExpiryFollowsTheInjectedClock(t *testing.T) {
	ctx := t.Context()
	now := time.Unix(1_800_000_000, 0)
	s := memstore.New(func() time.Time { return now })
	r := s.Records()
	if _, err := r.Put(ctx, storage.Item{PK: "p", SK: "s", Value: []byte("v"), ExpiresAt: now.Add(time.Minute)}, storage.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(ctx, "p", "s"); err != nil {
		t.Fatalf("live item: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := r.Get(ctx, "p", "s"); !gateway.IsNotFound(err) {
		t.Fatalf("Get after expiry = %v, want not found", err)
	}
	if _, err := r.Put(ctx, storage.Item{PK: "p", SK: "s"}, storage.Cond{IfAbsent: true}); err != nil {
		t.Fatalf("create over an expired item: %v", err)
	}
}
