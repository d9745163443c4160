package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/app/chatfn"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/uploadfn"
	"github.com/aigateway/aigateway/shared/jsgateway"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/storage"
)

// The JavaScript gateway's secrets in these tests.
const (
	ownerUpstreamKey = "sk-owner-upstream-secret-0123456789"
	oldClientKey     = "sk-oldclient0001"
	privateText      = "The acquisition of Contoso closes on March 3; price 41 million."
)

// fileRows is an old files table held in memory.
type fileRows []map[string]any

func (f fileRows) FileRows(ctx context.Context) ([]map[string]any, error) { return f, nil }
func (f fileRows) FileText(ctx context.Context, rowID any, column string) (string, error) {
	return "", nil
}

// legacyGateway is a fresh gateway over bindings that hold the JavaScript
// gateway's KV entries (key → JSON) and a private file.
func legacyGateway(t *testing.T, kv map[string]string) http.Handler {
	t.Helper()
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(nil)
	for k, v := range kv {
		mem.KV().Put(context.Background(), k, []byte(v))
	}
	src := &jsgateway.Source{KV: mem.KV(), Files: fileRows{{"id": "f1", "filename": "board-minutes", "content": privateText}}, Blobs: mem.Blobs()}
	g, err := app.Assemble(cfg, app.Stores{KV: mem.KV(), Records: mem.Records(), Blobs: mem.Blobs()}, make([]byte, 32),
		app.Extras{Metrics: metrics.Nop{}, Legacy: src}, chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g.Handler()
}

func ownerConfig(baseURL string) map[string]string {
	return map[string]string{
		"AI_CONFIG":  `{"baseUrl":"` + baseURL + `","apiKey":"` + ownerUpstreamKey + `","model":"Qwen/QwQ-32B"}`,
		"RAG_CONFIG": `{"baseUrl":"` + baseURL + `","apiKey":"sk-owner-rag-secret-000","model":"bge"}`,
		"API_KEYS":   `[{"key":"` + oldClientKey + `","name":"app"}]`,
	}
}

const setupPassword = `"admin_password":"correct horse battery"`

// TestImportNeedsTheOwnersProof: a stranger who claims a fresh deployment
// cannot bring the old keys and files over, neither at setup with a client
// key as proof nor later from the admin API, and a wrong proof is
// throttled like a login.
func TestImportNeedsTheOwnersProof(t *testing.T) {
	evil := fakeupstream.New(t)
	h := legacyGateway(t, ownerConfig("https://api.owner.example"))
	rec := do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+oldClientKey+`"}}`)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "import.proof") {
		t.Fatalf("setup with a client key as proof = %d %s", rec.Code, rec.Body)
	}
	rec = do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"ai":{"base_url":"`+evil.URL+`","api_key":"x","model":"m"},"rag":{"base_url":"`+evil.URL+`","api_key":"x","model":"e"}}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("setup without import = %d %s", rec.Code, rec.Body)
	}
	s := signIn(t, h)
	if rec = s.call("POST", "/admin/api/documents/import", ""); rec.Code != http.StatusForbidden {
		t.Fatalf("import without proof = %d %s", rec.Code, rec.Body)
	}
	// The setup's wrong proof counts too: four more, and the fifth after
	// them is refused unchecked.
	for i := range 5 {
		rec = s.call("POST", "/admin/api/documents/import", `{"proof":"sk-guess-`+strings.Repeat("x", i+8)+`"}`)
		if i < 4 && rec.Code != http.StatusForbidden {
			t.Fatalf("wrong proof %d = %d %s", i, rec.Code, rec.Body)
		}
	}
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("the sixth wrong proof in a row = %d %s, want 429", rec.Code, rec.Body)
	}
	if rec = s.call("GET", "/admin/api/documents/import", ""); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"proven":false`) {
		t.Fatalf("import state = %d %s", rec.Code, rec.Body)
	}
	if len(evil.Find("Contoso")) > 0 {
		t.Fatal("the old private file reached the stranger's embedding upstream")
	}
	if rec = do(h, "POST", "/v1/chat/completions", oldClientKey, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`); rec.Code != http.StatusUnauthorized {
		t.Fatalf("an old client key on the stranger's gateway = %d %s", rec.Code, rec.Body)
	}
}

// TestImportKeepsTheUpstreamKeyAtItsAddress: setup with import may point
// the AI upstream elsewhere only with a key of its own.
func TestImportKeepsTheUpstreamKeyAtItsAddress(t *testing.T) {
	other := fakeupstream.New(t)
	h := legacyGateway(t, ownerConfig("https://api.owner.example"))
	rec := do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+ownerUpstreamKey+`"},"ai":{"base_url":"`+other.URL+`"}}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "ai.api_key") {
		t.Fatalf("a new base URL without its key = %d %s", rec.Code, rec.Body)
	}
	rec = do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+ownerUpstreamKey+`"},"ai":{"base_url":"`+other.URL+`","api_key":"sk-other-0123456789"}}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("a new base URL with its key = %d %s", rec.Code, rec.Body)
	}
	do(h, "POST", "/v1/chat/completions", oldClientKey, `{"model":"Qwen/QwQ-32B","messages":[{"role":"user","content":"where-does-it-go"}]}`)
	reqs := other.Find("where-does-it-go")
	if len(reqs) != 1 || reqs[0].Header.Get("Authorization") != "Bearer sk-other-0123456789" {
		t.Fatalf("the new upstream got %+v", reqs)
	}
}

