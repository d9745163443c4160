package rag

import (
	"bytes"
	"context"
	"encoding/gob"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// countingBlobs counts reads and can refuse deletes, over real files.
type countingBlobs struct {
	storage.Blobs
	gets, lists atomic.Int64
	failDelete  atomic.Bool
	vanish      sync.Map // key → true: the next Get of it says not found
}

func (c *countingBlobs) Get(ctx context.Context, key string) (io.ReadCloser, storage.BlobInfo, error) {
	c.gets.Add(1)
	if _, ok := c.vanish.LoadAndDelete(key); ok {
		return nil, storage.BlobInfo{}, storage.NotFound("blob")
	}
	return c.Blobs.Get(ctx, key)
}

func (c *countingBlobs) List(ctx context.Context, prefix string) iter.Seq2[storage.BlobInfo, error] {
	c.lists.Add(1)
	return c.Blobs.List(ctx, prefix)
}

func (c *countingBlobs) Delete(ctx context.Context, key string) error {
	if c.failDelete.Load() {
		return fmt.Errorf("injected: the process died before deleting %s", key)
	}
	return c.Blobs.Delete(ctx, key)
}

type packFixture struct {
	t     *testing.T
	dir   string
	blobs *countingBlobs
	kv    storage.KV
}

func newPackFixture(t *testing.T) *packFixture {
	dir := t.TempDir()
	d, err := disk.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &packFixture{t: t, dir: dir, blobs: &countingBlobs{Blobs: d}, kv: sqlitetest.Open(t).KV()}
}

func (f *packFixture) library() *Library { return NewLibrary(f.blobs, f.kv, 0) }

// doc is a two-chunk document whose text names it.
func doc(kb string, i int) *segment {
	return &segment{DocID: fmt.Sprintf("doc%04d", i), KB: kb, Title: "T", Dims: 2,
		Chunks:  []Chunk{{Text: fmt.Sprintf("marker%04d alpha", i)}, {Text: fmt.Sprintf("marker%04d beta", i)}},
		Vectors: []float32{1, float32(i), float32(i), 1}}
}

// kinds counts the index blobs by kind, and packs by level.
func (f *packFixture) kinds() (loose, removed int, packs map[int]int) {
	f.t.Helper()
	entries, err := NewLibrary(f.blobs, f.kv, 0).list(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	packs = map[int]int{}
	for _, e := range entries {
		switch e.kind {
		case kindLoose:
			loose++
		case kindRemoved:
			removed++
		case kindPack:
			packs[e.level]++
		}
	}
	return loose, removed, packs
}

// docsSeen returns the documents a fresh instance finds, each once, and
// how many blobs it read to find them.
func (f *packFixture) docsSeen(kb string) (map[string]int, int64) {
	f.t.Helper()
	before := f.blobs.gets.Load()
	l := f.library()
	v, err := l.view(context.Background(), []string{kb})
	if err != nil {
		f.t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range v.segs {
		seen[s.DocID]++
		if len(s.Chunks) != 2 || !strings.HasPrefix(s.Chunks[0].Text, "marker"+strings.TrimPrefix(s.DocID, "doc")) {
			f.t.Fatalf("document %s holds %+v", s.DocID, s.Chunks)
		}
	}
	if v.n != 2*len(v.segs) {
		f.t.Fatalf("%d chunks for %d documents", v.n, len(v.segs))
	}
	return seen, f.blobs.gets.Load() - before
}

// filesHolding returns the stored index files whose bytes contain s.
func (f *packFixture) filesHolding(s string) []string {
	var out []string
	filepath.WalkDir(f.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(s)) {
				out = append(out, p)
			}
		}
		return nil
	})
	return out
}

