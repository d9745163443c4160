package acceptance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

func (s *suite) health(t *testing.T) {
	resp, body := do(t, nil, "GET", s.url("/healthz"), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz = %d %s, want 200", resp.StatusCode, body)
	}
}

func (s *suite) initialized(t *testing.T) bool {
	t.Helper()
	resp, body := do(t, nil, "GET", s.url("/admin/api/setup"), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET setup = %d %s", resp.StatusCode, body)
	}
	return decode[struct {
		Initialized bool `json:"initialized"`
	}](t, body).Initialized
}

func (s *suite) setupBody(password string) map[string]any {
	return map[string]any{
		"admin_password": password,
		"ai":             map[string]string{"base_url": s.Upstream.URL, "api_key": upstreamKey, "model": upstreamModel},
		"rag":            map[string]string{"base_url": s.Upstream.URL, "api_key": ragKey, "model": "fake/embedding"},
	}
}

func (s *suite) setupRefusesBadInput(t *testing.T) {
	if s.initialized(t) {
		t.Fatal("the target is already initialized; the suite needs a fresh gateway")
	}
	bad := s.setupBody("short")
	resp, body := do(t, nil, "POST", s.url("/admin/api/setup"), bad, nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid")
	bad = s.setupBody(adminPassword)
	bad["ai"] = map[string]string{"base_url": "ftp://example", "model": "m"}
	resp, body = do(t, nil, "POST", s.url("/admin/api/setup"), bad, nil)
	if e := wantError(t, resp, body, http.StatusBadRequest, "invalid"); e.Error.Param == nil || *e.Error.Param != "ai.base_url" {
		t.Fatalf("param = %v, want ai.base_url", e.Error.Param)
	}
	bad["ai"] = map[string]string{"model": "m"} // no upstream: no first channel
	resp, body = do(t, nil, "POST", s.url("/admin/api/setup"), bad, nil)
	if e := wantError(t, resp, body, http.StatusBadRequest, "invalid"); e.Error.Param == nil || *e.Error.Param != "ai.base_url" {
		t.Fatalf("setup without a base URL: param = %v, want ai.base_url", e.Error.Param)
	}
	resp, body = do(t, nil, "POST", s.url("/admin/api/setup"), `{"admin_password":`, nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid")
	resp, body = do(t, nil, "POST", s.url("/admin/api/setup"), `{"admin_password":"long enough pw","surprise":1}`, nil)
	wantError(t, resp, body, http.StatusBadRequest, "invalid")
	if s.initialized(t) {
		t.Fatal("a refused setup initialized the gateway")
	}
	resp, _ = do(t, nil, "GET", s.url("/"), nil, nil)
	if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != "/setup" {
		t.Fatalf("GET / before setup = %d to %q, want 302 to /setup", resp.StatusCode, got)
	}
}

func (s *suite) setup(t *testing.T) {
	resp, body := do(t, nil, "POST", s.url("/admin/api/setup"), s.setupBody(adminPassword), nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("setup = %d %s, want 201", resp.StatusCode, body)
	}
	out := decode[struct {
		APIKey string `json:"api_key"`
	}](t, body)
	if !strings.HasPrefix(out.APIKey, "sk-") || len(out.APIKey) < 40 {
		t.Fatalf("first key = %q, want sk-… of 40+ characters", out.APIKey)
	}
	s.key = out.APIKey
	if !s.initialized(t) {
		t.Fatal("setup did not initialize the gateway")
	}
	s.admin = s.login(t)
	// Setup made the first channels: the chat upstream and the RAG one.
	resp, body = s.admin.call(t, s, "GET", "/admin/api/channels", nil)
	list := decode[struct{ Data []channelView }](t, body).Data
	if resp.StatusCode != http.StatusOK || len(list) != 2 || list[0].ID != "ch_main" || list[1].ID != "ch_rag" ||
		len(list[0].APIKeys) != 1 || strings.Contains(string(body), upstreamKey) || strings.Contains(string(body), ragKey) {
		t.Fatalf("channels after setup = %d %s", resp.StatusCode, body)
	}
}

func (s *suite) setupTwiceConflicts(t *testing.T) {
	resp, body := do(t, nil, "POST", s.url("/admin/api/setup"), s.setupBody("another password"), nil)
	wantError(t, resp, body, http.StatusConflict, "conflict")
	// The first password still works and the second does not.
	s.login(t)
	resp, body = do(t, nil, "POST", s.url("/admin/api/login"), map[string]string{"password": "another password"}, nil)
	wantError(t, resp, body, http.StatusUnauthorized, "")
}

func (s *suite) rootRedirects(t *testing.T) {
	for path, want := range map[string]string{"/": "/admin", "/setup": "/admin"} {
		resp, _ := do(t, nil, "GET", s.url(path), nil, nil)
		if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || got != want {
			t.Fatalf("GET %s = %d to %q, want 302 to %s", path, resp.StatusCode, got, want)
		}
	}
}

func (s *suite) pages(t *testing.T) {
	tests := []struct {
		lang, want string
	}{
		{"zh-CN,zh;q=0.9", "管理"},
		{"en-US,en;q=0.9", "Sign in"},
	}
	for _, tc := range tests {
		resp, body := do(t, nil, "GET", s.url("/admin"), nil, http.Header{"Accept-Language": {tc.lang}})
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET /admin = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !bytes.Contains(body, []byte(tc.want)) {
			t.Fatalf("GET /admin in %s does not say %q", tc.lang, tc.want)
		}
	}
	// No inline script, and a CSP that allows none and talks only to the
	// gateway (and the blob store, for direct uploads).
	for _, page := range []string{"/admin", "/setup"} {
		resp, body := do(t, nil, "GET", s.url(page), nil, nil)
		if resp.StatusCode == http.StatusFound {
			continue // /setup after setup
		}
		csp := resp.Header.Get("Content-Security-Policy")
		if strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self';") ||
			!regexp.MustCompile(`connect-src 'self'( https?://[a-z0-9.-]+(:\d+)?)?;`).MatchString(csp) {
			t.Fatalf("%s CSP = %q", page, csp)
		}
		if regexp.MustCompile(`<script>|<script [^>]*>[^<]|\son[a-z]+=|javascript:|\sstyle=|<style`).Match(body) {
			t.Fatalf("%s holds inline script or style, which its CSP blocks", page)
		}
		for _, m := range regexp.MustCompile(`(?:src|href)="(admin/assets/[^"]+)"`).FindAllSubmatch(body, -1) {
			resp, asset := do(t, nil, "GET", s.url("/"+string(m[1])), nil, nil)
			if resp.StatusCode != http.StatusOK || len(asset) == 0 || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("GET /%s = %d (%d bytes)", m[1], resp.StatusCode, len(asset))
			}
		}
	}
}

func (s *suite) models(t *testing.T) {
	c := s.client(s.key)
	page, err := c.Models.List(ctxTimeout(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != upstreamModel {
		t.Fatalf("models = %+v, want only %q (the upstream model until a public name is set)", page.Data, upstreamModel)
	}
}

func (s *suite) embeddings(t *testing.T) {
	n := nonce()
	got, err := s.client(s.key).Embeddings.New(ctxTimeout(t, 30*time.Second), openai.EmbeddingNewParams{
		Model: "fake/embedding",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one " + n, "two " + n}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Data) != 2 || len(got.Data[1].Embedding) != fakeupstream.Dimensions ||
		got.Data[1].Embedding[0] != fakeupstream.Embed("two " + n)[0] {
		t.Fatalf("embeddings = %+v, want the upstream's two vectors", got.Data)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 || reqs[0].Path != "/v1/embeddings" || reqs[0].Header.Get("Authorization") != "Bearer "+ragKey {
		t.Fatalf("upstream saw %d requests (%+v), want one to /v1/embeddings with the RAG key", len(reqs), reqs)
	}
	// Without a model, the configured embedding model is used.
	n = nonce()
	resp, body := do(t, nil, "POST", s.url("/v1/embeddings"), `{"input":"x `+n+`"}`, s.auth())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("embeddings without model = %d %s", resp.StatusCode, body)
	}
	if reqs := s.Upstream.Find(n); len(reqs) != 1 || reqs[0].JSON()["model"] != "fake/embedding" {
		t.Fatalf("upstream got %+v, want model fake/embedding", reqs)
	}
	resp, body = do(t, nil, "POST", s.url("/v1/embeddings"), `{"model":"m"}`, s.auth())
	wantError(t, resp, body, http.StatusBadRequest, "invalid")
	resp, body = do(t, nil, "POST", s.url("/v1/embeddings"), `{"input":"x"}`, nil)
	wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	// The gateway's embedding key serves only the configured model: another
	// one is refused, in any spelling, and nothing reaches the upstream.
	n = nonce()
	for _, b := range []string{
		`{"model":"text-embedding-3-large","input":"x ` + n + `"}`,
		`{"model":"fake/embedding","model":"text-embedding-3-large","input":"x ` + n + `"}`,
		`{"model":"fake/embedding","Model":"text-embedding-3-large","input":"x ` + n + `"}`,
	} {
		resp, body = do(t, nil, "POST", s.url("/v1/embeddings"), b, s.auth())
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("embeddings with %s = %d %s, want refused", b, resp.StatusCode, body)
		}
		wantError(t, resp, body, resp.StatusCode, "")
	}
	if reqs := s.Upstream.Find(n); len(reqs) != 0 {
		t.Fatalf("refused embeddings reached the upstream: %+v", reqs)
	}
}

func userMessage(text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    upstreamModel,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)},
	}
}

func (s *suite) chatNonStream(t *testing.T) {
	n := nonce()
	c := s.client(s.key)
	got, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), userMessage("hello "+n))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Choices) != 1 || got.Choices[0].Message.Content != "echo: hello "+n {
		t.Fatalf("choices = %+v, want the echo of the message", got.Choices)
	}
	if got.Usage.PromptTokens != fakeupstream.PromptTokens || got.Usage.CompletionTokens != fakeupstream.CompletionTokens {
		t.Fatalf("usage = %+v, want the upstream's %d/%d", got.Usage, fakeupstream.PromptTokens, fakeupstream.CompletionTokens)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests with the nonce, want 1", len(reqs))
	}
	if got, want := reqs[0].Header.Get("Authorization"), "Bearer "+upstreamKey; got != want {
		t.Fatalf("upstream Authorization = %q, want %q", got, want)
	}
	if reqs[0].Path != "/v1/chat/completions" {
		t.Fatalf("upstream path = %q", reqs[0].Path)
	}
}

