package rag

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/chunk"
	"github.com/aigateway/aigateway/shared/extract"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/upstream"
)

// Document statuses.
const (
	StatusUploading  = "uploading" // waiting for its direct upload
	StatusProcessing = "processing"
	StatusReady      = "ready"
	StatusFailed     = "failed"
)

// Document is an uploaded file or text in a knowledge base.
type Document struct {
	ID            string `json:"id"`
	KnowledgeBase string `json:"knowledge_base"`
	Title         string `json:"title"`
	Filename      string `json:"filename,omitempty"`
	ContentType   string `json:"content_type"`
	Size          int64  `json:"size"`
	SHA256        string `json:"sha256"`
	Status        string `json:"status"`
	Reason        string `json:"reason,omitempty"`
	Chunks        int    `json:"chunks"`
	// Object is the blob that holds the original file.
	Object    string    `json:"object,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Records layout.
const (
	docPK  = "doc"     // sk document ID
	hashPK = "dochash" // sk "<kb>#<sha256>", value the document ID
)

// Settings supplies the current settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Upstream calls the RAG upstream.
type Upstream interface {
	Post(ctx context.Context, up gateway.Upstream, path string, body []byte) (*upstream.Response, error)
}

// Service ingests documents and retrieves from them.
type Service struct {
	records  storage.Records
	blobs    storage.Blobs
	settings Settings
	upstream Upstream
	lib      *Library
	now      func() time.Time
}

// NewService returns a Service.
func NewService(records storage.Records, blobs storage.Blobs, lib *Library, st Settings, up Upstream) *Service {
	return &Service{records: records, blobs: blobs, settings: st, upstream: up, lib: lib, now: time.Now}
}

// Upload is a document to add.
type Upload struct {
	KnowledgeBase string
	Title         string
	Filename      string // "" for pasted text
	ContentType   string
	Data          []byte
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
func (s *Service) Add(ctx context.Context, u Upload) (Document, bool, error) {
	if u.KnowledgeBase == "" {
		u.KnowledgeBase = "default"
	}
	if err := gateway.CheckKnowledgeBase(u.KnowledgeBase); err != nil {
		e := err.(*gateway.Error)
		e.Param = "knowledge_base"
		return Document{}, false, e
	}
	if len(u.Data) > MaxUpload {
		return Document{}, false, gateway.Errorf(gateway.ETooLarge, "A document may be at most %d MB.", MaxUpload>>20)
	}
	name := u.Filename
	if name == "" {
		name = "text.txt"
	}
	kind, err := extract.Kind(name, u.ContentType)
	if err != nil {
		return Document{}, false, err
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
		return Document{}, false, e
	}
	text, err := extract.Text(kind, u.Data)
	if err != nil {
		return Document{}, false, err
	}
	sum := sha256.Sum256(u.Data)
	hash := hex.EncodeToString(sum[:])
	now := s.now().UTC()
	doc := Document{ID: "doc_" + strings.ToLower(rand.Text()[:20]), KnowledgeBase: u.KnowledgeBase, Title: u.Title,
		Filename: u.Filename, ContentType: extract.Types[kind], Size: int64(len(u.Data)), SHA256: hash,
		Status: StatusProcessing, CreatedAt: now, UpdatedAt: now}

	// Claim the content: of two uploads of the same file, one ingests.
	_, err = s.records.Put(ctx, storage.Item{PK: hashPK, SK: doc.KnowledgeBase + "#" + hash, Value: []byte(doc.ID)}, storage.Cond{IfAbsent: true})
	if gateway.IsConflict(err) {
		it, err := s.records.Get(ctx, hashPK, doc.KnowledgeBase+"#"+hash)
		if err != nil {
			return Document{}, false, fmt.Errorf("find duplicate document: %w", err)
		}
		existing, err := s.Get(ctx, string(it.Value))
		return existing, false, err
	}
	if err != nil {
		return Document{}, false, fmt.Errorf("claim document: %w", err)
	}
	doc.Object = originalKey(doc.ID, kind)
	if err := s.blobs.Put(ctx, doc.Object, bytes.NewReader(u.Data), doc.ContentType); err != nil {
		s.records.Delete(ctx, hashPK, doc.KnowledgeBase+"#"+hash)
		return Document{}, false, fmt.Errorf("store document: %w", err)
	}
	if err := s.save(ctx, doc); err != nil {
		return Document{}, false, err
	}
	doc = s.ingest(ctx, doc, text)
	return doc, true, nil
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

func (s *Service) save(ctx context.Context, d Document) error {
	d.UpdatedAt = s.now().UTC()
	value, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode document: %w", err)
	}
	if _, err := s.records.Put(ctx, storage.Item{PK: docPK, SK: d.ID, Value: value}, storage.Cond{}); err != nil {
		return fmt.Errorf("save document %s: %w", d.ID, err)
	}
	return nil
}

// ingest extracts, chunks, embeds and indexes a document and records the
// outcome on it. On failure the content claim is released, so that the
// same file can be tried again.
func (s *Service) ingest(ctx context.Context, doc Document, text string) Document {
	ctx = context.WithoutCancel(ctx)
	n, err := s.index(ctx, doc, text)
	if err != nil {
		slog.WarnContext(ctx, "document ingestion failed", "document", doc.ID, "err", err)
		doc.Status, doc.Reason = StatusFailed, gateway.ErrorMessage(err)
		s.records.Delete(ctx, hashPK, doc.KnowledgeBase+"#"+doc.SHA256)
	} else {
		doc.Status, doc.Chunks = StatusReady, n
	}
	if err := s.save(ctx, doc); err != nil {
		slog.ErrorContext(ctx, "save document status", "document", doc.ID, "err", err)
	}
	return doc
}

func (s *Service) index(ctx context.Context, doc Document, text string) (int, error) {
	st, err := s.settings.Get(ctx)
	if err != nil {
		return 0, err
	}
	chunks := chunk.Split(text, chunk.Options{Size: st.RAG.ChunkSize, Overlap: st.RAG.ChunkOverlap})
	if len(chunks) == 0 {
		return 0, gateway.Errorf(gateway.EInvalid, "The document holds no text.")
	}
	inputs := make([]string, len(chunks))
	seg := &segment{DocID: doc.ID, KB: doc.KnowledgeBase, Title: doc.Title, Chunks: make([]Chunk, len(chunks))}
	for i, c := range chunks {
		seg.Chunks[i] = Chunk{Heading: c.Heading, Text: c.Text}
		inputs[i] = strings.TrimSpace(doc.Title + "\n" + c.Heading + "\n" + c.Text)
	}
	vectors, err := s.embed(ctx, st.RAG, inputs)
	if err != nil {
		return 0, err
	}
	seg.Dims = len(vectors[0])
	seg.Vectors = make([]float32, 0, len(vectors)*seg.Dims)
	for _, v := range vectors {
		if len(v) != seg.Dims {
			return 0, gateway.Errorf(gateway.EUpstream, "The embedding upstream answered vectors of different lengths.")
		}
		seg.Vectors = append(seg.Vectors, v...)
	}
	if err := s.lib.add(ctx, seg); err != nil {
		return 0, err
	}
	return len(chunks), nil
}

// Embedding batches: inputs per request, and requests at once.
const (
	embedBatch       = 16
	embedConcurrency = 4
)

// embed returns the embeddings of inputs from the RAG upstream, in
// batches, a few at once; the upstream client retries each batch.
func (s *Service) embed(ctx context.Context, rag gateway.RAGSettings, inputs []string) ([][]float32, error) {
	if rag.BaseURL == "" || rag.Model == "" {
		return nil, gateway.Errorf(gateway.EUnavailable, "The embedding upstream (rag.base_url and rag.model) is not configured.")
	}
	up := gateway.Upstream{BaseURL: rag.BaseURL, APIKey: rag.APIKey, Model: rag.Model}
	out := make([][]float32, len(inputs))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, embedConcurrency)
	var wg sync.WaitGroup
	for start := 0; start < len(inputs); start += embedBatch {
		end := min(start+embedBatch, len(inputs))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			vs, err := s.embedBatch(ctx, up, inputs[start:end])
			if err != nil {
				cancel(err)
				return
			}
			copy(out[start:end], vs)
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) embedBatch(ctx context.Context, up gateway.Upstream, inputs []string) ([][]float32, error) {
	body, err := json.Marshal(map[string]any{"model": up.Model, "input": inputs, "encoding_format": "float"})
	if err != nil {
		return nil, fmt.Errorf("encode embeddings request: %w", err)
	}
	resp, err := s.upstream.Post(ctx, up, "/embeddings", body)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	raw, err := resp.ReadAll(64 << 20)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || len(answer.Data) != len(inputs) {
		return nil, gateway.Errorf(gateway.EUpstream, "The embedding upstream's answer is not an embeddings list for the inputs.")
	}
	out := make([][]float32, len(inputs))
	for _, d := range answer.Data {
		if d.Index < 0 || d.Index >= len(out) || len(d.Embedding) == 0 {
			return nil, gateway.Errorf(gateway.EUpstream, "The embedding upstream's answer is not an embeddings list for the inputs.")
		}
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// Get returns a document, or ENotFound.
func (s *Service) Get(ctx context.Context, id string) (Document, error) {
	it, err := s.records.Get(ctx, docPK, id)
	if gateway.IsNotFound(err) || (err != nil && gateway.ErrorCode(err) == gateway.EInvalid) {
		return Document{}, notFound(id)
	}
	if err != nil {
		return Document{}, fmt.Errorf("read document %s: %w", id, err)
	}
	var d Document
	if err := json.Unmarshal(it.Value, &d); err != nil {
		return Document{}, fmt.Errorf("decode document %s: %w", id, err)
	}
	return d, nil
}

// List returns the documents of a knowledge base ("" for all), newest
// first.
func (s *Service) List(ctx context.Context, kb string) ([]Document, error) {
	out := []Document{}
	for it, err := range storage.QueryAll(ctx, s.records, docPK, storage.Query{}) {
		if err != nil {
			return nil, fmt.Errorf("list documents: %w", err)
		}
		var d Document
		if err := json.Unmarshal(it.Value, &d); err != nil {
			return nil, fmt.Errorf("decode document %s: %w", it.SK, err)
		}
		if kb == "" || d.KnowledgeBase == kb {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Document) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Delete removes a document: its index entries, its blob, its record.
func (s *Service) Delete(ctx context.Context, id string) error {
	d, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.lib.remove(ctx, d.KnowledgeBase, d.ID); err != nil {
		return err
	}
	if d.Object != "" {
		if err := s.blobs.Delete(ctx, d.Object); err != nil {
			return fmt.Errorf("delete document %s: %w", id, err)
		}
	}
	if d.SHA256 != "" && d.Status == StatusReady {
		if err := s.records.Delete(ctx, hashPK, d.KnowledgeBase+"#"+d.SHA256); err != nil {
			return fmt.Errorf("delete document %s: %w", id, err)
		}
	}
	if err := s.records.Delete(ctx, docPK, d.ID); err != nil {
		return fmt.Errorf("delete document %s: %w", id, err)
	}
	return nil
}

// Retrieve returns the chunks of the knowledge bases kbs that best answer
// query, under the RAG settings: top_k of them, reranked by rerank_model
// when set, none below min_score (the reranker's score when reranking, the
// cosine similarity otherwise).
func (s *Service) Retrieve(ctx context.Context, kbs []string, query string, rag gateway.RAGSettings) ([]Hit, error) {
	if len(kbs) == 0 || strings.TrimSpace(query) == "" || rag.BaseURL == "" {
		return nil, nil
	}
	v, err := s.lib.view(ctx, kbs)
	if err != nil {
		return nil, err
	}
	if v.n == 0 {
		return nil, nil
	}
	vecs, err := s.embed(ctx, rag, []string{query})
	if err != nil {
		return nil, err
	}
	k := max(rag.TopK, 1)
	depth := k
	if rag.RerankModel != "" {
		depth = max(4*k, 20)
	}
	hits := search(v, vecs[0], query, depth, Hybrid)
	if rag.RerankModel != "" && len(hits) > 1 {
		if hits, err = s.rerank(ctx, rag, query, hits); err != nil {
			return nil, err
		}
	}
	out := hits[:0]
	for _, h := range hits {
		score := h.Cosine
		if rag.RerankModel != "" {
			score = h.Rerank
		}
		if score >= rag.MinScore {
			out = append(out, h)
		}
	}
	return out[:min(k, len(out))], nil
}

// rerank orders hits by the RAG upstream's /rerank (the SiliconFlow and
// Jina shape: results of index and relevance_score).
func (s *Service) rerank(ctx context.Context, rag gateway.RAGSettings, query string, hits []Hit) ([]Hit, error) {
	docs := make([]string, len(hits))
	for i, h := range hits {
		docs[i] = h.Text
	}
	body, _ := json.Marshal(map[string]any{"model": rag.RerankModel, "query": query, "documents": docs, "top_n": len(docs)})
	up := gateway.Upstream{BaseURL: rag.BaseURL, APIKey: rag.APIKey, Model: rag.RerankModel}
	resp, err := s.upstream.Post(ctx, up, "/rerank", body)
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	raw, err := resp.ReadAll(16 << 20)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Results []struct {
			Index int     `json:"index"`
			Score float64 `json:"relevance_score"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, gateway.Errorf(gateway.EUpstream, "The rerank upstream's answer could not be read.")
	}
	out := make([]Hit, 0, len(answer.Results))
	for _, r := range answer.Results {
		if r.Index >= 0 && r.Index < len(hits) {
			h := hits[r.Index]
			h.Rerank = r.Score
			out = append(out, h)
		}
	}
	slices.SortStableFunc(out, func(a, b Hit) int {
		switch {
		case a.Rerank > b.Rerank:
			return -1
		case a.Rerank < b.Rerank:
			return 1
		}
		return 0
	})
	return out, nil
}

