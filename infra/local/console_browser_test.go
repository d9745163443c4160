package main_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/aigateway/aigateway/internal/testkit/browser"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// console drives the admin console in a browser tab.
type console struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func (c *console) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func (c *console) text(sel string) string { c.t.Helper(); return browser.Text(c.t, c.ctx, sel) }

func eval[T any](c *console, js string) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor waits until the expression is true.
func (c *console) waitFor(what, js string, within time.Duration) {
	c.t.Helper()
	if _, err := chromedp.Run(c.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(within))); err != nil {
		c.t.Fatalf("%s never happened (%s): %v", what, js, err)
	}
}

// waitText waits until the element shows want.
func (c *console) waitText(sel, want string) {
	c.t.Helper()
	js := fmt.Sprintf("(document.querySelector(%q) || {textContent: ''}).textContent.includes(%q)", sel, want)
	if _, err := chromedp.Run(c.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		c.t.Fatalf("%s never showed %q (it shows %q): %v", sel, want, eval[string](c, fmt.Sprintf("(document.querySelector(%q) || {textContent: ''}).textContent", sel)), err)
	}
}

// open shows a page of the console and waits for its data.
func (c *console) open(page string) {
	c.t.Helper()
	c.do("open "+page, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('.sidebar a[data-page="%s"]').click()`, page)),
		chromedp.WaitVisible(chromedp.CSS("#page-"+page)))
	c.waitFor(page+" loaded", `document.getElementById("main").getAttribute("aria-busy") === "false"`, 20*time.Second)
}

// scheme emulates the system's colour scheme, "light" or "dark".
func (c *console) scheme(v string) {
	c.t.Helper()
	c.do("a "+v+" system", chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}}})
		return err
	}))
}

// press clicks the button (by selector) in the row of the table body that
// shows text.
func (c *console) press(tbody, text, button string) {
	c.t.Helper()
	js := fmt.Sprintf(`(() => { const r = [...document.querySelectorAll(%q + " tr")].find((r) => r.textContent.includes(%q));
		if (!r) return false; r.querySelector(%q).click(); return true; })()`, tbody, text, button)
	if !eval[bool](c, js) {
		c.t.Fatalf("no row of %s shows %q (it shows %q)", tbody, text, c.text(tbody))
	}
}

// confirm answers the confirmation dialog yes.
func (c *console) confirm() {
	c.t.Helper()
	c.do("confirm", chromedp.WaitVisible(chromedp.CSS("#confirm")), chromedp.Click(chromedp.CSS("#confirm_yes")))
}

// consolePages are the console's pages, each checked at a phone's and a
// laptop's width in both languages.
var consolePages = []string{"dashboard", "channels", "models", "keys", "knowledge", "conversations", "usage", "settings"}

// testConsole drives the console on a gateway just set up with up as
// its channel and key as its first key, as a new admin would: signing in
// (a wrong password first), keys with limits used from the OpenAI SDK,
// a second channel, documents with a progress bar and retrieval, the
// conversations, the dashboard, usage export, settings errors by field,
// and every page on a phone and a laptop in both languages.
func testConsole(t *testing.T, ctx context.Context, base string, up *fakeupstream.Server, firstKey, hostile string) {
	c := &console{t: t, ctx: ctx, base: base}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	// Sign in: a wrong password is refused in words, the right one opens
	// the dashboard.
	c.do("open the console", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(css("#login")),
		chromedp.SendKeys(css("#password"), "not the password"), chromedp.Click(css(`#login button[type="submit"]`)))
	c.waitFor("the wrong password's message", `document.getElementById("login_msg").textContent.length > 0`, 10*time.Second)
	if msg, hidden := c.text("#login_msg"), eval[bool](c, `document.getElementById("panel").hidden`); !hidden || msg == "" {
		t.Fatalf("a wrong password: panel hidden %v, message %q", hidden, msg)
	}
	c.do("sign in", chromedp.SetValue(css("#password"), "a long admin password"),
		chromedp.Click(css(`#login button[type="submit"]`)), chromedp.WaitVisible(css("#page-dashboard")))
	if lang := eval[string](c, "document.documentElement.lang"); lang != "zh-CN" {
		t.Fatalf("the console speaks %q, want the Chinese the setup page was switched to", lang)
	}

	// Keys: one with limits, used from the OpenAI SDK; its RPM raised in
	// the console holds at once; revoked, it is refused.
	c.open("keys")
	c.do("create a key", chromedp.Click(css("#key_new")), chromedp.WaitVisible(css("#key_form")),
		chromedp.SendKeys(css("#keyname"), "sdk client"), chromedp.SendKeys(css("#key_rpm"), "2"),
		chromedp.SendKeys(css("#key_budget"), "5"), chromedp.SendKeys(css("#key_ips"), "127.0.0.1, ::1"),
		chromedp.Click(css("#key_save")), chromedp.WaitVisible(css("#newsecret")))
	secret := c.text("#secret")
	browser.Fits(t, ctx, "console-key-created-zh", browser.Phone)
	if !strings.HasPrefix(secret, "sk-") || secret == firstKey {
		t.Fatalf("the console showed %q as the new key", secret)
	}
	c.waitText("#keys", "sdk client")
	if limits := c.text("#keys"); !strings.Contains(limits, "2 RPM") || !strings.Contains(limits, "127.0.0.1") {
		t.Fatalf("the key list shows %q, want its RPM and addresses", limits)
	}
	sdk := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(secret), option.WithMaxRetries(0))
	ask := func() error {
		_, err := sdk.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "fake/model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}})
		return err
	}
	status := func(err error) int {
		var apiErr *openai.Error
		if errors.As(err, &apiErr) {
			return apiErr.StatusCode
		}
		if err != nil {
			t.Fatalf("the SDK failed without an answer: %v", err)
		}
		return http.StatusOK
	}
	// Within one minute at most 2 answers: the third of three is refused
	// (a minute that turns over between them lets one more through, so
	// try until one is refused).
	answered := 0
	for i := 0; i < 6 && answered < 6; i++ {
		s := status(ask())
		if s == http.StatusTooManyRequests {
			break
		}
		if s != http.StatusOK {
			t.Fatalf("the SDK's request %d = %d", i, s)
		}
		answered++
	}
	if answered > 4 {
		t.Fatalf("%d answers in a row under an RPM of 2", answered)
	}
	// A typo in a number is an error next to it, not a limit lifted.
	c.press("#keys", "sdk client", "button.ghost")
	c.do("type a bad RPM", chromedp.WaitVisible(css("#key_form")), chromedp.SetValue(css("#key_rpm"), ""),
		chromedp.SendKeys(css("#key_rpm"), "6e"), chromedp.Click(css("#key_save")), chromedp.WaitVisible(css(`.field-err[data-param="rpm"]`)))
	if got := adminJSON[struct {
		Data []struct {
			Name string `json:"name"`
			RPM  int64  `json:"rpm"`
		} `json:"data"`
	}](t, ctx, base, "/admin/api/keys"); got.Data[len(got.Data)-1].Name != "sdk client" || got.Data[len(got.Data)-1].RPM != 2 {
		t.Fatalf("after a bad RPM the key is %+v, want its RPM of 2 kept", got.Data[len(got.Data)-1])
	}
	c.do("edit the key's RPM",
		chromedp.SetValue(css("#key_rpm"), "30"), chromedp.Click(css("#key_save")),
		chromedp.WaitNotVisible(css("#key_form")))
	c.waitText("#keys", "30 RPM ·")
	if s := status(ask()); s != http.StatusOK {
		t.Fatalf("after the RPM was raised to 30 the SDK got %d", s)
	}
	c.press("#keys", "sdk client", "button.ghost")
	c.do("lower the key's RPM", chromedp.WaitVisible(css("#key_form")),
		chromedp.SetValue(css("#key_rpm"), "1"), chromedp.Click(css("#key_save")),
		chromedp.WaitNotVisible(css("#key_form")))
	c.waitText("#keys", "1 RPM ·")
	refused := false
	for i := 0; i < 3 && !refused; i++ {
		refused = status(ask()) == http.StatusTooManyRequests
	}
	if !refused {
		t.Fatal("three requests in a row under an RPM of 1 were all answered")
	}
	c.press("#keys", "sdk client", "button.danger")
	c.confirm()
	c.waitText("#keys", "已撤销")
	if s := status(ask()); s != http.StatusUnauthorized {
		t.Fatalf("the revoked key got %d, want 401", s)
	}

	// Channels: a second one, whose Test first says the key is refused,
	// then passes; with a higher priority it takes the next requests, and
	// the dashboard shows it.
	second := fakeupstream.Named(t, "second")
	second.Refuse("sk-second-wrong-123456", http.StatusUnauthorized, "invalid_api_key")
	c.open("channels")
	c.do("fill a second channel", chromedp.Click(css("#channel_new")), chromedp.WaitVisible(css("#channel_form")),
		chromedp.SendKeys(css("#ch_name"), "backup"), chromedp.SendKeys(css("#ch_base"), second.URL),
		chromedp.SendKeys(css("#ch_keys"), "sk-second-wrong-123456"), chromedp.SendKeys(css("#ch_models"), "fake/*"),
		chromedp.SetValue(css("#ch_priority"), "5"),
		chromedp.Click(css("#ch_test")), chromedp.WaitVisible(css("#ch_test_msg p.err")))
	browser.Fits(t, ctx, "console-channel-test-zh", browser.Phone)
	browser.Fits(t, ctx, "console-channel-test-zh", browser.Laptop)
	if msg := c.text("#ch_test_msg"); !strings.Contains(msg, "sk-****3456") || !strings.Contains(msg, "API key") {
		t.Fatalf("the refused key's test said %q", msg)
	}
	c.do("fix the key and test again", chromedp.SetValue(css("#ch_keys"), "sk-second-good-123456"),
		chromedp.Click(css("#ch_test")), chromedp.WaitVisible(css("#ch_test_msg p.ok")))
	c.do("fetch its models before saving", chromedp.Click(css("#ch_fetch")))
	c.waitText("#ch_test_msg", "fake/model")
	c.do("save the channel",
		chromedp.Click(css(`#channel_form button[type="submit"]`)), chromedp.WaitNotVisible(css("#channel_form")))
	c.waitText("#channels", "backup")
	if list := c.text("#channels"); !strings.Contains(list, "sk-****3456") || strings.Contains(list, "sk-second-good-123456") {
		t.Fatalf("the channel list shows %q, want the key masked", list)
	}
	before := second.Count("hello via backup")

	for i := 0; i < 3; i++ {
		chat(t, base, firstKey, "hello via backup")
	}
	if got := second.Count("hello via backup") - before; got != 3 {
		t.Fatalf("the higher-priority channel answered %d of 3", got)
	}
	// The channel list shows each channel's use and latency over the day.
	c.open("channels")
	if row := eval[string](c, `[...document.querySelectorAll("#channels tr")].find((r) => r.textContent.includes("backup")).textContent`); !strings.Contains(row, "24 小时：3 次，p50") {
		t.Fatalf("the channel list shows the second channel as %q, want its requests and latency", row)
	}

	// The dashboard: its charts count the requests made, and the second
	// channel shows with its requests.
	c.open("dashboard")
	stats := adminJSON[struct {
		Totals struct{ Requests int64 } `json:"totals"`
	}](t, ctx, base, "/admin/api/stats?range=24h")
	if stats.Totals.Requests < 6 {
		t.Fatalf("stats count %d requests, want the 6 or more made", stats.Totals.Requests)
	}
	drawn := eval[string](c, `document.querySelector("#chart_requests svg").dataset.total`)
	if n, _ := strconv.ParseFloat(drawn, 64); int64(n) != stats.Totals.Requests {
		t.Fatalf("the requests chart draws %s requests, the stats count %d", drawn, stats.Totals.Requests)
	}
	if bars := eval[int](c, `document.querySelectorAll("#chart_requests rect.bar").length`); bars == 0 {
		t.Fatal("the requests chart has no bars")
	}
	if tile := c.text("#tot_requests b"); tile != strconv.FormatInt(stats.Totals.Requests, 10) {
		t.Fatalf("the requests tile shows %q, want %d", tile, stats.Totals.Requests)
	}
	c.waitText("#dash_channels", "backup")
	backup := eval[string](c, `[...document.querySelectorAll("#dash_channels .card")].find((e) => e.textContent.includes("backup")).textContent`)
	if !strings.Contains(backup, "3 次请求") {
		t.Fatalf("the dashboard shows the second channel as %q, want its 3 requests", backup)
	}
	c.do("split the charts by channel", chromedp.SetValue(css("#dash_by"), "channel"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("dash_by").dispatchEvent(new Event("change"))`))
	c.waitText("#chart_requests .legend", "backup")

	// Knowledge: a file over the API's body limit goes straight to the
	// blob store on a slow link, and the progress bar moves; the document
	// becomes ready and retrieval finds it.
	c.open("knowledge")
	big := filepath.Join(t.TempDir(), "handbook.md")
	var doc bytes.Buffer
	doc.WriteString("# Handbook\n\nParcels are accepted until 17:30 at the back door.\n\n")
	for i := 0; doc.Len() < 1600<<10; i++ {
		if i%200 == 0 {
			fmt.Fprintf(&doc, "## Section %d\n\n", i/200)
		}
		fmt.Fprintf(&doc, "Routine paragraph number %d about shelves, ladders and inventory counts.\n\n", i)
	}
	if err := os.WriteFile(big, doc.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{URLPattern: "", DownloadThroughput: -1, UploadThroughput: 512 << 10}}})
		return err
	})); err != nil {
		t.Fatalf("slow the link down: %v", err)
	}
	// The bar's values, sampled as the upload goes.
	eval[bool](c, `(window.seen = [], window.sampler = setInterval(() => window.seen.push(document.getElementById("upload_bar").value), 40), true)`)
	c.do("upload a large file", chromedp.SetUploadFiles(css("#docfile_input"), []string{big}),
		chromedp.Click(css(`#docfile button[type="submit"]`)))
	c.waitText("#docfile .form-msg", "handbook.md")
	if _, err := chromedp.Run(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{URLPattern: "", DownloadThroughput: -1, UploadThroughput: -1}}})
		return err
	})); err != nil {
		t.Fatalf("lift the throttle: %v", err)
	}
	seen := eval[[]float64](c, `(clearInterval(window.sampler), [...new Set(window.seen)])`)
	between := 0
	for _, v := range seen {
		if v > 0 && v < 100 {
			between++
		}
	}
	if final := eval[float64](c, `document.getElementById("upload_bar").value`); between < 3 || final != 100 {
		t.Fatalf("the progress bar showed %v and ended at %v, want it to move through at least 3 values to 100", seen, final)
	}
	c.waitFor("the large document ready", `[...document.querySelectorAll("#docs tr")].some((r) => r.textContent.includes("handbook") && r.querySelector(".doc-status[data-status=ready]"))`, 60*time.Second)
	c.do("paste a hostile title", chromedp.SendKeys(css("#doctext_title"), "Opening hours "+hostile),
		chromedp.SendKeys(css("#doctext_body"), "The shop opens at nine."), chromedp.Click(css(`#doctext button[type="submit"]`)))
	c.waitText("#docs", "Opening hours "+hostile)
	c.do("try retrieval", chromedp.SendKeys(css("#try_query"), "When are parcels accepted?"),
		chromedp.Click(css(`#try button[type="submit"]`)), chromedp.WaitVisible(css("#try_hits .hit")))
	browser.Fits(t, ctx, "console-retrieval-zh", browser.Phone)
	if hits := c.text("#try_hits"); !strings.Contains(hits, "17:30") || !strings.Contains(hits, "score ") {
		t.Fatalf("retrieval showed %q, want the parcels chunk with its score", hits)
	}

	// Models: a public model over the knowledge base, with a cache, and an
	// alias for it; clients see it and are answered from the document.
	c.open("models")
	c.do("add a model", chromedp.Click(css("#model_new")), chromedp.WaitVisible(css("#model_form")),
		chromedp.SendKeys(css("#model_name"), "helpdesk"), chromedp.SendKeys(css("#model_upstream"), "fake/helpdesk"),
		chromedp.SendKeys(css("#model_prompt"), "Answer from the handbook."), chromedp.SendKeys(css("#model_kbs"), "default"),
		chromedp.SetValue(css("#model_ttl"), "600"))
	browser.Fits(t, ctx, "console-model-form-zh", browser.Phone)
	c.do("save the model", chromedp.Click(css(`#model_form button[type="submit"]`)), chromedp.WaitNotVisible(css("#model_form")))
	c.waitText("#models", "helpdesk")
	if row := c.text("#models"); !strings.Contains(row, "fake/helpdesk") || !strings.Contains(row, "600 s") {
		t.Fatalf("the model list shows %q", row)
	}
	c.do("alias it", chromedp.Click(css("#alias_add")), chromedp.SendKeys(css("#alias_rows .from"), "support-*"),
		chromedp.SendKeys(css("#alias_rows .to"), "helpdesk"), chromedp.Click(css(`#aliases button[type="submit"]`)),
		chromedp.WaitVisible(css("#aliases .form-msg.ok")))
	// (The second channel, first by priority, answers it.)
	before = second.Count("Answer from the handbook.")
	answer := askAs(t, base, firstKey, "support-bot", "When are parcels accepted?")
	if sent := second.Find("Answer from the handbook."); len(sent) != before+1 || !strings.Contains(string(sent[before].Body), "17:30") ||
		!strings.Contains(string(sent[before].Body), `"model":"fake/helpdesk"`) {
		t.Fatalf("the alias did not reach the model's prompt and knowledge (answer %q, %d sent)", answer, len(sent)-before)
	}

	// Conversations: the hostile turn shows as text, markdown renders.
	c.open("conversations")
	c.press("#conversations", "first-talk", "button.ghost")
	c.do("read the conversation", chromedp.WaitVisible(css("#conversation_box")))
	browser.Fits(t, ctx, "console-conversation-zh", browser.Phone)
	browser.Fits(t, ctx, "console-conversation-zh", browser.Laptop)
	conv := c.text("#conversation")
	if !strings.Contains(conv, hostile) || !strings.Contains(conv, "echo: hello") {
		t.Fatalf("the conversation shows %q, want the hostile turn as its text", conv)
	}
	if n := eval[int](c, `document.querySelectorAll("#conversation script, #conversation img:not([src^='data:image/png'])").length`); n != 0 {
		t.Fatalf("the hostile turn made %d elements", n)
	}
	if n := eval[int](c, `[...document.querySelectorAll("#conversation img[src^='data:image/png']")].filter((i) => i.complete && i.naturalWidth === 1).length`); n != 1 {
		t.Fatalf("the picture sent shows as %d images", n)
	}
	// Markdown of a message made to make parsers backtrack renders in
	// linear time (400 KB of unclosed links took 46 s with the first
	// parser; the bound is far above linear).
	if ms := eval[float64](c, `import("./admin/assets/markdown.js").then((m) => { const t = performance.now(); m.render("[a](".repeat(100000)); m.render("`+"`"+`".repeat(150000)); return performance.now() - t; })`); ms > 5000 {
		t.Fatalf("rendering hostile markdown took %.0f ms", ms)
	}
	if code := c.text("#conversation pre code"); !strings.Contains(code, "fmt.Println") {
		t.Fatalf("the code block shows %q", code)
	}
	if title := eval[string](c, "document.title"); title == "pwned" {
		t.Fatal("hostile HTML ran as script")
	}

	// Usage: the table, and the export as CSV that parses with a row for
	// each request.
	c.open("usage")
	c.waitText("#usage", "fake/model")
	href := eval[string](c, `document.getElementById("export_csv").href`)
	body := eval[string](c, fmt.Sprintf(`fetch(%q).then((r) => r.text())`, href))
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(rows) < 2 || rows[0][0] != "time" {
		t.Fatalf("the CSV export (%s) = %v %q", href, err, body[:min(len(body), 300)])
	}
	stats = adminJSON[struct {
		Totals struct{ Requests int64 } `json:"totals"`
	}](t, ctx, base, "/admin/api/stats?range=24h")
	if got, want := int64(len(rows)-1), stats.Totals.Requests; got != want {
		t.Fatalf("the CSV export has %d records, the stats count %d requests", got, want)
	}
	jsonl := eval[string](c, fmt.Sprintf(`fetch(%q).then((r) => r.text())`, eval[string](c, `document.getElementById("export_jsonl").href`)))
	for _, line := range strings.Split(strings.TrimSpace(jsonl), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["request_id"] == nil {
			t.Fatalf("a JSONL export line %q: %v", line, err)
		}
	}

	// Settings: a value out of range is refused next to its field; a good
	// one saves.
	c.open("settings")
	c.do("save a bad top_k", chromedp.SetValue(css("#rag_topk"), ""), chromedp.SendKeys(css("#rag_topk"), "999"),
		chromedp.Click(css(`#settings button[type="submit"]`)), chromedp.WaitVisible(css(`.field-err[data-param="rag.top_k"]`)))
	if msg := c.text(`.field-err[data-param="rag.top_k"]`); !strings.Contains(msg, "top_k") {
		t.Fatalf("the top_k error says %q", msg)
	}
	c.do("save a good top_k", chromedp.SetValue(css("#rag_topk"), ""), chromedp.SendKeys(css("#rag_topk"), "4"),
		chromedp.Click(css(`#settings button[type="submit"]`)), chromedp.WaitVisible(css("#settings_msg.ok")))
	if got := adminJSON[struct {
		RAG struct {
			TopK int `json:"top_k"`
		} `json:"rag"`
	}](t, ctx, base, "/admin/api/settings"); got.RAG.TopK != 4 {
		t.Fatalf("top_k saved as %d", got.RAG.TopK)
	}

	// The drawer on a phone: the menu opens it, a link closes it.
	c.do("a phone", chromedp.EmulateViewport(browser.Phone, 844), chromedp.Click(css("#menu")), chromedp.Sleep(300*time.Millisecond))
	if left := eval[float64](c, `document.getElementById("sidebar").getBoundingClientRect().left`); left < -1 {
		t.Fatalf("the open drawer is at %v px", left)
	}
	browser.Fits(t, ctx, "console-drawer-zh", browser.Phone)
	c.do("pick a page from the drawer", chromedp.Click(css(`#sidebar a[data-page="keys"]`)), chromedp.Sleep(300*time.Millisecond))
	if right := eval[float64](c, `document.getElementById("sidebar").getBoundingClientRect().right`); right > 1 {
		t.Fatalf("the drawer stayed open after a link (right edge at %v px)", right)
	}

	// Every page in both languages, at a phone's and a laptop's width.
	for _, lang := range []string{"en", "zh"} {
		c.do("switch to "+lang, chromedp.Navigate(base+"/admin?lang="+lang+"#/dashboard"), chromedp.WaitVisible(css("#page-dashboard")))
		for _, p := range consolePages {
			c.open(p)
			browser.Fits(t, ctx, "console-"+p+"-"+lang, browser.Phone)
			browser.Fits(t, ctx, "console-"+p+"-"+lang, browser.Laptop)
		}
	}
	// Dark, when the system is.
	c.scheme("dark")
	c.open("dashboard")
	if bg := eval[string](c, `getComputedStyle(document.documentElement).backgroundColor`); bg != "rgb(15, 18, 23)" {
		t.Fatalf("in a dark system the console's background is %s", bg)
	}
	browser.Fits(t, ctx, "console-dashboard-dark-zh", browser.Laptop)
	browser.Fits(t, ctx, "console-dashboard-dark-zh", browser.Phone)
	c.open("keys")
	browser.Fits(t, ctx, "console-keys-dark-zh", browser.Laptop)
	c.scheme("light")
	if bg := eval[string](c, `getComputedStyle(document.documentElement).backgroundColor`); bg != "rgb(244, 245, 247)" {
		t.Fatalf("in a light system the console's background is %s", bg)
	}

	// The language stays as switched.
	c.do("come back", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(css("#page-dashboard")))
	if lang := eval[string](c, "document.documentElement.lang"); lang != "zh-CN" {
		t.Fatalf("after switching to Chinese the console came back in %q", lang)
	}
}

// chat asks the gateway once with a key, and fails the test unless it is
// answered.
func chat(t *testing.T, base, key, text string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"model": "fake/model", "messages": []map[string]string{{"role": "user", "content": text}}})
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat %q = %d", text, resp.StatusCode)
	}
}

// askAs asks model once with a key and returns the answer.
func askAs(t *testing.T, base, key, model, text string) string {
	t.Helper()
	sdk := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	resp, err := sdk.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}})
	if err != nil {
		t.Fatalf("ask %s: %v", model, err)
	}
	return resp.Choices[0].Message.Content
}

// adminJSON reads an admin API path with the browser's own session.
func adminJSON[T any](t *testing.T, ctx context.Context, base, path string) T {
	t.Helper()
	var v T
	s, err := adminGet(ctx, base, path)
	if err == nil {
		err = json.Unmarshal([]byte(s), &v)
	}
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return v
}
