package admin

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
	"github.com/aigateway/aigateway/shared/rag"
	"github.com/aigateway/aigateway/shared/respond"
)

// Documents stores the knowledge bases' documents.
type Documents interface {
	Add(ctx context.Context, u rag.Upload) (rag.Document, bool, error)
	Get(ctx context.Context, id string) (rag.Document, error)
	List(ctx context.Context, kb string) ([]rag.Document, error)
	Delete(ctx context.Context, id string) error
	Prepare(ctx context.Context, p rag.Pending) (rag.Document, error)
	SignedUpload(ctx context.Context, doc rag.Document, ttl time.Duration) (string, error)
	PutContent(ctx context.Context, id string, r io.Reader) (rag.Document, error)
	IngestObject(ctx context.Context, key string) (rag.Document, error)
}

// DocumentHandler serves /admin/api/documents (the upload function).
type DocumentHandler struct {
	h         *Handler
	documents Documents
	tokenKey  []byte
	// background ingests direct uploads after answering (a long-running
	// process); otherwise they are ingested before the answer.
	background bool
	pending    sync.WaitGroup
	mux        *http.ServeMux
}

// Close waits for the ingestions running in the background, so that the
// stores close after them.
func (d *DocumentHandler) Close() error {
	d.pending.Wait()
	return nil
}

// uploadTTL is how long a direct-upload URL stays valid.
const uploadTTL = time.Hour

// NewDocuments returns the documents handler; it shares the admin's
// sessions through guard, and signs its own direct-upload URLs (where the
// blob store signs none) with tokenKey.
func NewDocuments(guard Guard, docs Documents, tokenKey []byte, background bool, maxBody int64) *DocumentHandler {
	d := &DocumentHandler{h: &Handler{Deps: Deps{Guard: guard}, maxBody: maxBody}, documents: docs,
		tokenKey: tokenKey, background: background, mux: http.NewServeMux()}
	d.mux.HandleFunc("/admin/api/documents", respond.Methods(map[string]http.HandlerFunc{
		http.MethodGet: d.h.signedIn(d.list), http.MethodPost: d.h.signedIn(d.add)}))
	d.mux.HandleFunc("/admin/api/documents/uploads", respond.Methods(map[string]http.HandlerFunc{
		http.MethodPost: d.h.signedIn(d.prepare)}))
	d.mux.HandleFunc("/admin/api/documents/{id}/content", respond.Methods(map[string]http.HandlerFunc{
		http.MethodPut: d.putContent}))
	d.mux.HandleFunc("/admin/api/documents/{id}", respond.Methods(map[string]http.HandlerFunc{
		http.MethodGet: d.h.signedIn(d.get), http.MethodDelete: d.h.signedIn(d.remove)}))
	d.mux.HandleFunc("/", respond.NotFound)
	return d
}

// ServeHTTP implements http.Handler.
func (d *DocumentHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.mux.ServeHTTP(w, r) }

// add takes a file (multipart field "file", with optional "title" and
// "knowledge_base" fields) or pasted text (JSON {"title","text",
// "knowledge_base"}), and ingests it before answering: 201 with the
// document, ready or failed with its reason; 200 with the existing document
// when the same content is already in that knowledge base.
func (d *DocumentHandler) add(w http.ResponseWriter, r *http.Request) {
	var u rag.Upload
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if r.ContentLength > d.h.maxBody {
			respond.Error(w, r, gateway.Errorf(gateway.ETooLarge, "The upload is larger than the limit of %d bytes; use a direct upload for large files.", d.h.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, d.h.maxBody)
		f, hdr, err := r.FormFile("file")
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				respond.Error(w, r, gateway.Errorf(gateway.ETooLarge, "The upload is larger than the limit of %d bytes.", d.h.maxBody))
				return
			}
			e := gateway.Errorf(gateway.EInvalid, "Send the document as the multipart field \"file\".")
			e.Param = "file"
			respond.Error(w, r, e)
			return
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		if err != nil {
			respond.Error(w, r, gateway.Errorf(gateway.EInvalid, "The upload could not be read."))
			return
		}
		u = rag.Upload{KnowledgeBase: r.FormValue("knowledge_base"), Title: r.FormValue("title"),
			Filename: hdr.Filename, ContentType: hdr.Header.Get("Content-Type"), Data: data}
	case "application/json", "":
		var req struct {
			Title         string `json:"title"`
			Text          string `json:"text"`
			KnowledgeBase string `json:"knowledge_base"`
		}
		if err := respond.DecodeJSON(w, r, d.h.maxBody, &req); err != nil {
			respond.Error(w, r, err)
			return
		}
		if strings.TrimSpace(req.Text) == "" {
			e := gateway.Errorf(gateway.EInvalid, "The text is empty.")
			e.Param = "text"
			respond.Error(w, r, e)
			return
		}
		u = rag.Upload{KnowledgeBase: req.KnowledgeBase, Title: req.Title, ContentType: "text/plain", Data: []byte(req.Text)}
	default:
		respond.Error(w, r, gateway.Errorf(gateway.EUnsupported, "Send a multipart/form-data upload or JSON {\"title\",\"text\"}."))
		return
	}
	doc, created, err := d.documents.Add(r.Context(), u)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	if !created {
		respond.JSON(w, http.StatusOK, struct {
			rag.Document
			Duplicate bool `json:"duplicate"`
		}{doc, true})
		return
	}
	respond.JSON(w, http.StatusCreated, doc)
}

