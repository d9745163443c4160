package rag

import (
	"context"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/disk"
)

// TestLibrariesShareSegments checks that two instances over one store see
// each other's changes through the version in KV.
func TestLibrariesShareSegments(t *testing.T) {
	ctx := context.Background()
	kv := sqlitetest.Open(t).KV()
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, b := NewLibrary(blobs, kv, 0), NewLibrary(blobs, kv, 0)
	count := func(l *Library, kbs ...string) int {
		t.Helper()
		v, err := l.view(ctx, kbs)
		if err != nil {
			t.Fatal(err)
		}
		return v.n
	}
	if n := count(b, "default"); n != 0 {
		t.Fatalf("empty store: %d chunks", n)
	}
	seg := &segment{DocID: "doc1", KB: "default", Title: "T", Dims: 2,
		Chunks: []Chunk{{Text: "one"}, {Text: "two"}}, Vectors: []float32{1, 0, 0, 1}}
	if err := a.add(ctx, seg); err != nil {
		t.Fatal(err)
	}
	if n := count(b, "default"); n != 2 {
		t.Fatalf("the other instance sees %d chunks, want 2", n)
	}
	if n := count(b, "legal"); n != 0 {
		t.Fatalf("another knowledge base sees %d chunks", n)
	}
	hits, err := b.Search(ctx, []string{"default"}, []float32{0, 1}, "two", 1, Hybrid)
	if err != nil || len(hits) != 1 || hits[0].Text != "two" {
		t.Fatalf("search = %+v, %v", hits, err)
	}
	if err := a.remove(ctx, "default", "doc1"); err != nil {
		t.Fatal(err)
	}
	if n := count(b, "default"); n != 0 {
		t.Fatalf("after removal the other instance sees %d chunks", n)
	}
}

// Search (for tests) returns the k best chunks of the knowledge bases kbs for a query
// (its embedding and its text).
func (l *Library) Search(ctx context.Context, kbs []string, vector []float32, text string, k int, mode Mode) ([]Hit, error) {
	v, err := l.view(ctx, kbs)
	if err != nil {
		return nil, err
	}
	return search(v, vector, text, k, mode), nil
}
