package settings_test

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/sqlstore"
)

func store(t *testing.T) (*settings.Store, *sqlstore.KV) {
	t.Helper()
	db := sqlitetest.Open(t)
	box, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return settings.New(db.KV(), box, 0), db.KV()
}

// TestKeysSealedAtRest saves every upstream secret (the chat, fallback,
// image and RAG upstreams'): none is stored in plaintext, each comes back,
// each is masked for display, and a masked one sent back is unchanged.
func TestKeysSealedAtRest(t *testing.T) {
	s, kv := store(t)
	ctx := context.Background()
	st := gateway.DefaultSettings()
	st.AI = gateway.Upstream{BaseURL: "https://api.example", APIKey: "sk-ai-secret-value", Model: "m"}
	st.Fallback = gateway.Upstream{BaseURL: "https://fb.example", APIKey: "sk-fallback-secret-value", Model: "m"}
	st.Image = gateway.Upstream{BaseURL: "https://img.example", APIKey: "sk-image-secret-value"}
	st.RAG.BaseURL, st.RAG.APIKey, st.RAG.Model = "https://api.example", "sk-rag-secret-value", "e"
	if err := s.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	raw, err := kv.Get(ctx, "settings")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("secret-value")) {
		t.Fatalf("stored settings hold a plaintext key: %s", raw)
	}
	got, err := s.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, st) {
		t.Fatalf("Get = %+v, want %+v", got, st)
	}
	masked := settings.Masked(got)
	shown, _ := json.Marshal(masked)
	if bytes.Contains(shown, []byte("secret-value")) || masked.Fallback.APIKey != "sk-****alue" || masked.Image.APIKey != "sk-****alue" {
		t.Fatalf("masked settings show a secret: %s", shown)
	}
	if got.Fallback.APIKey != "sk-fallback-secret-value" {
		t.Fatal("masking changed the settings it was given")
	}
	// The masked form sent back (the admin page's round trip) changes nothing.
	back, err := s.Patch(ctx, shown)
	if err != nil || !reflect.DeepEqual(back, st) {
		t.Fatalf("masked round trip = %+v, %v", back, err)
	}
}

// TestPlaintextSecretsSealedOnRead reads settings an older version stored
// with the fallback and image keys in plaintext: they are served, and
// sealed in the store at once.
func TestPlaintextSecretsSealedOnRead(t *testing.T) {
	s, kv := store(t)
	ctx := context.Background()
	st := gateway.DefaultSettings()
	st.AI = gateway.Upstream{BaseURL: "https://api.example", APIKey: "sk-ai-secret-value", Model: "m"}
	if err := s.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	raw, _ := kv.Get(ctx, "settings")
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	doc["fallback"] = map[string]any{"base_url": "https://fb.example", "api_key": "sk-old-plaintext-value", "model": "m"}
	old, _ := json.Marshal(doc)
	if err := kv.Put(ctx, "settings", old); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx)
	if err != nil || got.Fallback.APIKey != "sk-old-plaintext-value" || got.AI.APIKey != "sk-ai-secret-value" {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	raw, _ = kv.Get(ctx, "settings")
	if bytes.Contains(raw, []byte("plaintext-value")) {
		t.Fatalf("the old plaintext key is still stored: %s", raw)
	}
}

func TestMerge(t *testing.T) {
	cur := gateway.DefaultSettings()
	cur.AI = gateway.Upstream{BaseURL: "https://a.example", APIKey: "sk-0123456789abcdef", Model: "m"}
	cur.SystemPrompt = "be brief"
	tests := []struct {
		name  string
		patch string
		check func(gateway.Settings) bool
		code  string
	}{
		{"nested field only", `{"rag":{"top_k":2}}`, func(s gateway.Settings) bool {
			return s.RAG.TopK == 2 && s.AI == cur.AI && s.SystemPrompt == "be brief"
		}, ""},
		{"masked key unchanged", `{"ai":{"api_key":"` + cur.AI.APIKey.Masked() + `","model":"m2"}}`, func(s gateway.Settings) bool {
			return s.AI.APIKey == cur.AI.APIKey && s.AI.Model == "m2"
		}, ""},
		{"new key replaces", `{"ai":{"api_key":"sk-new"}}`, func(s gateway.Settings) bool { return s.AI.APIKey == "sk-new" }, ""},
		// A saved key does not follow its upstream to a new address.
		{"masked key to a new base URL", `{"ai":{"api_key":"` + cur.AI.APIKey.Masked() + `","base_url":"https://evil.example"}}`, nil, gateway.EInvalid},
		{"key left out, new base URL", `{"ai":{"base_url":"https://evil.example"}}`, nil, gateway.EInvalid},
		{"base URL cleared", `{"ai":{"api_key":"` + cur.AI.APIKey.Masked() + `","base_url":""}}`, func(s gateway.Settings) bool {
			return s.AI.BaseURL == "" && s.AI.APIKey == cur.AI.APIKey
		}, ""},
		{"new key with a new base URL", `{"ai":{"api_key":"sk-other","base_url":"https://b.example"}}`, func(s gateway.Settings) bool {
			return s.AI.APIKey == "sk-other" && s.AI.BaseURL == "https://b.example"
		}, ""},
		{"empty key clears", `{"ai":{"api_key":""}}`, func(s gateway.Settings) bool { return s.AI.APIKey == "" }, ""},
		{"unknown field", `{"nope":1}`, nil, gateway.EInvalid},
		{"unknown nested field", `{"ai":{"nope":1}}`, nil, gateway.EInvalid},
		{"wrong type", `{"max_messages":"x"}`, nil, gateway.EInvalid},
		{"not an object", `[1]`, nil, gateway.EInvalid},
		{"not JSON", `{`, nil, gateway.EInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := settings.Merge(cur, []byte(tc.patch))
			if tc.code != "" {
				if gateway.ErrorCode(err) != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || !tc.check(got) {
				t.Fatalf("Merge = %+v, %v", got, err)
			}
		})
	}
}

func TestPatchValidates(t *testing.T) {
	s, _ := store(t)
	ctx := context.Background()
	if _, err := s.Patch(ctx, []byte(`{"max_messages":5000}`)); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("err = %v, want EInvalid", err)
	}
	got, err := s.Get(ctx)
	if err != nil || !reflect.DeepEqual(got, gateway.DefaultSettings()) {
		t.Fatalf("after a refused patch: %+v, %v", got, err)
	}
	if m := gateway.Mask("sk-0123456789abcdef"); m != "sk-****cdef" || strings.Contains(m, "0123") {
		t.Fatalf("Mask = %q", m)
	}
}
