//go:build !js

package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/browser"
	"github.com/aigateway/aigateway/internal/testkit/cflocal"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/chromedp/chromedp"
)

// The JavaScript gateway's data, as its tutorial's setup leaves it.
const (
	jsClientKey   = "sk-js7f3a9c2e1d4b"
	jsUpstreamKey = "sk-siliconflow-old-0123456789"
	jsManual      = "# Router manual\n\nTo reset the router, hold the pinhole button for zebra-seven seconds."
)

func jsKV(upstream string) map[string]string {
	return map[string]string{
		"AI_CONFIG":     `{"baseUrl":"` + upstream + `","apiKey":"` + jsUpstreamKey + `","model":"Qwen/QwQ-32B"}`,
		"RAG_CONFIG":    `{"baseUrl":"` + upstream + `","apiKey":"sk-rag-old-0123456789","model":"BAAI/bge-large-zh-v1.5"}`,
		"SYSTEM_CONFIG": `{"maxConversations":10,"modelName":"my-assistant","systemPrompt":"你是路由器客服。","enableDrawing":false}`,
		"models":        `["my-assistant","translator"]`,
		"API_KEYS":      `[{"key":"` + jsClientKey + `","name":"phone app","createdAt":1735689600000},"sk-second0000key"]`,
	}
}

const jsFiles = `CREATE TABLE files (id TEXT PRIMARY KEY, filename TEXT NOT NULL, content TEXT, r2_key TEXT, type TEXT, size INTEGER, upload_time DATETIME DEFAULT CURRENT_TIMESTAMP);
INSERT INTO files (id, filename, content, type, size) VALUES ('t1', '营业时间', '门店营业时间：每天九点到晚上八点。', 'text', 40);
INSERT INTO files (id, filename, r2_key, type, size) VALUES ('f1', 'manual.md', 'files/f1-manual.md', 'text/markdown', 90);
INSERT INTO files (id, filename, r2_key, type, size) VALUES ('f2', 'lost.txt', 'files/f2-lost.txt', 'text/plain', 5);`

