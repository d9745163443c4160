package app_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/app"
)

// from sends a request as if from addr (the TCP peer the platform gives;
// "": httptest's 192.0.2.1), with the headers given.
func from(h http.Handler, addr, method, path, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if addr != "" {
		req.RemoteAddr = addr
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestAdminAllowlist: the admin panel (pages, login, API) answers only the
// addresses admin_allowed_ips list, whatever X-Forwarded-For says; a list
// that leaves out its maker is refused; the client API is not concerned.
func TestAdminAllowlist(t *testing.T) {
	h, key := memGateway(t)
	admin := signIn(t, h) // from httptest's 192.0.2.1
	for _, bad := range []string{`{"admin_allowed_ips":["203.0.113.0/24"]}`, `{"admin_allowed_ips":["300.1.1.1"]}`, `{"admin_allowed_ips":["x"]}`} {
		if rec := admin.call("PUT", "/admin/api/settings", bad); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "admin_allowed_ips") {
			t.Fatalf("PUT %s = %d %s", bad, rec.Code, rec.Body)
		}
	}
	if rec := admin.call("PUT", "/admin/api/settings", `{"admin_allowed_ips":["192.0.2.0/24","2001:db8::/32"]}`); rec.Code != http.StatusOK {
		t.Fatalf("PUT an allowlist with the maker's address = %d %s", rec.Code, rec.Body)
	}
	cookie := []string{"Cookie", admin.cookie, "X-Csrf-Token", admin.csrf}
	for _, addr := range []string{"198.51.100.9:4000", "[2001:db9::1]:4000"} {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/admin/api/settings", ""},
			{"GET", "/admin", ""},
			{"GET", "/", ""},
			{"POST", "/admin/api/login", `{"password":"correct horse battery"}`},
			{"GET", "/admin/api/documents", ""},
		} {
			rec := from(h, addr, c.method, c.path, c.body, append(cookie, "X-Forwarded-For", "192.0.2.7")...)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin_allowed_ips") {
				t.Fatalf("%s %s from %s = %d %s, want 403", c.method, c.path, addr, rec.Code, rec.Body)
			}
		}
	}
	if rec := from(h, "[2001:db8::5]:4000", "GET", "/admin/api/settings", "", cookie...); rec.Code != http.StatusOK {
		t.Fatalf("from an address in the IPv6 range = %d %s", rec.Code, rec.Body)
	}
	if rec := from(h, "198.51.100.9:4000", "GET", "/v1/models", "", "Authorization", "Bearer "+key); rec.Code != http.StatusOK {
		t.Fatalf("the client API from another address = %d %s", rec.Code, rec.Body)
	}
}

