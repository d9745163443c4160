package app_test

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// decodeAs decodes a recorded JSON answer, failing the test on a bad one.
func decodeAs[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

type doc struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	Chunks        int    `json:"chunks"`
	KnowledgeBase string `json:"knowledge_base"`
	Duplicate     bool   `json:"duplicate"`
	Reason        string `json:"reason"`
}

// TestDocumentsOnMemstore adds pasted text and a file, lists, reads and
// deletes them, and finds a duplicate; a chat then carries the text's
// chunk to the upstream.
func TestDocumentsOnMemstore(t *testing.T) {
	h, key, up := memGatewayUp(t)
	admin := signIn(t, h)
	if rec := admin.call("PUT", "/admin/api/settings", `{"rag":{"base_url":"`+up+`","api_key":"sk-rag-0123456789","model":"fake/embed"}}`); rec.Code != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", rec.Code, rec.Body)
	}

	text := `{"title":"Returns","text":"# Returns\n\nThe Hangzhou desk takes parcels until 17:30."}`
	rec := admin.call("POST", "/admin/api/documents", text)
	pasted := decodeAs[doc](t, rec.Body.Bytes())
	if rec.Code != http.StatusCreated || pasted.Status != "ready" || pasted.Chunks < 1 || pasted.KnowledgeBase != "default" {
		t.Fatalf("add text = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("POST", "/admin/api/documents", text); rec.Code != http.StatusOK || !decodeAs[doc](t, rec.Body.Bytes()).Duplicate {
		t.Fatalf("the same text again = %d %s, want 200 duplicate", rec.Code, rec.Body)
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("knowledge_base", "legal")
	fw, _ := mw.CreateFormFile("file", "terms.md")
	fw.Write([]byte("# Liability\n\nLiability is capped at the fees paid.\n"))
	mw.Close()
	rec = admin.call("POST", "/admin/api/documents", body.String(), "Content-Type", mw.FormDataContentType())
	file := decodeAs[doc](t, rec.Body.Bytes())
	if rec.Code != http.StatusCreated || file.Status != "ready" || file.KnowledgeBase != "legal" {
		t.Fatalf("upload = %d %s", rec.Code, rec.Body)
	}

	rec = admin.call("GET", "/admin/api/documents?knowledge_base=legal", "")
	list := decodeAs[struct{ Data []doc }](t, rec.Body.Bytes())
	if rec.Code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != file.ID {
		t.Fatalf("list legal = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", "/admin/api/documents/"+pasted.ID, ""); rec.Code != http.StatusOK || decodeAs[doc](t, rec.Body.Bytes()).ID != pasted.ID {
		t.Fatalf("get = %d %s", rec.Code, rec.Body)
	}

	// The default model retrieves from the default knowledge base.
	rec = do(h, "POST", "/v1/chat/completions", key, `{"model":"m","messages":[{"role":"user","content":"When does the Hangzhou desk take parcels?"}]}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("chat = %d %s", rec.Code, rec.Body)
	}

	if rec := admin.call("DELETE", "/admin/api/documents/"+file.ID, ""); rec.Code != http.StatusOK {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", "/admin/api/documents/"+file.ID, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("deleted document = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("POST", "/admin/api/documents", `{"title":"x","text":"   "}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("empty text = %d %s", rec.Code, rec.Body)
	}
}

// TestDirectUploadOnMemstore prepares a direct upload, PUTs the file to the
// URL the gateway signed (the memory store signs none of its own), and
// refuses a forged or altered signature.
func TestDirectUploadOnMemstore(t *testing.T) {
	h, _, up := memGatewayUp(t)
	admin := signIn(t, h)
	admin.call("PUT", "/admin/api/settings", `{"rag":{"base_url":"`+up+`","api_key":"sk-rag-0123456789","model":"fake/embed"}}`)
	content := "# Big\n\nA large manual, uploaded directly.\n"
	rec := admin.call("POST", "/admin/api/documents/uploads",
		`{"filename":"manual.md","size":`+itoa(len(content))+`,"content_type":"text/markdown","title":"Manual"}`)
	prepared := decodeAs[struct {
		Document doc
		Upload   struct {
			Method, URL string
		}
	}](t, rec.Body.Bytes())
	if rec.Code != http.StatusCreated || prepared.Document.Status != "uploading" || prepared.Upload.Method != "PUT" {
		t.Fatalf("prepare = %d %s", rec.Code, rec.Body)
	}
	u, err := url.Parse(prepared.Upload.URL)
	if err != nil {
		t.Fatal(err)
	}
	forged := *u
	q := forged.Query()
	q.Set("sig", "AAAA"+q.Get("sig")[4:])
	forged.RawQuery = q.Encode()
	if rec := do(h, "PUT", forged.RequestURI(), "", content, "Content-Type", "text/markdown"); rec.Code != http.StatusForbidden {
		t.Fatalf("forged signature = %d %s, want 403", rec.Code, rec.Body)
	}
	rec = do(h, "PUT", u.RequestURI(), "", content, "Content-Type", "text/markdown")
	if rec.Code/100 != 2 {
		t.Fatalf("PUT content = %d %s", rec.Code, rec.Body)
	}
	// Ingested at once (201) or in the background (202): it turns ready.
	var got doc
	for range 200 {
		got = decodeAs[doc](t, admin.call("GET", "/admin/api/documents/"+prepared.Document.ID, "").Body.Bytes())
		if got.Status == "ready" || got.Status == "failed" {
			break
		}
	}
	if got.Status != "ready" || got.Chunks < 1 {
		t.Fatalf("direct upload ended %+v, want ready", got)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestAdminNeedsSessionAndCSRF: every route the table marks for a session
// refuses a request without one (401), and a state-changing one without
// the CSRF token (403).
func TestAdminNeedsSessionAndCSRF(t *testing.T) {
	h, _ := memGateway(t)
	admin := signIn(t, h)
	for _, path := range []string{"/admin/api/settings", "/admin/api/keys", "/admin/api/models", "/admin/api/documents",
		"/admin/api/conversations", "/admin/api/usage", "/admin/api/session"} {
		if rec := do(h, "GET", path, "", ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("GET %s without a session = %d, want 401", path, rec.Code)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/admin/api/settings", `{"system_prompt":"x"}`},
		{"POST", "/admin/api/keys", `{"name":"x"}`},
		{"DELETE", "/admin/api/keys/k1", ""},
		{"PUT", "/admin/api/models/bot", `{"upstream_model":"m"}`},
		{"POST", "/admin/api/documents", `{"title":"x","text":"y"}`},
	} {
		if rec := do(h, c.method, c.path, "", c.body, "Cookie", admin.cookie); rec.Code != http.StatusForbidden {
			t.Errorf("%s %s without the CSRF token = %d, want 403", c.method, c.path, rec.Code)
		}
	}
	if rec := admin.call("GET", "/admin/api/session", ""); rec.Code != http.StatusOK || decodeAs[struct {
		CSRF string `json:"csrf_token"`
	}](t, rec.Body.Bytes()).CSRF != admin.csrf {
		t.Fatalf("session = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("POST", "/admin/api/logout", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("logout = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", "/admin/api/session", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("session after logout = %d, want 401", rec.Code)
	}
}

// TestKeysAndModelsOnMemstore creates a key limited to one public model,
// uses it, edits its limits, revokes it, and reads the usage it left.
func TestKeysAndModelsOnMemstore(t *testing.T) {
	h, _ := memGateway(t)
	admin := signIn(t, h)
	if rec := admin.call("PUT", "/admin/api/models/helper", `{"upstream_model":"fake/other","system_prompt":"Be brief."}`); rec.Code/100 != 2 {
		t.Fatalf("PUT model = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("PUT", "/admin/api/models/m", `{"upstream_model":"x"}`); rec.Code != http.StatusConflict {
		t.Fatalf("a model named like the default = %d %s, want 409", rec.Code, rec.Body)
	}
	rec := admin.call("POST", "/admin/api/keys", `{"name":"limited","models":["helper"],"rpm":100}`)
	created := decodeAs[struct{ ID, Key string }](t, rec.Body.Bytes())
	if rec.Code != http.StatusCreated || !strings.HasPrefix(created.Key, "sk-") {
		t.Fatalf("create key = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/v1/models", created.Key, ""); !strings.Contains(rec.Body.String(), `"helper"`) || strings.Contains(rec.Body.String(), `"id":"m"`) {
		t.Fatalf("the limited key's models = %s", rec.Body)
	}
	if rec := do(h, "POST", "/v1/chat/completions", created.Key, `{"model":"helper","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusOK {
		t.Fatalf("chat with the allowed model = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/v1/chat/completions", created.Key, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusNotFound {
		t.Fatalf("chat with a model the key may not use = %d, want 404", rec.Code)
	}
	// A duplicated member may not smuggle another model past the allowlist.
	if rec := do(h, "POST", "/v1/chat/completions", created.Key, `{"model":"helper","model":"m","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("duplicated model = %d, want 400", rec.Code)
	}

	if rec := admin.call("PUT", "/admin/api/keys/"+created.ID, `{"models":["helper","m"],"rpm":5}`); rec.Code != http.StatusOK {
		t.Fatalf("set limits = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/v1/chat/completions", created.Key, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusOK {
		t.Fatalf("chat after the allowlist grew = %d %s", rec.Code, rec.Body)
	}
	rec = admin.call("GET", "/admin/api/usage?key_id="+created.ID, "")
	usage := decodeAs[struct {
		Totals struct{ Requests int } `json:"totals"`
	}](t, rec.Body.Bytes())
	if rec.Code != http.StatusOK || usage.Totals.Requests < 2 {
		t.Fatalf("usage = %d %s, want the key's requests", rec.Code, rec.Body)
	}
	if rec := admin.call("DELETE", "/admin/api/keys/"+created.ID, ""); rec.Code/100 != 2 {
		t.Fatalf("revoke = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/v1/models", created.Key, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("a revoked key = %d, want 401", rec.Code)
	}
	if rec := admin.call("DELETE", "/admin/api/models/helper", ""); rec.Code/100 != 2 {
		t.Fatalf("delete model = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", "/admin/api/models", ""); strings.Contains(rec.Body.String(), `"helper"`) {
		t.Fatalf("models after delete = %s", rec.Body)
	}
}

// TestAdminConversationsOnMemstore: the admin reads every key's
// conversations by "<key id>:<conversation id>", and deletes one.
func TestAdminConversationsOnMemstore(t *testing.T) {
	h, key := memGateway(t)
	admin := signIn(t, h)
	if rec := do(h, "POST", "/v1/chat/completions", key, `{"model":"m","messages":[{"role":"user","content":"remember the blue door"}]}`,
		"X-Conversation-ID", "door"); rec.Code != http.StatusOK {
		t.Fatalf("chat = %d %s", rec.Code, rec.Body)
	}
	rec := admin.call("GET", "/admin/api/conversations", "")
	list := decodeAs[struct {
		Data []struct {
			ID    string `json:"id"`
			KeyID string `json:"key_id"`
		}
	}](t, rec.Body.Bytes())
	if rec.Code != http.StatusOK || len(list.Data) != 1 || list.Data[0].ID != "door" {
		t.Fatalf("conversations = %d %s", rec.Code, rec.Body)
	}
	rec = admin.call("GET", "/admin/api/conversations/"+list.Data[0].KeyID+":door", "")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "blue door") {
		t.Fatalf("conversation = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", "/admin/api/conversations/"+list.Data[0].KeyID+":nothere", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("missing conversation = %d", rec.Code)
	}
	id := "/admin/api/conversations/" + list.Data[0].KeyID + ":door"
	if rec := do(h, "DELETE", id, "", "", "Cookie", admin.cookie); rec.Code != http.StatusForbidden {
		t.Fatalf("DELETE without the CSRF token = %d, want 403", rec.Code)
	}
	if rec := admin.call("DELETE", id, ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"deleted":true`) {
		t.Fatalf("DELETE by the admin = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", id, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("GET after the delete = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/v1/conversations/door", key, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("the key's GET after the delete = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("DELETE", id, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("DELETE again = %d, want 404", rec.Code)
	}
}