func (s *suite) chatStreamOneByOne(t *testing.T) {
	if s.StreamsBuffered {
		s.chatStreamWhole(t)
		return
	}
	token := nonce()
	c := s.client(s.key)
	stream := c.Chat.Completions.NewStreaming(ctxTimeout(t, 10*time.Second), userMessage("#hold:"+token))
	defer stream.Close()
	// The fake holds back everything after "first" until it is released:
	// if the gateway buffered, the client would never see "first" and this
	// loop would run into the request timeout.
	var text strings.Builder
	released := false
	events := 0
	for stream.Next() {
		events++
		for _, ch := range stream.Current().Choices {
			text.WriteString(ch.Delta.Content)
		}
		if !released && strings.Contains(text.String(), "first") {
			if strings.Contains(text.String(), "last") {
				t.Fatal("the held event arrived before release")
			}
			s.Upstream.Release(token)
			released = true
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if !released || text.String() != "first last" || events < 4 {
		t.Fatalf("stream text %q in %d events (released %v), want %q", text.String(), events, released, "first last")
	}
}

// chatStreamWhole checks a stream's content and framing on a target that
// delivers it whole.
func (s *suite) chatStreamWhole(t *testing.T) {
	n := nonce()
	stream := s.client(s.key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), userMessage("stream "+n))
	defer stream.Close()
	var text strings.Builder
	events := 0
	for stream.Next() {
		events++
		for _, ch := range stream.Current().Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if want := "echo: stream " + n; text.String() != want || events < 4 {
		t.Fatalf("stream text %q in %d events, want %q in one event per word", text.String(), events, want)
	}
}

func (s *suite) unknownModel(t *testing.T) {
	c := s.client(s.key)
	p := userMessage("hi")
	p.Model = "no-such-model"
	_, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), p)
	apiError(t, err, http.StatusNotFound, "model_not_found")
}

