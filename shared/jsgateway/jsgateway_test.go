package jsgateway

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/catalog"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/ingest"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/memstore"
	_ "github.com/aigateway/aigateway/shared/sqlite" // the "sqlite" driver
	"github.com/aigateway/aigateway/shared/storage"
)

// oldKey and oldUpstreamKey are secrets of the old gateway: a client key
// of its own length and the upstream's.
const (
	oldKey         = "sk-3f9a2c7d1e8b4a6f"
	oldKey2        = "sk-Zx81_qwerty-Plm0"
	oldUpstreamKey = "sk-siliconflow-upstream-0123456789"
	// the SHA-256 of "old admin password"
	oldPasswordHash = "49f69606d3e838896cf450269fb3ba8d5c74cd33855d77dca84502286d92dab5"
)

func put(t *testing.T, kv storage.KV, key, value string) {
	t.Helper()
	if err := kv.Put(context.Background(), key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// camelLayout is the JavaScript gateway as its tutorial sets it up.
func camelLayout(t *testing.T, kv storage.KV) {
	put(t, kv, KeyAI, `{"baseUrl":"https://api.siliconflow.cn/","apiKey":"`+oldUpstreamKey+`","model":"Qwen/QwQ-32B"}`)
	put(t, kv, KeyRAG, `{"baseUrl":"https://api.siliconflow.cn","apiKey":"sk-rag-0123456789","model":"BAAI/bge-large-zh-v1.5"}`)
	put(t, kv, KeySystem, `{"adminPassword":"`+oldPasswordHash+`","maxConversations":20,"modelName":"my-assistant","systemPrompt":"你是客服。","enableDrawing":true,"initialized":true}`)
	put(t, kv, KeyModels, `["my-assistant","translator", "Qwen/QwQ-32B"]`)
	put(t, kv, KeyAPI, `[{"key":"`+oldKey+`","name":"app","createdAt":1735689600000},{"key":"`+oldKey2+`","created":"2025-02-01T00:00:00Z"},{"key":"sk-revoked00000","revoked":true},{"key":"not-a-key"}]`)
}

func TestReadTutorialLayout(t *testing.T) {
	ctx := context.Background()
	kv := memstore.New(time.Now).KV()
	camelLayout(t, kv)
	snap, err := Read(ctx, Source{KV: kv})
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Found || snap.AI.BaseURL != "https://api.siliconflow.cn" || snap.AI.APIKey != oldUpstreamKey || snap.AI.Model != "Qwen/QwQ-32B" {
		t.Fatalf("AI = %+v", snap.AI)
	}
	if snap.RAG.Model != "BAAI/bge-large-zh-v1.5" || snap.PublicModel != "my-assistant" || snap.SystemPrompt != "你是客服。" ||
		snap.MaxConversations != 20 || snap.Drawing == nil || !*snap.Drawing {
		t.Fatalf("snapshot = %+v", snap)
	}
	var names []string
	for _, m := range snap.Models {
		names = append(names, m.Name+"→"+m.UpstreamModel)
	}
	if !reflect.DeepEqual(names, []string{"translator→Qwen/QwQ-32B"}) {
		t.Fatalf("models = %v (the upstream's own name and the settings' public model are not extra models)", names)
	}
	if len(snap.Keys) != 2 || snap.Keys[0].Secret != oldKey || snap.Keys[0].Name != "app" ||
		!snap.Keys[0].CreatedAt.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) || !snap.Keys[1].CreatedAt.Equal(time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("keys = %+v (revoked and malformed ones are left out)", snap.Keys)
	}
	for _, proof := range []string{oldUpstreamKey, " " + oldUpstreamKey + " ", "old admin password"} {
		if !snap.Owns(proof) {
			t.Errorf("%q is not accepted as proof", proof)
		}
	}
	// A client key is handed to users: it proves nothing.
	for _, proof := range []string{"", oldKey, oldKey2, "sk-revoked00000", "sk-rag-0123456789", oldUpstreamKey + "x"} {
		if snap.Owns(proof) {
			t.Errorf("%q is accepted as proof", proof)
		}
	}
	plain := snap
	plain.AdminPassword = "hunter2-plain"
	if !plain.Owns("hunter2-plain") {
		t.Error("a password kept in the clear is not accepted")
	}
	sum := snap.Summary()
	if sum.Keys != 2 || sum.Models != 1 || sum.AIModel != "Qwen/QwQ-32B" {
		t.Fatalf("summary = %+v", sum)
	}
	for _, secret := range []string{oldKey, oldKey2, oldUpstreamKey, "sk-rag"} {
		if b, _ := jsonOf(sum); strings.Contains(b, secret) {
			t.Fatalf("the summary shows the secret %s: %s", secret, b)
		}
	}
	var st gateway.Settings
	st.AI.Model = "kept-if-absent"
	st.RAG.TopK = 5
	snap.Apply(&st)
	if st.AI.BaseURL != "https://api.siliconflow.cn" || st.PublicModel != "my-assistant" || !st.DrawingEnabled || !st.ServerMemory ||
		st.MaxConversations != 20 || st.RAG.TopK != 5 || st.RAG.APIKey != "sk-rag-0123456789" {
		t.Fatalf("applied = %+v", st)
	}
}

// TestReadOtherShapes: snake_case fields, keys as a map by secret or a
// list of strings, models as objects, values that are not JSON.
func TestReadOtherShapes(t *testing.T) {
	ctx := context.Background()
	for name, c := range map[string]struct {
		api, models string
		keys        []string
		model       string
	}{
		"map by secret": {api: `{"` + oldKey + `":{"name":"a","created_at":1735689600},"` + oldKey2 + `":{"enabled":false}}`, keys: []string{oldKey}},
		"strings":       {api: `["` + oldKey + `","` + oldKey2 + `"]`, keys: []string{oldKey, oldKey2}},
		"wrapped":       {api: `{"keys":[{"api_key":"` + oldKey + `"}]}`, keys: []string{oldKey}},
		"bare string":   {api: oldKey, keys: []string{oldKey}},
		"models as objects": {api: `[]`, models: `[{"name":"bot","model":"deepseek-ai/DeepSeek-V3","system_prompt":"Be brief."}]`,
			model: "bot→deepseek-ai/DeepSeek-V3:Be brief."},
		"models wrapped": {api: `[]`, models: `{"data":[{"id":"bot"}]}`, model: "bot→up:"},
	} {
		t.Run(name, func(t *testing.T) {
			kv := memstore.New(time.Now).KV()
			put(t, kv, KeyAI, `{"base_url":"https://x.example","api_key":"`+oldUpstreamKey+`","model":"up"}`)
			put(t, kv, KeyAPI, c.api)
			if c.models != "" {
				put(t, kv, KeyModels, c.models)
			}
			snap, err := Read(ctx, Source{KV: kv})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range snap.Keys {
				got = append(got, k.Secret)
			}
			if !reflect.DeepEqual(got, c.keys) {
				t.Fatalf("keys = %v, want %v", got, c.keys)
			}
			if c.model != "" {
				if len(snap.Models) != 1 || snap.Models[0].Name+"→"+snap.Models[0].UpstreamModel+":"+snap.Models[0].SystemPrompt != c.model {
					t.Fatalf("models = %+v", snap.Models)
				}
			}
			if snap.AI.BaseURL != "https://x.example" || snap.AI.Model != "up" {
				t.Fatalf("AI = %+v", snap.AI)
			}
		})
	}
	kv := memstore.New(time.Now).KV()
	put(t, kv, KeyAI, `not json`)
	put(t, kv, KeyAPI, `{"count":3}`)
	snap, err := Read(ctx, Source{KV: kv})
	if err != nil || !snap.Found || len(snap.Warnings) != 2 {
		t.Fatalf("unreadable values: %+v, %v; want two warnings", snap, err)
	}
	empty, err := Read(ctx, Source{KV: memstore.New(time.Now).KV()})
	if err != nil || empty.Found {
		t.Fatalf("an empty namespace: %+v, %v", empty, err)
	}
}

// fixedSettings are the default settings.
type fixedSettings struct{}

func (fixedSettings) Get(ctx context.Context) (gateway.Settings, error) {
	return gateway.Settings{}, nil
}

func jsonOf(v any) (string, error) {
	var b bytes.Buffer
	err := jsonEncode(&b, v)
	return b.String(), err
}

// indexed records what was indexed (the knowledge bases have their own
// tests; here the question is what reaches them).
type indexed struct{ texts map[string]string }

func (x *indexed) Index(ctx context.Context, doc gateway.Document, text string) (int, error) {
	x.texts[doc.Filename] = text
	return 1, nil
}
func (x *indexed) Remove(ctx context.Context, kb, docID string) error { return nil }

// TestStepImportsKeysAndFiles imports keys and the files table in steps,
// again without duplicates, and leaves the old data as it was.
func TestStepImportsKeysAndFiles(t *testing.T) {
	ctx := context.Background()
	store := sqlitetest.Open(t)
	kv := store.KV()
	camelLayout(t, kv)
	old, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Exec(`CREATE TABLE files (id TEXT PRIMARY KEY, filename TEXT, content TEXT, r2_key TEXT, type TEXT, size INTEGER, upload_time TEXT);
INSERT INTO files VALUES ('f1', '退货政策', '退货须在 30 天内提出。', NULL, 'text', 30, '2025-01-01');
INSERT INTO files VALUES ('f2', 'manual.md', NULL, 'files/f2-manual.md', 'text/markdown', 40, '2025-01-02');
INSERT INTO files VALUES ('f3', 'gone.txt', NULL, 'files/missing.txt', 'text/plain', 1, '2025-01-03');
INSERT INTO files VALUES ('f4', 'tool.exe', NULL, 'files/tool.exe', 'application/octet-stream', 4, '2025-01-04');
INSERT INTO files VALUES ('f5', 'empty', NULL, NULL, 'text', 0, '2025-01-05');
INSERT INTO files VALUES ('f6', 'faq.txt', 'Q: hours? A: 9 to 5.', NULL, 'text/plain', 20, '2025-01-06');
INSERT INTO files VALUES ('f7', 'again.txt', '退货须在 30 天内提出。', NULL, 'text/plain', 30, '2025-01-07');
INSERT INTO files VALUES ('f8', 'guide.pdf', 'The text once extracted from a PDF.', 'files/f8.pdf', 'application/pdf', 9, '2025-01-08');`); err != nil {
		t.Fatal(err)
	}
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"files/f2-manual.md": "# Manual\n\nPress the red button.", "files/tool.exe": "MZ\x90\x00"} {
		if err := blobs.Put(ctx, k, strings.NewReader(v), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	src := Source{KV: kv, Files: SQLFiles{DB: old}, Blobs: blobs}
	before := dump(t, src)

	snap, err := Read(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Files) != 7 || len(snap.Warnings) != 1 {
		t.Fatalf("files = %+v, warnings %v (the row with no content is reported)", snap.Files, snap.Warnings)
	}
	// Reading the table leaves the texts where they are.
	for _, f := range snap.Files {
		if f.Text != "" {
			t.Fatalf("the snapshot holds the text of %s", f.Name)
		}
	}
	ks := keys.New(store.Records(), 0)
	idx := &indexed{texts: map[string]string{}}
	models := catalog.New(store.Records(), 0)
	h := &Handler{Source: &src, Records: store.Records(), Keys: ks, Docs: ingest.New(store.Records(), blobs, idx),
		Models: models, Settings: fixedSettings{}}
	var p Progress
	steps := 0
	for !p.Done {
		if steps++; steps > 5 {
			t.Fatalf("no end after %d steps: %+v", steps, p)
		}
		if p, err = h.Step(ctx, src, snap, 4); err != nil {
			t.Fatal(err)
		}
	}
	if steps != 2 || p.KeysDone != 2 || p.FilesDone != 7 || p.ModelsDone != 1 {
		t.Fatalf("after %d steps: %+v", steps, p)
	}
	if len(p.Failed) != 2 || p.Failed[0].File != "gone.txt" || !strings.Contains(p.Failed[0].Reason, "not in the bucket") || p.Failed[1].File != "tool.exe" {
		t.Fatalf("failed = %+v", p.Failed)
	}
	// Five files made documents; the same text twice is one document.
	if p.Documents != 5 {
		t.Fatalf("documents = %v", p.Documents)
	}
	if ms, _ := models.List(ctx); len(ms) != 1 || ms[0].Name != "translator" {
		t.Fatalf("models = %+v", ms)
	}
	// A PDF's extracted text is text.
	if idx.texts["退货政策.txt"] != "退货须在 30 天内提出。" || !strings.Contains(idx.texts["manual.md"], "Press the red button.") ||
		idx.texts["guide.pdf.txt"] != "The text once extracted from a PDF." {
		t.Fatalf("indexed = %v", idx.texts)
	}
	for _, secret := range []string{oldKey, oldKey2} {
		k, err := ks.Authenticate(ctx, secret)
		if err != nil {
			t.Fatalf("the imported key %s: %v", secret, err)
		}
		if k.Hint != secret[:7]+"…" || keys.HintOf("sk-abcdefgh") != "sk-ab…" {
			t.Fatalf("hint %q", k.Hint)
		}
	}
	list, _ := ks.List(ctx)
	for _, k := range list {
		if strings.Contains(k.Hash, "sk-") {
			t.Fatal("a key is stored in the clear")
		}
	}
	// Again: nothing new, nothing twice.
	h2 := &Handler{Source: &src, Records: store.Records(), Keys: ks, Docs: h.Docs, Models: models, Settings: fixedSettings{}}
	if err := store.Records().Delete(ctx, importPK, progressSK); err != nil {
		t.Fatal(err)
	}
	if p, err = h2.Step(ctx, src, snap, 10); err != nil || !p.Done {
		t.Fatalf("again: %+v, %v", p, err)
	}
	if list2, _ := ks.List(ctx); len(list2) != 2 {
		t.Fatalf("%d keys after importing again", len(list2))
	}
	docs, _ := ingest.New(store.Records(), blobs, idx).List(ctx, "default")
	if len(docs) != 4 {
		t.Fatalf("%d documents after importing again, want 4", len(docs))
	}
	if after := dump(t, src); !reflect.DeepEqual(before, after) {
		t.Fatalf("the old data changed:\n%v\n%v", before, after)
	}
}

// dump is the old gateway's data: its KV values, files rows and objects.
func dump(t *testing.T, src Source) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, k := range []string{KeyAI, KeyRAG, KeySystem, KeyModels, KeyAPI} {
		v, _ := src.KV.Get(ctx, k)
		out["kv:"+k] = string(v)
	}
	rows, err := src.Files.FileRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := jsonOf(rows)
	out["files"] = b
	for _, k := range []string{"files/f2-manual.md", "files/tool.exe"} {
		rc, _, err := src.Blobs.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(rc)
		rc.Close()
		out["r2:"+k] = buf.String()
	}
	return out
}

func jsonEncode(b *bytes.Buffer, v any) error { return json.NewEncoder(b).Encode(v) }
