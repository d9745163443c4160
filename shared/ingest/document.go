// Package ingest keeps the knowledge bases' documents: it stores each
// uploaded file or text, extracts its text, has it indexed, and records the
// outcome, for uploads through the API and direct uploads alike, through
// retries, timeouts and crashes.
package ingest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/extract"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Records layout.
const (
	docPK  = "doc"     // sk document ID
	hashPK = "dochash" // sk "<kb>#<sha256>", value the document ID
)

// Indexer makes documents' text searchable.
type Indexer interface {
	Index(ctx context.Context, doc gateway.Document, text string) (int, error)
	Remove(ctx context.Context, kb, docID string) error
}

// Service keeps the documents.
type Service struct {
	records storage.Records
	blobs   storage.Blobs
	index   Indexer
	now     func() time.Time
}

// New returns a Service that keeps documents in records and blobs and has
// their text indexed by index.
func New(records storage.Records, blobs storage.Blobs, index Indexer) *Service {
	return &Service{records: records, blobs: blobs, index: index, now: time.Now}
}

// MaxUpload bounds a document's size.
const MaxUpload = 64 << 20

func notFound(id string) error {
	return gateway.Errorf(gateway.ENotFound, "No document with ID %q exists.", id)
}

// Add stores and ingests a document: extracted, chunked, embedded and made
// searchable before it returns. A file that cannot be read as its type is
// refused (EInvalid, EUnsupported, ETooLarge) with nothing stored. The same
// content in the same knowledge base is recognised by its SHA-256: Add
// returns the document already there, with created false. A document whose
// embedding fails is kept as failed, with a readable reason.
func (s *Service) Add(ctx context.Context, u gateway.Upload) (gateway.Document, bool, error) {
	if u.KnowledgeBase == "" {
		u.KnowledgeBase = "default"
	}
	if err := gateway.CheckKnowledgeBase(u.KnowledgeBase); err != nil {
		e := err.(*gateway.Error)
		e.Param = "knowledge_base"
		return gateway.Document{}, false, e
	}
	if len(u.Data) > MaxUpload {
		return gateway.Document{}, false, gateway.Errorf(gateway.ETooLarge, "A document may be at most %d MB.", MaxUpload>>20)
	}
	name := u.Filename
	if name == "" {
		name = "text.txt"
	}
	kind, err := extract.Kind(name, u.ContentType)
	if err != nil {
		return gateway.Document{}, false, err
	}
	if u.Title == "" {
		u.Title = strings.TrimSuffix(path.Base(u.Filename), path.Ext(u.Filename))
	}
	if u.Title == "" {
		u.Title = firstLine(string(u.Data))
	}
	if len(u.Title) > 200 || !utf8.ValidString(u.Title) {
		e := gateway.Errorf(gateway.EInvalid, "The title must be at most 200 bytes of UTF-8.")
		e.Param = "title"
		return gateway.Document{}, false, e
	}
	text, err := extract.Text(kind, u.Data)
	if err != nil {
		return gateway.Document{}, false, err
	}
	sum := sha256.Sum256(u.Data)
	hash := hex.EncodeToString(sum[:])
	now := s.now().UTC()
	doc := gateway.Document{ID: "doc_" + strings.ToLower(rand.Text()[:20]), KnowledgeBase: u.KnowledgeBase, Title: u.Title,
		Filename: u.Filename, ContentType: extract.Types[kind], Size: int64(len(u.Data)), SHA256: hash,
		Status: gateway.DocProcessing, CreatedAt: now, UpdatedAt: now}

	doc.Object = originalKey(doc.ID, kind)
	ctx, cancel := ingestContext(ctx)
	defer cancel()
	doc.LeaseUntil = leaseEnd(ctx)
	// Recorded first, so that a claim never names a document that is not
	// there (but one that died on the way).
	if err := s.save(ctx, doc); err != nil {
		return gateway.Document{}, false, err
	}
	// Claim the content: of two uploads of the same file, one ingests.
	if dup, err := s.claim(ctx, doc); err != nil {
		s.records.Delete(ctx, docPK, doc.ID)
		if dup == "" {
			return gateway.Document{}, false, err
		}
		existing, err := s.Get(ctx, dup)
		return existing, false, err
	}
	if err := s.blobs.Put(ctx, doc.Object, bytes.NewReader(u.Data), doc.ContentType); err != nil {
		s.releaseClaim(ctx, doc)
		s.records.Delete(ctx, docPK, doc.ID)
		return gateway.Document{}, false, fmt.Errorf("store document: %w", err)
	}
	doc = s.ingest(ctx, doc, text)
	return doc, true, nil
}