// TestPacksBoundColdReads adds 600 documents one by one and checks that
// they end up in a few packs, that a cold instance finds every one exactly
// once, and that it reads a number of blobs that grows with the logarithm
// of the documents: what keeps a Worker's retrieval within its
// subrequests.
func TestPacksBoundColdReads(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	a := f.library()
	const n = 600
	for i := range n {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	loose, removed, packs := f.kinds()
	if loose >= looseLimit || removed != 0 {
		t.Fatalf("%d loose segments, %d tombstones", loose, removed)
	}
	blobs := loose
	for level, c := range packs {
		if c >= fanout {
			t.Fatalf("%d packs at level %d", c, level)
		}
		blobs += c
	}
	// 600 = 75 merges of 8: levels 1..4 hold 3, 1, 0, 1 packs (in 8s: 75 = 3 + 4·(2) + 64·1).
	if blobs > 10 {
		t.Fatalf("%d blobs for %d documents: %d loose, packs %v", blobs, n, loose, packs)
	}
	seen, reads := f.docsSeen("kb")
	if len(seen) != n {
		t.Fatalf("a cold instance finds %d documents, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", id, c)
		}
	}
	if reads != int64(blobs) {
		t.Fatalf("a cold instance read %d blobs, want the %d there are", reads, blobs)
	}
	t.Logf("%d documents: %d loose, packs by level %v; a cold search reads %d blobs", n, loose, packs, reads)
	hits, err := f.library().Search(ctx, []string{"kb"}, nil, "marker0417", 2, KeywordOnly)
	if err != nil || len(hits) != 2 || hits[0].DocID != "doc0417" {
		t.Fatalf("search = %+v, %v", hits, err)
	}
}

