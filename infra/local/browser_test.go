package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/aigateway/aigateway/internal/testkit/acceptance"
	"github.com/aigateway/aigateway/internal/testkit/browser"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// TestBrowserSetupAndLogin drives the setup page and the admin page in
// headless Chromium against the local server: first-run setup shows the
// first key once, and the admin signs in and issues a key.
func TestBrowserSetupAndLogin(t *testing.T) {
	bin := gatewayBinary(t)
	up := fakeupstream.New(t)
	base := start(t, bin, append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + filepath.Join(t.TempDir(), "data")}, acceptance.Env...)...)
	ctx := browser.New(t, 60*time.Second)

	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	text := func(sel string) string { t.Helper(); return browser.Text(t, ctx, sel) }
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(css("#setup")),
	)
	if err != nil {
		t.Fatalf("open the gateway in the browser: %v", err)
	}
	location, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	// Headless Chromium asks for English; the switch turns the page Chinese.
	if heading := text("h1"); !strings.HasSuffix(location, "/setup") || heading != "Set up AI Gateway" {
		t.Fatalf("the root led to %s titled %q, want the setup page in English", location, heading)
	}
	// Every page fits a phone's width, in both languages (screenshots in
	// artifacts/screenshots).
	browser.Fits(t, ctx, "setup-en", browser.Phone)
	browser.Fits(t, ctx, "setup-en", browser.Laptop)
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/setup?lang=zh"), chromedp.WaitVisible(css("#setup"))); err != nil {
		t.Fatal(err)
	}
	if heading := text("h1"); heading != "初始化 AI 网关" {
		t.Fatalf("with the switch the page is titled %q, want Chinese", heading)
	}
	browser.Fits(t, ctx, "setup-zh", browser.Phone)
	browser.Fits(t, ctx, "setup-zh", browser.Laptop)
	// The password's strength shows as it is typed; the upstream's Test
	// button says what is wrong, then that it passes.
	up.Refuse("sk-revoked-123456789", http.StatusUnauthorized, "invalid_api_key")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#pw"), "a long admin password"),
		chromedp.SendKeys(css("#pw2"), "a long admin password"),
		chromedp.SetValue(css("#ai_base"), up.URL),
		chromedp.SendKeys(css("#ai_key"), "sk-revoked-123456789"),
		chromedp.SetValue(css("#ai_model"), "fake/model"),
		chromedp.Click(css("#ai_test")),
		chromedp.WaitVisible(css("#ai_test_msg.err")),
	)
	if err != nil {
		t.Fatalf("test a refused upstream key in the browser: %v", err)
	}
	if word, msg := text("#strength_word"), text("#ai_test_msg"); word != "强" || !strings.Contains(msg, "refused the API key") {
		t.Fatalf("strength %q, the refused key's test said %q", word, msg)
	}
	err = chromedp.Do(ctx,
		chromedp.Clear(css("#ai_key")),
		chromedp.SendKeys(css("#ai_key"), "sk-upstream-123456789"),
		chromedp.Click(css("#ai_test")),
		chromedp.WaitVisible(css("#ai_test_msg.ok")),
		chromedp.SetValue(css("#rag_base"), up.URL),
		chromedp.Click(css(`#setup button[type="submit"]`)),
		chromedp.WaitVisible(css("#done")),
	)
	if err != nil {
		t.Fatalf("setup in the browser: %v", err)
	}
	key := text("#key")
	if !strings.HasPrefix(key, "sk-") || len(key) != 46 {
		t.Fatalf("the page showed %q as the first key", key)
	}
	browser.Fits(t, ctx, "setup-done-zh", browser.Phone)
	browser.Fits(t, ctx, "setup-done-zh", browser.Laptop)
	// Ready-made configurations carry the key and the gateway's address.
	for _, id := range []string{"#snip_curl", "#snip_openai", "#snip_codex", "#snip_claude"} {
		if snip := text(id); !strings.Contains(snip, key) || !strings.Contains(snip, base) {
			t.Fatalf("%s = %q, want the key and %s", id, snip, base)
		}
	}

	// One answered request, for the usage table.
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"fake/model","messages":[{"role":"user","content":"hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Conversation-ID", "first-talk")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("chat with the first key: %v %v", resp, err)
	}
	// A turn of hostile HTML, which the admin page must show as text.
	hostile := `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`
	body, _ := json.Marshal(map[string]any{"model": "fake/model", "messages": []map[string]string{
		{"role": "user", "content": "hello"}, {"role": "assistant", "content": "echo: hello"}, {"role": "user", "content": hostile}}})
	req, _ = http.NewRequest("POST", base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Conversation-ID", "first-talk")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the hostile turn: %v %v", resp, err)
	}

	err = chromedp.Do(ctx,
		chromedp.Navigate(base+"/admin"),
		chromedp.WaitVisible(css("#login")),
		chromedp.SendKeys(css("#password"), "a long admin password"),
		chromedp.Click(css(`#login button[type="submit"]`)),
		chromedp.WaitVisible(css("#panel")),
		chromedp.WaitVisible(css("#keys tr")),
	)
	if err != nil {
		t.Fatalf("sign in in the browser: %v", err)
	}
	browser.Fits(t, ctx, "admin-zh", browser.Phone) // the language the setup page switched to stays
	browser.Fits(t, ctx, "admin-zh", browser.Laptop)
	keysTable := text("#keys")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#keyname"), "from the browser"),
		chromedp.SendKeys(css("#key_rpm"), "30"),
		chromedp.Click(css(`#newkey button[type="submit"]`)),
		chromedp.WaitVisible(css("#newsecret")),
	)
	if err != nil {
		t.Fatalf("create a key in the browser: %v", err)
	}
	if secret := text("#secret"); !strings.Contains(keysTable, "default") || !strings.HasPrefix(secret, "sk-") || secret == key {
		t.Fatalf("keys table %q, new key %q", keysTable, secret)
	}
	resp, err := adminGet(ctx, base, "/admin/api/keys")
	if err != nil || !strings.Contains(resp, `"rpm":30`) {
		t.Fatalf("the key made in the browser has no rpm limit: %s %v", resp, err)
	}
	// Saving the settings form as loaded changes nothing it should not.
	if err := chromedp.Do(ctx, chromedp.Click(css(`#settings button[type="submit"]`)), chromedp.WaitVisible(css("#settings_msg.ok"))); err != nil {
		t.Fatalf("save settings in the browser: %v (%s)", err, text("#settings_msg"))
	}
	if usage := text("#usage"); !strings.Contains(usage, "default") || !strings.Contains(usage, "fake/model") {
		t.Fatalf("usage table = %q, want the first key's request", usage)
	}
	err = chromedp.Do(ctx,
		chromedp.Click(css("#conversations button")),
		chromedp.WaitVisible(css("#conversation")),
	)
	if err != nil {
		t.Fatalf("open a conversation in the browser: %v", err)
	}
	if conv := text("#conversation"); !strings.Contains(conv, "user: hello") || !strings.Contains(conv, "assistant: echo: hello") ||
		!strings.Contains(conv, hostile) {
		t.Fatalf("conversation = %q, want the hostile turn shown as its text", conv)
	}
	if title, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.title")); err != nil || title == "pwned" {
		t.Fatalf("the hostile turn ran as script: title %q %v", title, err)
	}

	// Documents: a file and pasted text, ingested and listed ready; a model.
	file := filepath.Join(t.TempDir(), "returns.md")
	if err := os.WriteFile(file, []byte("# Returns\n\nParcels are accepted until 17:30.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitText := func(sel, want string) {
		t.Helper()
		js := fmt.Sprintf("document.querySelector(%q).textContent.includes(%q)", sel, want)
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s never showed %q (it shows %q): %v", sel, want, text(sel), err)
		}
	}
	err = chromedp.Do(ctx,
		chromedp.SetUploadFiles(css("#docfile_input"), []string{file}),
		chromedp.Click(css(`#docfile button[type="submit"]`)),
	)
	if err != nil {
		t.Fatalf("upload in the browser: %v", err)
	}
	waitText("#docs", "returns")
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#doctext_title"), "Opening hours "+hostile),
		chromedp.SendKeys(css("#doctext_body"), "The shop opens at nine."),
		chromedp.Click(css(`#doctext button[type="submit"]`)),
	)
	if err != nil {
		t.Fatalf("paste text in the browser: %v", err)
	}
	waitText("#docs", "Opening hours "+hostile)
	if title, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.title")); err != nil || title == "pwned" {
		t.Fatalf("a document's hostile title ran as script: %q %v", title, err)
	}
	if docs := text("#docs"); strings.Count(docs, "就绪") != 2 {
		t.Fatalf("documents = %q, want both ready (就绪)", docs)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(css("#model_name"), "helpdesk"),
		chromedp.SendKeys(css("#model_upstream"), "fake/helpdesk"),
		chromedp.SendKeys(css("#model_kbs"), "default, faq"),
		chromedp.Click(css(`#newmodel button[type="submit"]`)),
	)
	if err != nil {
		t.Fatalf("add a model in the browser: %v", err)
	}
	waitText("#models", "helpdesk")
	if models := text("#models"); !strings.Contains(models, "default, faq") {
		t.Fatalf("models = %q", models)
	}
}

// adminGet fetches an admin API path with the browser's own session.
func adminGet(ctx context.Context, base, path string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](
		fmt.Sprintf(`fetch(%q).then((r) => r.text())`, base+path), chromedp.EvalAwaitPromise))
}