// Ingestion deadlines.
const (
	// IngestTimeout bounds one ingestion where nothing else does (the
	// local server); on Lambda the invocation's deadline does.
	IngestTimeout = 15 * time.Minute
	// ingestMargin is kept back from the deadline to record the outcome.
	ingestMargin = 10 * time.Second
	// leaseSlack is how long past its deadline a running ingestion is
	// still believed alive.
	leaseSlack = time.Minute
	// maxAttempts bounds the ingestions of one direct upload: a file that
	// takes the process down twice is not tried a third time.
	maxAttempts = 2
	// uploadWait is how long a document waits for its direct upload (the
	// URL lives 15 minutes) before it is failed.
	uploadWait = time.Hour
)

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

// leaseEnd is when an ingestion running under ctx is taken to have died.
func leaseEnd(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d.Add(leaseSlack).UTC()
}

func originalKey(id, kind string) string { return "documents/" + id + "/original" + kind }

func firstLine(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.TrimLeft(line, "# ")
	if r := []rune(line); len(r) > 60 {
		line = string(r[:60]) + "…"
	}
	if line == "" {
		line = "Untitled"
	}
	return line
}

func (s *Service) save(ctx context.Context, d gateway.Document) error {
	_, err := s.saveIf(ctx, d, 0)
	return err
}

// saveIf writes d if its stored version is version (any version when 0),
// and returns the new version; EConflict otherwise.
func (s *Service) saveIf(ctx context.Context, d gateway.Document, version int64) (int64, error) {
	d.UpdatedAt = s.now().UTC()
	value, err := json.Marshal(d)
	if err != nil {
		return 0, fmt.Errorf("encode document: %w", err)
	}
	v, err := s.records.Put(ctx, storage.Item{PK: docPK, SK: d.ID, Value: value}, storage.Cond{IfVersion: version})
	if gateway.IsConflict(err) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("save document %s: %w", d.ID, err)
	}
	return v, nil
}

// ingest extracts, chunks, embeds and indexes a document and records the
// outcome on it. On failure the content claim is released, so that the
// same file can be tried again.
func (s *Service) ingest(ctx context.Context, doc gateway.Document, text string) gateway.Document {
	n, err := s.index.Index(ctx, doc, text)
	if err != nil {
		return s.failed(ctx, doc, err)
	}
	doc.Status, doc.Chunks, doc.LeaseUntil = gateway.DocReady, n, time.Time{}
	// The outcome is written even when the deadline has just passed.
	if err := s.save(context.WithoutCancel(ctx), doc); err != nil {
		slog.ErrorContext(ctx, "save document status", "document", doc.ID, "err", err)
	}
	return doc
}

// failed records that doc's ingestion failed with err, and releases its
// content claim so that the same file can be tried again.
func (s *Service) failed(ctx context.Context, doc gateway.Document, err error) gateway.Document {
	ctx = context.WithoutCancel(ctx)
	slog.WarnContext(ctx, "document ingestion failed", "document", doc.ID, "err", err)
	reason := gateway.ErrorMessage(err)
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "The ingestion took longer than its time limit; try a smaller file, or fewer chunks (a larger chunk size)."
	}
	doc.Status, doc.Reason, doc.LeaseUntil = gateway.DocFailed, reason, time.Time{}
	s.releaseClaim(ctx, doc)
	if err := s.save(ctx, doc); err != nil {
		slog.ErrorContext(ctx, "save document status", "document", doc.ID, "err", err)
	}
	return doc
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

// Get returns a document, or ENotFound. A document whose ingestion died is
// reported failed.
func (s *Service) Get(ctx context.Context, id string) (gateway.Document, error) {
	d, _, err := s.load(ctx, id)
	if err != nil {
		return gateway.Document{}, err
	}
	return s.sweep(ctx, []gateway.Document{d})[0], nil
}

// load returns a document as stored, and its version.
func (s *Service) load(ctx context.Context, id string) (gateway.Document, int64, error) {
	it, err := s.records.Get(ctx, docPK, id)
	if gateway.IsNotFound(err) || (err != nil && gateway.ErrorCode(err) == gateway.EInvalid) {
		return gateway.Document{}, 0, notFound(id)
	}
	if err != nil {
		return gateway.Document{}, 0, fmt.Errorf("read document %s: %w", id, err)
	}
	var d gateway.Document
	if err := json.Unmarshal(it.Value, &d); err != nil {
		return gateway.Document{}, 0, fmt.Errorf("decode document %s: %w", id, err)
	}
	return d, it.Version, nil
}

