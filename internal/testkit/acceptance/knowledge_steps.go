package acceptance

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

type document struct {
	ID            string `json:"id"`
	KnowledgeBase string `json:"knowledge_base"`
	Title         string `json:"title"`
	Status        string `json:"status"`
	Reason        string `json:"reason"`
	Chunks        int    `json:"chunks"`
	Size          int64  `json:"size"`
	Duplicate     bool   `json:"duplicate"`
}

// upload posts a file as multipart with the admin session.
func (s *suite) upload(t *testing.T, kb, filename string, data []byte) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if kb != "" {
		mw.WriteField("knowledge_base", kb)
	}
	fw, err := mw.CreateFormFile("file", filename)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	return do(t, s.admin.http, "POST", s.url("/admin/api/documents"), body.Bytes(),
		http.Header{"X-Csrf-Token": {s.admin.csrf}, "Content-Type": {mw.FormDataContentType()}})
}

// systemText returns the system messages the upstream got for a question.
func (s *suite) systemText(t *testing.T, model, question string) string {
	t.Helper()
	n := nonce()
	if _, err := s.chatAs(t, s.key, model, question+" "+n); err != nil {
		t.Fatalf("ask %s: %v", model, err)
	}
	var reqs []fakeupstream.Request
	for _, r := range s.Upstream.Find(n) {
		if r.Path == "/v1/chat/completions" {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d chat requests", len(reqs))
	}
	var sent struct {
		Messages []struct{ Role, Content string }
	}
	json.Unmarshal(reqs[0].Body, &sent)
	var b strings.Builder
	for _, m := range sent.Messages {
		if m.Role == "system" {
			b.WriteString(m.Content + "\n")
		}
	}
	return b.String()
}

func (s *suite) knowledgeBases(t *testing.T) {
	s.putSettings(t, map[string]any{"system_prompt": "", "max_messages": 20, "server_memory": false})
	fact := "The " + nonce() + " returns desk in Hangzhou accepts parcels until 17:30 on weekdays."
	text := "# Returns\n\n" + fact + "\n\n# Shipping\n\nOrders ship within two working days from Shenzhen."
	resp, body := s.admin.call(t, s, "POST", "/admin/api/documents", map[string]string{"title": "Returns policy", "text": text})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("add text = %d %s", resp.StatusCode, body)
	}
	doc := decode[document](t, body)
	if doc.Status != "ready" || doc.Chunks < 2 || doc.KnowledgeBase != "default" || doc.ID == "" {
		t.Fatalf("document = %+v, want ready with chunks in default", doc)
	}
	// The same content again is recognised.
	resp, body = s.admin.call(t, s, "POST", "/admin/api/documents", map[string]string{"title": "Again", "text": text})
	if dup := decode[document](t, body); resp.StatusCode != http.StatusOK || !dup.Duplicate || dup.ID != doc.ID {
		t.Fatalf("duplicate = %d %s, want 200 naming %s", resp.StatusCode, body, doc.ID)
	}
	// A file into another knowledge base, for the legal model only.
	legalFact := "Clause " + nonce() + ": liability is capped at the fees paid in the last twelve months."
	resp, body = s.upload(t, "legal", "terms.md", []byte("# Liability\n\n"+legalFact+"\n"))
	legal := decode[document](t, body)
	if resp.StatusCode != http.StatusCreated || legal.Status != "ready" || legal.KnowledgeBase != "legal" {
		t.Fatalf("upload = %d %s", resp.StatusCode, body)
	}
	s.settle()

	sys := s.systemText(t, "my-bot", "When does the Hangzhou returns desk accept parcels?")
	if !strings.Contains(sys, fact) || !strings.Contains(sys, "[1]") {
		t.Fatalf("the upstream's system messages lack the right chunk:\n%s", sys)
	}
	if strings.Contains(sys, legalFact) {
		t.Fatal("the default model searched the legal knowledge base")
	}
	if sys := s.systemText(t, "legal", "What is the liability cap in the clause?"); !strings.Contains(sys, legalFact) || strings.Contains(sys, fact) {
		t.Fatalf("the legal model got:\n%s", sys)
	}
	// With a reranker, the upstream's /rerank orders the candidates.
	s.putSettings(t, map[string]any{"rag": map[string]any{"rerank_model": "BAAI/bge-reranker-v2-m3", "top_k": 1}})
	// Only this question's requests: other steps call /v1/rerank too.
	before := len(s.Upstream.Requests())
	sys = s.systemText(t, "my-bot", "When does the Hangzhou returns desk accept parcels?")
	reranks := 0
	for _, r := range s.Upstream.Requests()[before:] {
		if r.Path == "/v1/rerank" {
			reranks++
			if r.JSON()["model"] != "BAAI/bge-reranker-v2-m3" {
				t.Fatalf("rerank request = %s", r.Body)
			}
		}
	}
	if reranks != 1 || !strings.Contains(sys, fact) || strings.Contains(sys, "[2]") {
		t.Fatalf("with rerank and top_k 1: %d rerank calls, sources:\n%s", reranks, sys)
	}
	s.putSettings(t, map[string]any{"rag": map[string]any{"rerank_model": "", "top_k": 5}})

	resp, body = s.admin.call(t, s, "GET", "/admin/api/documents", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), doc.ID) || !strings.Contains(string(body), legal.ID) {
		t.Fatalf("list = %d %s", resp.StatusCode, body)
	}
	resp, body = s.admin.call(t, s, "GET", "/admin/api/documents?knowledge_base=legal", nil)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), doc.ID) || !strings.Contains(string(body), legal.ID) {
		t.Fatalf("the legal list = %d %s, want the legal document only", resp.StatusCode, body)
	}

	// A binary file (a DOCX is a zip) arrives intact: through API Gateway
	// that needs the binary media types.
	docFact := "Warranty " + nonce() + " covers the battery for eighteen months."
	resp, body = s.upload(t, "legal", "warranty.docx", docxFile(t, docFact))
	if d := decode[document](t, body); resp.StatusCode != http.StatusCreated || d.Status != "ready" {
		t.Fatalf("upload docx = %d %s", resp.StatusCode, body)
	}
	s.settle()
	if sys := s.systemText(t, "legal", "How long is the battery warranty?"); !strings.Contains(sys, docFact) {
		t.Fatalf("the DOCX's text is not retrieved:\n%s", sys)
	}

	// Refused files store nothing.
	for name, data := range map[string][]byte{"tool.exe": []byte("MZ\x90\x00"), "broken.pdf": []byte("%PDF-1.4 broken"), "bad.json": []byte("{")} {
		resp, body := s.upload(t, "", name, data)
		want := http.StatusBadRequest
		if name == "tool.exe" {
			want = http.StatusUnsupportedMediaType
		}
		wantError(t, resp, body, want, "")
	}
	resp, body = s.admin.call(t, s, "GET", "/admin/api/documents", nil)
	if list := decode[struct{ Data []document }](t, body); resp.StatusCode != http.StatusOK || len(list.Data) != 3 {
		t.Fatalf("after refused uploads the list holds %d documents, want 3", len(list.Data))
	}

	// Deleted, it is no longer retrieved.
	resp, body = s.admin.call(t, s, "DELETE", "/admin/api/documents/"+doc.ID, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete = %d %s", resp.StatusCode, body)
	}
	s.settle()
	if sys := s.systemText(t, "my-bot", "When does the Hangzhou returns desk accept parcels?"); strings.Contains(sys, fact) {
		t.Fatalf("a deleted document is still retrieved:\n%s", sys)
	}
	resp, body = s.admin.call(t, s, "GET", "/admin/api/documents/"+doc.ID, nil)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = do(t, nil, "GET", s.url("/admin/api/documents"), nil, nil)
	wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
}