func (s *suite) keyAuth(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
	}{
		{"missing", nil},
		{"not bearer", http.Header{"Authorization": {"Basic " + s.key}}},
		{"wrong", http.Header{"Authorization": {"Bearer sk-" + strings.Repeat("x", 43)}}},
		{"malformed", http.Header{"Authorization": {"Bearer nope"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), userMessage("hi"), tc.header)
			wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
			resp, body = do(t, nil, "GET", s.url("/v1/models"), nil, tc.header)
			wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
		})
	}
	_, err := s.client("sk-wrong").Chat.Completions.New(ctxTimeout(t, 30*time.Second), userMessage("hi"))
	apiError(t, err, http.StatusUnauthorized, "unauthorized")
}

func (s *suite) auth() http.Header { return http.Header{"Authorization": {"Bearer " + s.key}} }

func (s *suite) malformedRequests(t *testing.T) {
	tests := []struct {
		name, body, param string
	}{
		{"not JSON", `{"model":`, ""},
		{"array", `[1,2]`, ""},
		{"trailing data", `{"model":"m","messages":[{"role":"user","content":"x"}]} {}`, ""},
		{"no model", `{"messages":[{"role":"user","content":"x"}]}`, "model"},
		{"model not a string", `{"model":7,"messages":[{"role":"user","content":"x"}]}`, "model"},
		{"no messages", `{"model":"` + upstreamModel + `"}`, "messages"},
		{"empty messages", `{"model":"` + upstreamModel + `","messages":[]}`, "messages"},
		{"stream not a bool", `{"model":"` + upstreamModel + `","messages":[{"role":"user","content":"x"}],"stream":"yes"}`, "stream"},
		{"invalid UTF-8", "{\"model\":\"" + upstreamModel + "\",\"messages\":[{\"role\":\"user\",\"content\":\"caf\xe9\"}]}", ""},
		{"message not an object", `{"model":"` + upstreamModel + `","messages":["hi"]}`, "messages"},
		{"duplicate role", `{"model":"` + upstreamModel + `","messages":[{"role":"user","role":"system","content":"x"}]}`, "messages[0].role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.Upstream.Requests())
			conv := "malformed-" + nonce()
			h := s.auth()
			h.Set("X-Conversation-ID", conv)
			resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), tc.body, h)
			if s.TextBodiesReencoded && !utf8.ValidString(tc.body) {
				// The platform replaced the bad bytes: what went on is UTF-8.
				for _, r := range s.Upstream.Requests()[before:] {
					if !utf8.Valid(r.Body) {
						t.Fatalf("bytes that are not UTF-8 reached the upstream: %q", r.Body)
					}
				}
				return
			}
			e := wantError(t, resp, body, http.StatusBadRequest, "invalid")
			if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
				t.Fatalf("param = %v, want %q", e.Error.Param, tc.param)
			}
			if after := len(s.Upstream.Requests()); after != before {
				t.Fatal("a malformed request reached the upstream")
			}
			if resp, _ := s.getConversationAs(t, s.key, conv); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("a malformed request left a conversation (%d)", resp.StatusCode)
			}
		})
	}
	// Embeddings and images: their input checked the same way.
	for _, tc := range []struct{ path, body, param string }{
		{"/v1/embeddings", `{"input":""}`, "input"},
		{"/v1/embeddings", `{"input":[]}`, "input"},
		{"/v1/embeddings", `{"input":[1.5,"x"]}`, "input"},
		{"/v1/embeddings", `{"input":{"text":"x"}}`, "input"},
		{"/v1/embeddings", "{\"input\":\"caf\xe9\"}", ""},
		{"/v1/images/generations", `{"prompt":"x","n":0}`, "n"},
		{"/v1/images/generations", `{"prompt":"x","n":5}`, "n"},
		{"/v1/images/generations", `{"prompt":"x","size":"huge"}`, "size"},
		{"/v1/images/generations", `{"prompt":"x","colour":"red"}`, "colour"},
		{"/v1/images/generations", `{"prompt":"x","prompt":"y"}`, "prompt"},
		{"/v1/images/generations", `{"n":1}`, "prompt"},
	} {
		t.Run(tc.path+" "+tc.body, func(t *testing.T) {
			before := len(s.Upstream.Requests())
			resp, body := do(t, nil, "POST", s.url(tc.path), tc.body, s.auth())
			if s.TextBodiesReencoded && !utf8.ValidString(tc.body) {
				return // as above: the platform replaced the bad bytes
			}
			e := wantError(t, resp, body, http.StatusBadRequest, "invalid")
			if tc.param != "" && (e.Error.Param == nil || *e.Error.Param != tc.param) {
				t.Fatalf("param = %v, want %q", e.Error.Param, tc.param)
			}
			if strings.Contains(e.Error.Message, "not valid JSON") {
				t.Fatalf("a well-formed request was called invalid JSON: %s", body)
			}
			if after := len(s.Upstream.Requests()); after != before {
				t.Fatal("a malformed request reached the upstream")
			}
		})
	}
}

