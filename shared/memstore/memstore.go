// Package memstore implements the three storage roles in memory: the store
// of handler tests and of short-lived processes that keep nothing. It passes
// the same conformance suite as the durable backends, so code tested on it
// behaves the same on SQLite, DynamoDB and S3. Stored bytes are copied in
// and out, so callers never share memory with the store.
package memstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/storage"
)

// Store holds the three roles. The zero Store is not usable; call New.
type Store struct {
	kv      KV
	records Records
	blobs   Blobs
}

// New returns an empty store whose expiry checks read now (time.Now when
// nil), so tests can move the clock.
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{}
	s.kv.m = map[string][]byte{}
	s.records.parts = map[string]map[string]storage.Item{}
	s.records.now = now
	s.blobs.m = map[string]blob{}
	s.blobs.now = now
	return s
}

// KV returns the KV role.
func (s *Store) KV() *KV { return &s.kv }

// Records returns the Records role.
func (s *Store) Records() *Records { return &s.records }

// Blobs returns the Blobs role.
func (s *Store) Blobs() *Blobs { return &s.blobs }

var _ storage.KV = (*KV)(nil)

// KV is the KV role in memory.
type KV struct {
	mu sync.RWMutex
	m  map[string][]byte
}

// Get implements storage.KV.
func (s *KV) Get(_ context.Context, key string) ([]byte, error) {
	if err := storage.CheckKey("key", key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, storage.NotFound("key " + key)
	}
	return bytes.Clone(v), nil
}

// Put implements storage.KV.
func (s *KV) Put(_ context.Context, key string, value []byte) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	if err := storage.CheckValue(value); err != nil {
		return err
	}
	v := append([]byte{}, value...)
	s.mu.Lock()
	s.m[key] = v
	s.mu.Unlock()
	return nil
}

// Delete implements storage.KV.
func (s *KV) Delete(_ context.Context, key string) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// List implements storage.KV.
func (s *KV) List(_ context.Context, prefix, cursor string, limit int) ([]string, string, error) {
	limit = storage.Clamp(limit)
	s.mu.RLock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) && (cursor == "" || k > cursor) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	if len(keys) > limit {
		keys = keys[:limit]
		return keys, keys[limit-1], nil
	}
	return keys, "", nil
}

var (
	_ storage.Records = (*Records)(nil)
	_ storage.Batcher = (*Records)(nil)
)

// Records is the Records role in memory. One lock guards every partition:
// conditions and counters are atomic because each write holds it.
type Records struct {
	mu    sync.RWMutex
	parts map[string]map[string]storage.Item
	now   func() time.Time
}

// live returns the item at (pk, sk) if present and not expired; the caller
// holds the lock.
func (r *Records) live(pk, sk string, now time.Time) (storage.Item, bool) {
	it, ok := r.parts[pk][sk]
	if !ok || (!it.ExpiresAt.IsZero() && !it.ExpiresAt.After(now)) {
		return storage.Item{}, false
	}
	return it, true
}

// store writes it; the caller holds the write lock.
func (r *Records) store(it storage.Item) {
	p := r.parts[it.PK]
	if p == nil {
		p = map[string]storage.Item{}
		r.parts[it.PK] = p
	}
	p[it.SK] = it
}

func clone(it storage.Item) storage.Item {
	it.Value = append([]byte{}, it.Value...)
	if len(it.Counters) == 0 {
		it.Counters = nil
	} else {
		it.Counters = maps.Clone(it.Counters)
	}
	return it
}

