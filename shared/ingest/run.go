package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Ingestion timing.
const (
	// IngestTimeout bounds one ingestion where nothing else does (the
	// local server); on Lambda the invocation's deadline does.
	IngestTimeout = 15 * time.Minute
	// ingestMargin is kept back from the deadline to record the outcome.
	ingestMargin = 10 * time.Second
	// leaseTime is how long a running ingestion's claim on its document
	// lasts unless renewed; it renews it every leaseTime/4, so that a dead
	// one is known within leaseTime.
	leaseTime = 2 * time.Minute
	// maxAttempts bounds the ingestions of one direct upload: a file that
	// takes the process down twice is not tried a third time.
	maxAttempts = 2
	// uploadWait is how long a document waits for its direct upload (the
	// URL lives 15 minutes) before it is failed.
	uploadWait = time.Hour
)

// errLost ends a run whose document changed under it.
var errLost = errors.New("the document changed while it was being ingested (deleted, or taken over)")

// ingestContext returns the context an ingestion runs in: not cancelled
// with its request (the work is recorded either way), and ending shortly
// before the invocation's deadline, or after IngestTimeout, so that the
// outcome is always written.
func ingestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(IngestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Add(-ingestMargin).Before(deadline) {
		deadline = d.Add(-ingestMargin)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// run is one ingestion's hold on its document: every write it makes is
// conditional on the version it wrote last, and a lease on the document is
// renewed while it works. A write that finds the document changed (it was
// deleted, failed by a sweep, or taken over) ends the run, whose work is
// then undone as far as it is no one else's.
type run struct {
	s *Service

	mu      sync.Mutex
	doc     gateway.Document
	version int64
	lost    bool

	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
}

// start takes doc, stored at version (0: a new document, created here), for
// an ingestion: it writes it processing with a lease, and renews the lease
// until the run finishes. The context returned ends at the ingestion's
// deadline, or when the run loses the document. A document taken by
// another run in the meantime is EUnavailable.
func (s *Service) start(ctx context.Context, doc gateway.Document, version int64) (*run, context.Context, error) {
	doc.Status, doc.Reason = gateway.DocProcessing, ""
	doc.LeaseUntil = s.now().Add(leaseTime).UTC()
	cond := storage.Cond{IfVersion: version}
	if version == 0 {
		cond = storage.Cond{IfAbsent: true}
	}
	v, err := s.put(ctx, doc, cond)
	if gateway.IsConflict(err) {
		return nil, nil, gateway.Errorf(gateway.EUnavailable, "The document %s is being ingested.", doc.ID)
	}
	if err != nil {
		return nil, nil, err
	}
	wctx, cancelDeadline := ingestContext(ctx)
	wctx, cancel := context.WithCancelCause(wctx)
	r := &run{s: s, doc: doc, version: v, stop: make(chan struct{}), done: make(chan struct{}),
		cancel: func(cause error) { cancel(cause); cancelDeadline() }}
	go r.renew(wctx)
	return r, wctx, nil
}

// renew extends the lease every leaseTime/4 until the run finishes.
func (r *run) renew(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(leaseTime / 4)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			err := r.write(context.WithoutCancel(ctx), func(d *gateway.Document) { d.LeaseUntil = r.s.now().Add(leaseTime).UTC() })
			if errors.Is(err, errLost) {
				return
			}
			if err != nil {
				slog.WarnContext(ctx, "renew an ingestion's lease", "document", r.doc.ID, "err", err)
			}
		}
	}
}

// write changes the run's document, if it is still as the run left it.
func (r *run) write(ctx context.Context, change func(*gateway.Document)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost {
		return errLost
	}
	d := r.doc
	change(&d)
	v, err := r.s.put(ctx, d, storage.Cond{IfVersion: r.version})
	if gateway.IsConflict(err) {
		r.lost = true
		r.cancel(errLost)
		return errLost
	}
	if err != nil {
		return err
	}
	r.doc, r.version = d, v
	return nil
}

// document returns the run's document as it last wrote it.
func (r *run) document() gateway.Document {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.doc
}