func (s *suite) bodyTooLarge(t *testing.T) {
	big := `{"model":"` + upstreamModel + `","messages":[{"role":"user","content":"` + strings.Repeat("a", int(s.MaxBody)) + `"}]}`
	resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), big, s.auth())
	wantError(t, resp, body, http.StatusRequestEntityTooLarge, "too_large")
}

func (s *suite) unknownRouteAndMethod(t *testing.T) {
	resp, body := do(t, nil, "GET", s.url("/v1/nothing-here"), nil, s.auth())
	wantError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = do(t, nil, "GET", s.url("/admin/api/nothing-here"), nil, nil)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = do(t, nil, "GET", s.url("/v1/chat/completions"), nil, s.auth())
	wantError(t, resp, body, http.StatusMethodNotAllowed, "")
	if resp.Header.Get("Allow") != "POST" {
		t.Fatalf("Allow = %q, want POST", resp.Header.Get("Allow"))
	}
}

// passThrough sends fields the gateway does not know, in odd formatting,
// and checks that they reach the upstream byte for byte.
func (s *suite) passThrough(t *testing.T) {
	n := nonce()
	tools := `[ {"type":"function", "function":{"name":"get_weather","description":"天气","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}} ]`
	raw := `{"model":"` + upstreamModel + `", "temperature": 0.25, "tools": ` + tools +
		`, "tool_choice":"auto", "x_vendor_extension": {"keep": [1, 2.50, "three"]},` +
		` "messages":[{"role":"user","content":"weather ` + n + `"}]}`
	resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), raw, s.auth())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(reqs))
	}
	sent := string(reqs[0].Body)
	for _, want := range []string{`"temperature":0.25`, `"tools":` + tools, `"tool_choice":"auto"`,
		`"x_vendor_extension":{"keep": [1, 2.50, "three"]}`} {
		if !strings.Contains(sent, want) {
			t.Fatalf("upstream body %s\ndoes not carry %s unchanged", sent, want)
		}
	}

	// The same through the SDK: what it sends is what the upstream gets.
	n = nonce()
	var clientBody []byte
	capture := option.WithMiddleware(func(r *http.Request, next option.MiddlewareNext) (*http.Response, error) {
		if r.GetBody != nil {
			if rc, err := r.GetBody(); err == nil {
				clientBody, _ = io.ReadAll(rc)
			}
		}
		return next(r)
	})
	p := userMessage("tools " + n)
	p.Temperature = openai.Float(0.7)
	p.Tools = []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:       "lookup",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"q": map[string]any{"type": "string"}}},
	})}
	if _, err := s.client(s.key, capture).Chat.Completions.New(ctxTimeout(t, 30*time.Second), p); err != nil {
		t.Fatal(err)
	}
	reqs = s.Upstream.Find(n)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(reqs))
	}
	var fromClient, atUpstream map[string]json.RawMessage
	json.Unmarshal(clientBody, &fromClient)
	json.Unmarshal(reqs[0].Body, &atUpstream)
	for _, f := range []string{"tools", "temperature", "messages"} {
		if !bytes.Equal(fromClient[f], atUpstream[f]) || len(fromClient[f]) == 0 {
			t.Fatalf("%s: client sent %s, upstream got %s", f, fromClient[f], atUpstream[f])
		}
	}
}

