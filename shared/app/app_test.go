package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/local"
)

func TestLoad(t *testing.T) {
	t.Setenv("GATEWAY_ADDR", "127.0.0.1:9999")
	t.Setenv("GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT", "90s")
	t.Setenv("GATEWAY_CORS_ORIGINS", "https://chat.example/, http://localhost:3000")
	t.Setenv("GATEWAY_LOG_LEVEL", "debug")
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:9999" || cfg.Upstream.FirstByteTimeout != 90*time.Second || cfg.MaxBody != 32<<20 ||
		len(cfg.CORSOrigins) != 2 || cfg.CORSOrigins[0] != "https://chat.example" {
		t.Fatalf("cfg = %+v", cfg)
	}
	for name, value := range map[string]string{
		"GATEWAY_MAX_BODY_BYTES":           "12",
		"GATEWAY_UPSTREAM_IDLE_TIMEOUT":    "soon",
		"GATEWAY_UPSTREAM_CONNECT_TIMEOUT": "-1s",
		"GATEWAY_LOG_LEVEL":                "loud",
		"GATEWAY_CORS_ORIGINS":             "chat.example",
		"GATEWAY_UPSTREAM_RETRIES":         "11",
		"GATEWAY_IMAGE_MAX_BYTES":          "big",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			if _, err := app.Load(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("Load with %s=%q: err = %v, want one naming the variable", name, value, err)
			}
		})
	}
}

func open(t *testing.T, cors ...string) *app.Gateway {
	t.Helper()
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.CORSOrigins = cors
	g, err := local.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func serve(h http.Handler, method, path string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestRoutesPerFunction(t *testing.T) {
	g := open(t)
	tests := []struct {
		fn     app.Function
		path   string
		status int
	}{
		{app.FnChat, "/v1/models", http.StatusUnauthorized},
		{app.FnChat, "/admin/api/setup", http.StatusNotFound},
		{app.FnChat, "/healthz", http.StatusOK},
		{app.FnAdmin, "/admin/api/setup", http.StatusOK},
		{app.FnAdmin, "/v1/models", http.StatusNotFound},
		{app.FnAdmin, "/", http.StatusFound},
		{app.FnUpload, "/v1/chat/completions", http.StatusNotFound},
	}
	for _, tc := range tests {
		rec := serve(g.Handler(tc.fn), "GET", tc.path, nil)
		if rec.Code != tc.status {
			t.Errorf("%s GET %s = %d, want %d", tc.fn, tc.path, rec.Code, tc.status)
		}
		if rec.Header().Get("X-Request-ID") == "" {
			t.Errorf("%s GET %s has no X-Request-ID", tc.fn, tc.path)
		}
	}
}

func TestCORS(t *testing.T) {
	h := open(t, "https://chat.example").Handler()
	preflight := http.Header{"Origin": {"https://chat.example"}, "Access-Control-Request-Method": {"POST"}}
	rec := serve(h, "OPTIONS", "/v1/chat/completions", preflight)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://chat.example" ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight = %d %v", rec.Code, rec.Header())
	}
	rec = serve(h, "GET", "/v1/models", http.Header{"Origin": {"https://chat.example"}})
	if rec.Code != http.StatusUnauthorized || rec.Header().Get("Access-Control-Allow-Origin") != "https://chat.example" {
		t.Fatalf("GET from allowed origin = %d %v; errors must be readable by the page too", rec.Code, rec.Header())
	}
	for name, tc := range map[string]struct {
		path   string
		origin string
	}{
		"other origin": {"/v1/chat/completions", "https://evil.example"},
		"admin API":    {"/admin/api/login", "https://chat.example"},
	} {
		rec := serve(h, "OPTIONS", tc.path, http.Header{"Origin": {tc.origin}, "Access-Control-Request-Method": {"POST"}})
		if rec.Header().Get("Access-Control-Allow-Origin") != "" || rec.Code == http.StatusNoContent {
			t.Errorf("%s: preflight = %d %v, want no CORS grant", name, rec.Code, rec.Header())
		}
	}
	if rec := serve(open(t).Handler(), "OPTIONS", "/v1/models", preflight); rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS granted with no origins configured")
	}
}

// TestPanicAbortsStartedAnswer panics in a handler after part of its answer
// went out: the connection is cut, so the client sees a broken answer
// rather than a short one that looks whole; before anything went out, the
// client gets a 500.
func TestPanicAbortsStartedAnswer(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/started", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("boom")
	})
	mux.HandleFunc("/early", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	srv := httptest.NewServer(app.Middleware("test", mux))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/started")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatal("a panic after the answer started ended it as if complete")
	}
	resp, err = http.Get(srv.URL + "/early")
	if err != nil || resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("panic before the answer = %v, %v; want 500", resp, err)
	}
	resp.Body.Close()
}

// noFlush is a ResponseWriter that cannot flush (http.ErrNotSupported), as
// some platforms' writers are.
type noFlush struct {
	h    http.Header
	body strings.Builder
	code int
}

func (w *noFlush) Header() http.Header         { return w.h }
func (w *noFlush) WriteHeader(code int)        { w.code = code }
func (w *noFlush) Write(p []byte) (int, error) { return w.body.Write(p) }

// TestStreamToAWriterThatCannotFlush streams a chat answer to a writer
// without a flusher: the client has not left, so the whole stream is
// written and the request recorded as answered, not as 499.
func TestStreamToAWriterThatCannotFlush(t *testing.T) {
	up := fakeupstream.New(t)
	g := open(t)
	h := g.Handler()
	setup := `{"admin_password":"correct horse battery","ai":{"base_url":"` + up.URL + `","api_key":"sk-up-123456789012","model":"m"}}`
	req := httptest.NewRequest("POST", "/admin/api/setup", strings.NewReader(setup))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var created struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil || created.APIKey == "" {
		t.Fatalf("setup = %d %s", rec.Code, rec.Body)
	}
	req = httptest.NewRequest("POST", "/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"one two three four"}]}`))
	req.Header.Set("Authorization", "Bearer "+created.APIKey)
	w := &noFlush{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.code != http.StatusOK || !strings.Contains(w.body.String(), `"content":" four"`) || !strings.HasSuffix(w.body.String(), "data: [DONE]\n\n") {
		t.Fatalf("stream to a writer without a flusher = %d %q", w.code, w.body.String())
	}
}