// IncomingPrefix is where direct uploads land; the bucket expires what is
// left there after a day.
const IncomingPrefix = "incoming/"

// MaxDirectUpload bounds a file uploaded straight to the blob store.
const MaxDirectUpload = 512 << 20

// Pending describes a file the client will upload directly.
type Pending struct {
	KnowledgeBase string
	Title         string
	Filename      string
	ContentType   string
	Size          int64
}

// Prepare records a document that waits for its direct upload, and returns
// it; its Object is the key the file must be put at.
func (s *Service) Prepare(ctx context.Context, p Pending) (Document, error) {
	if p.KnowledgeBase == "" {
		p.KnowledgeBase = "default"
	}
	if err := gateway.CheckKnowledgeBase(p.KnowledgeBase); err != nil {
		return Document{}, err
	}
	kind, err := extract.Kind(p.Filename, p.ContentType)
	if err != nil {
		return Document{}, err
	}
	if p.Size <= 0 || p.Size > MaxDirectUpload {
		e := gateway.Errorf(gateway.EInvalid, "size must be the file's size, at most %d MB.", MaxDirectUpload>>20)
		e.Param = "size"
		return Document{}, e
	}
	if p.Title == "" {
		p.Title = strings.TrimSuffix(path.Base(p.Filename), path.Ext(p.Filename))
	}
	now := s.now().UTC()
	id := "doc_" + strings.ToLower(rand.Text()[:20])
	doc := Document{ID: id, KnowledgeBase: p.KnowledgeBase, Title: p.Title, Filename: p.Filename,
		ContentType: extract.Types[kind], Size: p.Size, Status: StatusUploading,
		Object: IncomingPrefix + id + "/original" + kind, CreatedAt: now, UpdatedAt: now}
	if err := s.save(ctx, doc); err != nil {
		return Document{}, err
	}
	return doc, nil
}

