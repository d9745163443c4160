package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/app/chatfn"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/uploadfn"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/metrics"
)

// memGateway assembles every part on the in-memory store, set up with the
// fake upstream, and returns its handler and the first API key: a whole
// gateway in process, no disk, no port but the fake upstream's.
func memGateway(t *testing.T) (http.Handler, string) {
	h, key, _ := memGatewayUp(t)
	return h, key
}

// memGatewayUp is memGateway that also returns the fake upstream's URL.
func memGatewayUp(t *testing.T) (http.Handler, string, string) {
	t.Helper()
	h, key, up := memGatewayFake(t)
	return h, key, up.URL
}

// memGatewayFake is memGateway that also returns the fake upstream.
func memGatewayFake(t *testing.T) (http.Handler, string, *fakeupstream.Server) {
	t.Helper()
	up := fakeupstream.New(t)
	h := bareGateway(t)
	rec := do(h, "POST", "/admin/api/setup", "",
		`{"admin_password":"correct horse battery","ai":{"base_url":"`+up.URL+`","api_key":"sk-up-123456789012","model":"m"}}`)
	var created struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil || rec.Code != http.StatusCreated || created.APIKey == "" {
		t.Fatalf("setup = %d %s", rec.Code, rec.Body)
	}
	return h, created.APIKey, up
}

// bareGateway is a gateway on the in-memory store, not set up yet.
func bareGateway(t *testing.T) http.Handler {
	t.Helper()
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(nil)
	master := make([]byte, 32)
	for i := range master {
		master[i] = byte(i + 1)
	}
	g, err := app.Assemble(cfg, app.Stores{KV: mem.KV(), Records: mem.Records(), Blobs: mem.Blobs()}, master,
		app.Extras{Metrics: metrics.Nop{}}, chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g.Handler()
}

func do(h http.Handler, method, path, key, body string, header ...string) *httptest.ResponseRecorder {
	if key != "" {
		header = append([]string{"Authorization", "Bearer " + key}, header...)
	}
	return from(h, "", method, path, body, header...)
}

// TestChatOnMemstore answers a chat, lists the key's models, refuses a
// model the key has not got and a missing key, all on the in-memory store.
func TestChatOnMemstore(t *testing.T) {
	h, key := memGateway(t)

	rec := do(h, "POST", "/v1/chat/completions", key, `{"model":"m","messages":[{"role":"user","content":"one two three"}]}`)
	var answer struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			TotalTokens int `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || rec.Code != http.StatusOK ||
		len(answer.Choices) != 1 || !strings.Contains(answer.Choices[0].Message.Content, "three") || answer.Usage.TotalTokens == 0 {
		t.Fatalf("chat = %d %s", rec.Code, rec.Body)
	}

	if rec := do(h, "GET", "/v1/models", key, ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"id":"m"`) {
		t.Fatalf("models = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/v1/chat/completions", key, `{"model":"other","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusNotFound ||
		!strings.Contains(rec.Body.String(), "model_not_found") {
		t.Fatalf("unknown model = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "POST", "/v1/chat/completions", "", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("no key = %d %s", rec.Code, rec.Body)
	}
}

// TestConversationOnMemstore records two exchanges under one conversation
// ID and reads them back; the conversation is the key's own.
func TestConversationOnMemstore(t *testing.T) {
	h, key := memGateway(t)
	for _, q := range []string{"first question", "second question"} {
		rec := do(h, "POST", "/v1/chat/completions", key, `{"model":"m","messages":[{"role":"user","content":"`+q+`"}]}`,
			"X-Conversation-ID", "trip")
		if rec.Code != http.StatusOK {
			t.Fatalf("chat = %d %s", rec.Code, rec.Body)
		}
	}
	rec := do(h, "GET", "/v1/conversations/trip", key, "")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "first question") || !strings.Contains(body, "second question") ||
		strings.Count(body, `"role":"assistant"`) != 2 {
		t.Fatalf("conversation = %d %s", rec.Code, body)
	}
	if rec := do(h, "GET", "/v1/conversations", key, ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "trip") {
		t.Fatalf("conversations = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "DELETE", "/v1/conversations/trip", key, ""); rec.Code/100 != 2 {
		t.Fatalf("delete = %d %s", rec.Code, rec.Body)
	}
	if rec := do(h, "GET", "/v1/conversations/trip", key, ""); rec.Code != http.StatusNotFound {
		t.Fatalf("deleted conversation = %d %s", rec.Code, rec.Body)
	}
}

// session is a signed-in admin: its cookie and CSRF token.
type session struct {
	h            http.Handler
	cookie, csrf string
}

// signIn signs in to the admin API.
func signIn(t *testing.T, h http.Handler) session {
	t.Helper()
	rec := do(h, "POST", "/admin/api/login", "", `{"password":"correct horse battery"}`)
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("login = %d %s", rec.Code, rec.Body)
	}
	var cookies []string
	for _, c := range rec.Result().Cookies() {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	return session{h: h, cookie: strings.Join(cookies, "; "), csrf: out.CSRF}
}

// call sends an admin API request with the session's cookie and token.
func (s session) call(method, path, body string, header ...string) *httptest.ResponseRecorder {
	return do(s.h, method, path, "", body, append([]string{"Cookie", s.cookie, "X-Csrf-Token", s.csrf}, header...)...)
}

// putSettings signs in to the admin API and changes settings.
func putSettings(t *testing.T, h http.Handler, patch string) {
	t.Helper()
	if rec := signIn(t, h).call("PUT", "/admin/api/settings", patch); rec.Code != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", rec.Code, rec.Body)
	}
}

// TestImagesOnMemstore draws through /v1/images/generations and serves the
// stored picture from /files/{id}; drawing is refused while it is off.
func TestImagesOnMemstore(t *testing.T) {
	h, key := memGateway(t)
	if rec := do(h, "POST", "/v1/images/generations", key, `{"prompt":"a red fox"}`); rec.Code != http.StatusForbidden {
		t.Fatalf("drawing while off = %d %s", rec.Code, rec.Body)
	}
	putSettings(t, h, `{"drawing_enabled":true,"image_model":"fake/kolors"}`)
	rec := do(h, "POST", "/v1/images/generations", key, `{"prompt":"a red fox","n":1,"size":"512x512"}`)
	var drawn struct {
		Data []struct {
			URL string `json:"url"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &drawn); err != nil || rec.Code != http.StatusOK || len(drawn.Data) != 1 {
		t.Fatalf("images = %d %s", rec.Code, rec.Body)
	}
	i := strings.Index(drawn.Data[0].URL, "/files/")
	if i < 0 {
		t.Fatalf("image link %q is not a gateway file", drawn.Data[0].URL)
	}
	file := do(h, "GET", drawn.Data[0].URL[i:], "", "")
	if file.Code != http.StatusOK || !strings.HasPrefix(file.Header().Get("Content-Type"), "image/") || file.Body.Len() == 0 {
		t.Fatalf("file = %d %q, %d bytes", file.Code, file.Header().Get("Content-Type"), file.Body.Len())
	}
	if rec := do(h, "GET", "/files/img_doesnotexist", "", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("missing file = %d", rec.Code)
	}
	if rec := do(h, "POST", "/v1/images/generations", key, `{"prompt":"  "}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("empty prompt = %d %s", rec.Code, rec.Body)
	}
}
