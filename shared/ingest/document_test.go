package ingest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// indexer stands in for the RAG index: it counts chunks as lines, or
// blocks until its context ends (a slow embedding upstream), or reports
// that it started.
type indexer struct {
	mu      sync.Mutex
	block   bool
	started chan struct{}
	release chan struct{} // when not nil, a blocked Index goes on when it is closed
	indexed map[string]bool
}

func (x *indexer) Index(ctx context.Context, doc gateway.Document, text string) (int, error) {
	x.mu.Lock()
	block, started, release := x.block, x.started, x.release
	x.started = nil
	x.mu.Unlock()
	if started != nil {
		close(started)
	}
	if block {
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-release:
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.indexed == nil {
		x.indexed = map[string]bool{}
	}
	x.indexed[doc.ID] = true
	return strings.Count(text, "\n") + 1, nil
}

func (x *indexer) Remove(ctx context.Context, kb, docID string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.indexed, docID)
	return nil
}

// set makes Index block (until release is closed, when not nil), and
// close started when it is called; it returns started.
func (x *indexer) set(block bool, release chan struct{}) (started chan struct{}) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.block, x.release = block, release
	x.started = make(chan struct{})
	return x.started
}

func (x *indexer) has(id string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.indexed[id]
}

type fixture struct {
	s     *Service
	x     *indexer
	blobs storage.Blobs
	clock time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{x: &indexer{}, blobs: blobs, clock: time.Now()}
	f.s = New(sqlitetest.Open(t).Records(), blobs, f.x)
	f.s.now = func() time.Time { return f.clock }
	return f
}

// arrived prepares a direct upload of text and puts the file where it was
// told, as the client does; it returns the document.
func (f *fixture) arrived(t *testing.T, name, text string) gateway.Document {
	t.Helper()
	ctx := context.Background()
	doc, err := f.s.Prepare(ctx, gateway.PendingUpload{Filename: name, Size: int64(len(text))})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.blobs.Put(ctx, doc.Object, strings.NewReader(text), "text/markdown"); err != nil {
		t.Fatal(err)
	}
	return doc
}

