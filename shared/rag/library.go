package rag

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Persistence. The index is a set of blobs under segmentPrefix, each a gob
// stream of segments:
//
//   - a loose segment, {kb}/{doc}@{stamp}.seg, is one document as indexed;
//   - a pack, ~packs/L{level}/{stamp}-{random}-{documents}.pack, is many
//     documents merged;
//   - a tombstone, ~removed/{kb}/{doc}@{stamp}, is an empty blob saying the
//     document was removed at stamp.
//
// ('~' is not allowed in knowledge base names.) Every segment carries the
// stamp it was written with; when a document appears more than once, in a
// pack and loose or in two packs, the copy with the greatest stamp is the
// document, and a tombstone with a later stamp hides it.
//
// Adding a document writes one loose segment; once looseLimit are loose
// they are merged into a level-1 pack, and once fanout packs share a level
// they are merged into one of the next level, so a cold instance reads
// about looseLimit + (fanout-1)·log_fanout(documents/looseLimit) blobs
// whatever the number of documents: on a Worker, where every request
// starts cold and each read is a subrequest, that is what keeps retrieval
// within the per-request limits. A merge writes its pack before deleting
// its inputs, so a crash between the two leaves duplicates, which reading
// resolves and the next merge removes; two instances merging at once do
// the same. Tombstones are dropped by a full merge, made when they grow
// past removedLimit.
//
// The KV key versionKey changes whenever the set changes, and tells every
// instance to reload what changed.
const (
	segmentPrefix = "rag/segments/"
	packPrefix    = segmentPrefix + "~packs/"
	removedPrefix = segmentPrefix + "~removed/"
	versionKey    = "rag/version"
)

// Merge policy.
const (
	looseLimit = 8 // loose segments that are merged into a level-1 pack
	fanout     = 4 // packs of one level that are merged into the next
	// Tombstones that make a full merge: between minRemoved and
	// maxRemoved, an eighth of the documents.
	minRemoved = 32
	maxRemoved = 512
	// Loose segments merged at once at most, so that one change does a
	// bounded amount of work (a Worker request has 1 000 operations).
	maxLoose = 64
	// A small index is merged whole as soon as a tombstone is old enough,
	// so that a removed document's chunks leave storage soon.
	smallIndex = 512
	// A full merge drops only tombstones older than this, so that a merge
	// running elsewhere, which may have read a removed document before its
	// tombstone was written, cannot bring it back.
	tombstoneGrace = 15 * time.Minute
)

func looseKey(kb, docID string, stamp int64) string {
	return segmentPrefix + kb + "/" + docID + "@" + strconv.FormatInt(stamp, 10) + ".seg"
}

func removedKey(kb, docID string, stamp int64) string {
	return removedPrefix + kb + "/" + docID + "@" + strconv.FormatInt(stamp, 10)
}

func packKey(level int, stamp int64, docs int) string {
	return fmt.Sprintf("%sL%d/%d-%s-%d.pack", packPrefix, level, stamp, rand.Text()[:8], docs)
}

// docRef names a document of a knowledge base.
type docRef struct{ KB, DocID string }

// blobKind is what a key under segmentPrefix holds.
type blobKind int

const (
	kindOther blobKind = iota
	kindLoose
	kindPack
	kindRemoved
)

// entry is one index blob as listed.
type entry struct {
	key   string
	kind  blobKind
	level int    // packs
	docs  int    // packs: the documents it holds, 0 when its name does not say
	doc   docRef // loose segments and tombstones
	stamp int64  // loose segments and tombstones
}

// parseKey classifies an index blob by its key.
func parseKey(key string) entry {
	e := entry{key: key}
	switch {
	case strings.HasPrefix(key, packPrefix):
		rest := strings.TrimPrefix(key, packPrefix)
		lv, _, ok := strings.Cut(rest, "/")
		n, err := strconv.Atoi(strings.TrimPrefix(lv, "L"))
		if ok && err == nil && strings.HasPrefix(lv, "L") && n > 0 && strings.HasSuffix(rest, ".pack") {
			e.kind, e.level = kindPack, n
			parts := strings.Split(strings.TrimSuffix(rest, ".pack"), "-")
			if d, err := strconv.Atoi(parts[len(parts)-1]); len(parts) == 3 && err == nil && d >= 0 {
				e.docs = d
			}
		}
	case strings.HasPrefix(key, removedPrefix):
		kb, rest, ok := strings.Cut(strings.TrimPrefix(key, removedPrefix), "/")
		doc, st, ok2 := strings.Cut(rest, "@")
		n, err := strconv.ParseInt(st, 10, 64)
		if ok && ok2 && err == nil && kb != "" && doc != "" {
			e.kind, e.doc, e.stamp = kindRemoved, docRef{kb, doc}, n
		}
	default:
		kb, rest, ok := strings.Cut(strings.TrimPrefix(key, segmentPrefix), "/")
		name, isSeg := strings.CutSuffix(rest, ".seg")
		if !ok || !isSeg || kb == "" || strings.Contains(name, "/") {
			break
		}
		// Segments written before packs are named {kb}/{doc}.seg (stamp 0).
		if doc, st, ok := strings.Cut(name, "@"); ok {
			n, err := strconv.ParseInt(st, 10, 64)
			if err != nil {
				break
			}
			name, e.stamp = doc, n
		}
		if name != "" {
			e.kind, e.doc = kindLoose, docRef{kb, name}
		}
	}
	return e
}

