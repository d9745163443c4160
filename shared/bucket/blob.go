// Package bucket implements the Blobs storage role on an S3 bucket (or any
// S3-compatible store), with presigned URLs.
//
// Put streams: a body that fits in one part is sent with PutObject; a larger
// one goes up as a multipart upload, one part in memory at a time, and is
// aborted on any failure, so that an earlier object under the key survives a
// failed replacement.
package bucket

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/aigateway/aigateway/shared/storage"
)

var (
	_ storage.Blobs  = (*Blobs)(nil)
	_ storage.Signer = (*Blobs)(nil)
)

// PartSize is the size of multipart upload parts (S3's minimum is 5 MiB).
const PartSize = 8 << 20

// partBuffers recycles the part buffers, so that a put (most are small
// images and documents) does not allocate 8 MiB. A hand-written multipart
// upload rather than the SDK's transfer manager: feature/s3/manager is
// deprecated and its successor is not yet 1.0, and one sequential part at
// a time keeps a Lambda's memory to one buffer.
var partBuffers = sync.Pool{New: func() any { b := make([]byte, PartSize); return &b }}

// Blobs stores blobs in one bucket.
type Blobs struct {
	client  *s3.Client
	presign *s3.PresignClient
	bucket  string
}

// New returns Blobs in bucket, reached through client.
func New(client *s3.Client, bucket string) *Blobs {
	return &Blobs{client: client, presign: s3.NewPresignClient(client), bucket: bucket}
}

// Put implements storage.Blobs.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	bp := partBuffers.Get().(*[]byte)
	defer partBuffers.Put(bp)
	first := *bp
	n, err := io.ReadFull(r, first)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		_, err = b.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &b.bucket, Key: &key, Body: bytes.NewReader(first[:n]),
			ContentLength: aws.Int64(int64(n)), ContentType: optional(contentType),
		})
		if err != nil {
			return storage.Unavailable("put blob "+key, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read blob %s: %w", key, err)
	}
	return b.multipart(ctx, key, io.MultiReader(bytes.NewReader(first), r), first, contentType)
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// multipart uploads r in parts of PartSize, reusing buf for each part.
func (b *Blobs) multipart(ctx context.Context, key string, r io.Reader, buf []byte, contentType string) (err error) {
	up, err := b.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &b.bucket, Key: &key, ContentType: optional(contentType),
	})
	if err != nil {
		return storage.Unavailable("start upload of "+key, err)
	}
	defer func() {
		if err != nil {
			// The bucket's lifecycle rule removes uploads this misses.
			b.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
				Bucket: &b.bucket, Key: &key, UploadId: up.UploadId,
			})
		}
	}()
	var parts []types.CompletedPart
	for num := int32(1); ; num++ {
		n, rerr := io.ReadFull(r, buf)
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fmt.Errorf("read blob %s: %w", key, rerr)
		}
		if n == 0 && num > 1 {
			break
		}
		out, err := b.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: &b.bucket, Key: &key, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return storage.Unavailable(fmt.Sprintf("upload part %d of %s", num, key), err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		if rerr != nil {
			break
		}
	}
	_, err = b.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &b.bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return storage.Unavailable("complete upload of "+key, err)
	}
	return nil
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

func accessDenied(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

// Get implements storage.Blobs.
func (b *Blobs) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key})
	if err != nil {
		// S3 answers a missing key 403 to a reader without s3:ListBucket
		// on the bucket: the functions read their prefixes with GetObject
		// alone, so for them a 403 on a read is a missing blob.
		if notFound(err) || accessDenied(err) {
			return nil, storage.BlobInfo{}, storage.NotFound("blob " + key)
		}
		return nil, storage.BlobInfo{}, storage.Unavailable("get blob "+key, err)
	}
	return out.Body, storage.BlobInfo{
		Key: key, Size: aws.ToInt64(out.ContentLength), ContentType: aws.ToString(out.ContentType),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// Delete implements storage.Blobs.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	if _, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.bucket, Key: &key}); err != nil && !notFound(err) {
		return storage.Unavailable("delete blob "+key, err)
	}
	return nil
}

// List implements storage.Blobs. Listings carry no content type; Get has it.
func (b *Blobs) List(ctx context.Context, prefix string) iter.Seq2[storage.BlobInfo, error] {
	return func(yield func(storage.BlobInfo, error) bool) {
		p := s3.NewListObjectsV2Paginator(b.client, &s3.ListObjectsV2Input{Bucket: &b.bucket, Prefix: &prefix})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(storage.BlobInfo{}, storage.Unavailable("list blobs "+prefix, err))
				return
			}
			for _, o := range page.Contents {
				info := storage.BlobInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// SignURL implements storage.Signer with S3 presigned URLs.
func (b *Blobs) SignURL(ctx context.Context, method, key string, ttl time.Duration) (string, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return "", err
	}
	opt := s3.WithPresignExpires(ttl)
	var signed *v4.PresignedHTTPRequest
	var err error
	switch method {
	case http.MethodGet:
		signed, err = b.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &key}, opt)
	case http.MethodPut:
		signed, err = b.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &b.bucket, Key: &key}, opt)
	default:
		return "", storage.Invalid("only GET and PUT URLs can be signed, not %s", method)
	}
	if err != nil {
		return "", storage.Unavailable("sign "+method+" "+key, err)
	}
	return signed.URL, nil
}

// CreateBucket creates the bucket, for tests and local trials; deployments
// get it from the SAM template.
func (b *Blobs) CreateBucket(ctx context.Context) error {
	_, err := b.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &b.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return storage.Unavailable("create bucket "+b.bucket, err)
	}
	return nil
}
