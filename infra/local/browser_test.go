package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/aigateway/aigateway/internal/testkit/acceptance"
	"github.com/aigateway/aigateway/internal/testkit/browser"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// TestBrowserSetupAndLogin drives the setup page and the console in
// headless Chromium against the local server as a process: first-run
// setup with a failing then passing upstream test shows the first key
// once, then testConsole goes through the console.
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
	// A turn of hostile HTML, which the console must show as text, and a
	// code block, which it renders.
	hostile := `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`
	pixel := "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
	body, _ := json.Marshal(map[string]any{"model": "fake/model", "messages": []map[string]any{
		{"role": "user", "content": "hello"}, {"role": "assistant", "content": "echo: hello"},
		{"role": "user", "content": []map[string]any{
			{"type": "text", "text": hostile + "\n\n```go\nfmt.Println(1)\n```"},
			{"type": "image_url", "image_url": map[string]string{"url": pixel}}}}}})
	req, _ = http.NewRequest("POST", base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Conversation-ID", "first-talk")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the hostile turn: %v %v", resp, err)
	}

	testConsole(t, ctx, base, up, key, hostile)
}

// adminGet fetches an admin API path with the browser's own session.
func adminGet(ctx context.Context, base, path string) (string, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[string](
		fmt.Sprintf(`fetch(%q).then((r) => r.text())`, base+path), chromedp.EvalAwaitPromise))
}