func (s *suite) upstream500(t *testing.T) {
	_, err := s.client(s.key).Chat.Completions.New(ctxTimeout(t, 30*time.Second), userMessage("#status:500"))
	e := apiError(t, err, http.StatusBadGateway, "upstream_error")
	if strings.Contains(e.Message, "fake upstream failure") {
		t.Fatalf("the upstream's internal message leaked: %q", e.Message)
	}
	stream := s.client(s.key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), userMessage("#status:503"))
	for stream.Next() {
	}
	apiError(t, stream.Err(), http.StatusBadGateway, "upstream_error")
}

func (s *suite) upstreamHang(t *testing.T) {
	start := time.Now()
	_, err := s.client(s.key).Chat.Completions.New(ctxTimeout(t, 30*time.Second), userMessage("#hang"))
	elapsed := time.Since(start)
	apiError(t, err, http.StatusGatewayTimeout, "timeout")
	if elapsed < s.FirstByteTimeout || elapsed > s.FirstByteTimeout+10*time.Second {
		t.Fatalf("504 after %s, want just after the configured %s", elapsed, s.FirstByteTimeout)
	}
}

func (s *suite) clientCancel(t *testing.T) {
	if s.StreamsBuffered {
		t.Skip("the target buffers streams, so a client cannot leave mid-stream; the Lambda adapter's own tests cover it")
	}
	token := nonce()
	ctx, cancel := contextWithCancel()
	defer cancel()
	stream := s.client(s.key).Chat.Completions.NewStreaming(ctx, userMessage("#endless:"+token))
	seen := 0
	for seen < 3 && stream.Next() {
		seen++
	}
	if seen < 3 {
		t.Fatalf("saw %d events before the stream ended (%v), want 3", seen, stream.Err())
	}
	cancel()
	stream.Close()
	// The gateway reads on for up to DrainTimeout to learn the usage, then
	// closes the upstream request.
	select {
	case <-s.Upstream.Closed(token):
	case <-time.After(s.DrainTimeout + 10*time.Second):
		t.Fatalf("the upstream request was still open %s after the client left", s.DrainTimeout+10*time.Second)
	}
}

