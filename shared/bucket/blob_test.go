package bucket_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/internal/testkit/storagetest"
	"github.com/aigateway/aigateway/shared/bucket"
	"github.com/aigateway/aigateway/shared/gateway"
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

// TestMissingBlobWithoutListBucket checks what a function sees when it may
// read a prefix but not list the bucket (the template grants the image
// function s3:GetObject on images/* alone). S3 answers a missing key 403
// AccessDenied then, not 404 (MinIO answers 404 either way); the bucket
// reports both as not found, so that /files/{id} of an unknown image is 404
// rather than 503.
func TestMissingBlobWithoutListBucket(t *testing.T) {
	endpoint, admin := awslocal.MinIO(t)
	name := awslocal.Name("gateway")
	ctx := context.Background()
	if err := bucket.New(admin, name).CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["*"]},` +
		`"Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::` + name + `/images/*"]}]}`
	if _, err := admin.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: &name, Policy: &policy}); err != nil {
		t.Fatal(err)
	}
	reader := func(endpoint string) *s3.Client {
		return s3.New(s3.Options{Region: awslocal.Region, Credentials: aws.AnonymousCredentials{},
			BaseEndpoint: aws.String(endpoint), UsePathStyle: true, RetryMaxAttempts: 1})
	}
	b := bucket.New(reader(endpoint), name)
	if _, _, err := b.Get(ctx, "images/missing"); !gateway.IsNotFound(err) {
		t.Fatalf("Get of a missing blob = %v, want ENotFound", err)
	}
	if err := b.Put(ctx, "images/there", strings.NewReader("png"), "image/png"); err != nil {
		t.Fatal(err)
	}
	rc, _, err := b.Get(ctx, "images/there")
	if err != nil {
		t.Fatalf("Get of a stored blob: %v", err)
	}
	rc.Close()

	// S3's own answer to a GetObject of a missing key without ListBucket.
	s3403 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("x-amz-request-id", "0123456789ABCDEF")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>0123456789ABCDEF</RequestId><HostId>aG9zdA==</HostId></Error>`)
	}))
	t.Cleanup(s3403.Close)
	if _, _, err := bucket.New(reader(s3403.URL), name).Get(ctx, "images/missing"); !gateway.IsNotFound(err) {
		t.Fatalf("Get answered S3's 403 = %v, want ENotFound", err)
	}
}
