// Package storagetest is the conformance suite of the storage roles. A
// backend is done when TestKV, TestRecords and TestBlobs pass against it:
//
//	func TestRecords(t *testing.T) { storagetest.TestRecords(t, store) }
//
// The suite writes under partitions and prefixes unique to each run, so one
// backend (DynamoDB Local, MinIO) can be shared by the whole test binary.
package storagetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// unique returns a name no earlier run has used, for partitions and prefixes.
func unique(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("%s-%s", t.Name(), rand.Text()[:10])
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := gateway.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (err %v), want %q", got, err, code)
	}
}

func mustPut(t *testing.T, r storage.Records, it storage.Item, c storage.Cond) int64 {
	t.Helper()
	v, err := r.Put(context.Background(), it, c)
	if err != nil {
		t.Fatalf("Put(%s/%s): %v", it.PK, it.SK, err)
	}
	return v
}

// TestRecords runs the Records conformance suite against r.
func TestRecords(t *testing.T, r storage.Records) {
	ctx := context.Background()

	t.Run("GetMissingIsNotFound", func(t *testing.T) {
		_, err := r.Get(ctx, unique(t), "nothing")
		wantCode(t, err, gateway.ENotFound)
	})

	t.Run("PutThenGetRoundTrips", func(t *testing.T) {
		pk := unique(t)
		exp := time.Now().Add(time.Hour).Truncate(time.Second)
		if got, want := mustPut(t, r, storage.Item{PK: pk, SK: "a", Value: []byte(`{"x":1}`), ExpiresAt: exp}, storage.Cond{}), int64(1); got != want {
			t.Fatalf("first version = %d, want %d", got, want)
		}
		it, err := r.Get(ctx, pk, "a")
		if err != nil {
			t.Fatal(err)
		}
		if string(it.Value) != `{"x":1}` || it.PK != pk || it.SK != "a" || it.Version != 1 {
			t.Fatalf("Get = %+v", it)
		}
		if !it.ExpiresAt.Equal(exp) {
			t.Fatalf("ExpiresAt = %v, want %v", it.ExpiresAt, exp)
		}
		if got, want := mustPut(t, r, storage.Item{PK: pk, SK: "a", Value: []byte("second")}, storage.Cond{}), int64(2); got != want {
			t.Fatalf("second version = %d, want %d", got, want)
		}
		it, err = r.Get(ctx, pk, "a")
		if err != nil {
			t.Fatal(err)
		}
		if string(it.Value) != "second" || !it.ExpiresAt.IsZero() {
			t.Fatalf("after overwrite Get = %+v", it)
		}
	})

	t.Run("EmptyValueRoundTrips", func(t *testing.T) {
		pk := unique(t)
		mustPut(t, r, storage.Item{PK: pk, SK: "e"}, storage.Cond{})
		it, err := r.Get(ctx, pk, "e")
		if err != nil {
			t.Fatal(err)
		}
		if len(it.Value) != 0 {
			t.Fatalf("Value = %q, want empty", it.Value)
		}
	})

	t.Run("InvalidKeysAreRejected", func(t *testing.T) {
		_, err := r.Put(ctx, storage.Item{PK: "", SK: "a"}, storage.Cond{})
		wantCode(t, err, gateway.EInvalid)
		_, err = r.Put(ctx, storage.Item{PK: unique(t), SK: ""}, storage.Cond{})
		wantCode(t, err, gateway.EInvalid)
		_, err = r.Get(ctx, "", "a")
		wantCode(t, err, gateway.EInvalid)
		_, err = r.Put(ctx, storage.Item{PK: unique(t), SK: "big", Value: make([]byte, storage.MaxValueSize+1)}, storage.Cond{})
		wantCode(t, err, gateway.EInvalid)
		_, err = r.Incr(ctx, unique(t), "c", nil, time.Time{})
		wantCode(t, err, gateway.EInvalid)
		_, err = r.Incr(ctx, unique(t), "c", map[string]int64{"": 1}, time.Time{})
		wantCode(t, err, gateway.EInvalid)
	})

	t.Run("CreateOnlyUnderSixteenWritersHasOneWinner", func(t *testing.T) {
		pk := unique(t)
		var wg sync.WaitGroup
		errs := make([]error, 16)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = r.Put(ctx, storage.Item{PK: pk, SK: "only", Value: fmt.Appendf(nil, "writer %d", i)}, storage.Cond{IfAbsent: true})
			})
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both won", winner, i)
			case err == nil:
				winner = i
			default:
				wantCode(t, err, gateway.EConflict)
			}
		}
		if winner < 0 {
			t.Fatal("no writer won")
		}
		it, err := r.Get(ctx, pk, "only")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(it.Value), fmt.Sprintf("writer %d", winner); got != want {
			t.Fatalf("stored value = %q, want the winner's %q", got, want)
		}
	})

	t.Run("CreateOnlyOverExpiredItemSucceeds", func(t *testing.T) {
		pk := unique(t)
		mustPut(t, r, storage.Item{PK: pk, SK: "a", Value: []byte("old"), ExpiresAt: time.Now().Add(-time.Minute)}, storage.Cond{})
		mustPut(t, r, storage.Item{PK: pk, SK: "a", Value: []byte("new")}, storage.Cond{IfAbsent: true})
		_, err := r.Put(ctx, storage.Item{PK: pk, SK: "a", Value: []byte("again")}, storage.Cond{IfAbsent: true})
		wantCode(t, err, gateway.EConflict)
	})

	t.Run("VersionConditionDetectsLostUpdate", func(t *testing.T) {
		pk := unique(t)
		mustPut(t, r, storage.Item{PK: pk, SK: "doc", Value: []byte("v1")}, storage.Cond{})
		a, err := r.Get(ctx, pk, "doc")
		if err != nil {
			t.Fatal(err)
		}
		b := a
		if _, err := r.Put(ctx, storage.Item{PK: pk, SK: "doc", Value: []byte("from a")}, storage.Cond{IfVersion: a.Version}); err != nil {
			t.Fatalf("first conditional update: %v", err)
		}
		_, err = r.Put(ctx, storage.Item{PK: pk, SK: "doc", Value: []byte("from b")}, storage.Cond{IfVersion: b.Version})
		wantCode(t, err, gateway.EConflict)
		it, err := r.Get(ctx, pk, "doc")
		if err != nil {
			t.Fatal(err)
		}
		if string(it.Value) != "from a" || it.Version != 2 {
			t.Fatalf("after lost update: %+v, want value %q version 2", it, "from a")
		}
		_, err = r.Put(ctx, storage.Item{PK: pk, SK: "missing"}, storage.Cond{IfVersion: 1})
		wantCode(t, err, gateway.EConflict)
	})

	t.Run("QueryOrderPrefixRangeLimitAndPaging", func(t *testing.T) {
		pk := unique(t)
		var want []string
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		var mu sync.Mutex
		var putErr error
		for i := range 1000 {
			sk := fmt.Sprintf("item#%04d", i)
			want = append(want, sk)
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if _, err := r.Put(ctx, storage.Item{PK: pk, SK: sk, Value: []byte(sk)}, storage.Cond{}); err != nil {
					mu.Lock()
					putErr = errors.Join(putErr, err)
					mu.Unlock()
				}
			})
		}
		mustPut(t, r, storage.Item{PK: pk, SK: "other#1"}, storage.Cond{})
		mustPut(t, r, storage.Item{PK: pk + "x", SK: "item#0001"}, storage.Cond{})
		wg.Wait()
		if putErr != nil {
			t.Fatal(putErr)
		}

		collect := func(q storage.Query) []string {
			t.Helper()
			var got []string
			for pages := 0; ; pages++ {
				if pages > 2000 {
					t.Fatal("paging does not end")
				}
				p, err := r.Query(ctx, pk, q)
				if err != nil {
					t.Fatal(err)
				}
				if q.Limit > 0 && len(p.Items) > q.Limit {
					t.Fatalf("page of %d items over limit %d", len(p.Items), q.Limit)
				}
				for _, it := range p.Items {
					if string(it.Value) != it.SK && it.SK != "other#1" {
						t.Fatalf("item %s has value %q", it.SK, it.Value)
					}
					got = append(got, it.SK)
				}
				if p.Cursor == "" {
					return got
				}
				q.Cursor = p.Cursor
			}
		}

		if got := collect(storage.Query{Prefix: "item#", Limit: 37}); !slices.Equal(got, want) {
			t.Fatalf("ascending prefix query: %d items, first %v, want %d", len(got), head(got), len(want))
		}
		desc := slices.Clone(want)
		slices.Reverse(desc)
		if got := collect(storage.Query{Prefix: "item#", Limit: 100, Desc: true}); !slices.Equal(got, desc) {
			t.Fatalf("descending prefix query: %d items, first %v", len(got), head(got))
		}
		if got := collect(storage.Query{Start: "item#0100", End: "item#0200", Limit: 30}); !slices.Equal(got, want[100:200]) {
			t.Fatalf("range query: %d items, first %v", len(got), head(got))
		}
		if got := collect(storage.Query{Start: "item#0100", End: "item#0200", Limit: 30, Desc: true}); !slices.Equal(got, reversed(want[100:200])) {
			t.Fatalf("descending range query: %d items, first %v", len(got), head(got))
		}
		if got := collect(storage.Query{Prefix: "item#09", Start: "item#0950"}); !slices.Equal(got, want[950:]) {
			t.Fatalf("prefix with start: %d items, first %v", len(got), head(got))
		}
		if got := collect(storage.Query{}); len(got) != 1001 || got[1000] != "other#1" {
			t.Fatalf("whole partition: %d items, want 1001 ending in other#1", len(got))
		}
		p, err := r.Query(ctx, pk, storage.Query{Prefix: "item#", Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		if got := keys(p.Items); !slices.Equal(got, want[:5]) || p.Cursor == "" {
			t.Fatalf("first page of 5 = %v cursor %q", got, p.Cursor)
		}
		p, err = r.Query(ctx, pk, storage.Query{Prefix: "nothing#"})
		if err != nil || len(p.Items) != 0 || p.Cursor != "" {
			t.Fatalf("empty query = %+v, %v", p, err)
		}
	})

	t.Run("ExpiredItemsAreInvisible", func(t *testing.T) {
		pk := unique(t)
		past, future := time.Now().Add(-time.Second), time.Now().Add(time.Hour)
		mustPut(t, r, storage.Item{PK: pk, SK: "a-expired", ExpiresAt: past}, storage.Cond{})
		mustPut(t, r, storage.Item{PK: pk, SK: "b-live", ExpiresAt: future}, storage.Cond{})
		mustPut(t, r, storage.Item{PK: pk, SK: "c-forever"}, storage.Cond{})
		_, err := r.Get(ctx, pk, "a-expired")
		wantCode(t, err, gateway.ENotFound)
		p, err := r.Query(ctx, pk, storage.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := keys(p.Items), []string{"b-live", "c-forever"}; !slices.Equal(got, want) {
			t.Fatalf("query = %v, want %v", got, want)
		}
		_, err = r.Put(ctx, storage.Item{PK: pk, SK: "a-expired"}, storage.Cond{IfVersion: 1})
		wantCode(t, err, gateway.EConflict)
	})

	t.Run("DeleteIsIdempotent", func(t *testing.T) {
		pk := unique(t)
		mustPut(t, r, storage.Item{PK: pk, SK: "a"}, storage.Cond{})
		for i := range 2 {
			if err := r.Delete(ctx, pk, "a"); err != nil {
				t.Fatalf("delete %d: %v", i+1, err)
			}
		}
		_, err := r.Get(ctx, pk, "a")
		wantCode(t, err, gateway.ENotFound)
		if err := r.Delete(ctx, pk, "never"); err != nil {
			t.Fatalf("delete of a never-stored item: %v", err)
		}
	})

	t.Run("CountersUnderConcurrencyLoseNothing", func(t *testing.T) {
		pk := unique(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				for range 1000 {
					if _, err := r.Incr(ctx, pk, "c", map[string]int64{"n": 1, "tokens": 3}, time.Time{}); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		it, err := r.Get(ctx, pk, "c")
		if err != nil {
			t.Fatal(err)
		}
		if it.Counters["n"] != 8000 || it.Counters["tokens"] != 24000 {
			t.Fatalf("counters = %v, want n=8000 tokens=24000", it.Counters)
		}
	})

	t.Run("IncrReturnsNewValuesAndKeepsValue", func(t *testing.T) {
		pk := unique(t)
		mustPut(t, r, storage.Item{PK: pk, SK: "c", Value: []byte("meta")}, storage.Cond{})
		got, err := r.Incr(ctx, pk, "c", map[string]int64{"a": 5, "b": -2}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if got["a"] != 5 || got["b"] != -2 {
			t.Fatalf("Incr = %v", got)
		}
		got, err = r.Incr(ctx, pk, "c", map[string]int64{"a": 1}, time.Time{})
		if err != nil || got["a"] != 6 {
			t.Fatalf("second Incr = %v, %v", got, err)
		}
		mustPut(t, r, storage.Item{PK: pk, SK: "c", Value: []byte("meta2")}, storage.Cond{})
		it, err := r.Get(ctx, pk, "c")
		if err != nil {
			t.Fatal(err)
		}
		if string(it.Value) != "meta2" || it.Counters["a"] != 6 || it.Counters["b"] != -2 {
			t.Fatalf("item after Put = value %q counters %v; Put must keep counters", it.Value, it.Counters)
		}
	})

	t.Run("BatchPutNewWritesMany", func(t *testing.T) { testBatcher(t, r) })

	t.Run("IncrOnExpiredItemStartsOver", func(t *testing.T) {
		pk := unique(t)
		if _, err := r.Incr(ctx, pk, "w", map[string]int64{"n": 7}, time.Now().Add(-time.Second)); err != nil {
			t.Fatal(err)
		}
		window := time.Now().Add(time.Hour).Truncate(time.Second)
		got, err := r.Incr(ctx, pk, "w", map[string]int64{"n": 1}, window)
		if err != nil || got["n"] != 1 {
			t.Fatalf("Incr after expiry = %v, %v; want n=1", got, err)
		}
		if _, err := r.Incr(ctx, pk, "w", map[string]int64{"n": 1}, window.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		it, err := r.Get(ctx, pk, "w")
		if err != nil {
			t.Fatal(err)
		}
		if it.Counters["n"] != 2 || !it.ExpiresAt.Equal(window) {
			t.Fatalf("window item = counters %v expires %v; want n=2 expiring %v", it.Counters, it.ExpiresAt, window)
		}
	})
}

func keys(items []storage.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.SK
	}
	return out
}

func head(s []string) []string { return s[:min(len(s), 3)] }

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

// testBatcher runs the Batcher checks when r has the capability.
func testBatcher(t *testing.T, r storage.Records) {
	b, ok := r.(storage.Batcher)
	if !ok {
		t.Skip("this backend has no batch writes")
	}
	ctx := context.Background()
	pk := unique(t)
	if _, err := r.Incr(ctx, pk, "item#000", map[string]int64{"n": 5}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var items []storage.Item
	for i := range 60 {
		items = append(items, storage.Item{PK: pk, SK: fmt.Sprintf("item#%03d", i), Value: fmt.Appendf(nil, "v%d", i)})
	}
	items[7].ExpiresAt = time.Now().Add(-time.Second)
	if err := b.PutNew(ctx, items); err != nil {
		t.Fatal(err)
	}
	var got []storage.Item
	q := storage.Query{}
	for {
		p, err := r.Query(ctx, pk, q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Items...)
		if p.Cursor == "" {
			break
		}
		q.Cursor = p.Cursor
	}
	if len(got) != 59 {
		t.Fatalf("%d live items, want 59 (60 written, one already expired)", len(got))
	}
	if got[0].SK != "item#000" || string(got[0].Value) != "v0" || got[0].Version != 1 || len(got[0].Counters) != 0 {
		t.Fatalf("first item = %+v, want a whole new item", got[0])
	}
	wantCode(t, b.PutNew(ctx, []storage.Item{{PK: pk, SK: ""}}), gateway.EInvalid)
}