// finish ends the run: the document ready with n chunks, or failed with
// err. It returns the document as it now is. A run that lost its document
// undoes what is its own: a deleted document's chunks, files and content
// claim; a failed one's chunks.
func (r *run) finish(ctx context.Context, n int, err error) gateway.Document {
	close(r.stop)
	<-r.done
	defer r.cancel(nil)
	ctx = context.WithoutCancel(ctx)
	var werr error
	if err == nil {
		werr = r.write(ctx, func(d *gateway.Document) {
			d.Status, d.Chunks, d.Reason, d.LeaseUntil = gateway.DocReady, n, "", time.Time{}
		})
	} else {
		slog.WarnContext(ctx, "document ingestion failed", "document", r.doc.ID, "err", err)
		werr = r.write(ctx, func(d *gateway.Document) {
			d.Status, d.Reason, d.LeaseUntil = gateway.DocFailed, reasonOf(err), time.Time{}
		})
		if werr == nil {
			r.s.releaseClaim(ctx, r.doc)
			r.s.index.Remove(ctx, r.doc.KnowledgeBase, r.doc.ID)
		}
	}
	if errors.Is(werr, errLost) {
		return r.undo(ctx)
	}
	if werr != nil {
		slog.ErrorContext(ctx, "record a document's ingestion", "document", r.doc.ID, "err", werr)
	}
	return r.document()
}

// undo cleans up after a run that lost its document, and returns the
// document as it now is (zero when deleted).
func (r *run) undo(ctx context.Context) gateway.Document {
	mine := r.document()
	cur, _, err := r.s.load(ctx, mine.ID)
	switch {
	case gateway.IsNotFound(err):
		// Deleted meanwhile: nothing of it may stay.
		r.s.index.Remove(ctx, mine.KnowledgeBase, mine.ID)
		r.s.blobs.Delete(ctx, mine.Object)
		r.s.releaseClaim(ctx, mine)
		return gateway.Document{}
	case err != nil:
		slog.ErrorContext(ctx, "read a document after losing it", "document", mine.ID, "err", err)
		return mine
	case cur.Status == gateway.DocFailed:
		r.s.index.Remove(ctx, cur.KnowledgeBase, cur.ID)
	}
	// Taken over by another run: its work, its outcome.
	return cur
}

// reasonOf is what a document's reason says of err.
func reasonOf(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "The ingestion took longer than its time limit; try a smaller file, or fewer chunks (a larger chunk size)."
	}
	return gateway.ErrorMessage(err)
}

// put writes d under cond and returns its new version.
func (s *Service) put(ctx context.Context, d gateway.Document, cond storage.Cond) (int64, error) {
	d.UpdatedAt = s.now().UTC()
	value, err := json.Marshal(d)
	if err != nil {
		return 0, fmt.Errorf("encode document: %w", err)
	}
	v, err := s.records.Put(ctx, storage.Item{PK: docPK, SK: d.ID, Value: value}, cond)
	if gateway.IsConflict(err) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("save document %s: %w", d.ID, err)
	}
	return v, nil
}

// failIf records d, stored at version, failed with err, unless it changed
// meanwhile; it returns the document as it now is. Its content claim is
// released and any chunks a dead ingestion left are taken out.
func (s *Service) failIf(ctx context.Context, d gateway.Document, version int64, err error) gateway.Document {
	ctx = context.WithoutCancel(ctx)
	d.Status, d.Reason, d.LeaseUntil = gateway.DocFailed, reasonOf(err), time.Time{}
	if _, werr := s.put(ctx, d, storage.Cond{IfVersion: version}); werr != nil {
		if !gateway.IsConflict(werr) {
			slog.ErrorContext(ctx, "record a failed document", "document", d.ID, "err", werr)
		}
		if cur, _, lerr := s.load(ctx, d.ID); lerr == nil {
			return cur
		}
		return d
	}
	slog.WarnContext(ctx, "document failed", "document", d.ID, "reason", d.Reason)
	s.releaseClaim(ctx, d)
	s.index.Remove(ctx, d.KnowledgeBase, d.ID)
	return d
}

// releaseClaim drops doc's claim on its content, if the claim is doc's.
func (s *Service) releaseClaim(ctx context.Context, doc gateway.Document) {
	if doc.SHA256 == "" {
		return
	}
	it, err := s.records.Get(ctx, hashPK, doc.KnowledgeBase+"#"+doc.SHA256)
	if err == nil && string(it.Value) == doc.ID {
		s.records.Delete(ctx, hashPK, doc.KnowledgeBase+"#"+doc.SHA256)
	}
}

// dead reports whether d's work died: an ingestion whose lease lapsed.
func (s *Service) dead(d gateway.Document) bool {
	return d.Status == gateway.DocProcessing && s.now().After(d.LeaseUntil)
}

// drop abandons a run before it did anything: its document is removed.
func (r *run) drop(ctx context.Context) {
	close(r.stop)
	<-r.done
	r.cancel(nil)
	r.s.records.Delete(context.WithoutCancel(ctx), docPK, r.doc.ID)
}