// TestKeyAllowlist: a key limited to some addresses answers only them,
// whatever X-Forwarded-For says, with a 403 that names the address.
func TestKeyAllowlist(t *testing.T) {
	h, _ := memGateway(t)
	admin := signIn(t, h)
	if rec := admin.call("POST", "/admin/api/keys", `{"name":"x","allowed_ips":["not an address"]}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("a bad allowlist = %d %s", rec.Code, rec.Body)
	}
	rec := admin.call("POST", "/admin/api/keys", `{"name":"office","allowed_ips":["198.51.100.0/24","2001:db8::1"]}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	key := decodeAs[struct{ Key string }](t, rec.Body.Bytes()).Key
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	auth := []string{"Authorization", "Bearer " + key, "X-Forwarded-For", "198.51.100.9"}
	for _, addr := range []string{"192.0.2.1:5000", "[2001:db8::2]:5000"} {
		if rec := from(h, addr, "POST", "/v1/chat/completions", chat, auth...); rec.Code != http.StatusForbidden ||
			!strings.Contains(rec.Body.String(), strings.Trim(addr[:strings.LastIndex(addr, ":")], "[]")) {
			t.Fatalf("from %s = %d %s, want 403 naming the address", addr, rec.Code, rec.Body)
		}
	}
	if rec := admin.call("GET", "/admin/api/keys", ""); strings.Contains(rec.Body.String(), "last_used_at") {
		t.Fatalf("a key only ever refused shows a last use: %s", rec.Body)
	}
	for _, addr := range []string{"198.51.100.77:5000", "[2001:db8::1]:5000", "[::ffff:198.51.100.3]:5000"} {
		if rec := from(h, addr, "POST", "/v1/chat/completions", chat, auth...); rec.Code != http.StatusOK {
			t.Fatalf("from %s = %d %s", addr, rec.Code, rec.Body)
		}
	}
}

// TestKnowledgeThroughAChannel: with no RAG upstream in the settings, an
// embeddings channel made through the channels API and rag.model are
// enough: a document is embedded, the try-retrieval box finds it with its
// score, and a chat retrieves it.
func TestKnowledgeThroughAChannel(t *testing.T) {
	h, key, fake := memGatewayFake(t)
	admin := signIn(t, h)
	if rec := admin.call("POST", "/admin/api/channels", `{"name":"embedder","base_url":"`+fake.URL+`","api_keys":["sk-embed-0123456789"],"models":["fake/*"],"capabilities":["embeddings"]}`); rec.Code != http.StatusCreated {
		t.Fatalf("POST channel = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("PUT", "/admin/api/settings", `{"rag":{"model":"fake/embed"}}`); rec.Code != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", rec.Code, rec.Body)
	}
	rec := admin.call("POST", "/admin/api/documents", `{"title":"Returns","text":"The Hangzhou desk takes parcels until 17:30."}`)
	if d := decodeAs[doc](t, rec.Body.Bytes()); rec.Code != http.StatusCreated || d.Status != "ready" {
		t.Fatalf("add text = %d %s", rec.Code, rec.Body)
	}
	for _, bad := range []string{`{"query":""}`, `{"query":"x","top_k":99}`, `{"query":"x","knowledge_bases":["../etc"]}`, `{"query":"x","surprise":1}`} {
		if rec := admin.call("POST", "/admin/api/documents/search", bad); rec.Code != http.StatusBadRequest {
			t.Fatalf("search %s = %d %s", bad, rec.Code, rec.Body)
		}
	}
	if rec := admin.call("POST", "/admin/api/documents/search", `{"query":"x","knowledge_bases":["default","nokb1"]}`); rec.Code != http.StatusNotFound {
		t.Fatalf("search a knowledge base without documents = %d %s", rec.Code, rec.Body)
	}
	rec = admin.call("POST", "/admin/api/documents/search", `{"query":"When does the Hangzhou desk take parcels?","top_k":3,"knowledge_bases":["default","default"]}`)
	found := decodeAs[struct {
		Data []struct {
			Title string
			Text  string
			Score float64
		}
		TopK int `json:"top_k"`
	}](t, rec.Body.Bytes())
	if rec.Code != http.StatusOK || len(found.Data) == 0 || found.Data[0].Title != "Returns" || !strings.Contains(found.Data[0].Text, "17:30") ||
		found.Data[0].Score <= 0 || found.TopK != 3 {
		t.Fatalf("try retrieval = %d %s", rec.Code, rec.Body)
	}
	rec = from(h, "192.0.2.1:1", "POST", "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"When does the Hangzhou desk take parcels?"}]}`,
		"Authorization", "Bearer "+key)
	var chats []string
	for _, r := range fake.Find("When does the Hangzhou") {
		if r.Path == "/v1/chat/completions" {
			chats = append(chats, string(r.Body))
		}
	}
	if rec.Code != http.StatusOK || len(chats) != 1 || !strings.Contains(chats[0], "17:30") {
		t.Fatalf("a chat over the document = %d %s; the upstream got %q", rec.Code, rec.Body, chats)
	}
}

// TestUpstreamTestsBeforeSaving: the setup page's test says what is wrong
// with an upstream before anything is stored (a refused key, in words),
// and passes with a good one; once set up it is 409. The channel form's
// test of an unsaved channel works the same, and stores nothing.
func TestUpstreamTestsBeforeSaving(t *testing.T) {
	cfgUp := fakeupstream.New(t)
	cfgUp.Refuse("sk-wrong-0123456789", http.StatusUnauthorized, "invalid_api_key")
	h := bareGateway(t)
	test := func(body string) (int, string) {
		rec := from(h, "192.0.2.1:1", "POST", "/admin/api/setup/test", body)
		return rec.Code, rec.Body.String()
	}
	code, body := test(`{"base_url":"` + cfgUp.URL + `","api_key":"sk-wrong-0123456789","model":"fake/m"}`)
	if code != http.StatusOK || !strings.Contains(body, `"ok":false`) || !strings.Contains(body, "refused the API key") ||
		strings.Contains(body, "sk-wrong-0123456789") || strings.Contains(body, "refused by the fake") {
		t.Fatalf("a refused key = %d %s", code, body)
	}
	// Before setup, what the address answered is not shown: not its text,
	// not its error's.
	if code, body = test(`{"base_url":"` + cfgUp.URL + `","api_key":"sk-right-0123456789","model":"fake/m"}`); code != http.StatusOK ||
		!strings.Contains(body, `"ok":true`) || strings.Contains(body, "echo") {
		t.Fatalf("a good upstream = %d %s", code, body)
	}
	good := `{"base_url":"` + cfgUp.URL + `","model":"fake/m"}`
	if rec := from(h, "192.0.2.1:1", "POST", "/admin/api/setup/test", good, "Content-Type", "text/plain"); rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("a form's text/plain = %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/admin/api/setup/test", "/admin/api/setup"} {
		if rec := from(h, "192.0.2.1:1", "POST", path, good, "Sec-Fetch-Site", "cross-site"); rec.Code != http.StatusForbidden {
			t.Fatalf("%s from another site = %d %s", path, rec.Code, rec.Body)
		}
	}
	if code, body = test(`{"base_url":"ftp://x","model":"m"}`); code != http.StatusBadRequest {
		t.Fatalf("a bad base URL = %d %s", code, body)
	}
	rec := from(h, "192.0.2.1:1", "POST", "/admin/api/setup",
		`{"admin_password":"correct horse battery","ai":{"base_url":"`+cfgUp.URL+`","api_key":"sk-right-0123456789","model":"fake/m"}}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("setup = %d %s", rec.Code, rec.Body)
	}
	if code, body = test(`{"base_url":"` + cfgUp.URL + `","model":"fake/m"}`); code != http.StatusConflict {
		t.Fatalf("after setup = %d %s", code, body)
	}
	admin := signIn(t, h)
	rec = admin.call("POST", "/admin/api/channels/test", `{"name":"draft","base_url":"`+cfgUp.URL+`","api_keys":["sk-wrong-0123456789","sk-right-0123456789"],"models":["fake/m"]}`)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ok":false`) || strings.Count(rec.Body.String(), `"ok":true`) != 1 {
		t.Fatalf("an unsaved channel's test = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("GET", "/admin/api/channels", ""); strings.Contains(rec.Body.String(), "draft") {
		t.Fatalf("the test stored the channel: %s", rec.Body)
	}
}

// TestEverySessionRoute: every route of the routing table a session
// guards answers 401 without one and 403 with one but without the CSRF
// token (all methods but GET), and every admin route answers 403 from an
// address admin_allowed_ips leave out, before its handler runs.
func TestEverySessionRoute(t *testing.T) {
	h, _ := memGateway(t)
	admin := signIn(t, h)
	fill := strings.NewReplacer("{id}", "x1", "{name}", "x1", "{$}", "")
	var guarded int
	for _, rt := range app.Routes {
		path := fill.Replace(rt.Pattern)
		if rt.Access == app.Session {
			guarded++
			if rec := do(h, rt.Method, path, "", `{}`); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("%s %s without a session = %d %s, want 401", rt.Method, path, rec.Code, rec.Body)
			}
			if rt.Method != "GET" {
				if rec := do(h, rt.Method, path, "", `{}`, "Cookie", admin.cookie); rec.Code != http.StatusForbidden {
					t.Errorf("%s %s without the CSRF token = %d %s, want 403", rt.Method, path, rec.Code, rec.Body)
				}
			}
		}
	}
	if guarded < 30 {
		t.Fatalf("%d routes guarded by a session, want the whole admin API", guarded)
	}
	if rec := admin.call("PUT", "/admin/api/settings", `{"admin_allowed_ips":["192.0.2.0/24"]}`); rec.Code != http.StatusOK {
		t.Fatalf("PUT the allowlist = %d %s", rec.Code, rec.Body)
	}
	var panel int
	for _, rt := range app.Routes {
		// The client API answers keys, a signed upload URL its signature.
		if rt.Access == app.Key || rt.Access == app.Signed || rt.Pattern == "/healthz" || rt.Pattern == "/files/{id}" {
			continue
		}
		panel++
		path := fill.Replace(rt.Pattern)
		rec := from(h, "198.51.100.9:4000", rt.Method, path, `{}`, "Cookie", admin.cookie, "X-Csrf-Token", admin.csrf, "X-Forwarded-For", "192.0.2.7")
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "admin_allowed_ips") {
			t.Errorf("%s %s from a left-out address = %d %s, want 403", rt.Method, path, rec.Code, rec.Body)
		}
	}
	if panel < guarded+5 {
		t.Fatalf("%d admin routes checked against the allowlist, want every one", panel)
	}
}