// TestImportFromJSGateway seeds a local namespace, database and bucket
// with the JavaScript gateway's layout (through wrangler, as that gateway
// wrote them), then sets the Worker up with the import: the settings,
// public model and old keys work, the files become searchable documents,
// a stranger without proof cannot import, and the old data is unchanged.
func TestImportFromJSGateway(t *testing.T) {
	up := fakeupstream.New(t)
	dir := cflocal.Dir(t)
	script := cflocal.Build(t, dir, "build")
	w := cflocal.Prepare(t, dir)
	for k, v := range jsKV(up.URL) {
		w.Wrangler(t, "kv", "key", "put", k, v, "--binding", "AI_KV")
	}
	w.D1(t, jsFiles)
	manual := filepath.Join(t.TempDir(), "manual.md")
	os.WriteFile(manual, []byte(jsManual), 0o600)
	w.Wrangler(t, "r2", "object", "put", "ai-gateway-files/files/f1-manual.md", "--file", manual, "--content-type", "text/markdown")
	before := jsState(t, w)
	w.Serve(t, script, vars())

	call := func(c *http.Client, method, path, body string, header ...string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, w.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	plain := &http.Client{Timeout: time.Minute}

	status, body := call(plain, "GET", "/admin/api/setup", "")
	var state struct {
		Initialized bool
		Import      struct {
			Found               bool
			Keys, Files, Models int
			AIModel             string `json:"ai_model"`
		}
	}
	json.Unmarshal(body, &state)
	if status != 200 || state.Initialized || !state.Import.Found || state.Import.Keys != 2 || state.Import.Files != 3 ||
		state.Import.Models != 1 || state.Import.AIModel != "Qwen/QwQ-32B" {
		t.Fatalf("setup state = %d %s", status, body)
	}
	for _, secret := range []string{jsClientKey, jsUpstreamKey, "sk-rag-old"} {
		if bytes.Contains(body, []byte(secret)) {
			t.Fatalf("the setup state shows a secret: %s", body)
		}
	}

	const password = "correct horse battery staple"
	// A client key is handed to users: it is no proof.
	for _, proof := range []string{"sk-guessing-0000", jsClientKey} {
		status, body = call(plain, "POST", "/admin/api/setup", `{"admin_password":"`+password+`","import":{"proof":"`+proof+`"}}`)
		if status != http.StatusForbidden || !bytes.Contains(body, []byte("import.proof")) {
			t.Fatalf("setup with %s as proof = %d %s", proof, status, body)
		}
	}
	// The first run, in the browser, as a user does it.
	ctx := browser.New(t, 2*time.Minute)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string { t.Helper(); return browser.Text(t, ctx, sel) }
	if err := chromedp.Do(ctx, chromedp.Navigate(w.URL+"/setup?lang=en"), chromedp.WaitVisible(css("#import"))); err != nil {
		t.Fatalf("the setup page offers no import: %v", err)
	}
	if sum := text("#import_summary"); !strings.Contains(sum, "API keys: 2, models: 1, files: 3") || !strings.Contains(sum, "my-assistant") {
		t.Fatalf("the import summary reads %q", sum)
	}
	// The upstream fields are empty overrides: the imported values stay.
	overrides, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`["ai_base","ai_model","rag_base","rag_model"].every(
		(id) => document.getElementById(id).value === "" && document.getElementById(id).placeholder === "imported")`))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(css("#pw"), password), chromedp.SendKeys(css("#pw2"), password),
		chromedp.SendKeys(css("#proof"), jsUpstreamKey),
		chromedp.Click(css(`#setup button[type="submit"]`)),
		chromedp.WaitVisible(css("#done")),
	); err != nil || !overrides {
		t.Fatalf("setup with the import in the browser: %v (upstream fields empty overrides: %v)", err, overrides)
	}
	key := text("#key")
	js := `document.getElementById("import_status").textContent.startsWith("Imported")`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(time.Minute))); err != nil {
		t.Fatalf("the import never finished; the page says %q: %v", text("#import_status"), err)
	}
	if status, failed := text("#import_status"), text("#import_failed"); status != "Imported 2 keys and 2 documents." ||
		!strings.Contains(failed, "lost.txt: ") || !strings.Contains(failed, "not in the bucket") {
		t.Fatalf("the page says %q, failed %q", status, failed)
	}

	// The old key, the old public model with its system prompt, the old
	// upstream key.
	chat := func(key, model, text string) []byte {
		t.Helper()
		status, body := call(plain, "POST", "/v1/chat/completions",
			`{"model":"`+model+`","messages":[{"role":"user","content":"`+text+`"}]}`, "Authorization", "Bearer "+key)
		if status != 200 {
			t.Fatalf("chat as %s with %s = %d %s", key[:7], model, status, body)
		}
		return body
	}
	chat(jsClientKey, "my-assistant", "hello-from-old-key")
	var reqs []fakeupstream.Request
	for _, r := range up.Find("hello-from-old-key") {
		if r.Path == "/v1/chat/completions" {
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer "+jsUpstreamKey ||
		!bytes.Contains(reqs[0].Body, []byte("你是路由器客服。")) || !bytes.Contains(reqs[0].Body, []byte(`"Qwen/QwQ-32B"`)) {
		t.Fatalf("the upstream got %+v", reqs)
	}
	chat("sk-second0000key", "translator", "hello-second")
	if !strings.HasPrefix(key, "sk-") || len(key) != 46 {
		t.Fatalf("the page showed %q as the first key", key)
	}
	chat(key, "my-assistant", "hello-new-key")

	jar, _ := cookiejar.New(nil)
	admin := &http.Client{Jar: jar, Timeout: 2 * time.Minute}
	status, body = call(admin, "POST", "/admin/api/login", `{"password":"`+password+`"}`)
	var login struct {
		CSRF string `json:"csrf_token"`
	}
	json.Unmarshal(body, &login)
	if status != 200 {
		t.Fatalf("login = %d %s", status, body)
	}
	// Again: nothing new.
	status, body = call(admin, "POST", "/admin/api/documents/import", "", "X-Csrf-Token", login.CSRF)
	if status != 200 || !bytes.Contains(body, []byte(`"done":true`)) || !bytes.Contains(body, []byte(`"files_done":3`)) {
		t.Fatalf("import again = %d %s", status, body)
	}
	// The admin page shows where the import stands.
	if err := chromedp.Do(ctx, chromedp.Navigate(w.URL+"/admin?lang=en#/knowledge"), chromedp.WaitVisible(css("#jsimport"))); err != nil {
		t.Fatalf("the admin page shows no import: %v", err)
	}
	if s := text("#jsimport_msg"); !strings.Contains(s, "Models 1/1, keys 2/2, files 3/3; lost.txt") {
		t.Fatalf("the admin page says %q about the import", s)
	}
	status, body = call(admin, "GET", "/admin/api/documents", "")
	if status != 200 || bytes.Count(body, []byte(`"status":"ready"`)) != 2 {
		t.Fatalf("documents = %d %s", status, body)
	}
	// The manual from R2 is retrieved into an answer.
	chat(jsClientKey, "my-assistant", "how do I reset the router pinhole")
	var answered bool
	for _, r := range up.Find("how do I reset the router pinhole") {
		if r.Path == "/v1/chat/completions" {
			answered = true
			if !bytes.Contains(r.Body, []byte("zebra-seven")) {
				t.Fatalf("the imported manual was not retrieved: %s", r.Body)
			}
		}
	}
	if !answered {
		t.Fatal("the question never reached the upstream")
	}

	if after := jsState(t, w); after != before {
		t.Fatalf("the JavaScript gateway's data changed:\nbefore %s\nafter  %s", before, after)
	}
}

// jsState is the JavaScript gateway's data as wrangler reads it.
func jsState(t *testing.T, w *cflocal.Worker) string {
	var b strings.Builder
	for _, k := range []string{"AI_CONFIG", "RAG_CONFIG", "SYSTEM_CONFIG", "models", "API_KEYS"} {
		b.WriteString(k + "=" + w.Wrangler(t, "kv", "key", "get", k, "--binding", "AI_KV", "--text") + "\n")
	}
	// The rows only: wrangler's answer also times the query.
	var rows []struct{ Results []map[string]any }
	if err := json.Unmarshal([]byte(w.D1(t, "SELECT * FROM files ORDER BY id")), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("the files table reads %v, %v", rows, err)
	}
	files, _ := json.Marshal(rows[0].Results)
	b.WriteString("files=" + string(files) + "\n")
	out := filepath.Join(t.TempDir(), "manual.md")
	w.Wrangler(t, "r2", "object", "get", "ai-gateway-files/files/f1-manual.md", "--file", out)
	m, _ := os.ReadFile(out)
	b.WriteString("r2=" + string(m))
	return b.String()
}
