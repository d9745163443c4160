package chat

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzParseObject feeds request bodies to the parser the chat handler
// reads them with: it never panics; what it accepts holds no member twice
// (in any case) and re-encodes to an object that parses the same.
func FuzzParseObject(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"a","Model":"b"}`,
		`{"model":"a","model":"b"}`,
		`{"ſtream":true}`,
		`{"a":{"b":[1,2,{"c":null}]},"d":"\u00e9\ud83d\ude00"}`,
		`{`, `[]`, `{} {}`, `{"a":1,}`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := parseObject(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, fl := range obj {
			k := fold(fl.key)
			if seen[k] {
				t.Fatalf("accepted %q twice in %q", fl.key, data)
			}
			seen[k] = true
		}
		again, err := parseObject(obj.bytes())
		if err != nil || len(again) != len(obj) {
			t.Fatalf("re-encoded %q does not parse the same: %v", obj.bytes(), err)
		}
		for i := range obj {
			if again[i].key != obj[i].key || !bytes.Equal(again[i].raw, obj[i].raw) {
				t.Fatalf("member %d changed: %q → %q", i, obj[i].key, again[i].key)
			}
		}
		if utf8.Valid(data) {
			messagesOf(obj) // must not panic either
		}
	})
}
