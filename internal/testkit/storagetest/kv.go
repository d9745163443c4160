package storagetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// TestKV runs the KV conformance suite against kv.
func TestKV(t *testing.T, kv storage.KV) {
	ctx := context.Background()

	t.Run("GetMissingIsNotFound", func(t *testing.T) {
		_, err := kv.Get(ctx, unique(t))
		wantCode(t, err, gateway.ENotFound)
	})

	t.Run("PutGetOverwrite", func(t *testing.T) {
		k := unique(t)
		for _, v := range []string{"one", "", "three"} {
			if err := kv.Put(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
			got, err := kv.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != v {
				t.Fatalf("Get = %q, want %q", got, v)
			}
		}
	})

	t.Run("InvalidKeysAndValuesAreRejected", func(t *testing.T) {
		wantCode(t, kv.Put(ctx, "", []byte("x")), gateway.EInvalid)
		wantCode(t, kv.Put(ctx, unique(t), make([]byte, storage.MaxValueSize+1)), gateway.EInvalid)
	})

	t.Run("DeleteIsIdempotent", func(t *testing.T) {
		k := unique(t)
		if err := kv.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := kv.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		_, err := kv.Get(ctx, k)
		wantCode(t, err, gateway.ENotFound)
	})

	t.Run("ListByPrefixWithPaging", func(t *testing.T) {
		p := unique(t)
		var want []string
		for i := range 25 {
			k := fmt.Sprintf("%s/%02d", p, i)
			want = append(want, k)
			if err := kv.Put(ctx, k, []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
		if err := kv.Put(ctx, p+"-other", []byte("v")); err != nil {
			t.Fatal(err)
		}
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 30 {
				t.Fatal("paging does not end")
			}
			ks, next, err := kv.List(ctx, p+"/", cursor, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(ks) > 10 {
				t.Fatalf("page of %d keys over limit 10", len(ks))
			}
			got = append(got, ks...)
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List = %v, want %v", got, want)
		}
	})
}
