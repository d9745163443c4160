package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
)

type common struct {
	Token gateway.Secret `json:"token"`
}

type holder struct {
	common
	Up      gateway.Upstream            `json:"up"`
	ByName  map[string]gateway.Secret   `json:"by_name"`
	Any     any                         `json:"any"`
	List    []gateway.Upstream          `json:"list"`
	Skipped gateway.Secret              `json:"-"`
	Nested  map[string]gateway.Upstream `json:"nested"`
}

// TestEachSecretFindsWhatJSONWrites walks a value holding secrets in every
// shape encoding/json writes out (an embedded struct of an unexported
// type, a map, an interface, a list): each one is found, can be changed in
// place, and none is left in what JSON writes.
func TestEachSecretFindsWhatJSONWrites(t *testing.T) {
	h := holder{common: common{Token: "sk-embedded-secret"}, Up: gateway.Upstream{APIKey: "sk-field-secret"},
		ByName: map[string]gateway.Secret{"a": "sk-map-secret"}, Any: &gateway.Upstream{APIKey: "sk-any-secret"},
		List: []gateway.Upstream{{APIKey: "sk-list-secret"}}, Nested: map[string]gateway.Upstream{"x": {APIKey: "sk-nested-secret"}}}
	var paths []string
	err := gateway.EachSecret(&h, func(path string, s *gateway.Secret) error {
		paths = append(paths, path)
		*s = gateway.Secret(s.Masked())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(h)
	if strings.Contains(string(out), "secret") {
		t.Fatalf("after masking every secret found (%v), JSON still holds one: %s", paths, out)
	}
	if len(paths) != 6 {
		t.Fatalf("found %d secrets at %v, want 6", len(paths), paths)
	}
}

// TestSettingsSecrets checks the settings' own secrets are all found.
func TestSettingsSecrets(t *testing.T) {
	st := gateway.DefaultSettings()
	st.AI.APIKey, st.Fallback.APIKey, st.Image.APIKey, st.RAG.APIKey = "a-secret-1", "a-secret-2", "a-secret-3", "a-secret-4"
	n := 0
	gateway.EachSecret(&st, func(string, *gateway.Secret) error { n++; return nil })
	if n != 4 {
		t.Fatalf("found %d secrets in the settings, want 4", n)
	}
}

// TestDefaultMaxMessages keeps the whole history by default: an agent's
// long tool loop is never cut unless the admin asks for it.
func TestDefaultMaxMessages(t *testing.T) {
	if n := gateway.DefaultSettings().MaxMessages; n != 0 {
		t.Fatalf("max_messages defaults to %d, want 0 (no limit)", n)
	}
}
