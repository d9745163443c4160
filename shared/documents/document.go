// Package documents serves the knowledge bases' documents API
// (/admin/api/documents, the upload function): uploads of files and pasted
// text, direct uploads of large files, listing and deletion; the routing
// table (shared/app) puts them behind the admin session.
package documents

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// Documents stores the knowledge bases' documents.
type Documents interface {
	Add(ctx context.Context, u gateway.Upload) (gateway.Document, bool, error)
	Get(ctx context.Context, id string) (gateway.Document, error)
	List(ctx context.Context, kb string) ([]gateway.Document, error)
	Delete(ctx context.Context, id string) error
	Prepare(ctx context.Context, p gateway.PendingUpload) (gateway.Document, error)
	SignedUpload(ctx context.Context, doc gateway.Document, ttl time.Duration) (string, error)
	PutContent(ctx context.Context, id string, r io.Reader) (gateway.Document, error)
	IngestObject(ctx context.Context, key string) (gateway.Document, error)
	IngestFailed(ctx context.Context, key, reason string) error
}

// Handler serves /admin/api/documents (the upload function).
type Handler struct {
	maxBody   int64
	documents Documents
	tokenKey  []byte
	// background ingests direct uploads after answering (a long-running
	// process); otherwise they are ingested before the answer.
	background bool
	pending    sync.WaitGroup
}

// closeWait bounds how long Close waits for background ingestions; one
// still running after it is failed at the next start (Recover).
const closeWait = 10 * time.Second

// Close waits for the ingestions running in the background, at most
// closeWait, so that the stores close after them and a stop is never held
// by a hung upstream.
func (d *Handler) Close() error {
	done := make(chan struct{})
	go func() {
		d.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
		slog.Warn("ingestions still running at shutdown; they are failed at the next start")
	}
	return nil
}

// uploadTTL is how long a direct-upload URL stays valid.
const uploadTTL = 15 * time.Minute

// New returns the documents handler. It signs its own direct-upload URLs
// (where the blob store signs none) with tokenKey. background ingests
// direct uploads after answering (a long-running process). maxBody bounds
// uploads through the API; larger files take the direct upload.
func New(docs Documents, tokenKey []byte, background bool, maxBody int64) *Handler {
	return &Handler{maxBody: maxBody, documents: docs, tokenKey: tokenKey, background: background}
}

// IngestObject ingests a direct upload that arrived in the blob store at
// key (the upload function's object-created events). An error asks for the
// event to be delivered again.
func (d *Handler) IngestObject(ctx context.Context, key string) error {
	_, err := d.documents.IngestObject(ctx, key)
	return err
}

// IngestFailed records that the ingestion of the upload at key failed for
// good, with reason.
func (d *Handler) IngestFailed(ctx context.Context, key, reason string) error {
	return d.documents.IngestFailed(ctx, key, reason)
}

// Add serves POST /admin/api/documents: it takes a file (multipart field "file",
// with optional "title" and "knowledge_base" fields) or pasted text (JSON
// {"title","text","knowledge_base"}), and ingests it before answering: 201 with
// the document, ready or failed with its reason; 200 with the existing document
// when the same content is already in that knowledge base.
func (d *Handler) Add(w http.ResponseWriter, r *http.Request) error {
	var u gateway.Upload
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if r.ContentLength > d.maxBody {
			return tooLarge(d.maxBody)
		}
		r.Body = http.MaxBytesReader(w, r.Body, d.maxBody)
		f, hdr, err := r.FormFile("file")
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return tooLarge(d.maxBody)
			}
			e := gateway.Errorf(gateway.EInvalid, "Send the document as the multipart field \"file\".")
			e.Param = "file"
			return e
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			return gateway.Errorf(gateway.EInvalid, "The upload could not be read.")
		}
		u = gateway.Upload{KnowledgeBase: r.FormValue("knowledge_base"), Title: r.FormValue("title"),
			Filename: hdr.Filename, ContentType: hdr.Header.Get("Content-Type"), Data: data}
	case "application/json", "":
		var req struct {
			Title         string `json:"title"`
			Text          string `json:"text"`
			KnowledgeBase string `json:"knowledge_base"`
		}
		if err := respond.DecodeJSON(w, r, d.maxBody, &req); err != nil {
			return err
		}
		if strings.TrimSpace(req.Text) == "" {
			e := gateway.Errorf(gateway.EInvalid, "The text is empty.")
			e.Param = "text"
			return e
		}
		u = gateway.Upload{KnowledgeBase: req.KnowledgeBase, Title: req.Title, ContentType: "text/plain", Data: []byte(req.Text)}
	default:
		return gateway.Errorf(gateway.EUnsupported, "Send a multipart/form-data upload or JSON {\"title\",\"text\"}.")
	}
	doc, created, err := d.documents.Add(r.Context(), u)
	if err != nil {
		return err
	}
	if !created {
		respond.JSON(w, http.StatusOK, struct {
			gateway.Document
			Duplicate bool `json:"duplicate"`
		}{doc, true})
		return nil
	}
	respond.JSON(w, http.StatusCreated, doc)
	return nil
}