// List returns the documents of a knowledge base ("" for all), newest
// first. Documents whose ingestion died are reported (and recorded)
// failed.
func (s *Service) List(ctx context.Context, kb string) ([]gateway.Document, error) {
	docs, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	out := docs[:0]
	for _, d := range docs {
		if kb == "" || d.KnowledgeBase == kb {
			out = append(out, d)
		}
	}
	return s.sweep(ctx, out), nil
}

func (s *Service) list(ctx context.Context) ([]gateway.Document, error) {
	out := []gateway.Document{}
	for it, err := range storage.QueryAll(ctx, s.records, docPK, storage.Query{}) {
		if err != nil {
			return nil, fmt.Errorf("list documents: %w", err)
		}
		var d gateway.Document
		if err := json.Unmarshal(it.Value, &d); err != nil {
			return nil, fmt.Errorf("decode document %s: %w", it.SK, err)
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b gateway.Document) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Delete removes a document: its index entries, its blob, its record.
func (s *Service) Delete(ctx context.Context, id string) error {
	d, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.index.Remove(ctx, d.KnowledgeBase, d.ID); err != nil {
		return err
	}
	if d.Object != "" {
		if err := s.blobs.Delete(ctx, d.Object); err != nil {
			return fmt.Errorf("delete document %s: %w", id, err)
		}
	}
	s.releaseClaim(ctx, d)
	if err := s.records.Delete(ctx, docPK, d.ID); err != nil {
		return fmt.Errorf("delete document %s: %w", id, err)
	}
	return nil
}

// IncomingPrefix is where direct uploads land; the bucket expires what is
// left there after a day.
const IncomingPrefix = "incoming/"

// MaxDirectUpload bounds a file uploaded straight to the blob store.
const MaxDirectUpload = 512 << 20

// Prepare records a document that waits for its direct upload, and returns
// it; its Object is the key the file must be put at.
func (s *Service) Prepare(ctx context.Context, p gateway.PendingUpload) (gateway.Document, error) {
	if p.KnowledgeBase == "" {
		p.KnowledgeBase = "default"
	}
	if err := gateway.CheckKnowledgeBase(p.KnowledgeBase); err != nil {
		return gateway.Document{}, err
	}
	kind, err := extract.Kind(p.Filename, p.ContentType)
	if err != nil {
		return gateway.Document{}, err
	}
	if p.Size <= 0 || p.Size > MaxDirectUpload {
		e := gateway.Errorf(gateway.EInvalid, "size must be the file's size, at most %d MB.", MaxDirectUpload>>20)
		e.Param = "size"
		return gateway.Document{}, e
	}
	if p.Title == "" {
		p.Title = strings.TrimSuffix(path.Base(p.Filename), path.Ext(p.Filename))
	}
	now := s.now().UTC()
	id := "doc_" + strings.ToLower(rand.Text()[:20])
	doc := gateway.Document{ID: id, KnowledgeBase: p.KnowledgeBase, Title: p.Title, Filename: p.Filename,
		ContentType: extract.Types[kind], Size: p.Size, Status: gateway.DocUploading,
		Object: IncomingPrefix + id + "/original" + kind, CreatedAt: now, UpdatedAt: now}
	if err := s.save(ctx, doc); err != nil {
		return gateway.Document{}, err
	}
	return doc, nil
}

// SignedUpload returns a URL the client may PUT the file to directly, when
// the blob store signs URLs (S3, R2); "" otherwise.
func (s *Service) SignedUpload(ctx context.Context, doc gateway.Document, ttl time.Duration) (string, error) {
	signer, ok := s.blobs.(storage.Signer)
	if !ok {
		return "", nil
	}
	return signer.SignURL(ctx, "PUT", doc.Object, ttl)
}

// PutContent stores the body of a direct upload where the blob store
// cannot take it itself (locally), up to the size the document announced.
func (s *Service) PutContent(ctx context.Context, id string, r io.Reader) (gateway.Document, error) {
	doc, err := s.Get(ctx, id)
	if err != nil {
		return gateway.Document{}, err
	}
	if doc.Status != gateway.DocUploading {
		return gateway.Document{}, gateway.Errorf(gateway.EConflict, "The document %s is not waiting for an upload.", id)
	}
	lr := &io.LimitedReader{R: r, N: doc.Size + 1}
	if err := s.blobs.Put(ctx, doc.Object, lr, doc.ContentType); err != nil {
		return gateway.Document{}, fmt.Errorf("store upload of %s: %w", id, err)
	}
	if lr.N == 0 {
		s.blobs.Delete(ctx, doc.Object)
		return gateway.Document{}, gateway.Errorf(gateway.ETooLarge, "The upload is larger than the %d bytes announced.", doc.Size)
	}
	return doc, nil
}

// IngestObject ingests a direct upload that has arrived at key (from an
// object-created event, or locally after PutContent): the file is spooled
// to a temporary file (never held whole in memory), extracted, moved out of
// the incoming area, and the document becomes ready, or failed with a
// readable reason. A key that is no document's upload is ignored, and so is
// a repeated event for a document already done.
//
// A repeated delivery of an event whose ingestion died (a Lambda timeout,
// a crash) takes over once that ingestion's lease has lapsed; one that
// arrives while another ingestion holds the lease returns EUnavailable,
// so that it is delivered again later. A file whose ingestion died
// maxAttempts times is failed.
func (s *Service) IngestObject(ctx context.Context, key string) (gateway.Document, error) {
	rest, ok := strings.CutPrefix(key, IncomingPrefix)
	id, _, _ := strings.Cut(rest, "/")
	if !ok || id == "" {
		return gateway.Document{}, nil
	}
	doc, version, err := s.load(ctx, id)
	if gateway.IsNotFound(err) {
		slog.WarnContext(ctx, "an upload arrived for no document", "key", key)
		return gateway.Document{}, nil
	}
	if err != nil {
		return gateway.Document{}, err
	}
	now := s.now()
	switch {
	case doc.Status == gateway.DocUploading && doc.Object == key:
	case doc.Status == gateway.DocProcessing && doc.Attempts > 0 && now.Before(doc.LeaseUntil):
		return doc, gateway.Errorf(gateway.EUnavailable, "The document %s is being ingested.", id)
	case doc.Status == gateway.DocProcessing && doc.Attempts >= maxAttempts:
		return s.failed(ctx, doc, gateway.Errorf(gateway.EUnavailable,
			"The ingestion was interrupted %d times (the function timed out or crashed); upload a smaller file.", doc.Attempts)), nil
	case doc.Status == gateway.DocProcessing && doc.Attempts > 0:
		// The earlier ingestion died: take over.
	default:
		return doc, nil // a repeated event: done already
	}
	ctx, cancel := ingestContext(ctx)
	defer cancel()
	doc.Status, doc.Reason, doc.LeaseUntil = gateway.DocProcessing, "", leaseEnd(ctx)
	doc.Attempts++
	if _, err := s.saveIf(ctx, doc, version); gateway.IsConflict(err) {
		return doc, gateway.Errorf(gateway.EUnavailable, "The document %s is being ingested.", id)
	} else if err != nil {
		return gateway.Document{}, err
	}
	return s.ingestStored(ctx, doc), nil
}

// ingestStored ingests the file of doc from the blob store (its incoming
// upload, or, on a retry after the move, its final place).
func (s *Service) ingestStored(ctx context.Context, doc gateway.Document) gateway.Document {
	f, sum, size, err := s.spool(ctx, doc.Object)
	if err != nil {
		return s.failed(ctx, doc, err)
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	doc.Size = size
	kind, _ := extract.Kind(doc.Filename, doc.ContentType)
	text, err := extract.TextAt(kind, f, size)
	if err != nil {
		return s.failed(ctx, doc, err)
	}
	doc.SHA256 = sum
	if _, err := s.claim(ctx, doc); err != nil {
		doc.SHA256 = "" // not ours to release
		return s.failed(ctx, doc, err)
	}
	if strings.HasPrefix(doc.Object, IncomingPrefix) {
		incoming, final := doc.Object, originalKey(doc.ID, kind)
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return s.failed(ctx, doc, fmt.Errorf("rewind spooled upload: %w", err))
		}
		if err := s.blobs.Put(ctx, final, f, doc.ContentType); err != nil {
			return s.failed(ctx, doc, err)
		}
		doc.Object = final
		if err := s.save(ctx, doc); err != nil {
			return s.failed(ctx, doc, err)
		}
		s.blobs.Delete(ctx, incoming)
	}
	return s.ingest(ctx, doc, text)
}

// spool copies the blob at key into a temporary file, and returns it with
// the SHA-256 and size of its content.
func (s *Service) spool(ctx context.Context, key string) (*os.File, string, int64, error) {
	rc, _, err := s.blobs.Get(ctx, key)
	if err != nil {
		return nil, "", 0, err
	}
	defer rc.Close()
	f, err := os.CreateTemp("", "gateway-ingest-*")
	if err != nil {
		return nil, "", 0, fmt.Errorf("spool upload: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rc, MaxDirectUpload+1))
	if err == nil && n > MaxDirectUpload {
		err = gateway.Errorf(gateway.ETooLarge, "A direct upload may be at most %d MB.", MaxDirectUpload>>20)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		if gateway.ErrorCode(err) == "" || gateway.ErrorCode(err) == gateway.EInternal {
			err = fmt.Errorf("spool upload %s: %w", key, err)
		}
		return nil, "", 0, err
	}
	return f, hex.EncodeToString(h.Sum(nil)), n, nil
}

// claim makes doc the one document of its content in its knowledge base.
// A claim left by doc itself (an earlier attempt), or by a document that is
// gone or failed, is taken over. When a live document holds it, claim
// returns that document's ID as dup, and EConflict.
func (s *Service) claim(ctx context.Context, doc gateway.Document) (dup string, err error) {
	sk := doc.KnowledgeBase + "#" + doc.SHA256
	for range 3 {
		_, err := s.records.Put(ctx, storage.Item{PK: hashPK, SK: sk, Value: []byte(doc.ID)}, storage.Cond{IfAbsent: true})
		if !gateway.IsConflict(err) {
			if err != nil {
				return "", fmt.Errorf("claim document content: %w", err)
			}
			return "", nil
		}
		it, err := s.records.Get(ctx, hashPK, sk)
		if gateway.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read content claim: %w", err)
		}
		owner := string(it.Value)
		if owner == doc.ID {
			return "", nil
		}
		other, _, err := s.load(ctx, owner)
		if err == nil && other.Status != gateway.DocFailed {
			return owner, gateway.Errorf(gateway.EConflict, "The same content is already the document %s.", owner)
		}
		if err != nil && !gateway.IsNotFound(err) {
			return "", err
		}
		_, err = s.records.Put(ctx, storage.Item{PK: hashPK, SK: sk, Value: []byte(doc.ID)}, storage.Cond{IfVersion: it.Version})
		if !gateway.IsConflict(err) {
			if err != nil {
				return "", fmt.Errorf("claim document content: %w", err)
			}
			return "", nil
		}
	}
	return "", gateway.Errorf(gateway.EConflict, "The same content is being uploaded at the same time.")
}

// IngestFailed records that the ingestion of the direct upload at key
// failed for good (Lambda gave up on its event, or could not be given it),
// with reason. A document that is done, or whose ingestion still holds its
// lease, is left as it is; the latter returns EUnavailable so that the
// report is delivered again once the lease has lapsed.
func (s *Service) IngestFailed(ctx context.Context, key, reason string) error {
	rest, ok := strings.CutPrefix(key, IncomingPrefix)
	id, _, _ := strings.Cut(rest, "/")
	if !ok || id == "" {
		return nil
	}
	doc, _, err := s.load(ctx, id)
	if gateway.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case doc.Status == gateway.DocReady || doc.Status == gateway.DocFailed:
		return nil
	case doc.Status == gateway.DocProcessing && s.now().Before(doc.LeaseUntil):
		return gateway.Errorf(gateway.EUnavailable, "The document %s is being ingested.", id)
	}
	s.failed(ctx, doc, gateway.Errorf(gateway.EUnavailable, "%s", reason))
	return nil
}

// sweep fails the documents among docs whose work died: an ingestion past
// its lease, or a direct upload that never arrived. It returns docs as
// they now are.
func (s *Service) sweep(ctx context.Context, docs []gateway.Document) []gateway.Document {
	now := s.now()
	for i, d := range docs {
		lease := d.LeaseUntil
		if lease.IsZero() {
			lease = d.UpdatedAt.Add(IngestTimeout + leaseSlack)
		}
		switch {
		case d.Status == gateway.DocProcessing && now.After(lease):
			docs[i] = s.failed(ctx, d, gateway.Errorf(gateway.EUnavailable,
				"The ingestion was interrupted (the function timed out or the process stopped); upload the document again."))
		case d.Status == gateway.DocUploading && now.After(d.CreatedAt.Add(uploadWait)):
			docs[i] = s.failed(ctx, d, gateway.Errorf(gateway.EInvalid, "The file was never uploaded to its upload URL."))
		}
	}
	return docs
}

// Recover fails every document left processing by a process that stopped
// (the local server, at start-up, when no ingestion can be running) and
// every direct upload that never arrived.
func (s *Service) Recover(ctx context.Context) error {
	docs, err := s.list(ctx)
	if err != nil {
		return err
	}
	for _, d := range docs {
		if d.Status == gateway.DocProcessing {
			s.failed(ctx, d, gateway.Errorf(gateway.EUnavailable,
				"The ingestion was interrupted (the gateway stopped); upload the document again."))
		}
	}
	s.sweep(ctx, docs)
	return nil
}