// Library holds the segments in memory and searches them. It is safe for
// concurrent use.
type Library struct {
	blobs storage.Blobs
	kv    storage.KV
	check time.Duration
	now   func() time.Time

	merging sync.Mutex // one merge at a time in this instance

	mu      sync.Mutex
	loaded  bool // the blobs of version are in held
	version string
	checked time.Time
	held    map[string][]*segment // by blob key, loose and packs
	removed map[docRef]int64      // tombstones: the latest removal
	live    map[docRef]*segment   // the documents, nil when held changed
	views   map[string]*view      // by knowledge bases, joined
	stamped int64                 // the last stamp handed out
}

// NewLibrary returns a Library that checks the version at most every check.
func NewLibrary(blobs storage.Blobs, kv storage.KV, check time.Duration) *Library {
	return &Library{blobs: blobs, kv: kv, check: check, now: time.Now,
		held: map[string][]*segment{}, removed: map[docRef]int64{}, views: map[string]*view{}}
}

// stamp returns a write stamp: the time in nanoseconds, increasing within
// this instance.
func (l *Library) stamp() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stamped = max(l.now().UnixNano(), l.stamped+1)
	return l.stamped
}

// errVanished is a blob listed and then gone: a merge took it away, and
// the listing is read again.
var errVanished = errors.New("an index blob vanished while loading")

// refresh reloads the blobs when the version changed. It holds l.mu.
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
	for attempt := 0; ; attempt++ {
		err = l.reload(ctx)
		if !errors.Is(err, errVanished) || attempt == 3 {
			break
		}
	}
	if err != nil {
		return err
	}
	l.version, l.loaded, l.checked = string(v), true, now
	return nil
}

// reload lists the index blobs and reads those not held yet.
func (l *Library) reload(ctx context.Context) error {
	entries, err := l.list(ctx)
	if err != nil {
		return err
	}
	present := map[string]bool{}
	removed := map[docRef]int64{}
	for _, e := range entries {
		switch e.kind {
		case kindRemoved:
			removed[e.doc] = max(removed[e.doc], e.stamp)
		case kindLoose, kindPack:
			present[e.key] = true
			if _, ok := l.held[e.key]; ok {
				continue
			}
			segs, err := l.load(ctx, e.key)
			if gateway.IsNotFound(err) {
				return errVanished
			}
			if err != nil {
				return err
			}
			l.held[e.key] = segs
		}
	}
	for k := range l.held {
		if !present[k] {
			delete(l.held, k)
		}
	}
	l.removed = removed
	l.changed()
	return nil
}

// changed forgets what was derived from the held blobs. It holds l.mu.
func (l *Library) changed() {
	l.live = nil
	l.views = map[string]*view{}
}