func (s *suite) adminNeedsSession(t *testing.T) {
	for _, r := range []struct{ method, path string }{
		{"GET", "/admin/api/settings"}, {"PUT", "/admin/api/settings"},
		{"GET", "/admin/api/keys"}, {"POST", "/admin/api/keys"}, {"DELETE", "/admin/api/keys/key_x"},
	} {
		resp, body := do(t, nil, r.method, s.url(r.path), map[string]any{}, nil)
		wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	}
	forged := http.Header{"Cookie": {"gw_session=abc.def"}}
	resp, body := do(t, nil, "GET", s.url("/admin/api/settings"), nil, forged)
	wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
}

func (s *suite) adminNeedsCSRF(t *testing.T) {
	for _, token := range []string{"", "wrong-token"} {
		resp, body := do(t, s.admin.http, "POST", s.url("/admin/api/keys"), map[string]string{"name": "x"},
			http.Header{"X-Csrf-Token": {token}})
		wantError(t, resp, body, http.StatusForbidden, "forbidden")
		resp, body = do(t, s.admin.http, "PUT", s.url("/admin/api/settings"), map[string]any{"max_messages": 3},
			http.Header{"X-Csrf-Token": {token}})
		wantError(t, resp, body, http.StatusForbidden, "forbidden")
	}
	resp, body := s.admin.call(t, s, "GET", "/admin/api/settings", nil)
	if resp.StatusCode != http.StatusOK || decode[map[string]any](t, body)["max_messages"] == float64(3) {
		t.Fatalf("a refused PUT changed the settings: %s", body)
	}
}

type settingsView struct {
	PublicModel  string `json:"public_model"`
	SystemPrompt string `json:"system_prompt"`
	MaxMessages  int    `json:"max_messages"`
	AI           struct {
		BaseURL, APIKey, Model string
	} `json:"ai"`
	RAG struct {
		APIKey string `json:"api_key"`
		TopK   int    `json:"top_k"`
	} `json:"rag"`
}

func (s *suite) getSettings(t *testing.T) (settingsView, []byte) {
	t.Helper()
	resp, body := s.admin.call(t, s, "GET", "/admin/api/settings", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET settings = %d %s", resp.StatusCode, body)
	}
	return decode[settingsView](t, body), body
}

