package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// patternReader yields n deterministic pseudo-random bytes without holding
// them in memory, so that large blobs are streamed, not buffered.
type patternReader struct {
	rng *rand.ChaCha8
	n   int64
}

func newPattern(n int64) *patternReader {
	return &patternReader{rng: rand.NewChaCha8([32]byte{1, 2, 3}), n: n}
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	n, _ := p.rng.Read(b)
	p.n -= int64(n)
	return n, nil
}

// failingReader returns some bytes, then an error.
type failingReader struct{ sent bool }

func (f *failingReader) Read(b []byte) (int, error) {
	if !f.sent {
		f.sent = true
		return copy(b, "partial body"), nil
	}
	return 0, errors.New("reader broke")
}

func digest(t *testing.T, r io.Reader) ([32]byte, int64) {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil)), n
}

// TestBlobs runs the Blobs conformance suite against b.
func TestBlobs(t *testing.T, b storage.Blobs) {
	ctx := context.Background()

	get := func(t *testing.T, key string) ([]byte, storage.BlobInfo) {
		t.Helper()
		rc, info, err := b.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%s): %v", key, err)
		}
		defer rc.Close()
		body, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return body, info
	}

	t.Run("GetMissingIsNotFound", func(t *testing.T) {
		_, _, err := b.Get(ctx, unique(t)+"/none")
		wantCode(t, err, gateway.ENotFound)
	})

	t.Run("EmptyBlobRoundTrips", func(t *testing.T) {
		k := unique(t) + "/empty"
		if err := b.Put(ctx, k, bytes.NewReader(nil), "text/plain"); err != nil {
			t.Fatal(err)
		}
		body, info := get(t, k)
		if len(body) != 0 || info.Size != 0 || info.ContentType != "text/plain" {
			t.Fatalf("empty blob = %q, %+v", body, info)
		}
	})

	t.Run("TwentyMegabytesStreamByteExact", func(t *testing.T) {
		const size = 20 << 20
		k := unique(t) + "/big.bin"
		if err := b.Put(ctx, k, newPattern(size), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		want, _ := digest(t, newPattern(size))
		rc, info, err := b.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got, n := digest(t, rc)
		if n != size || got != want {
			t.Fatalf("read back %d bytes (digest match %v), want %d byte-exact", n, got == want, size)
		}
		if info.Size != size || info.ContentType != "application/octet-stream" {
			t.Fatalf("info = %+v", info)
		}
	})

	t.Run("OverwriteReplaces", func(t *testing.T) {
		k := unique(t) + "/doc"
		for _, v := range []string{"first version", "second"} {
			if err := b.Put(ctx, k, bytes.NewReader([]byte(v)), "text/markdown"); err != nil {
				t.Fatal(err)
			}
		}
		if body, _ := get(t, k); string(body) != "second" {
			t.Fatalf("body = %q, want %q", body, "second")
		}
	})

	t.Run("FailedPutKeepsEarlierBlob", func(t *testing.T) {
		k := unique(t) + "/keep"
		if err := b.Put(ctx, k, bytes.NewReader([]byte("intact")), "text/plain"); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(ctx, k, &failingReader{}, "text/plain"); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		if body, _ := get(t, k); string(body) != "intact" {
			t.Fatalf("body = %q, want the earlier %q", body, "intact")
		}
		fresh := unique(t) + "/never"
		if err := b.Put(ctx, fresh, &failingReader{}, "text/plain"); err == nil {
			t.Fatal("Put from a failing reader succeeded")
		}
		_, _, err := b.Get(ctx, fresh)
		wantCode(t, err, gateway.ENotFound)
	})

	t.Run("ListByPrefix", func(t *testing.T) {
		p := unique(t)
		want := []string{p + "/a/1", p + "/a/2", p + "/a/3/deep"}
		for _, k := range append(slices.Clone(want), p+"/b/1", p+"/ab") {
			if err := b.Put(ctx, k, bytes.NewReader([]byte(k)), "text/plain"); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		for info, err := range b.List(ctx, p+"/a/") {
			if err != nil {
				t.Fatal(err)
			}
			if info.Size != int64(len(info.Key)) {
				t.Fatalf("%s: size %d, want %d", info.Key, info.Size, len(info.Key))
			}
			got = append(got, info.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List = %v, want %v", got, want)
		}
		n := 0
		for _, err := range b.List(ctx, p+"/") {
			if err != nil {
				t.Fatal(err)
			}
			n++
			break
		}
		if n != 1 {
			t.Fatalf("stopping the iteration early yielded %d items", n)
		}
	})

	t.Run("DeleteIsIdempotent", func(t *testing.T) {
		k := unique(t) + "/gone"
		if err := b.Put(ctx, k, bytes.NewReader([]byte("x")), "text/plain"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := b.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := b.Get(ctx, k)
		wantCode(t, err, gateway.ENotFound)
	})

	// Writers and deleters share one folder (the index's merges do): a
	// delete that empties the folder must not fail a put into it.
	t.Run("PutsAndDeletesInOneFolderAtOnce", func(t *testing.T) {
		dir := unique(t) + "/folder/"
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for w := range 4 {
			wg.Go(func() {
				for i := range 8 {
					k := fmt.Sprintf("%s%d-%d", dir, w, i)
					if err := b.Put(ctx, k, strings.NewReader(k), "text/plain"); err != nil {
						errs <- err
						return
					}
					if i%2 == 0 {
						if err := b.Delete(ctx, k); err != nil {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		n := 0
		for info, err := range b.List(ctx, dir) {
			if err != nil {
				t.Fatal(err)
			}
			if body, _ := get(t, info.Key); string(body) != info.Key {
				t.Fatalf("%s holds %q", info.Key, body)
			}
			n++
		}
		if n != 16 {
			t.Fatalf("%d blobs left, want 16", n)
		}
	})

	t.Run("InvalidKeysAreRejected", func(t *testing.T) {
		wantCode(t, b.Put(ctx, "", bytes.NewReader(nil), "text/plain"), gateway.EInvalid)
		wantCode(t, b.Put(ctx, "../escape", bytes.NewReader(nil), "text/plain"), gateway.EInvalid)
	})
}
