package admin

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

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
}

// DocumentHandler serves /admin/api/documents (the upload function).
type DocumentHandler struct {
	h         *Handler
	documents Documents
	mux       *http.ServeMux
}

// NewDocuments returns the documents handler; it shares the admin's
// sessions through guard.
func NewDocuments(guard Guard, docs Documents, maxBody int64) *DocumentHandler {
	d := &DocumentHandler{h: &Handler{Deps: Deps{Guard: guard}, maxBody: maxBody}, documents: docs, mux: http.NewServeMux()}
	d.mux.HandleFunc("/admin/api/documents", respond.Methods(map[string]http.HandlerFunc{
		http.MethodGet: d.h.signedIn(d.list), http.MethodPost: d.h.signedIn(d.add)}))
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