// prepare starts a direct upload, for files too large to post through the
// API (API Gateway takes at most 10 MB): {"filename","size",
// "content_type","title","knowledge_base"} → 201 with the document
// (status "uploading") and where to PUT the file. Once it is there, the
// document is ingested (on AWS, by the bucket's object-created event).
func (d *DocumentHandler) prepare(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Filename      string `json:"filename"`
		Size          int64  `json:"size"`
		ContentType   string `json:"content_type"`
		Title         string `json:"title"`
		KnowledgeBase string `json:"knowledge_base"`
	}
	if err := respond.DecodeJSON(w, r, 64<<10, &req); err != nil {
		respond.Error(w, r, err)
		return
	}
	doc, err := d.documents.Prepare(r.Context(), rag.Pending{KnowledgeBase: req.KnowledgeBase, Title: req.Title,
		Filename: req.Filename, ContentType: req.ContentType, Size: req.Size})
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	url, err := d.documents.SignedUpload(r.Context(), doc, uploadTTL)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	expires := time.Now().Add(uploadTTL)
	if url == "" {
		url = fmt.Sprintf("%s/admin/api/documents/%s/content?expires=%d&sig=%s",
			respond.BaseURL(r), doc.ID, expires.Unix(), d.sign(doc.ID, expires.Unix()))
	}
	respond.JSON(w, http.StatusCreated, map[string]any{"document": doc, "upload": map[string]any{
		"method": http.MethodPut, "url": url, "headers": map[string]string{"Content-Type": doc.ContentType},
		"expires_at": expires.UTC(), "object_key": doc.Object}})
}

func (d *DocumentHandler) sign(id string, expires int64) string {
	m := hmac.New(sha256.New, d.tokenKey)
	fmt.Fprintf(m, "%s|%d", id, expires)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// putContent takes a direct upload where the blob store signs no URLs of
// its own. Its URL is the credential: signed, for one document, for an
// hour.
func (d *DocumentHandler) putContent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	expires, err := strconv.ParseInt(r.URL.Query().Get("expires"), 10, 64)
	if err != nil || time.Now().Unix() > expires ||
		!hmac.Equal([]byte(r.URL.Query().Get("sig")), []byte(d.sign(id, expires))) {
		respond.Error(w, r, gateway.Errorf(gateway.EForbidden, "The upload URL is invalid or has expired."))
		return
	}
	doc, err := d.documents.PutContent(r.Context(), id, r.Body)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	if d.background {
		d.pending.Go(func() {
			if _, err := d.documents.IngestObject(context.WithoutCancel(r.Context()), doc.Object); err != nil {
				slog.Error("ingest uploaded document", "document", id, "err", err)
			}
		})
		doc.Status = rag.StatusProcessing
		respond.JSON(w, http.StatusAccepted, doc)
		return
	}
	if doc, err = d.documents.IngestObject(r.Context(), doc.Object); err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusCreated, doc)
}

func (d *DocumentHandler) list(w http.ResponseWriter, r *http.Request) {
	docs, err := d.documents.List(r.Context(), r.URL.Query().Get("knowledge_base"))
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": docs})
}

func (d *DocumentHandler) get(w http.ResponseWriter, r *http.Request) {
	doc, err := d.documents.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, doc)
}

func (d *DocumentHandler) remove(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := d.documents.Delete(r.Context(), id); err != nil {
		respond.Error(w, r, err)
		return
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
}
