package chat

import (
	"encoding/json"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
)

func TestObjectKeepsBytesAndOrder(t *testing.T) {
	in := `{ "z_first" : {"keep":  [1, 2.50, "三"]}, "model":"public", "temperature":0.70,` +
		`"tools":[ {"type":"function"} ], "esc\u00e9":"\u003cb\u003e" }`
	obj, err := parseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	obj = obj.set("model", json.RawMessage(`"upstream"`)).set("added", json.RawMessage(`true`))
	got := string(obj.bytes())
	want := `{"z_first":{"keep":  [1, 2.50, "三"]},"model":"upstream","temperature":0.70,` +
		`"tools":[ {"type":"function"} ],"escé":"\u003cb\u003e","added":true}`
	if got != want {
		t.Fatalf("bytes =\n%s\nwant\n%s", got, want)
	}
	if !json.Valid(obj.bytes()) {
		t.Fatal("output is not valid JSON")
	}
	if got := string(obj.del("added").del("missing").bytes()); got != want[:len(want)-len(`,"added":true}`)]+"}" {
		t.Fatalf("after del: %s", got)
	}
}

func TestParseObjectRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"empty":     ``,
		"array":     `[]`,
		"string":    `"x"`,
		"truncated": `{"a":`,
		"trailing":  `{"a":1} {"b":2}`,
		"garbage":   `{"a":1} x`,
		"bad value": `{"a":tru}`,
	} {
		if _, err := parseObject([]byte(in)); gateway.ErrorCode(err) != gateway.EInvalid {
			t.Errorf("%s: err = %v, want EInvalid", name, err)
		}
	}
}
