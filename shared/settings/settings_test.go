package settings_test

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/sqlite"
	"github.com/aigateway/aigateway/shared/sqlite/sqlitetest"
)

func store(t *testing.T) (*settings.Store, *sqlite.KV) {
	t.Helper()
	db := sqlitetest.Open(t)
	box, err := seal.New(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return settings.New(db.KV(), box, 0), db.KV()
}

func TestKeysSealedAtRest(t *testing.T) {
	s, kv := store(t)
	ctx := context.Background()
	st := gateway.DefaultSettings()
	st.AI = gateway.Upstream{BaseURL: "https://api.example", APIKey: "sk-ai-secret-value", Model: "m"}
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
		{"masked key unchanged", `{"ai":{"api_key":"` + gateway.Mask(cur.AI.APIKey) + `","model":"m2"}}`, func(s gateway.Settings) bool {
			return s.AI.APIKey == cur.AI.APIKey && s.AI.Model == "m2"
		}, ""},
		{"new key replaces", `{"ai":{"api_key":"sk-new"}}`, func(s gateway.Settings) bool { return s.AI.APIKey == "sk-new" }, ""},
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
