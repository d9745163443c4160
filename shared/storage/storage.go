// Package storage defines the three storage roles that domain code is written
// against: KV (small values by key), Records (items by partition and sort key)
// and Blobs (streamed bodies). Each backend (SQLite and files locally,
// DynamoDB and S3 on AWS, Workers KV, D1 and R2 on Cloudflare) implements
// them, and the storagetest package holds the conformance suite they all pass.
//
// Errors: a missing item is a gateway.ENotFound error, a failed condition is
// gateway.EConflict, bad arguments are gateway.EInvalid and an unreachable
// backend is gateway.EUnavailable. Backends translate their own errors into
// these at their edge.
package storage

import (
	"context"
	"io"
	"iter"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
)

// KV stores small values (settings, cached lookups, index versions) by key.
// Values are at most MaxValueSize bytes. Writes are last-writer-wins.
type KV interface {
	// Get returns the value under key, or ENotFound.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key, replacing any earlier value.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns up to limit keys that start with prefix, in byte order,
	// after the cursor returned by a previous call ("" to start). The returned
	// cursor is "" when there are no more keys.
	List(ctx context.Context, prefix, cursor string, limit int) (keys []string, next string, err error)
}

// MaxValueSize bounds KV values and Record values so that every backend can
// hold them (DynamoDB items are at most 400 KB).
const MaxValueSize = 256 << 10

// Item is one record. PK and SK address it; Value is the caller's payload
// (usually JSON); Counters are named integers changed atomically by Incr.
type Item struct {
	PK, SK string
	Value  []byte
	// Counters holds the item's atomic counters; Put keeps the stored
	// counters when it is nil.
	Counters map[string]int64
	// Version is set by the store: 1 on creation, incremented by every Put
	// and Incr. Put with IfVersion compares against it.
	Version int64
	// ExpiresAt, when not zero, is the time after which the item is
	// invisible to every read and is treated as absent by conditions.
	ExpiresAt time.Time
}

// Cond constrains a Put. The zero Cond puts unconditionally.
type Cond struct {
	// IfAbsent makes the put fail with EConflict when a live item exists.
	IfAbsent bool
	// IfVersion, when not zero, makes the put fail with EConflict unless the
	// stored item exists with exactly this version.
	IfVersion int64
}

// Query selects items of one partition by sort key. Prefix and the range
// [Start, End) combine; empty bounds are open.
type Query struct {
	Prefix     string
	Start, End string
	// Limit caps the items of one page; zero means DefaultLimit and values
	// above MaxLimit are lowered to it.
	Limit int
	// Cursor continues after the page that returned it.
	Cursor string
	// Desc returns items in descending sort-key order.
	Desc bool
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Page is one page of a query. Cursor is "" on the last page.
type Page struct {
	Items  []Item
	Cursor string
}

// Records stores items addressed by a partition key and a sort key: the shape
// of one DynamoDB table, one D1/SQLite table with primary key (pk, sk).
type Records interface {
	// Get returns the live item at (pk, sk), or ENotFound.
	Get(ctx context.Context, pk, sk string) (Item, error)
	// Put writes item under cond and returns its new version. A failed
	// condition is EConflict and changes nothing.
	Put(ctx context.Context, item Item, cond Cond) (version int64, err error)
	// Delete removes the item at (pk, sk). Deleting a missing item is not an
	// error.
	Delete(ctx context.Context, pk, sk string) error
	// Query returns one page of the live items of partition pk that match q,
	// ordered by sort key.
	Query(ctx context.Context, pk string, q Query) (Page, error)
	// Incr atomically adds each delta to the named counter of the item at
	// (pk, sk), creating the item (and counters at zero) when it is absent or
	// expired, and returns the counters' new values. A non-zero expiresAt
	// sets the item's expiry only when Incr creates it, so that a window
	// counter keeps the window it started with.
	Incr(ctx context.Context, pk, sk string, deltas map[string]int64, expiresAt time.Time) (map[string]int64, error)
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Key         string
	Size        int64
	ContentType string
	ModTime     time.Time
}

// Blobs stores bodies (uploaded files, generated images, index segments)
// streamed in and out.
type Blobs interface {
	// Put streams r into key with the given content type, replacing any
	// earlier blob. A reader that fails leaves any earlier blob intact.
	Put(ctx context.Context, key string, r io.Reader, contentType string) error
	// Get opens the blob at key for reading, or returns ENotFound. The
	// caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, BlobInfo, error)
	// Delete removes key. Deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
	// List yields the blobs whose keys start with prefix, in key order.
	List(ctx context.Context, prefix string) iter.Seq2[BlobInfo, error]
}

// Signer is the optional capability of Blobs backends that can hand out
// short-lived URLs (S3 and R2 presigned URLs).
type Signer interface {
	// SignURL returns a URL through which method (GET or PUT) may be used on
	// key until ttl has passed.
	SignURL(ctx context.Context, method, key string, ttl time.Duration) (string, error)
}

// NotFound returns the ENotFound error for a missing item.
func NotFound(what string) error {
	return gateway.Errorf(gateway.ENotFound, "%s not found", what)
}

// Conflict returns the EConflict error of a failed condition.
func Conflict() error {
	return gateway.Errorf(gateway.EConflict, "the item was changed or already exists")
}

// Invalid returns the EInvalid error of a bad argument.
func Invalid(format string, args ...any) error {
	return gateway.Errorf(gateway.EInvalid, format, args...)
}

// Unavailable wraps a backend failure as EUnavailable, keeping the cause in
// the chain for logs while clients see only the generic message.
func Unavailable(op string, err error) error {
	return &unavailable{op: op, err: err}
}

type unavailable struct {
	op  string
	err error
}

func (u *unavailable) Error() string { return u.op + ": " + u.err.Error() }
func (u *unavailable) Unwrap() []error {
	return []error{u.err, gateway.Errorf(gateway.EUnavailable, "The storage backend is unavailable.")}
}

// CheckKey returns EInvalid unless key is usable by every backend: non-empty,
// at most 1024 bytes, no NUL.
func CheckKey(what, key string) error {
	if key == "" {
		return Invalid("%s must not be empty", what)
	}
	if len(key) > 1024 {
		return Invalid("%s is longer than 1024 bytes", what)
	}
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return Invalid("%s contains a NUL byte", what)
		}
	}
	return nil
}