func (f *fixture) get(t *testing.T, id string) gateway.Document {
	t.Helper()
	d, _, err := f.s.load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIngestTimeout runs an ingestion that outlives its invocation (a slow
// embedding upstream under a Lambda deadline): it ends failed with a
// reason before the deadline, its content free to be uploaded again, and a
// repeated event leaves it so.
func TestIngestTimeout(t *testing.T) {
	f := newFixture(t)
	f.x.set(true, make(chan struct{}))
	doc := f.arrived(t, "slow.md", "# Slow\n\nA document the upstream is slow to embed.")
	// What Lambda gives an invocation: a deadline, here just past the
	// margin kept for recording the outcome.
	ctx, cancel := context.WithTimeout(context.Background(), ingestMargin+300*time.Millisecond)
	defer cancel()
	got, err := f.s.IngestObject(ctx, doc.Object)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("the ingestion ran into the invocation's deadline instead of ending before it")
	}
	stored := f.get(t, doc.ID)
	if got.Status != gateway.DocFailed || stored.Status != gateway.DocFailed || !strings.Contains(stored.Reason, "time limit") {
		t.Fatalf("document = %s %q (stored %s), want failed for its time limit", got.Status, got.Reason, stored.Status)
	}
	// Delivered again: done already.
	if again, err := f.s.IngestObject(context.Background(), doc.Object); err != nil || again.Status != gateway.DocFailed {
		t.Fatalf("repeated event = %s, %v", again.Status, err)
	}
	// The content is free: the same file goes in as a new document.
	f.x.set(false, nil)
	retry := f.arrived(t, "slow.md", "# Slow\n\nA document the upstream is slow to embed.")
	if d, err := f.s.IngestObject(context.Background(), retry.Object); err != nil || d.Status != gateway.DocReady {
		t.Fatalf("the same file again = %s %q, %v; want ready", d.Status, d.Reason, err)
	}
}

// TestIngestRetriedAfterCrash leaves an ingestion as a crash (or a killed
// Lambda) does, processing with a lease, and delivers its event again:
// refused while the lease holds (so the event comes back later), taken
// over after it and finished ready; a file that keeps dying is failed.
func TestIngestRetriedAfterCrash(t *testing.T) {
	f := newFixture(t)
	doc := f.arrived(t, "notes.md", "# Notes\n\nLine one.\nLine two.")
	release := make(chan struct{})
	started := f.x.set(true, release)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.s.IngestObject(context.Background(), doc.Object)
	}()
	// The process dies mid-ingestion: what it wrote until then is all that
	// is left of it.
	<-started
	crashed := f.get(t, doc.ID)
	close(release)
	<-done
	// Put back the record as the crash left it.
	if err := f.s.save(context.Background(), crashed); err != nil {
		t.Fatal(err)
	}
	if crashed.Status != gateway.DocProcessing || crashed.Attempts != 1 || crashed.LeaseUntil.IsZero() ||
		crashed.LeaseUntil.After(f.clock.Add(leaseTime)) {
		t.Fatalf("mid-ingestion record = %+v, want processing with a lease of %v", crashed, leaseTime)
	}

	f.x.set(false, nil)
	if _, err := f.s.IngestObject(context.Background(), doc.Object); gateway.ErrorCode(err) != gateway.EUnavailable {
		t.Fatalf("redelivery while the lease holds: err = %v, want EUnavailable (deliver again later)", err)
	}
	if err := f.s.IngestFailed(context.Background(), doc.Object, "retries exhausted"); gateway.ErrorCode(err) != gateway.EUnavailable {
		t.Fatalf("failure report while the lease holds: err = %v, want EUnavailable", err)
	}
	f.clock = crashed.LeaseUntil.Add(time.Second)
	got, err := f.s.IngestObject(context.Background(), doc.Object)
	if err != nil || got.Status != gateway.DocReady || got.Chunks == 0 || got.Attempts != 2 {
		t.Fatalf("redelivery after the lease = %+v, %v; want ready on attempt 2", got, err)
	}
	if _, _, err := f.blobs.Get(context.Background(), doc.Object); !gateway.IsNotFound(err) {
		t.Errorf("the incoming upload is still there: %v", err)
	}

	// A file whose ingestion died twice is not tried a third time.
	doc2 := f.arrived(t, "crashy.md", "# Crashy\n\ntext")
	d := f.get(t, doc2.ID)
	d.Status, d.Attempts, d.LeaseUntil = gateway.DocProcessing, maxAttempts, f.clock.Add(-time.Second)
	if err := f.s.save(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got, err := f.s.IngestObject(context.Background(), doc2.Object); err != nil || got.Status != gateway.DocFailed || !strings.Contains(got.Reason, "interrupted") {
		t.Fatalf("third delivery = %+v, %v; want failed as interrupted", got, err)
	}
}

// TestIngestFailedReport marks a direct upload failed when Lambda gave up
// on its event (the queued failure record), and only then.
func TestIngestFailedReport(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	doc := f.arrived(t, "lost.md", "# Lost\n\ntext")
	if err := f.s.IngestFailed(ctx, doc.Object, "The ingestion failed 3 times."); err != nil {
		t.Fatal(err)
	}
	if d := f.get(t, doc.ID); d.Status != gateway.DocFailed || d.Reason != "The ingestion failed 3 times." {
		t.Fatalf("after the failure report = %s %q", d.Status, d.Reason)
	}
	ready := f.arrived(t, "fine.md", "# Fine\n\ntext")
	if _, err := f.s.IngestObject(ctx, ready.Object); err != nil {
		t.Fatal(err)
	}
	if err := f.s.IngestFailed(ctx, ready.Object, "late report"); err != nil {
		t.Fatal(err)
	}
	if d := f.get(t, ready.ID); d.Status != gateway.DocReady {
		t.Fatalf("a late failure report changed a ready document to %s", d.Status)
	}
	if err := f.s.IngestFailed(ctx, "incoming/doc_unknown/original.md", "x"); err != nil {
		t.Fatalf("a report for no document: %v", err)
	}
}

// TestSweepAndRecover fails what died: a document left processing past its
// lease, a direct upload that never arrived, and (at a single process's
// start) everything left processing; their content claims are released.
func TestSweepAndRecover(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	ingested, _, err := f.s.Add(ctx, gateway.Upload{Filename: "a.md", Data: []byte("# A\n\nalpha")})
	if err != nil || ingested.Status != gateway.DocReady {
		t.Fatalf("add = %+v, %v", ingested, err)
	}
	stuck := ingested
	stuck.Status, stuck.LeaseUntil = gateway.DocProcessing, f.clock.Add(time.Minute)
	if err := f.s.save(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	never, err := f.s.Prepare(ctx, gateway.PendingUpload{Filename: "never.md", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := f.s.List(ctx, ""); len(list) != 2 || list[0].Status == gateway.DocFailed || list[1].Status == gateway.DocFailed {
		t.Fatalf("within the lease and the upload window nothing is failed: %+v", list)
	}
	f.clock = f.clock.Add(2 * uploadWait)
	list, err := f.s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range list {
		if d.Status != gateway.DocFailed || d.Reason == "" {
			t.Errorf("%s (%s) = %s %q, want failed with a reason", d.ID, d.Filename, d.Status, d.Reason)
		}
	}
	if d := f.get(t, never.ID); d.Status != gateway.DocFailed {
		t.Errorf("the sweep was not recorded: %s", d.Status)
	}
	// The failed document's content can be added again.
	again, created, err := f.s.Add(ctx, gateway.Upload{Filename: "a.md", Data: []byte("# A\n\nalpha")})
	if err != nil || !created || again.Status != gateway.DocReady {
		t.Fatalf("the same content after a failure = %+v created %v, %v", again, created, err)
	}

	// At a single process's start, whatever is processing was cut off.
	again.Status, again.LeaseUntil = gateway.DocProcessing, f.clock.Add(time.Hour)
	if err := f.s.save(ctx, again); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if d := f.get(t, again.ID); d.Status != gateway.DocFailed || !strings.Contains(d.Reason, "interrupted") {
		t.Fatalf("after Recover = %s %q", d.Status, d.Reason)
	}
	if _, created, err := f.s.Add(ctx, gateway.Upload{Filename: "a.md", Data: []byte("# A\n\nalpha")}); err != nil || !created {
		t.Fatalf("the content of a recovered document is still claimed: created %v, %v", created, err)
	}
}

// TestDeleteReleasesClaim deletes documents in every state; the content
// can always be uploaded again.
func TestDeleteReleasesClaim(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, status := range []string{gateway.DocReady, gateway.DocProcessing, gateway.DocFailed} {
		d, created, err := f.s.Add(ctx, gateway.Upload{Filename: "b.md", Data: []byte("# B\n\nbeta")})
		if err != nil || !created {
			t.Fatalf("%s: add = %v created %v", status, err, created)
		}
		d.Status = status
		if err := f.s.save(ctx, d); err != nil {
			t.Fatal(err)
		}
		if err := f.s.Delete(ctx, d.ID); err != nil {
			t.Fatal(err)
		}
	}
	// A claim that names a document which is gone is free too.
	if err := f.s.records.Delete(ctx, docPK, "doc_gone"); err != nil {
		t.Fatal(err)
	}
	d, _, err := f.s.Add(ctx, gateway.Upload{Filename: "c.md", Data: []byte("# C\n\ngamma")})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.records.Delete(ctx, docPK, d.ID); err != nil { // the record lost, the claim left
		t.Fatal(err)
	}
	if _, created, err := f.s.Add(ctx, gateway.Upload{Filename: "c.md", Data: []byte("# C\n\ngamma")}); err != nil || !created {
		t.Fatalf("a claim of a missing document blocks its content: created %v, %v", created, err)
	}
}

// TestDeleteDuringIngestion deletes a document while it is being
// ingested: it stays deleted, with no chunks, file or content claim left,
// whatever the ingestion does after.
func TestDeleteDuringIngestion(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	release := make(chan struct{})
	started := f.x.set(true, release)
	done := make(chan gateway.Document)
	go func() {
		d, _, _ := f.s.Add(ctx, gateway.Upload{Filename: "d.md", Data: []byte("# D\n\ndelta")})
		done <- d
	}()
	<-started
	list, _ := f.s.List(ctx, "")
	if len(list) != 1 {
		t.Fatalf("%d documents while ingesting, want 1", len(list))
	}
	id := list[0].ID
	if err := f.s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	close(release) // the ingestion goes on and indexes
	<-done
	if _, _, err := f.s.load(ctx, id); !gateway.IsNotFound(err) {
		t.Fatalf("the deleted document came back: %v", err)
	}
	if f.x.has(id) {
		t.Fatal("the deleted document's chunks are searchable")
	}
	if _, _, err := f.blobs.Get(ctx, "documents/"+id+"/original.md"); !gateway.IsNotFound(err) {
		t.Fatalf("the deleted document's file is still stored: %v", err)
	}
	f.x.set(false, nil)
	if _, created, err := f.s.Add(ctx, gateway.Upload{Filename: "d.md", Data: []byte("# D\n\ndelta")}); err != nil || !created {
		t.Fatalf("the deleted content is still claimed: created %v, %v", created, err)
	}
}

// TestSweepSparesATakeover reads a dead ingestion, lets a redelivered
// event take the document over, then sweeps what it read: the live run is
// not failed, and ends ready.
func TestSweepSparesATakeover(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	doc := f.arrived(t, "e.md", "# E\n\nepsilon")
	d, version, _ := f.s.load(ctx, doc.ID)
	d.Status, d.Attempts, d.LeaseUntil = gateway.DocProcessing, 1, f.clock.Add(-time.Second)
	if _, err := f.s.put(ctx, d, storage.Cond{IfVersion: version}); err != nil {
		t.Fatal(err)
	}
	stale := f.get(t, doc.ID)
	release := make(chan struct{})
	started := f.x.set(true, release)
	done := make(chan gateway.Document)
	go func() {
		got, _ := f.s.IngestObject(ctx, doc.Object)
		done <- got
	}()
	<-started
	if got := f.s.sweep(ctx, []gateway.Document{stale}); got[0].Status != gateway.DocProcessing {
		t.Fatalf("the sweep failed a live takeover: %s %q", got[0].Status, got[0].Reason)
	}
	close(release)
	if got := <-done; got.Status != gateway.DocReady {
		t.Fatalf("the takeover ended %s %q, want ready", got.Status, got.Reason)
	}
}

// TestReuploadAfterDeadIngestion uploads again a file whose first
// ingestion died before anything swept it: the new upload takes the claim
// and is ingested.
func TestReuploadAfterDeadIngestion(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	first, _, err := f.s.Add(ctx, gateway.Upload{Filename: "g.md", Data: []byte("# G\n\ngamma")})
	if err != nil {
		t.Fatal(err)
	}
	d, version, _ := f.s.load(ctx, first.ID)
	d.Status, d.LeaseUntil = gateway.DocProcessing, f.clock.Add(-time.Second)
	if _, err := f.s.put(ctx, d, storage.Cond{IfVersion: version}); err != nil {
		t.Fatal(err)
	}
	again, created, err := f.s.Add(ctx, gateway.Upload{Filename: "g.md", Data: []byte("# G\n\ngamma")})
	if err != nil || !created || again.Status != gateway.DocReady || again.ID == first.ID {
		t.Fatalf("re-upload = %+v created %v, %v; want a new ready document", again, created, err)
	}
}

// TestSpoolLeftoversRemoved leaves a spooled file as a killed ingestion
// does: the next ingestion removes it.
func TestSpoolLeftoversRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	left := filepath.Join(tmp, spoolPrefix+"killed")
	if err := os.WriteFile(left, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(left, old, old)
	f := newFixture(t)
	doc := f.arrived(t, "h.md", "# H\n\neta")
	if got, err := f.s.IngestObject(context.Background(), doc.Object); err != nil || got.Status != gateway.DocReady {
		t.Fatalf("ingest = %+v, %v", got, err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Fatalf("the leftover spool file is still there: %v", err)
	}
	if rest, _ := filepath.Glob(filepath.Join(tmp, spoolPrefix+"*")); len(rest) != 0 {
		t.Fatalf("spool files left: %v", rest)
	}
}
