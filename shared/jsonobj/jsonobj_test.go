package jsonobj_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
)

func TestObjectKeepsBytesAndOrder(t *testing.T) {
	in := `{ "z_first" : {"keep":  [1, 2.50, "三"]}, "model":"public", "temperature":0.70,` +
		`"tools":[ {"type":"function"} ], "esc\u00e9":"\u003cb\u003e" }`
	obj, err := jsonobj.Parse([]byte(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	obj = obj.Set("model", json.RawMessage(`"upstream"`)).Set("added", json.RawMessage(`true`))
	got := string(obj.Bytes())
	want := `{"z_first":{"keep":  [1, 2.50, "三"]},"model":"upstream","temperature":0.70,` +
		`"tools":[ {"type":"function"} ],"escé":"\u003cb\u003e","added":true}`
	if got != want {
		t.Fatalf("bytes =\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(obj.Bytes()) {
		t.Fatal("output is not valid JSON")
	}
	if got := string(obj.Del("added").Del("missing").Bytes()); got != want[:len(want)-len(`,"added":true}`)]+"}" {
		t.Fatalf("after del: %s", got)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     ``,
		"array":     `[]`,
		"string":    `"x"`,
		"truncated": `{"a":`,
		"trailing":  `{"a":1} {"b":2}`,
		"garbage":   `{"a":1} x`,
		"bad value": `{"a":tru}`,
	} {
		if _, err := jsonobj.Parse([]byte(in), nil); gateway.ErrorCode(err) != gateway.EInvalid {
			t.Errorf("%s: err = %v, want EInvalid", name, err)
		}
	}
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
	if _, err := jsonobj.Parse(body(900), nil); err != nil {
		t.Fatalf("900 members: %v", err)
	}
	if _, err := jsonobj.Parse(body(100000), nil); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("100,000 members: %v, want EInvalid", err)
	}
}
