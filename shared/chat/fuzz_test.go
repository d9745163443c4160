package chat

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
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

// TestManyMembers refuses an object with more members than any request
// needs (checking them is linear, but there is no reason to), and takes
// one with fewer.
func TestManyMembers(t *testing.T) {
	body := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"model":"m","messages":[{"role":"user","content":"x"}]`)
		for i := range n {
			fmt.Fprintf(&b, `,"k%d":0`, i)
		}
		return []byte(b.String() + "}")
	}
	if _, err := parseObject(body(900)); err != nil {
		t.Fatalf("900 members: %v", err)
	}
	if _, err := parseObject(body(100000)); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("100,000 members: %v, want EInvalid", err)
	}
}