func (s *suite) maskedRoundTrip(t *testing.T) {
	got, body := s.getSettings(t)
	if bytes.Contains(body, []byte(upstreamKey)) {
		t.Fatalf("settings show the upstream key: %s", body)
	}
	var full map[string]any
	json.Unmarshal(body, &full)
	masked := full["ai"].(map[string]any)["api_key"].(string)
	if masked == "" || !strings.Contains(masked, "*") {
		t.Fatalf("ai.api_key = %q, want a masked value", masked)
	}
	// Send everything back as the panel does, masked keys included.
	full["max_messages"] = 30
	resp, body := s.admin.call(t, s, "PUT", "/admin/api/settings", full)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", resp.StatusCode, body)
	}
	if got, _ = s.getSettings(t); got.MaxMessages != 30 {
		t.Fatalf("max_messages = %d, want 30", got.MaxMessages)
	}
	n := nonce()
	if _, err := s.client(s.key).Chat.Completions.New(ctxTimeout(t, 30*time.Second), userMessage(n)); err != nil {
		t.Fatal(err)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+upstreamKey {
		t.Fatalf("after the masked round trip the upstream got %d requests, Authorization %q", len(reqs), reqs[0].Header.Get("Authorization"))
	}
}

func (s *suite) settingsPartial(t *testing.T) {
	before, _ := s.getSettings(t)
	resp, body := s.admin.call(t, s, "PUT", "/admin/api/settings", map[string]any{"rag": map[string]any{"top_k": 3}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
	after, _ := s.getSettings(t)
	if after.RAG.TopK != 3 || after.RAG.APIKey != before.RAG.APIKey || after.AI != before.AI || after.MaxMessages != before.MaxMessages {
		t.Fatalf("partial update changed more than rag.top_k: before %+v after %+v", before, after)
	}
	for name, patch := range map[string]any{
		"unknown field": map[string]any{"surprise": true},
		"wrong type":    map[string]any{"max_messages": "many"},
		"out of range":  map[string]any{"rag": map[string]any{"top_k": 0}},
		"bad url":       map[string]any{"ai": map[string]any{"base_url": "not a url"}},
		"not an object": []int{1},
	} {
		resp, body := s.admin.call(t, s, "PUT", "/admin/api/settings", patch)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: PUT = %d %s, want 400", name, resp.StatusCode, body)
		}
	}
	if again, _ := s.getSettings(t); again != after {
		t.Fatalf("refused updates changed the settings: %+v, want %+v", again, after)
	}
}

// namedModel names the default model my-bot, with the support bot's
// prompt.
func (s *suite) namedModel(t *testing.T) {
	t.Helper()
	resp, body := s.admin.call(t, s, "PUT", "/admin/api/settings", map[string]any{
		"public_model": "my-bot", "system_prompt": "You are the support bot of ACME."})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT = %d %s", resp.StatusCode, body)
	}
}

func (s *suite) settingsChangeChat(t *testing.T) {
	s.namedModel(t)
	c := s.client(s.key)
	// The old name is gone at once on this instance, or within the cache
	// lifetime on others.
	waitFor(t, "the old model name going away", s.KeyCacheTTL+5*time.Second, func() bool {
		_, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), userMessage("hi"))
		return err != nil && strings.Contains(err.Error(), "404")
	})
	n := nonce()
	p := userMessage("question " + n)
	p.Model = "my-bot"
	if _, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), p); err != nil {
		t.Fatal(err)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(reqs))
	}
	var sent struct {
		Model    string `json:"model"`
		Messages []struct {
			Role, Content string
		} `json:"messages"`
	}
	json.Unmarshal(reqs[0].Body, &sent)
	if sent.Model != upstreamModel {
		t.Fatalf("upstream model = %q, want %q", sent.Model, upstreamModel)
	}
	if len(sent.Messages) != 2 || sent.Messages[0].Role != "system" || sent.Messages[0].Content != "You are the support bot of ACME." ||
		sent.Messages[1].Content != "question "+n {
		t.Fatalf("upstream messages = %+v, want the system prompt then the question", sent.Messages)
	}
	page, err := c.Models.List(ctxTimeout(t, 30*time.Second))
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "my-bot" {
		t.Fatalf("models = %+v, %v; want my-bot", page, err)
	}
}

