package bucket_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/awslocal"
	"github.com/aigateway/aigateway/shared/bucket"
	"github.com/aigateway/aigateway/shared/storage/storagetest"
)

// TestConformance runs the storage conformance suite, and the signed-URL
// checks, against MinIO.
func TestConformance(t *testing.T) {
	_, client := awslocal.MinIO(t)
	b := bucket.New(client, awslocal.Name("gateway"))
	ctx := context.Background()
	if err := b.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	t.Run("Blobs", func(t *testing.T) { storagetest.TestBlobs(t, b) })

	t.Run("SignedURLs", func(t *testing.T) {
		put, err := b.SignURL(ctx, http.MethodPut, "signed/doc.txt", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, put, strings.NewReader("uploaded directly"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT to the signed URL = %d", resp.StatusCode)
		}
		get, err := b.SignURL(ctx, http.MethodGet, "signed/doc.txt", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		resp, err = http.Get(get)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "uploaded directly" {
			t.Fatalf("GET the signed URL = %d %q", resp.StatusCode, body)
		}
		// A tampered URL is refused: the signature covers the key.
		tampered := strings.Replace(get, "signed/doc.txt", "signed/other.txt", 1)
		resp, err = http.Get(tampered)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("GET a tampered signed URL = %d, want 403", resp.StatusCode)
		}
		if _, err := b.SignURL(ctx, http.MethodDelete, "signed/doc.txt", time.Minute); err == nil {
			t.Fatal("a DELETE URL was signed")
		}
	})

	t.Run("MultipartRoundTrip", func(t *testing.T) {
		// Just over two parts, with a tail that is not a whole part.
		body := bytes.Repeat([]byte("0123456789abcdef"), (2*bucket.PartSize+12345)/16)
		if err := b.Put(ctx, "big/multi.bin", bytes.NewReader(body), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		rc, info, err := b.Get(ctx, "big/multi.bin")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) || info.Size != int64(len(body)) {
			t.Fatalf("read back %d bytes (equal %v), want %d", len(got), bytes.Equal(got, body), len(body))
		}
	})
}
