package draw_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/upstream"
)

func service(t *testing.T) (*draw.Service, *disk.Blobs, gateway.Upstream) {
	t.Helper()
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeupstream.New(t)
	up := upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}, nil)
	return draw.New(up, blobs, draw.Options{MaxBytes: 1 << 20, FetchTimeout: 5 * time.Second}), blobs,
		gateway.Upstream{BaseURL: fake.URL, Model: "fake/kolors"}
}

func stored(t *testing.T, blobs *disk.Blobs) int {
	t.Helper()
	n := 0
	for _, err := range blobs.List(context.Background(), "images/") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

func TestShapesAreStoredByteForByte(t *testing.T) {
	s, blobs, up := service(t)
	ctx := context.Background()
	for _, prompt := range []string{"a cat", "#openai a dog", "#b64 a fox"} {
		t.Run(prompt, func(t *testing.T) {
			images, err := s.Generate(ctx, up, gateway.ImageRequest{Prompt: prompt, N: 2, Size: "512x512"})
			if err != nil {
				t.Fatal(err)
			}
			if len(images) != 2 {
				t.Fatalf("%d images, want 2", len(images))
			}
			for i, im := range images {
				rc, info, err := s.Open(ctx, im.ID)
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(rc)
				rc.Close()
				if want := fakeupstream.PNG(fakeupstream.ImageName(prompt, i)); !bytes.Equal(got, want) || info.ContentType != "image/png" {
					t.Fatalf("stored %d bytes of %s, want the upstream's %d bytes of image/png", len(got), info.ContentType, len(want))
				}
				if !strings.HasPrefix(im.Path(), "/files/") || len(im.ID) != 26 {
					t.Fatalf("path = %q", im.Path())
				}
			}
		})
	}
	if n := stored(t, blobs); n != 6 {
		t.Fatalf("%d images stored, want 6", n)
	}
	if _, _, err := s.Open(ctx, "../../etc/passwd"); gateway.ErrorCode(err) != gateway.ENotFound {
		t.Fatalf("Open of a bad ID: %v", err)
	}
}

// logs captures what the package logs while a test runs.
func logs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

// TestRefusalsStoreNothing refuses images that are too large, not images,
// or behind a private address or another port of the upstream's host:
// the caller learns only that the image was unusable (never what answered
// at an address: its status or type), the log says why, nothing is kept.
func TestRefusalsStoreNothing(t *testing.T) {
	s, blobs, up := service(t)
	log := logs(t)
	ctx := context.Background()
	tests := map[string]string{
		"#huge a mountain":       "too large",
		"#html a river":          "not an image",
		"#private a secret":      "private address",
		"#otherport a neighbour": "private address",
		"#openai #huge lake":     "too large",
	}
	for prompt, want := range tests {
		t.Run(prompt, func(t *testing.T) {
			log.Reset()
			_, err := s.Generate(ctx, up, gateway.ImageRequest{Prompt: prompt, N: 1, Size: "512x512"})
			if gateway.ErrorCode(err) != gateway.EUpstream {
				t.Fatalf("err = %v, want EUpstream", err)
			}
			for _, leak := range []string{"text/html", "private", "169.254", "status", "bytes", "127.0.0.1"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("the error tells the caller %q: %v", leak, err)
				}
			}
			if !strings.Contains(log.String(), want) {
				t.Errorf("the log does not say %q:\n%s", want, log)
			}
		})
	}
	// Two images of which the second is refused: the first is not kept.
	if n := stored(t, blobs); n != 0 {
		t.Fatalf("%d images stored after refusals, want none", n)
	}
	if _, err := s.Generate(ctx, up, gateway.ImageRequest{Prompt: "  ", N: 1}); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("empty prompt: %v", err)
	}
}

// TestOneShapeAtMostN takes one answer shape (OpenAI's data[] over
// SiliconFlow's images[], the same pictures) and no more pictures than
// asked for, fetching none of the rest.
func TestOneShapeAtMostN(t *testing.T) {
	s, blobs, up := service(t)
	ctx := context.Background()
	images, err := s.Generate(ctx, up, gateway.ImageRequest{Prompt: "#both two cats", N: 2, Size: "512x512"})
	if err != nil || len(images) != 2 {
		t.Fatalf("both shapes: %d images, %v; want 2", len(images), err)
	}
	images, err = s.Generate(ctx, up, gateway.ImageRequest{Prompt: "#many one dog", N: 1, Size: "512x512"})
	if err != nil || len(images) != 1 {
		t.Fatalf("40 pictures for n=1: %d images, %v; want 1", len(images), err)
	}
	if n := stored(t, blobs); n != 3 {
		t.Fatalf("%d images stored, want 3", n)
	}
}

// TestFetchesShareOneClient draws many images: connections are pooled, not
// left open by a client per image.
func TestFetchesShareOneClient(t *testing.T) {
	s, _, up := service(t)
	ctx := context.Background()
	if _, err := s.Generate(ctx, up, gateway.ImageRequest{Prompt: "warm up", N: 1}); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	for i := range 20 {
		if _, err := s.Generate(ctx, up, gateway.ImageRequest{Prompt: fmt.Sprintf("picture %d", i), N: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Finished requests' goroutines wind down; unpooled connections' would
	// stay (20 of them, with their readers and writers).
	after := runtime.NumGoroutine()
	for deadline := time.Now().Add(2 * time.Second); after > before+4 && time.Now().Before(deadline); after = runtime.NumGoroutine() {
		runtime.Gosched()
	}
	if after > before+4 {
		t.Fatalf("goroutines %d → %d after 20 images: connections are not pooled", before, after)
	}
}

// countingTransport counts the requests it carries to the real network.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestInjectedFetcherIsUsed gives the service a fetcher of its own (as the
// Worker target does, whose Fetch API has no dialer to guard): images are
// fetched through it, and a link that names a private address itself is
// still refused before any fetch.
func TestInjectedFetcherIsUsed(t *testing.T) {
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fake := fakeupstream.New(t)
	up := upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}, nil)
	tr := &countingTransport{}
	s := draw.New(up, blobs, draw.Options{MaxBytes: 1 << 20, Fetcher: &http.Client{Transport: tr}})
	images, err := s.Generate(context.Background(), gateway.Upstream{BaseURL: fake.URL, Model: "fake/kolors"},
		gateway.ImageRequest{Prompt: "a fox", N: 1})
	if err != nil || len(images) != 1 {
		t.Fatalf("Generate = %d images, %v; want 1 through the injected fetcher", len(images), err)
	}
	if tr.n.Load() != 1 {
		t.Fatalf("the injected fetcher carried %d requests, want 1", tr.n.Load())
	}
	for _, prompt := range []string{"#otherport a neighbour", "#private a secret"} {
		if _, err := s.Generate(context.Background(), gateway.Upstream{BaseURL: fake.URL, Model: "fake/kolors"},
			gateway.ImageRequest{Prompt: prompt, N: 1}); gateway.ErrorCode(err) != gateway.EUpstream {
			t.Fatalf("%s through the injected fetcher: %v, want refused", prompt, err)
		}
	}
	// The neighbour port is refused before any fetch; the redirect to a
	// private address after the first hop.
	if tr.n.Load() != 2 {
		t.Fatalf("the injected fetcher carried %d requests, want 2 (the fox, the redirect's first hop)", tr.n.Load())
	}
}