// Get implements storage.Records.
func (r *Records) Get(_ context.Context, pk, sk string) (storage.Item, error) {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return storage.Item{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	it, ok := r.live(pk, sk, r.now())
	if !ok {
		return storage.Item{}, storage.NotFound("record " + pk + "/" + sk)
	}
	return clone(it), nil
}

// Put implements storage.Records.
func (r *Records) Put(_ context.Context, item storage.Item, cond storage.Cond) (int64, error) {
	if err := storage.CheckItemKey(item.PK, item.SK); err != nil {
		return 0, err
	}
	if err := storage.CheckValue(item.Value); err != nil {
		return 0, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, live := r.live(item.PK, item.SK, r.now())
	switch {
	case cond.IfAbsent && live:
		return 0, storage.Conflict()
	case cond.IfVersion != 0 && (!live || cur.Version != cond.IfVersion):
		return 0, storage.Conflict()
	}
	next := storage.Item{PK: item.PK, SK: item.SK, Value: item.Value, Version: 1, ExpiresAt: item.ExpiresAt}
	if live {
		next.Version = cur.Version + 1
		next.Counters = cur.Counters
	}
	r.store(clone(next))
	return next.Version, nil
}

// Delete implements storage.Records.
func (r *Records) Delete(_ context.Context, pk, sk string) error {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.parts[pk]; p != nil {
		delete(p, sk)
		if len(p) == 0 {
			delete(r.parts, pk)
		}
	}
	return nil
}

// Incr implements storage.Records.
func (r *Records) Incr(_ context.Context, pk, sk string, deltas map[string]int64, expiresAt time.Time) (map[string]int64, error) {
	if err := storage.CheckIncr(pk, sk, deltas); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, live := r.live(pk, sk, r.now())
	if !live {
		cur = storage.Item{PK: pk, SK: sk, ExpiresAt: expiresAt}
	}
	counters := maps.Clone(cur.Counters)
	if counters == nil {
		counters = make(map[string]int64, len(deltas))
	}
	out := make(map[string]int64, len(deltas))
	for k, d := range deltas {
		counters[k] += d
		out[k] = counters[k]
	}
	cur.Counters = counters
	cur.Version++
	r.store(cur)
	return out, nil
}

// Query implements storage.Records.
func (r *Records) Query(_ context.Context, pk string, q storage.Query) (storage.Page, error) {
	if err := storage.CheckKey("partition key", pk); err != nil {
		return storage.Page{}, err
	}
	var after string
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil {
			return storage.Page{}, storage.Invalid("the cursor is malformed")
		}
		after = string(b)
	}
	limit := storage.Clamp(q.Limit)
	lo, hi := q.Bounds()
	r.mu.RLock()
	now := r.now()
	var items []storage.Item
	for sk := range r.parts[pk] {
		switch {
		case sk < lo, hi != "" && sk >= hi,
			q.Cursor != "" && !q.Desc && sk <= after,
			q.Cursor != "" && q.Desc && sk >= after:
			continue
		}
		if it, ok := r.live(pk, sk, now); ok {
			items = append(items, clone(it))
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(items, func(a, b storage.Item) int {
		if q.Desc {
			return strings.Compare(b.SK, a.SK)
		}
		return strings.Compare(a.SK, b.SK)
	})
	var page storage.Page
	if len(items) > limit {
		items = items[:limit]
		page.Cursor = base64.RawURLEncoding.EncodeToString([]byte(items[limit-1].SK))
	}
	page.Items = items
	return page, nil
}

// PutNew implements storage.Batcher.
func (r *Records) PutNew(_ context.Context, items []storage.Item) error {
	for _, it := range items {
		if err := storage.CheckItemKey(it.PK, it.SK); err != nil {
			return err
		}
		if err := storage.CheckValue(it.Value); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, it := range items {
		r.store(clone(storage.Item{PK: it.PK, SK: it.SK, Value: it.Value, Version: 1, ExpiresAt: it.ExpiresAt}))
	}
	return nil
}

var _ storage.Blobs = (*Blobs)(nil)

type blob struct {
	body []byte
	info storage.BlobInfo
}

// Blobs is the Blobs role in memory. A Put reads its whole body before it
// replaces the stored blob, so a failed reader leaves the earlier one.
type Blobs struct {
	mu  sync.RWMutex
	m   map[string]blob
	now func() time.Time
}

// Put implements storage.Blobs.
func (b *Blobs) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	if len(contentType) > 1024 {
		return storage.Invalid("content type is longer than 1024 bytes")
	}
	body, err := io.ReadAll(storage.ContextReader(ctx, r))
	if err != nil {
		return err
	}
	info := storage.BlobInfo{Key: key, Size: int64(len(body)), ContentType: contentType, ModTime: b.now()}
	b.mu.Lock()
	b.m[key] = blob{body: body, info: info}
	b.mu.Unlock()
	return nil
}

// Get implements storage.Blobs. The reader shares the stored bytes, which
// are never changed in place: a later Put replaces the slice.
func (b *Blobs) Get(_ context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	if err := storage.CheckBlobKey(key); err != nil {
		return nil, storage.BlobInfo{}, err
	}
	b.mu.RLock()
	bl, ok := b.m[key]
	b.mu.RUnlock()
	if !ok {
		return nil, storage.BlobInfo{}, storage.NotFound("blob " + key)
	}
	return io.NopCloser(bytes.NewReader(bl.body)), bl.info, nil
}

// Delete implements storage.Blobs.
func (b *Blobs) Delete(_ context.Context, key string) error {
	if err := storage.CheckBlobKey(key); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.m, key)
	b.mu.Unlock()
	return nil
}

// List implements storage.Blobs.
func (b *Blobs) List(ctx context.Context, prefix string) iter.Seq2[storage.BlobInfo, error] {
	return func(yield func(storage.BlobInfo, error) bool) {
		b.mu.RLock()
		var infos []storage.BlobInfo
		for k, bl := range b.m {
			if strings.HasPrefix(k, prefix) {
				infos = append(infos, bl.info)
			}
		}
		b.mu.RUnlock()
		slices.SortFunc(infos, func(x, y storage.BlobInfo) int { return strings.Compare(x.Key, y.Key) })
		for _, info := range infos {
			if err := ctx.Err(); err != nil {
				yield(storage.BlobInfo{}, err)
				return
			}
			if !yield(info, nil) {
				return
			}
		}
	}
}