// Clamp returns the page size for a requested limit.
func Clamp(limit int) int {
	switch {
	case limit <= 0:
		return DefaultLimit
	case limit > MaxLimit:
		return MaxLimit
	}
	return limit
}

// CheckBlobKey returns EInvalid unless key is a usable blob key: a CheckKey
// key made of "/"-separated segments, none of them empty, "." or "..", so
// that a key can never name a path outside the store on any backend.
func CheckBlobKey(key string) error {
	if err := CheckKey("blob key", key); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Contains(seg, "\\") {
			return Invalid("blob key %q has an empty, relative or backslashed segment", key)
		}
	}
	return nil
}

// CheckValue returns EInvalid unless value fits every backend (at most
// MaxValueSize bytes).
func CheckValue(value []byte) error {
	if len(value) > MaxValueSize {
		return Invalid("value of %d bytes is over the limit of %d", len(value), MaxValueSize)
	}
	return nil
}

// CheckItemKey returns EInvalid unless pk and sk are usable record keys.
func CheckItemKey(pk, sk string) error {
	if err := CheckKey("partition key", pk); err != nil {
		return err
	}
	return CheckKey("sort key", sk)
}

// Bounds returns the sort-key range [lo, hi) that q's prefix and range
// select together; hi is "" when the range is open above. The range is
// empty when hi != "" and lo >= hi.
func (q Query) Bounds() (lo, hi string) {
	lo, hi = PrefixRange(q.Prefix)
	if q.Start > lo {
		lo = q.Start
	}
	if q.End != "" && (hi == "" || q.End < hi) {
		hi = q.End
	}
	return lo, hi
}

// PrefixRange returns the half-open range [lo, hi) of the strings that
// start with prefix; hi is "" when the range is open above.
func PrefixRange(prefix string) (lo, hi string) {
	if utf8.ValidString(prefix) {
		// The next code point after the last one: valid UTF-8 too (D1 hands
		// bounds to JavaScript as strings), and in byte order the same bound.
		r := []rune(prefix)
		for i := len(r) - 1; i >= 0; i-- {
			next := r[i] + 1
			if next == 0xD800 { // the surrogates are not characters
				next = 0xE000
			}
			if next <= utf8.MaxRune {
				r[i] = next
				return prefix, string(r[:i+1])
			}
		}
		return prefix, ""
	}
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return prefix, string(b[:i+1])
		}
	}
	return prefix, ""
}

// Batcher is the optional capability of Records backends that write many
// items in one round trip (one transaction in SQLite, BatchWriteItem on
// DynamoDB), for records that are written once and never updated, such as
// a log of requests.
type Batcher interface {
	// PutNew writes items unconditionally, each as a whole new item at
	// version 1 (replacing any earlier item, counters included). It is not
	// atomic across items: on error, some may have been written.
	PutNew(ctx context.Context, items []Item) error
}

// ContextReader returns a reader of r that fails with ctx's error once ctx
// ends, so that a backend's long copy of a body stops with its request.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// QueryAll yields every item of partition pk that q selects, page after
// page, stopping at the first error.
func QueryAll(ctx context.Context, r Records, pk string, q Query) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		if q.Limit == 0 {
			q.Limit = MaxLimit
		}
		for {
			page, err := r.Query(ctx, pk, q)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range page.Items {
				if !yield(it, nil) {
					return
				}
			}
			if page.Cursor == "" {
				return
			}
			q.Cursor = page.Cursor
		}
	}
}

// CheckIncr returns EInvalid unless an Incr of deltas at (pk, sk) is
// usable by every backend: good keys, at least one counter, counter names
// that are keys themselves.
func CheckIncr(pk, sk string, deltas map[string]int64) error {
	if err := CheckItemKey(pk, sk); err != nil {
		return err
	}
	if len(deltas) == 0 {
		return Invalid("Incr needs at least one counter")
	}
	for name := range deltas {
		if err := CheckKey("counter name", name); err != nil {
			return err
		}
	}
	return nil
}