// SignedUpload returns a URL the client may PUT the file to directly, when
// the blob store signs URLs (S3, R2); "" otherwise.
func (s *Service) SignedUpload(ctx context.Context, doc Document, ttl time.Duration) (string, error) {
	signer, ok := s.blobs.(storage.Signer)
	if !ok {
		return "", nil
	}
	return signer.SignURL(ctx, "PUT", doc.Object, ttl)
}

// PutContent stores the body of a direct upload where the blob store
// cannot take it itself (locally), up to the size the document announced.
func (s *Service) PutContent(ctx context.Context, id string, r io.Reader) (Document, error) {
	doc, err := s.Get(ctx, id)
	if err != nil {
		return Document{}, err
	}
	if doc.Status != StatusUploading {
		return Document{}, gateway.Errorf(gateway.EConflict, "The document %s is not waiting for an upload.", id)
	}
	lr := &io.LimitedReader{R: r, N: doc.Size + 1}
	if err := s.blobs.Put(ctx, doc.Object, lr, doc.ContentType); err != nil {
		return Document{}, fmt.Errorf("store upload of %s: %w", id, err)
	}
	if lr.N == 0 {
		s.blobs.Delete(ctx, doc.Object)
		return Document{}, gateway.Errorf(gateway.ETooLarge, "The upload is larger than the %d bytes announced.", doc.Size)
	}
	return doc, nil
}

