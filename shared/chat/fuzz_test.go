package chat

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/jsonobj"
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
		obj, err := parseRequest(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, fl := range obj {
			k := jsonobj.Fold(fl.Key)
			if seen[k] {
				t.Fatalf("accepted %q twice in %q", fl.Key, data)
			}
			seen[k] = true
		}
		again, err := parseRequest(obj.Bytes())
		if err != nil || len(again) != len(obj) {
			t.Fatalf("re-encoded %q does not parse the same: %v", obj.Bytes(), err)
		}
		for i := range obj {
			if again[i].Key != obj[i].Key || !bytes.Equal(again[i].Raw, obj[i].Raw) {
				t.Fatalf("member %d changed: %q → %q", i, obj[i].Key, again[i].Key)
			}
		}
		if utf8.Valid(data) {
			messagesOf(obj) // must not panic either
		}
	})
}