// TestImportPassesOverWhatItCannotTake: odd keys, out-of-range settings
// and a model named like the upstream do not stop setup; they are left out
// or bounded, and reported.
func TestImportPassesOverWhatItCannotTake(t *testing.T) {
	up := fakeupstream.New(t)
	kv := ownerConfig(up.URL)
	kv["API_KEYS"] = `[{"key":"sk-goodkey00001","name":"ok"},{"key":"sk-longnote0001","note":"` + strings.Repeat("客", 50) + `"},` +
		`{"key":"sk-multiline001","name":"line1\nline2"},{"key":"sk-farfuture001","createdAt":1e15}]`
	kv["SYSTEM_CONFIG"] = `{"maxConversations":5000,"modelName":"` + strings.Repeat("m", 129) + `"}`
	kv["models"] = `[{"name":"Qwen/QwQ-32B","systemPrompt":"Be brief."},"translator"]`
	h := legacyGateway(t, kv)
	rec := do(h, "GET", "/admin/api/setup", "", "")
	if !strings.Contains(rec.Body.String(), "lowered") || !strings.Contains(rec.Body.String(), "not usable as a public model name") {
		t.Fatalf("the setup state warns of nothing: %s", rec.Body)
	}
	rec = do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+ownerUpstreamKey+`"}}`)
	var out struct {
		Import jsgateway.Progress
	}
	json.Unmarshal(rec.Body.Bytes(), &out)
	if rec.Code != http.StatusCreated || out.Import.KeysDone != 4 || out.Import.ModelsDone != 2 {
		t.Fatalf("setup with import = %d %s", rec.Code, rec.Body)
	}
	for _, k := range []string{"sk-goodkey00001", "sk-longnote0001", "sk-multiline001", "sk-farfuture001"} {
		if rec := do(h, "GET", "/v1/models", k, ""); rec.Code != http.StatusOK {
			t.Fatalf("the imported key %s = %d %s", k, rec.Code, rec.Body)
		}
	}
	rec = do(h, "GET", "/v1/models", "sk-goodkey00001", "")
	if strings.Count(rec.Body.String(), `"Qwen/QwQ-32B"`) != 1 || !strings.Contains(rec.Body.String(), `"translator"`) {
		t.Fatalf("models = %s", rec.Body)
	}
	if !strings.Contains(out.Import.Failed[0].Model, "Qwen/QwQ-32B") {
		t.Fatalf("failed = %+v", out.Import.Failed)
	}
	s := signIn(t, h)
	rec = s.call("GET", "/admin/api/keys", "")
	if !strings.Contains(rec.Body.String(), "line1 line2") || strings.Contains(rec.Body.String(), "0001-01-01") {
		t.Fatalf("keys = %s", rec.Body)
	}
	rec = s.call("GET", "/admin/api/settings", "")
	if !strings.Contains(rec.Body.String(), `"max_conversations":1000`) {
		t.Fatalf("settings = %s", rec.Body)
	}
}

// failingKeys refuses to store API keys while fail is set.
type failingKeys struct {
	storage.Records
	fail *atomic.Bool
}

func (f failingKeys) Put(ctx context.Context, it storage.Item, c storage.Cond) (int64, error) {
	if f.fail.Load() && it.PK == "apikey" {
		return 0, storage.Unavailable("put", errors.New("injected: the table is unreachable"))
	}
	return f.Records.Put(ctx, it, c)
}

// TestImportSetupThatFailsLeavesNothing: a setup with import that fails
// after the claim (the first key cannot be stored) puts the settings back,
// so the next claimer finds none of the imported ones, and no old key.
func TestImportSetupThatFailsLeavesNothing(t *testing.T) {
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(nil)
	for k, v := range ownerConfig("https://api.owner.example") {
		mem.KV().Put(context.Background(), k, []byte(v))
	}
	fail := new(atomic.Bool)
	records := failingKeys{Records: mem.Records(), fail: fail}
	src := &jsgateway.Source{KV: mem.KV(), Blobs: mem.Blobs()}
	g, err := app.Assemble(cfg, app.Stores{KV: mem.KV(), Records: records, Blobs: mem.Blobs()}, make([]byte, 32),
		app.Extras{Metrics: metrics.Nop{}, Legacy: src}, chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := g.Handler()
	fail.Store(true)
	rec := do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+ownerUpstreamKey+`"}}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("setup while keys cannot be stored = %d %s", rec.Code, rec.Body)
	}
	fail.Store(false)
	evil := fakeupstream.New(t)
	rec = do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"ai":{"base_url":"`+evil.URL+`","api_key":"x","model":"m"}}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("the next setup = %d %s", rec.Code, rec.Body)
	}
	rec = signIn(t, h).call("GET", "/admin/api/settings", "")
	if strings.Contains(rec.Body.String(), "owner.example") {
		t.Fatalf("the next claimer finds the imported settings: %s", rec.Body)
	}
	if rec = do(h, "GET", "/v1/models", oldClientKey, ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("an old key after the failed import = %d", rec.Code)
	}
}