func (s *suite) keysLifecycle(t *testing.T) {
	resp, body := s.admin.call(t, s, "POST", "/admin/api/keys", map[string]string{"name": "ci bot"})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key = %d %s", resp.StatusCode, body)
	}
	created := decode[struct {
		ID, Name, Key string
	}](t, body)
	if !strings.HasPrefix(created.Key, "sk-") || created.ID == "" || created.Name != "ci bot" {
		t.Fatalf("created = %+v", created)
	}
	resp, body = s.admin.call(t, s, "POST", "/admin/api/keys", map[string]string{"name": ""})
	wantError(t, resp, body, http.StatusBadRequest, "invalid")

	c := s.client(created.Key)
	p := userMessage("hi")
	p.Model = "my-bot"
	if _, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), p); err != nil {
		t.Fatalf("the new key does not work: %v", err)
	}
	resp, body = s.admin.call(t, s, "GET", "/admin/api/keys", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list keys = %d %s", resp.StatusCode, body)
	}
	if bytes.Contains(body, []byte(created.Key)) || bytes.Contains(body, []byte(s.key)) || bytes.Contains(body, []byte(`"hash"`)) {
		t.Fatalf("the key list shows secrets: %s", body)
	}
	list := decode[struct {
		Data []struct {
			ID, Name   string
			LastUsedAt string `json:"last_used_at"`
		}
	}](t, body)
	found := false
	for _, k := range list.Data {
		if k.ID == created.ID {
			found = true
			if k.LastUsedAt == "" {
				t.Fatalf("key %s has no last_used_at after use", k.ID)
			}
		}
	}
	if !found || len(list.Data) < 2 {
		t.Fatalf("list = %+v, want the first key and %s", list.Data, created.ID)
	}

	resp, body = s.admin.call(t, s, "DELETE", "/admin/api/keys/"+created.ID, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke = %d %s", resp.StatusCode, body)
	}
	waitFor(t, "the revoked key being refused", s.KeyCacheTTL+5*time.Second, func() bool {
		_, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), p)
		return err != nil && strings.Contains(err.Error(), "401")
	})
	_, err := c.Chat.Completions.New(ctxTimeout(t, 30*time.Second), p)
	apiError(t, err, http.StatusUnauthorized, "unauthorized")
	resp, body = s.admin.call(t, s, "DELETE", "/admin/api/keys/key_doesnotexist", nil)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
	// The first key is untouched.
	if _, err := s.client(s.key).Chat.Completions.New(ctxTimeout(t, 30*time.Second), p); err != nil {
		t.Fatalf("revoking one key broke another: %v", err)
	}
}

func (s *suite) logout(t *testing.T) {
	a := s.login(t)
	u, _ := url.Parse(s.url("/admin"))
	old := a.http.Jar.Cookies(u)
	if len(old) == 0 {
		t.Fatal("no session cookie after login")
	}
	// A cross-site form could post a logout: without the CSRF token the
	// session stays.
	resp, body := do(t, a.http, "POST", s.url("/admin/api/logout"), nil, nil)
	wantError(t, resp, body, http.StatusForbidden, "")
	if resp, body := a.call(t, s, "GET", "/admin/api/settings", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the session ended on a logout without its CSRF token: %d %s", resp.StatusCode, body)
	}
	resp, body = a.call(t, s, "POST", "/admin/api/logout", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout = %d %s", resp.StatusCode, body)
	}
	resp, body = a.call(t, s, "GET", "/admin/api/settings", nil)
	wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	// Replaying the old cookie after logout fails too: the session is gone
	// from the store, not only from the browser.
	replay := http.Header{"Cookie": {old[0].Name + "=" + old[0].Value}, "X-Csrf-Token": {a.csrf}}
	for _, path := range []string{"/admin/api/session", "/admin/api/settings"} {
		resp, body = do(t, nil, "GET", s.url(path), nil, replay)
		wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	}
}

// loginThrottle runs last: it locks logins from this address for a while.
func (s *suite) loginThrottle(t *testing.T) {
	for i := range 10 {
		resp, body := do(t, nil, "POST", s.url("/admin/api/login"), map[string]string{"password": "wrong password " + strconv.Itoa(i)}, nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			if i < 3 {
				t.Fatalf("throttled after only %d failures", i)
			}
			wantError(t, resp, body, http.StatusTooManyRequests, "rate_limit_exceeded")
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 {
				t.Fatalf("Retry-After = %q, want seconds", resp.Header.Get("Retry-After"))
			}
			// Even the right password is refused while throttled.
			resp, body = do(t, nil, "POST", s.url("/admin/api/login"), map[string]string{"password": adminPassword}, nil)
			wantError(t, resp, body, http.StatusTooManyRequests, "rate_limit_exceeded")
			return
		}
		wantError(t, resp, body, http.StatusUnauthorized, "unauthorized")
	}
	t.Fatal("10 wrong passwords in a row were never throttled")
}