// TestConsoleAssets: the console page loads only scripts by address (the
// CSP allows no inline script, and it says so), every module it imports,
// transitively, is served as JavaScript, and an unchanged asset
// revalidates with a 304.
func TestConsoleAssets(t *testing.T) {
	h := open(t).Handler()
	page := serve(h, "GET", "/admin", nil)
	csp := page.Header().Get("Content-Security-Policy")
	if page.Code != http.StatusOK || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("GET /admin = %d, CSP %q", page.Code, csp)
	}
	html := page.Body.String()
	if inline := regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|\son[a-z]+=`).FindString(html); inline != "" {
		t.Fatalf("the console page holds inline script: %q", inline)
	}
	scripts := regexp.MustCompile(`<script[^>]*\ssrc="admin/assets/([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(scripts) != 1 || !strings.Contains(html, `type="module"`) {
		t.Fatalf("the console loads %v, want its one module", scripts)
	}
	imports := regexp.MustCompile(`(?m)^import .* from "\./([a-z]+\.js)";$`)
	seen := map[string]bool{}
	queue := []string{scripts[0][1], "admin.css", "setup.js"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		rec := serve(h, "GET", "/admin/assets/"+name, nil)
		want := "text/javascript; charset=utf-8"
		if strings.HasSuffix(name, ".css") {
			want = "text/css; charset=utf-8"
		}
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != want || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("GET %s = %d %q", name, rec.Code, rec.Header().Get("Content-Type"))
		}
		tag := rec.Header().Get("ETag")
		if again := serve(h, "GET", "/admin/assets/"+name, http.Header{"If-None-Match": {tag}}); tag == "" || again.Code != http.StatusNotModified || again.Body.Len() != 0 {
			t.Fatalf("GET %s again with its ETag %q = %d", name, tag, again.Code)
		}
		for _, m := range imports.FindAllStringSubmatch(rec.Body.String(), -1) {
			queue = append(queue, m[1])
		}
	}
	for _, want := range []string{"lib.js", "chart.js", "markdown.js", "dashboard.js", "settings.js"} {
		if !seen[want] {
			t.Fatalf("the console's modules %v do not include %s", seen, want)
		}
	}
	for _, bad := range []string{"admin.html", "nothere.js", "x%2Fy.js", "lib.js.map"} {
		if rec := serve(h, "GET", "/admin/assets/"+bad, nil); rec.Code != http.StatusNotFound {
			t.Errorf("GET /admin/assets/%s = %d, want 404", bad, rec.Code)
		}
	}
}