// list returns the index blobs, the tombstones first: a full merge
// deletes them last, after writing its pack and deleting the packs it
// merged, so a listing that reads them first and the rest after (a
// listing takes pages, and time) never sees a removed document's pack
// without its tombstone.
func (l *Library) list(ctx context.Context) ([]entry, error) {
	var out []entry
	for _, prefix := range []string{removedPrefix, segmentPrefix} {
		for info, err := range l.blobs.List(ctx, prefix) {
			if err != nil {
				return nil, fmt.Errorf("list index segments: %w", err)
			}
			e := parseKey(info.Key)
			if e.kind == kindOther || prefix == segmentPrefix && e.kind == kindRemoved {
				continue
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// load reads the segments of one blob and prepares them for search.
func (l *Library) load(ctx context.Context, key string) ([]*segment, error) {
	rc, _, err := l.blobs.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	dec := gob.NewDecoder(io.LimitReader(rc, 1<<31))
	var out []*segment
	for {
		s := new(segment)
		err := dec.Decode(s)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("decode index blob %s: %w", key, err)
		}
		if !s.consistent() {
			return nil, fmt.Errorf("index blob %s is inconsistent", key)
		}
		s.prepare()
		out = append(out, s)
	}
	return out, nil
}

// write stores segs as one blob, encoding as it goes.
func (l *Library) write(ctx context.Context, key string, segs []*segment) error {
	pr, pw := io.Pipe()
	go func() {
		enc := gob.NewEncoder(pw)
		for _, s := range segs {
			if err := enc.Encode(s); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	err := l.blobs.Put(ctx, key, pr, "application/octet-stream")
	pr.CloseWithError(errors.New("the index blob was not read to its end"))
	if err != nil {
		return fmt.Errorf("store index blob: %w", err)
	}
	return nil
}

// newer reports whether a is a later copy of its document than b.
func newer(a, b *segment) bool { return a.Stamp > b.Stamp }

// documents returns the documents of held: one copy each, the latest,
// none that a later tombstone removed. It holds l.mu.
func (l *Library) documents() map[docRef]*segment {
	if l.live != nil {
		return l.live
	}
	live := map[docRef]*segment{}
	for _, segs := range l.held {
		for _, s := range segs {
			ref := docRef{s.KB, s.DocID}
			if old, ok := live[ref]; !ok || newer(s, old) {
				live[ref] = s
			}
		}
	}
	for ref, s := range live {
		if st, ok := l.removed[ref]; ok && st >= s.Stamp {
			delete(live, ref)
		}
	}
	l.live = live
	return live
}

// bump tells every instance that the blobs changed.
func (l *Library) bump(ctx context.Context) error {
	v := rand.Text()
	if err := l.kv.Put(ctx, versionKey, []byte(v)); err != nil {
		return fmt.Errorf("bump index version: %w", err)
	}
	return nil
}

// add stores a document's segment and makes it searchable everywhere.
func (l *Library) add(ctx context.Context, s *segment) error {
	s.Stamp = l.stamp()
	key := looseKey(s.KB, s.DocID, s.Stamp)
	if err := l.write(ctx, key, []*segment{s}); err != nil {
		return err
	}
	s.prepare()
	l.mu.Lock()
	l.held[key] = []*segment{s}
	l.changed()
	l.mu.Unlock()
	if err := l.bump(ctx); err != nil {
		return err
	}
	l.tidy(ctx)
	return nil
}

// remove takes a document out of the index everywhere: a tombstone hides
// it in packs until a full merge rewrites them, and its loose segments go.
func (l *Library) remove(ctx context.Context, kb, docID string) error {
	ref := docRef{kb, docID}
	st := l.stamp()
	if err := l.blobs.Put(ctx, removedKey(kb, docID, st), strings.NewReader(""), "application/octet-stream"); err != nil {
		return fmt.Errorf("store index tombstone: %w", err)
	}
	var gone []string
	for info, err := range l.blobs.List(ctx, segmentPrefix+kb+"/"+docID) {
		if err != nil {
			return fmt.Errorf("list index segments: %w", err)
		}
		// A copy written after the tombstone (the document indexed again
		// meanwhile) stays.
		if e := parseKey(info.Key); e.kind == kindLoose && e.doc == ref && e.stamp < st {
			if err := l.blobs.Delete(ctx, info.Key); err != nil {
				return fmt.Errorf("delete index segment: %w", err)
			}
			gone = append(gone, info.Key)
		}
	}
	l.mu.Lock()
	l.removed[ref] = max(l.removed[ref], st)
	for _, k := range gone {
		delete(l.held, k)
	}
	l.changed()
	l.mu.Unlock()
	if err := l.bump(ctx); err != nil {
		return err
	}
	l.tidy(ctx)
	return nil
}

// tidy merges what the policy says should be merged. A failed merge
// loses nothing (its inputs stay) and is tried again after the next
// change, so it is logged rather than returned.
func (l *Library) tidy(ctx context.Context) {
	if err := l.merge(ctx); err != nil {
		slog.WarnContext(ctx, "index merge failed; the index stays as it was", "err", err)
	}
}

// plan chooses the blobs to merge from a listing: the inputs, the level of
// the pack to write (for a full merge, chosen by its size once written),
// and whether the merge is full (and so may drop the tombstones). No
// inputs means nothing to do.
func plan(entries []entry, now time.Time) (inputs []entry, level int, full bool) {
	var loose, removed []entry
	packs := map[int][]entry{}
	docs := 0
	top := 0
	for _, e := range entries {
		switch e.kind {
		case kindLoose:
			loose = append(loose, e)
			docs++
		case kindPack:
			packs[e.level] = append(packs[e.level], e)
			if e.docs > 0 {
				docs += e.docs
			} else {
				docs += looseLimit * int(math.Pow(fanout, float64(e.level-1)))
			}
			top = max(top, e.level)
		case kindRemoved:
			if time.Unix(0, e.stamp).Before(now.Add(-tombstoneGrace)) {
				removed = append(removed, e)
			}
		}
	}
	// Many loose segments (an upgrade) are merged first, a bounded number
	// at a time; a full merge waits for them.
	full = len(removed) > min(max(docs/8, minRemoved), maxRemoved) || len(removed) > 0 && docs <= smallIndex
	if full && len(loose) <= maxLoose {
		for _, e := range entries {
			if e.kind == kindLoose || e.kind == kindPack {
				inputs = append(inputs, e)
			}
		}
		// The pack drops every removed document; the tombstones go a
		// bounded number at a time, the rest at the next merge.
		inputs = append(inputs, removed[:min(len(removed), maxRemoved)]...)
		return inputs, 0, true
	}
	if len(loose) < looseLimit {
		return nil, 0, false
	}
	// At most maxLoose at once (an upgrade may find many).
	inputs, level = loose[:min(len(loose), maxLoose)], 1
	for level <= top && len(packs[level])+1 >= fanout {
		inputs = append(inputs, packs[level]...)
		level++
	}
	return inputs, level, false
}

// levelFor is the level of a pack of about docs documents.
func levelFor(docs int) int {
	level, size := 1, looseLimit
	for size*fanout <= docs {
		level, size = level+1, size*fanout
	}
	return level
}

// merge runs one merge if the listing calls for it.
func (l *Library) merge(ctx context.Context) error {
	l.merging.Lock()
	defer l.merging.Unlock()
	entries, err := l.list(ctx)
	if err != nil {
		return err
	}
	inputs, level, full := plan(entries, l.now())
	if len(inputs) == 0 {
		return nil
	}
	removed := map[docRef]int64{}
	for _, e := range entries {
		if e.kind == kindRemoved {
			removed[e.doc] = max(removed[e.doc], e.stamp)
		}
	}
	docs := map[docRef]*segment{}
	var used []string // the blobs whose content is in the pack
	for _, e := range inputs {
		if e.kind == kindRemoved {
			continue
		}
		l.mu.Lock()
		segs, ok := l.held[e.key]
		l.mu.Unlock()
		if !ok {
			segs, err = l.load(ctx, e.key)
			if gateway.IsNotFound(err) {
				continue // merged away by another instance: its pack is listed next time
			}
			if err != nil {
				return err
			}
		}
		used = append(used, e.key)
		for _, s := range segs {
			ref := docRef{s.KB, s.DocID}
			if old, ok := docs[ref]; !ok || newer(s, old) {
				docs[ref] = s
			}
		}
	}
	var segs []*segment
	for ref, s := range docs {
		if st, ok := removed[ref]; !ok || st < s.Stamp {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Or(cmp.Compare(a.KB, b.KB), cmp.Compare(a.DocID, b.DocID)) })
	if full {
		level = levelFor(len(segs)) // its real size: removals shrink it
	}
	key := packKey(level, l.stamp(), len(segs))
	if len(segs) > 0 {
		if err := l.write(ctx, key, segs); err != nil {
			return err
		}
	}
	// The pack is stored: the inputs may go. A crash from here on leaves
	// duplicates, never a gap.
	for _, e := range inputs {
		if err := l.blobs.Delete(ctx, e.key); err != nil {
			return fmt.Errorf("delete merged index blob: %w", err)
		}
	}
	l.mu.Lock()
	for _, k := range used {
		delete(l.held, k)
	}
	if len(segs) > 0 && l.loaded {
		l.held[key] = segs // else the next search reads it
	}
	if full {
		for _, e := range inputs {
			if e.kind == kindRemoved && l.removed[e.doc] == e.stamp {
				delete(l.removed, e.doc)
			}
		}
	}
	l.changed()
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
	for _, s := range l.documents() {
		if slices.Contains(kbs, s.KB) {
			segs = append(segs, s)
		}
	}
	slices.SortFunc(segs, func(a, b *segment) int { return strings.Compare(a.DocID, b.DocID) })
	v := newView(segs)
	l.views[name] = v
	return v, nil
}