// IngestObject ingests a direct upload that has arrived at key (from an
// object-created event, or locally after PutContent): the file moves out
// of the incoming area and the document becomes ready, or failed with a
// readable reason. A key that is no document's upload is ignored.
func (s *Service) IngestObject(ctx context.Context, key string) (Document, error) {
	rest, ok := strings.CutPrefix(key, IncomingPrefix)
	id, _, _ := strings.Cut(rest, "/")
	if !ok || id == "" {
		return Document{}, nil
	}
	doc, err := s.Get(ctx, id)
	if gateway.IsNotFound(err) {
		slog.WarnContext(ctx, "an upload arrived for no document", "key", key)
		return Document{}, nil
	}
	if err != nil {
		return Document{}, err
	}
	if doc.Status != StatusUploading || doc.Object != key {
		return doc, nil // a repeated event: done already
	}
	doc.Status = StatusProcessing
	if err := s.save(ctx, doc); err != nil {
		return Document{}, err
	}
	fail := func(err error) (Document, error) {
		doc.Status, doc.Reason = StatusFailed, gateway.ErrorMessage(err)
		return doc, s.save(ctx, doc)
	}
	rc, info, err := s.blobs.Get(ctx, key)
	if err != nil {
		return fail(err)
	}
	data, err := io.ReadAll(io.LimitReader(rc, MaxDirectUpload+1))
	rc.Close()
	if err != nil {
		return fail(err)
	}
	doc.Size = info.Size
	kind, _ := extract.Kind(doc.Filename, doc.ContentType)
	text, err := extract.Text(kind, data)
	if err != nil {
		return fail(err)
	}
	sum := sha256.Sum256(data)
	doc.SHA256 = hex.EncodeToString(sum[:])
	_, err = s.records.Put(ctx, storage.Item{PK: hashPK, SK: doc.KnowledgeBase + "#" + doc.SHA256, Value: []byte(doc.ID)}, storage.Cond{IfAbsent: true})
	if gateway.IsConflict(err) {
		it, _ := s.records.Get(ctx, hashPK, doc.KnowledgeBase+"#"+doc.SHA256)
		return fail(gateway.Errorf(gateway.EConflict, "The same content is already the document %s.", it.Value))
	}
	if err != nil {
		return fail(err)
	}
	final := originalKey(doc.ID, kind)
	if err := s.blobs.Put(ctx, final, bytes.NewReader(data), doc.ContentType); err != nil {
		s.records.Delete(ctx, hashPK, doc.KnowledgeBase+"#"+doc.SHA256)
		return fail(err)
	}
	s.blobs.Delete(ctx, key)
	doc.Object = final
	return s.ingest(ctx, doc, text), nil
}
