package draw_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/fakeupstream"
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
	up := upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second})
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
			images, err := s.Generate(ctx, up, draw.Request{Prompt: prompt, N: 2, Size: "512x512"})
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

func TestRefusalsStoreNothing(t *testing.T) {
	s, blobs, up := service(t)
	ctx := context.Background()
	tests := map[string]string{
		"#huge a mountain":   "larger than",
		"#html a river":      "not an image",
		"#private a secret":  "private address",
		"#openai #huge lake": "larger than",
	}
	for prompt, want := range tests {
		t.Run(prompt, func(t *testing.T) {
			_, err := s.Generate(ctx, up, draw.Request{Prompt: prompt, N: 1, Size: "512x512"})
			if gateway.ErrorCode(err) != gateway.EUpstream || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want a refusal saying %q", err, want)
			}
		})
	}
	// Two images of which the second is refused: the first is not kept.
	if n := stored(t, blobs); n != 0 {
		t.Fatalf("%d images stored after refusals, want none", n)
	}
	if _, err := s.Generate(ctx, up, draw.Request{Prompt: "  ", N: 1}); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("empty prompt: %v", err)
	}
}
