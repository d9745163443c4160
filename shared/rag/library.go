package rag

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/gob"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Persistence: each document's segment is a blob under segmentPrefix; the
// KV key versionKey changes whenever one is added or removed, and tells
// every instance to reload what changed.
const (
	segmentPrefix = "rag/segments/"
	versionKey    = "rag/version"
)

func segmentKey(kb, docID string) string { return segmentPrefix + kb + "/" + docID + ".seg" }

// Library holds the segments in memory and searches them. It is safe for
// concurrent use.
type Library struct {
	blobs storage.Blobs
	kv    storage.KV
	check time.Duration
	now   func() time.Time

	mu      sync.Mutex
	loaded  bool // the segments of version are in segs
	version string
	checked time.Time
	segs    map[string]*segment // by blob key
	views   map[string]*view    // by knowledge bases, joined
}

// NewLibrary returns a Library that checks the version at most every check.
func NewLibrary(blobs storage.Blobs, kv storage.KV, check time.Duration) *Library {
	return &Library{blobs: blobs, kv: kv, check: check, now: time.Now, segs: map[string]*segment{}, views: map[string]*view{}}
}

// refresh reloads the segments when the version changed. It holds l.mu.
func (l *Library) refresh(ctx context.Context) error {
	now := l.now()
	if l.loaded && now.Sub(l.checked) < l.check {
		return nil
	}
	v, err := l.kv.Get(ctx, versionKey)
	switch {
	case gateway.IsNotFound(err):
		v = []byte("none") // no document was ever added
	case err != nil:
		return fmt.Errorf("read index version: %w", err)
	}
	if l.loaded && string(v) == l.version {
		l.checked = now
		return nil
	}
	present := map[string]bool{}
	for info, err := range l.blobs.List(ctx, segmentPrefix) {
		if err != nil {
			return fmt.Errorf("list index segments: %w", err)
		}
		present[info.Key] = true
		if _, ok := l.segs[info.Key]; ok {
			continue
		}
		s, err := l.load(ctx, info.Key)
		if gateway.IsNotFound(err) {
			continue // removed since the listing
		}
		if err != nil {
			return err
		}
		l.segs[info.Key] = s
	}
	for k := range l.segs {
		if !present[k] {
			delete(l.segs, k)
		}
	}
	l.version, l.loaded, l.checked = string(v), true, now
	l.views = map[string]*view{}
	return nil
}

func (l *Library) load(ctx context.Context, key string) (*segment, error) {
	rc, _, err := l.blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var s segment
	if err := gob.NewDecoder(io.LimitReader(rc, 1<<30)).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode index segment %s: %w", key, err)
	}
	if len(s.Vectors) != len(s.Chunks)*s.Dims {
		return nil, fmt.Errorf("index segment %s is inconsistent", key)
	}
	s.prepare()
	return &s, nil
}

// bump tells every instance that the segments changed.
func (l *Library) bump(ctx context.Context) error {
	v := rand.Text()
	if err := l.kv.Put(ctx, versionKey, []byte(v)); err != nil {
		return fmt.Errorf("bump index version: %w", err)
	}
	return nil
}

// add stores a document's segment and makes it searchable everywhere.
func (l *Library) add(ctx context.Context, s *segment) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(s); err != nil {
		return fmt.Errorf("encode index segment: %w", err)
	}
	key := segmentKey(s.KB, s.DocID)
	if err := l.blobs.Put(ctx, key, &buf, "application/octet-stream"); err != nil {
		return fmt.Errorf("store index segment: %w", err)
	}
	s.prepare()
	l.mu.Lock()
	l.segs[key] = s
	l.views = map[string]*view{}
	l.mu.Unlock()
	return l.bump(ctx)
}

// remove takes a document out of the index everywhere.
func (l *Library) remove(ctx context.Context, kb, docID string) error {
	key := segmentKey(kb, docID)
	if err := l.blobs.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete index segment: %w", err)
	}
	l.mu.Lock()
	delete(l.segs, key)
	l.views = map[string]*view{}
	l.mu.Unlock()
	return l.bump(ctx)
}

// view returns the searchable view of the knowledge bases kbs.
func (l *Library) view(ctx context.Context, kbs []string) (*view, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.refresh(ctx); err != nil {
		return nil, err
	}
	kbs = slices.Sorted(slices.Values(kbs))
	name := strings.Join(kbs, "\x00")
	if v, ok := l.views[name]; ok {
		return v, nil
	}
	var segs []*segment
	for _, s := range l.segs {
		if slices.Contains(kbs, s.KB) {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b *segment) int { return strings.Compare(a.DocID, b.DocID) })
	v := newView(segs)
	l.views[name] = v
	return v, nil
}
