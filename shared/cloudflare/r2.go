//go:build js && wasm

package cloudflare

import (
	"context"
	"io"
	"iter"
	"syscall/js"
	"time"

	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.Blobs = (*Blobs)(nil)

// Blobs is the Blobs role on an R2 bucket. R2's binding signs no URLs
// (that needs S3 API credentials), so direct uploads take the gateway's own
// signed route.
type Blobs struct{ bucket js.Value }

// NewBlobs returns the Blobs role on the bucket bound as bucket.
func NewBlobs(bucket js.Value) *Blobs { return &Blobs{bucket: bucket} }

// PartSize is the size of the parts of a multipart upload: R2 wants every
// part but the last of one size, at least 5 MiB. One part at a time is held
// in memory (a Worker has 128 MB).
const PartSize = 8 << 20

func metadata(contentType string) js.Value {
	m := map[string]any{}
	if contentType != "" {
		m["httpMetadata"] = obj(map[string]any{"contentType": contentType})
	}
	return obj(m)
}

// Put implements storage.Blobs: one put for a body within PartSize, a
// multipart upload beyond, completed only when the whole body was read.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	r = storage.ContextReader(ctx, r)
	buf := make([]byte, PartSize)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if _, err := callAwait(b.bucket, "put", key, jsBytes(buf[:n]), metadata(contentType)); err != nil {
			return storage.Unavailable("put blob "+key, err)
		}
		return nil
	case err != nil:
		return err
	}
	up, err := callAwait(b.bucket, "createMultipartUpload", key, metadata(contentType))
	if err != nil {
		return storage.Unavailable("start upload of "+key, err)
	}
	parts := js.Global().Get("Array").New()
	for num := 1; ; num++ {
		part, err := callAwait(up, "uploadPart", num, jsBytes(buf[:n]))
		if err != nil {
			callAwait(up, "abort")
			return storage.Unavailable("upload part of "+key, err)
		}
		parts.Call("push", part)
		n, err = io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			callAwait(up, "abort")
			return err
		}
	}
	if _, err := callAwait(up, "complete", parts); err != nil {
		callAwait(up, "abort")
		return storage.Unavailable("complete upload of "+key, err)
	}
	return nil
}

func info(o js.Value) storage.BlobInfo {
	bi := storage.BlobInfo{Key: o.Get("key").String(), Size: int64(o.Get("size").Float())}
	if md := o.Get("httpMetadata"); md.Type() == js.TypeObject {
		if ct := md.Get("contentType"); ct.Type() == js.TypeString {
			bi.ContentType = ct.String()
		}
	}
	if up := o.Get("uploaded"); up.Type() == js.TypeObject {
		bi.ModTime = time.UnixMilli(int64(up.Call("getTime").Float()))
	}
	return bi
}

// Get implements storage.Blobs; the body streams from R2.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	o, err := callAwait(b.bucket, "get", key)
	if err != nil {
		return nil, storage.BlobInfo{}, storage.Unavailable("get blob "+key, err)
	}
	if o.IsNull() || o.IsUndefined() {
		return nil, storage.BlobInfo{}, storage.NotFound("blob " + key)
	}
	return newStreamReader(o.Get("body")), info(o), nil
}

// Delete implements storage.Blobs.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	if _, err := callAwait(b.bucket, "delete", key); err != nil {
		return storage.Unavailable("delete blob "+key, err)
	}
	return nil
}

// List implements storage.Blobs, a page of R2's listing at a time.
func (b *Blobs) List(ctx context.Context, prefix string) iter.Seq2[storage.BlobInfo, error] {
	return func(yield func(storage.BlobInfo, error) bool) {
		cursor := ""
		for {
			opts := map[string]any{"prefix": prefix, "include": js.ValueOf([]any{"httpMetadata"})}
			if cursor != "" {
				opts["cursor"] = cursor
			}
			page, err := callAwait(b.bucket, "list", obj(opts))
			if err != nil {
				yield(storage.BlobInfo{}, storage.Unavailable("list blobs "+prefix, err))
				return
			}
			objects := page.Get("objects")
			for i := range objects.Length() {
				if !yield(info(objects.Index(i)), nil) {
					return
				}
			}
			if !page.Get("truncated").Bool() {
				return
			}
			cursor = page.Get("cursor").String()
		}
	}
}