// directUpload starts a direct upload, PUTs the file where it is told, and
// returns the document ID.
func (s *suite) directUpload(t *testing.T, filename string, data []byte) string {
	t.Helper()
	resp, body := s.admin.call(t, s, "POST", "/admin/api/documents/uploads", map[string]any{
		"filename": filename, "size": len(data), "knowledge_base": "default"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start upload = %d %s", resp.StatusCode, body)
	}
	start := decode[struct {
		Document document `json:"document"`
		Upload   struct {
			Method    string            `json:"method"`
			URL       string            `json:"url"`
			Headers   map[string]string `json:"headers"`
			ObjectKey string            `json:"object_key"`
		} `json:"upload"`
	}](t, body)
	if start.Document.Status != "uploading" || start.Upload.Method != "PUT" || start.Upload.URL == "" {
		t.Fatalf("start upload = %s", body)
	}
	h := http.Header{}
	for k, v := range start.Upload.Headers {
		h.Set(k, v)
	}
	resp, body = do(t, nil, "PUT", start.Upload.URL, data, h)
	if resp.StatusCode >= 300 {
		t.Fatalf("PUT to the upload URL = %d %s", resp.StatusCode, body)
	}
	if s.ObjectCreated != nil {
		s.ObjectCreated(t, start.Upload.ObjectKey)
	}
	return start.Document.ID
}

func (s *suite) waitDocument(t *testing.T, id string) document {
	t.Helper()
	var doc document
	waitFor(t, "document "+id+" being ingested", 20*time.Second, func() bool {
		resp, body := s.admin.call(t, s, "GET", "/admin/api/documents/"+id, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET document = %d %s", resp.StatusCode, body)
		}
		doc = decode[document](t, body)
		return doc.Status == "ready" || doc.Status == "failed"
	})
	return doc
}

func (s *suite) directUploads(t *testing.T) {
	fact := "The " + nonce() + " archive room opens at 06:45 for couriers."
	big := "# Handbook\n\n" + strings.Repeat("General guidance for staff, repeated for length. ", 200) + "\n\n# Couriers\n\n" + fact + "\n"
	id := s.directUpload(t, "handbook.md", []byte(big))
	if doc := s.waitDocument(t, id); doc.Status != "ready" || doc.Chunks < 2 {
		t.Fatalf("direct upload = %+v, want ready", doc)
	}
	s.settle()
	if sys := s.systemText(t, "my-bot", "When does the archive room open for couriers?"); !strings.Contains(sys, fact) {
		t.Fatalf("the directly uploaded document is not retrieved:\n%s", sys)
	}
	// A 5 MB file (a Word document with a picture) is more than a request
	// may carry (on AWS, Lambda takes 6 MB of event, a binary body
	// base64-encoded): through the API it is refused as too large, with
	// what to do instead; the direct upload takes it, and it is read in
	// place rather than whole.
	fact = "The " + nonce() + " loading dock closes at 19:10 on Fridays."
	heavy := docxFile(t, fact, 5<<20)
	resp, body := s.upload(t, "default", "dock.docx", heavy)
	// The gateway says what to do; on AWS, API Gateway answers for Lambda.
	if e := wantError(t, resp, body, http.StatusRequestEntityTooLarge, ""); !strings.Contains(e.Error.Message, "direct upload") && e.Error.Code != "REQUEST_TOO_LARGE" {
		t.Fatalf("the 413 neither says to use a direct upload nor is API Gateway's: %s", body)
	}
	id = s.directUpload(t, "dock.docx", heavy)
	if doc := s.waitDocument(t, id); doc.Status != "ready" || doc.Size != int64(len(heavy)) {
		t.Fatalf("5 MB direct upload = %+v, want ready with its %d bytes", doc, len(heavy))
	}
	s.settle()
	if sys := s.systemText(t, "my-bot", "When does the loading dock close on Fridays?"); !strings.Contains(sys, fact) {
		t.Fatalf("the 5 MB document is not retrieved:\n%s", sys)
	}

	// A broken file goes through the same path and fails with a reason.
	id = s.directUpload(t, "scan.pdf", []byte("%PDF-1.4 this is not a real PDF"))
	if doc := s.waitDocument(t, id); doc.Status != "failed" || !strings.Contains(doc.Reason, "PDF") {
		t.Fatalf("broken direct upload = %+v, want failed with a reason", doc)
	}
	resp, body = s.admin.call(t, s, "POST", "/admin/api/documents/uploads", map[string]any{"filename": "x.exe", "size": 10})
	wantError(t, resp, body, http.StatusUnsupportedMediaType, "")
	resp, body = s.admin.call(t, s, "DELETE", "/admin/api/documents/"+id, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("delete failed document = %d %s", resp.StatusCode, body)
	}
}

// docxFile builds a one-paragraph Word document, with a picture of
// pictureBytes random bytes when that is not zero.
func docxFile(t *testing.T, text string, pictureBytes ...int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("word/document.xml")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>%s</w:t></w:r></w:p></w:body></w:document>`, text)
	if len(pictureBytes) > 0 && pictureBytes[0] > 0 {
		pic, err := zw.CreateHeader(&zip.FileHeader{Name: "word/media/image1.png", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(pic, rand.Reader, int64(pictureBytes[0]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
