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
	"fmt"
	"io"
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
	// Recorded first, so that a claim never names a document that is not
	// there (but one that died on the way).
	r, wctx, err := s.start(ctx, doc, 0)
	if err != nil {
		return gateway.Document{}, false, err
	}
	// Claim the content: of two uploads of the same file, one ingests.
	if dup, err := s.claim(wctx, doc); err != nil {
		r.drop(ctx)
		if dup == "" {
			return gateway.Document{}, false, err
		}
		existing, err := s.Get(ctx, dup)
		return existing, false, err
	}
	if err := s.blobs.Put(wctx, doc.Object, bytes.NewReader(u.Data), doc.ContentType); err != nil {
		s.releaseClaim(ctx, doc)
		r.drop(ctx)
		return gateway.Document{}, false, fmt.Errorf("store document: %w", err)
	}
	n, err := s.index.Index(wctx, r.document(), text)
	return r.finish(wctx, n, err), true, nil
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
	_, err := s.put(ctx, d, storage.Cond{})
	return err
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

// Delete removes a document for good: its record first, so that an
// ingestion still running on it sees it gone and stops (and undoes what
// it did after this), then its chunks, its files and its content claim.
func (s *Service) Delete(ctx context.Context, id string) error {
	d, _, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	if err := s.records.Delete(ctx, docPK, d.ID); err != nil {
		return fmt.Errorf("delete document %s: %w", id, err)
	}
	if err := s.index.Remove(ctx, d.KnowledgeBase, d.ID); err != nil {
		return err
	}
	for _, key := range []string{d.Object, incomingKey(d)} {
		if key != "" {
			if err := s.blobs.Delete(ctx, key); err != nil {
				return fmt.Errorf("delete document %s: %w", id, err)
			}
		}
	}
	s.releaseClaim(ctx, d)
	return nil
}

// incomingKey is where a direct upload of d arrives ("" for others).
func incomingKey(d gateway.Document) string {
	if d.Filename == "" || strings.HasPrefix(d.Object, IncomingPrefix) {
		return ""
	}
	return IncomingPrefix + d.ID + "/original" + path.Ext(d.Object)
}

// IncomingPrefix is where direct uploads land; the bucket expires what is
// left there after a day.
const IncomingPrefix = "incoming/"

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