// tooLarge says what to do with a file too large to post through the API.
func tooLarge(limit int64) error {
	e := gateway.Errorf(gateway.ETooLarge, "The upload is larger than the %d bytes (%.1f MB) a request may carry here; "+
		"send larger files as a direct upload: POST /admin/api/documents/uploads, then PUT the file to the URL it answers.",
		limit, float64(limit)/(1<<20))
	e.Param = "file"
	return e
}

// PrepareUpload serves POST /admin/api/documents/uploads: it starts a direct
// upload, for files too large to post through the API (on AWS, Lambda takes at
// most 6 MB a request): {"filename","size",
// "content_type","title","knowledge_base"} → 201 with the document (status
// "uploading") and where to PUT the file. Once it is there, the document is
// ingested (on AWS, by the bucket's object-created event).
func (d *Handler) PrepareUpload(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Filename      string `json:"filename"`
		Size          int64  `json:"size"`
		ContentType   string `json:"content_type"`
		Title         string `json:"title"`
		KnowledgeBase string `json:"knowledge_base"`
	}
	if err := respond.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	doc, err := d.documents.Prepare(r.Context(), gateway.PendingUpload{KnowledgeBase: req.KnowledgeBase, Title: req.Title,
		Filename: req.Filename, ContentType: req.ContentType, Size: req.Size})
	if err != nil {
		return err
	}
	url, err := d.documents.SignedUpload(r.Context(), doc, uploadTTL)
	if err != nil {
		return err
	}
	expires := time.Now().Add(uploadTTL)
	if url == "" {
		url = fmt.Sprintf("%s/admin/api/documents/%s/content?expires=%d&sig=%s",
			respond.BaseURL(r), doc.ID, expires.Unix(), d.sign(doc.ID, expires.Unix()))
	}
	respond.JSON(w, http.StatusCreated, map[string]any{"document": doc, "upload": map[string]any{
		"method": http.MethodPut, "url": url, "headers": map[string]string{"Content-Type": doc.ContentType},
		"expires_at": expires.UTC(), "object_key": doc.Object}})
	return nil
}

func (d *Handler) sign(id string, expires int64) string {
	m := hmac.New(sha256.New, d.tokenKey)
	fmt.Fprintf(m, "%s|%d", id, expires)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// PutContent serves PUT /admin/api/documents/{id}/content: it takes a direct
// upload where the blob store signs no URLs of its own. Its URL is the
// credential: signed, for one document, for 15 minutes.
func (d *Handler) PutContent(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	expires, err := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	if err != nil || time.Now().Unix() > expires ||
		!hmac.Equal([]byte(r.URL.Query().Get("sig")), []byte(d.sign(id, expires))) {
		return gateway.Errorf(gateway.EForbidden, "The upload URL is invalid or has expired.")
	}
	doc, err := d.documents.PutContent(r.Context(), id, r.Body)
	if err != nil {
		return err
	}
	if d.background {
		d.pending.Go(func() {
			if _, err := d.documents.IngestObject(context.WithoutCancel(r.Context()), doc.Object); err != nil {
				slog.Error("ingest uploaded document", "document", id, "err", err)
			}
		})
		doc.Status = gateway.DocProcessing
		respond.JSON(w, http.StatusAccepted, doc)
		return nil
	}
	if doc, err = d.documents.IngestObject(r.Context(), doc.Object); err != nil {
		return err
	}
	respond.JSON(w, http.StatusCreated, doc)
	return nil
}

// List serves GET /admin/api/documents: the documents, of one knowledge
// base with ?knowledge_base=.
func (d *Handler) List(w http.ResponseWriter, r *http.Request) error {
	docs, err := d.documents.List(r.Context(), r.URL.Query().Get("knowledge_base"))
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": docs})
	return nil
}

// Get serves GET /admin/api/documents/{id}: one document.
func (d *Handler) Get(w http.ResponseWriter, r *http.Request) error {
	doc, err := d.documents.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, doc)
	return nil
}

// Delete serves DELETE /admin/api/documents/{id}: the document, its
// chunks, index entries and blob.
func (d *Handler) Delete(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := d.documents.Delete(r.Context(), id); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}
