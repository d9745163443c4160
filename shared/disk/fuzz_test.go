package disk_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/storage"
)

// FuzzBlobKey stores blobs under arbitrary keys: a key the storage roles
// accept is written inside the store's folder, never outside it.
func FuzzBlobKey(f *testing.F) {
	for _, seed := range []string{"images/abc", "../x", "a/../../b", "a//b", "/abs", `a\..\b`, "a/./b", "ü/\u0000", "rag/segments/kb/doc.seg"} {
		f.Add(seed)
	}
	root := f.TempDir()
	b, err := disk.New(root)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := b.Put(context.Background(), key, strings.NewReader("x"), "text/plain")
		if storage.CheckBlobKey(key) != nil {
			if err == nil {
				t.Fatalf("a key the roles refuse was stored: %q", key)
			}
			return
		}
		if err != nil {
			return // the file system may refuse a name the roles allow
		}
		// Where the store put it: inside its folder.
		p := filepath.Join(root, "objects", filepath.FromSlash(key))
		if rel, err := filepath.Rel(root, p); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			t.Fatalf("key %q maps outside the store: %s", key, p)
		}
		rc, _, err := b.Get(context.Background(), key)
		if err != nil {
			t.Fatalf("Get of a stored key %q: %v", key, err)
		}
		rc.Close()
		b.Delete(context.Background(), key)
	})
}
