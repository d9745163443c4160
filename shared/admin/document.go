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
		http.MethodPut: respond.Handle(d.putContent)}))
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
func (d *DocumentHandler) add(w http.ResponseWriter, r *http.Request) error {
	var u rag.Upload
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		if r.ContentLength > d.h.maxBody {
			return gateway.Errorf(gateway.ETooLarge, "The upload is larger than the limit of %d bytes; use a direct upload for large files.", d.h.maxBody)
		}
		r.Body = http.MaxBytesReader(w, r.Body, d.h.maxBody)
		f, hdr, err := r.FormFile("file")
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return gateway.Errorf(gateway.ETooLarge, "The upload is larger than the limit of %d bytes.", d.h.maxBody)
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
		u = rag.Upload{KnowledgeBase: r.FormValue("knowledge_base"), Title: r.FormValue("title"),
			Filename: hdr.Filename, ContentType: hdr.Header.Get("Content-Type"), Data: data}
	case "application/json", "":
		var req struct {
			Title         string `json:"title"`
			Text          string `json:"text"`
			KnowledgeBase string `json:"knowledge_base"`
		}
		if err := respond.DecodeJSON(w, r, d.h.maxBody, &req); err != nil {
			return err
		}
		if strings.TrimSpace(req.Text) == "" {
			e := gateway.Errorf(gateway.EInvalid, "The text is empty.")
			e.Param = "text"
			return e
		}
		u = rag.Upload{KnowledgeBase: req.KnowledgeBase, Title: req.Title, ContentType: "text/plain", Data: []byte(req.Text)}
	default:
		return gateway.Errorf(gateway.EUnsupported, "Send a multipart/form-data upload or JSON {\"title\",\"text\"}.")
	}
	doc, created, err := d.documents.Add(r.Context(), u)
	if err != nil {
		return err
	}
	if !created {
		respond.JSON(w, http.StatusOK, struct {
			rag.Document
			Duplicate bool `json:"duplicate"`
		}{doc, true})
		return nil
	}
	respond.JSON(w, http.StatusCreated, doc)
	return nil
}

// prepare starts a direct upload, for files too large to post through the
// API (API Gateway takes at most 10 MB): {"filename","size",
// "content_type","title","knowledge_base"} → 201 with the document
// (status "uploading") and where to PUT the file. Once it is there, the
// document is ingested (on AWS, by the bucket's object-created event).
func (d *DocumentHandler) prepare(w http.ResponseWriter, r *http.Request) error {
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
	doc, err := d.documents.Prepare(r.Context(), rag.Pending{KnowledgeBase: req.KnowledgeBase, Title: req.Title,
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

func (d *DocumentHandler) sign(id string, expires int64) string {
	m := hmac.New(sha256.New, d.tokenKey)
	fmt.Fprintf(m, "%s|%d", id, expires)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// putContent takes a direct upload where the blob store signs no URLs of
// its own. Its URL is the credential: signed, for one document, for an
// hour.
func (d *DocumentHandler) putContent(w http.ResponseWriter, r *http.Request) error {
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
		doc.Status = rag.StatusProcessing
		respond.JSON(w, http.StatusAccepted, doc)
		return nil
	}
	if doc, err = d.documents.IngestObject(r.Context(), doc.Object); err != nil {
		return err
	}
	respond.JSON(w, http.StatusCreated, doc)
	return nil
}

func (d *DocumentHandler) list(w http.ResponseWriter, r *http.Request) error {
	docs, err := d.documents.List(r.Context(), r.URL.Query().Get("knowledge_base"))
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": docs})
	return nil
}

func (d *DocumentHandler) get(w http.ResponseWriter, r *http.Request) error {
	doc, err := d.documents.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, doc)
	return nil
}

func (d *DocumentHandler) remove(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := d.documents.Delete(r.Context(), id); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}