// TestDraftOfASavedChannel: the console's Test and Fetch models buttons on
// a saved channel's form send the form with the channel's id: its masked
// keys stand for the saved ones, a key added is tested with them, and a
// change of capability is tested as shown; nothing is saved.
func TestDraftOfASavedChannel(t *testing.T) {
	h, _, up := memGatewayFake(t)
	up.Refuse("sk-added-bad-1234567", http.StatusUnauthorized, "invalid_api_key")
	admin := signIn(t, h)
	rec := admin.call("GET", "/admin/api/channels/ch_main", "")
	var ch struct {
		Keys []struct {
			Key string `json:"key"`
		} `json:"keys"`
		Version int64 `json:"version"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ch); err != nil || len(ch.Keys) != 1 {
		t.Fatalf("GET ch_main = %d %s", rec.Code, rec.Body)
	}
	masked := ch.Keys[0].Key
	rec = admin.call("POST", "/admin/api/channels/test", `{"id":"ch_main","api_keys":["`+masked+`","sk-added-bad-1234567"],"models":["m"]}`)
	if body := rec.Body.String(); rec.Code != http.StatusOK || strings.Count(body, `"ok":true`) != 1 || !strings.Contains(body, "refused") ||
		strings.Contains(body, "sk-up-123456789012") {
		t.Fatalf("a saved key and an added one = %d %s", rec.Code, body)
	}
	rec = admin.call("POST", "/admin/api/channels/test", `{"id":"ch_main","capabilities":["embeddings"],"models":["fake/embed"]}`)
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, `"capability":"embeddings"`) || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("the form's capability = %d %s", rec.Code, body)
	}
	if rec := admin.call("POST", "/admin/api/channels/models", `{"id":"ch_main"}`); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"data":[`) {
		t.Fatalf("the models of a saved channel's form = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("POST", "/admin/api/channels/models", `{"base_url":"`+up.URL+`","api_keys":["sk-new-1234567890"]}`); rec.Code != http.StatusOK {
		t.Fatalf("the models of a new channel's form = %d %s", rec.Code, rec.Body)
	}
	// A masked key is not sent to a new address.
	if rec := admin.call("POST", "/admin/api/channels/test", `{"id":"ch_main","base_url":"http://127.0.0.1:9/v1","api_keys":["`+masked+`"]}`); rec.Code != http.StatusBadRequest {
		t.Fatalf("a saved key to a new address = %d %s", rec.Code, rec.Body)
	}
	if rec := admin.call("POST", "/admin/api/channels/test", `{"id":"ch_nothere"}`); rec.Code != http.StatusNotFound {
		t.Fatalf("an unknown id = %d %s", rec.Code, rec.Body)
	}
	rec = admin.call("GET", "/admin/api/channels/ch_main", "")
	if strings.Contains(rec.Body.String(), "sk-add") || strings.Contains(rec.Body.String(), "embeddings") {
		t.Fatalf("a draft changed the saved channel: %s", rec.Body)
	}
}