// TestRemovalsReachEveryCopy removes documents that sit loose and packed,
// checks that no instance serves them, and that a full merge, once the
// tombstones are past their grace, leaves no byte of them in storage.
func TestRemovalsReachEveryCopy(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	a := f.library()
	clock := time.Now()
	a.now = func() time.Time { return clock }
	for i := range 100 {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if i%3 != 0 {
			continue
		}
		if err := a.remove(ctx, "kb", fmt.Sprintf("doc%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	want := 100 - 34
	seen, _ := f.docsSeen("kb")
	if len(seen) != want || seen["doc0000"] != 0 || seen["doc0099"] != 0 || seen["doc0001"] != 1 {
		t.Fatalf("after removals a cold instance sees %d documents", len(seen))
	}
	if _, removed, _ := f.kinds(); removed != 34 {
		t.Fatalf("%d tombstones, want 34 (none is past its grace)", removed)
	}
	if len(f.filesHolding("marker0003")) == 0 {
		t.Fatal("a removed document's packed copy is gone before any full merge: the test does not exercise tombstones")
	}
	// Later: the tombstones are old, and the next change merges everything.
	clock = clock.Add(tombstoneGrace + time.Minute)
	if err := a.add(ctx, doc("kb", 100)); err != nil {
		t.Fatal(err)
	}
	if _, removed, _ := f.kinds(); removed != 0 {
		t.Fatalf("%d tombstones after the full merge", removed)
	}
	for i := 0; i < 100; i += 3 {
		if files := f.filesHolding(fmt.Sprintf("marker%04d", i)); len(files) > 0 {
			t.Fatalf("removed document %d is still stored in %v", i, files)
		}
	}
	seen, _ = f.docsSeen("kb")
	if len(seen) != want+1 {
		t.Fatalf("after the full merge a cold instance sees %d documents, want %d", len(seen), want+1)
	}
	// The instance that merged answers from memory the same.
	v, err := a.view(ctx, []string{"kb"})
	if err != nil || len(v.segs) != want+1 {
		t.Fatalf("the merging instance sees %d documents, %v", len(v.segs), err)
	}
}

// TestConcurrentInstances adds and removes from four instances at once and
// checks that nothing is lost, duplicated or resurrected.
func TestConcurrentInstances(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for w := range 4 {
		l := f.library()
		wg.Go(func() {
			for i := range 60 {
				id := w*100 + i
				if err := l.add(ctx, doc("kb", id)); err != nil {
					errs <- err
					return
				}
				if i%4 == 1 {
					if err := l.remove(ctx, "kb", fmt.Sprintf("doc%04d", id-1)); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen, _ := f.docsSeen("kb")
	for w := range 4 {
		for i := range 60 {
			id := fmt.Sprintf("doc%04d", w*100+i)
			want := 1
			if i%4 == 0 {
				want = 0
			}
			if seen[id] != want {
				t.Fatalf("%s seen %d times, want %d", id, seen[id], want)
			}
		}
	}
	loose, removed, packs := f.kinds()
	t.Logf("after 240 adds and 60 removals from 4 instances: %d loose, %d tombstones, packs %v", loose, removed, packs)
}

// TestMergeInterrupted kills a merge between writing its pack and deleting
// its inputs: the add still succeeds, readers see each document once, and
// the next merge clears the duplicates.
func TestMergeInterrupted(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	a := f.library()
	for i := range looseLimit - 1 {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	f.blobs.failDelete.Store(true)
	if err := a.add(ctx, doc("kb", looseLimit-1)); err != nil {
		t.Fatalf("the add failed with its merge: %v", err)
	}
	loose, _, packs := f.kinds()
	if loose != looseLimit || packs[1] != 1 {
		t.Fatalf("after the interrupted merge: %d loose, packs %v; want every input and the new pack", loose, packs)
	}
	seen, _ := f.docsSeen("kb")
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s seen %d times", id, c)
		}
	}
	if len(seen) != looseLimit {
		t.Fatalf("%d documents seen", len(seen))
	}
	f.blobs.failDelete.Store(false)
	if err := a.add(ctx, doc("kb", looseLimit)); err != nil {
		t.Fatal(err)
	}
	loose, _, packs = f.kinds()
	if loose != 0 || packs[1] != 2 {
		t.Fatalf("after the next merge: %d loose, packs %v", loose, packs)
	}
	if seen, _ := f.docsSeen("kb"); len(seen) != looseLimit+1 {
		t.Fatalf("%d documents seen", len(seen))
	}
}

// TestBlobVanishesWhileLoading: a blob listed and gone when read (merged
// away by another instance) makes the reader list again rather than
// answer without it.
func TestBlobVanishesWhileLoading(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	a := f.library()
	for i := range 3 {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	f.blobs.vanish.Store(looseKey("kb", "doc0001", a.held2stamp(t, "doc0001")), true)
	lists := f.blobs.lists.Load()
	seen, _ := f.docsSeen("kb")
	if len(seen) != 3 {
		t.Fatalf("%d documents seen", len(seen))
	}
	// A listing is two: the tombstones, then the rest.
	if f.blobs.lists.Load()-lists != 4 {
		t.Fatalf("the reader listed %d times, want twice (4 List calls)", f.blobs.lists.Load()-lists)
	}
}

func (l *Library) held2stamp(t *testing.T, docID string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, segs := range l.held {
		for _, s := range segs {
			if s.DocID == docID {
				return s.Stamp
			}
		}
	}
	t.Fatalf("%s not held", docID)
	return 0
}

// TestSegmentsOfEarlierReleases: a segment stored before packs (one gob
// value at {kb}/{doc}.seg, no stamp) is read, removed and merged.
func TestSegmentsOfEarlierReleases(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	for i := range 2 {
		var buf bytes.Buffer
		if err := gob.NewEncoder(&buf).Encode(struct {
			DocID, KB, Title string
			Dims             int
			Chunks           []Chunk
			Vectors          []float32
		}{doc("kb", i).DocID, "kb", "T", 2, doc("kb", i).Chunks, doc("kb", i).Vectors}); err != nil {
			t.Fatal(err)
		}
		if err := f.blobs.Put(ctx, segmentPrefix+"kb/"+doc("kb", i).DocID+".seg", &buf, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	if seen, _ := f.docsSeen("kb"); len(seen) != 2 {
		t.Fatalf("%d earlier segments seen, want 2", len(seen))
	}
	a := f.library()
	if err := a.remove(ctx, "kb", "doc0000"); err != nil {
		t.Fatal(err)
	}
	for i := 2; i < looseLimit+1; i++ {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	seen, _ := f.docsSeen("kb")
	if len(seen) != looseLimit || seen["doc0000"] != 0 || seen["doc0001"] != 1 {
		t.Fatalf("seen %v", seen)
	}
	if loose, _, packs := f.kinds(); loose != 0 || packs[1] != 1 {
		t.Fatalf("%d loose, packs %v: the earlier segment was not merged", loose, packs)
	}
	if _, _, err := f.blobs.Blobs.Get(ctx, segmentPrefix+"kb/doc0001.seg"); !gateway.IsNotFound(err) {
		t.Fatalf("the merged earlier segment is still stored: %v", err)
	}
}

// pagedBlobs lists like S3/R2 past 1000 keys: the keys before ~removed/
// come in one page, the rest in a later page fetched after hook ran.
type pagedBlobs struct {
	*countingBlobs
	hook func()
}

func (p *pagedBlobs) List(ctx context.Context, prefix string) iter.Seq2[storage.BlobInfo, error] {
	return func(yield func(storage.BlobInfo, error) bool) {
		var page1 []storage.BlobInfo
		for info, err := range p.countingBlobs.List(ctx, prefix) {
			if err != nil {
				yield(info, err)
				return
			}
			if !strings.HasPrefix(info.Key, removedPrefix) {
				page1 = append(page1, info)
			}
		}
		for _, info := range page1 {
			if !yield(info, nil) {
				return
			}
		}
		if h := p.hook; h != nil {
			p.hook = nil
			h()
		}
		for info, err := range p.countingBlobs.List(ctx, prefix) {
			if err != nil || strings.HasPrefix(info.Key, removedPrefix) {
				if !yield(info, err) {
					return
				}
			}
		}
	}
}

// TestListingInPagesResurrectsNothing: a long-lived instance holds the
// packs in memory, and another instance's full merge runs between the pages
// of its listing; the removed document must not come back through the
// instance's own merge.
func TestListingInPagesResurrectsNothing(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	paged := &pagedBlobs{countingBlobs: f.blobs}
	clock := time.Now()
	a := NewLibrary(paged, f.kv, 0)
	a.now = func() time.Time { return clock }
	for i := range 24 { // three level-1 packs
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.remove(ctx, "kb", "doc0005"); err != nil {
		t.Fatal(err)
	}
	for i := 24; i < 31; i++ { // seven loose
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	b := NewLibrary(paged, f.kv, 0)
	bclock := clock
	b.now = func() time.Time { return bclock }
	if _, err := b.view(ctx, []string{"kb"}); err != nil { // b holds every blob
		t.Fatal(err)
	}
	paged.hook = func() {
		clock = clock.Add(tombstoneGrace + time.Minute)
		if err := a.merge(ctx); err != nil { // a full merge, between b's pages
			t.Error(err)
		}
	}
	if err := b.add(ctx, doc("kb", 31)); err != nil { // b's eighth loose: b merges
		t.Fatal(err)
	}
	loose, removed, packs := f.kinds()
	seen, _ := f.docsSeen("kb")
	t.Logf("now: %d loose, %d tombstones, packs %v", loose, removed, packs)
	if seen["doc0005"] > 0 {
		t.Errorf("the removed doc0005 is back for a cold instance: %v", f.filesHolding("marker0005"))
	}
}

// TestRemoveKeepsNewerLooseCopy: a loose copy stamped after the removal
// (the document indexed again meanwhile) is the document, and stays.
func TestRemoveKeepsNewerLooseCopy(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	a := f.library()
	clock := time.Now()
	a.now = func() time.Time { return clock }
	// The re-add's stamp is later than the removal's, but its blob
	// is listed by remove.
	newer := doc("kb", 1)
	newer.Stamp = clock.Add(time.Second).UnixNano()
	if err := a.write(ctx, looseKey("kb", newer.DocID, newer.Stamp), []*segment{newer}); err != nil {
		t.Fatal(err)
	}
	if err := a.remove(ctx, "kb", newer.DocID); err != nil {
		t.Fatal(err)
	}
	seen, _ := f.docsSeen("kb")
	if seen[newer.DocID] == 0 {
		t.Errorf("a copy stamped after the tombstone was deleted by remove")
	}
}

// TestRemovalsShrinkThePacks: once most documents are removed, the full
// merge's pack is as small as what is left, so the index counts as small
// again and a later removal leaves storage at the next merge.
func TestRemovalsShrinkThePacks(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	a := f.library()
	clock := time.Now()
	a.now = func() time.Time { return clock }
	for i := range 600 {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 6; i < 600; i++ {
		if err := a.remove(ctx, "kb", fmt.Sprintf("doc%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(tombstoneGrace + time.Minute)
	if err := a.add(ctx, doc("kb", 600)); err != nil { // full merge
		t.Fatal(err)
	}
	seen, _ := f.docsSeen("kb")
	loose, removed, packs := f.kinds()
	t.Logf("%d documents; %d loose, %d tombstones, packs %v", len(seen), loose, removed, packs)
	if err := a.remove(ctx, "kb", "doc0000"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(tombstoneGrace + time.Minute)
	if err := a.add(ctx, doc("kb", 601)); err != nil {
		t.Fatal(err)
	}
	if files := f.filesHolding("marker0000"); len(files) > 0 {
		_, removed, packs := f.kinds()
		t.Errorf("in an index of %d documents, doc0000 removed 16 min ago is still stored (%d tombstones, packs %v): %v", len(seen), removed, packs, files)
	}
}

type opCounting struct {
	*countingBlobs
	ops int
}

func (o *opCounting) Delete(ctx context.Context, key string) error {
	o.ops++
	return o.countingBlobs.Delete(ctx, key)
}
func (o *opCounting) Put(ctx context.Context, key string, r io.Reader, ct string) error {
	o.ops++
	return o.countingBlobs.Put(ctx, key, r, ct)
}

// TestOneChangeDoesBoundedWork: after a bulk removal, the first change
// past the grace deletes a bounded number of tombstones (a Worker request
// has 1 000 operations); the rest go at the next changes.
func TestOneChangeDoesBoundedWork(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	oc := &opCounting{countingBlobs: f.blobs}
	clock := time.Now()
	a := NewLibrary(oc, f.kv, 0)
	a.now = func() time.Time { return clock }
	for i := range 800 {
		if err := a.add(ctx, doc("kb", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 700 { // e.g. a knowledge base emptied
		if err := a.remove(ctx, "kb", fmt.Sprintf("doc%04d", i)); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(tombstoneGrace + time.Minute)
	b := NewLibrary(oc, f.kv, 0) // a cold Worker request
	b.now = func() time.Time { return clock }
	gets, ops := f.blobs.gets.Load(), oc.ops
	if err := b.add(ctx, doc("kb", 5000)); err != nil {
		t.Fatal(err)
	}
	t.Logf("one add: %d blob reads, %d puts/deletes", f.blobs.gets.Load()-gets, oc.ops-ops)
	if oc.ops-ops > maxRemoved+looseLimit+8 {
		t.Errorf("one add made %d storage writes, want at most %d", oc.ops-ops, maxRemoved+looseLimit+8)
	}
	for range 2 {
		if err := b.add(ctx, doc("kb", 5001)); err != nil {
			t.Fatal(err)
		}
	}
	if _, removed, _ := f.kinds(); removed != 0 {
		t.Errorf("%d tombstones left after the next changes", removed)
	}
	if seen, _ := f.docsSeen("kb"); len(seen) != 102 {
		t.Errorf("%d documents seen, want 102", len(seen))
	}
}

// TestUpgradeMergesInBoundedSteps: an index from before packs (565 loose
// <kb>/<doc>.seg) with one removal: the first change past the grace merges
// a bounded number of loose segments, not the whole index at once, and the
// following changes finish the work with nothing lost.
func TestUpgradeMergesInBoundedSteps(t *testing.T) {
	ctx := context.Background()
	f := newPackFixture(t)
	for i := range 565 {
		var buf bytes.Buffer
		d := doc("kb", i)
		if err := gob.NewEncoder(&buf).Encode(struct {
			DocID, KB, Title string
			Dims             int
			Chunks           []Chunk
			Vectors          []float32
		}{d.DocID, "kb", "T", 2, d.Chunks, d.Vectors}); err != nil {
			t.Fatal(err)
		}
		if err := f.blobs.Put(ctx, segmentPrefix+"kb/"+d.DocID+".seg", &buf, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	oc := &opCounting{countingBlobs: f.blobs}
	clock := time.Now()
	a := NewLibrary(oc, f.kv, 0)
	a.now = func() time.Time { return clock }
	if err := a.remove(ctx, "kb", "doc0000"); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(tombstoneGrace + time.Minute)
	b := NewLibrary(oc, f.kv, 0) // a cold Worker request
	b.now = func() time.Time { return clock }
	gets, ops := f.blobs.gets.Load(), oc.ops
	if err := b.add(ctx, doc("kb", 5000)); err != nil {
		t.Fatal(err)
	}
	n := int(f.blobs.gets.Load()-gets) + oc.ops - ops
	t.Logf("one add: %d blob reads, %d puts/deletes", f.blobs.gets.Load()-gets, oc.ops-ops)
	if n > 2*maxLoose+16 {
		t.Errorf("one add made %d blob operations, want at most %d", n, 2*maxLoose+16)
	}
	for i := range 12 {
		if err := b.add(ctx, doc("kb", 5001+i)); err != nil {
			t.Fatal(err)
		}
	}
	seen, _ := f.docsSeen("kb")
	// 577 documents are a large index: its one tombstone waits for more.
	if loose, _, packs := f.kinds(); len(seen) != 565-1+13 || seen["doc0000"] != 0 || loose >= looseLimit || packs[1]+packs[2] == 0 {
		t.Errorf("after the upgrade: %d documents seen, %d loose, packs %v", len(seen), loose, packs)
	}
}
