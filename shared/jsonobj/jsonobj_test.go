package jsonobj_test

import (
	"bytes"
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

// split is the reference the scanner is checked against: encoding/json's
// decoder, token by token.
func split(data []byte) (jsonobj.Object, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var obj jsonobj.Object
	for dec.More() {
		tok, _ := dec.Token()
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false
		}
		obj = append(obj, jsonobj.Field{Key: tok.(string), Raw: raw})
	}
	return obj, true
}

// FuzzSplitValid: on valid JSON, the scanner finds the members (keys
// unescaped, values byte for byte) encoding/json's decoder finds.
func FuzzSplitValid(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { } `, `[]`, `"x"`, `1`, `{"a":1}`, "{\n\t\"a\" :\r\n 1 , \"b\":[1,{\"c\":\"}\"}],\"d\":null}",
		`{"a\"b":"x\\","c":"\u007d{[","d\u0041":-1.5e+3,"e":true,"f":false,"g":{"h":{"i":[[]]}}}`,
		`{"model":"m","messages":[{"role":"user","content":"hi \"there\" {"}],"stream":true}`,
		`{"a":1,"a":2,"A":3}`, `{"":""}`, `{"k":"\ud83d\ude00"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		got, ok := jsonobj.SplitValid(data)
		want, wantOK := split(data)
		if ok != wantOK || len(got) != len(want) {
			t.Fatalf("SplitValid(%q) = %v %v, want %v %v", data, got, ok, want, wantOK)
		}
		for i := range want {
			if got[i].Key != want[i].Key || !bytes.Equal(got[i].Raw, want[i].Raw) {
				t.Fatalf("SplitValid(%q)[%d] = %q %s, want %q %s", data, i, got[i].Key, got[i].Raw, want[i].Key, want[i].Raw)
			}
		}
		if elems, ok := jsonobj.ElementsValid(data); ok {
			var ref []json.RawMessage
			json.Unmarshal(data, &ref)
			if len(elems) != len(ref) {
				t.Fatalf("ElementsValid(%q) = %d elements, want %d", data, len(elems), len(ref))
			}
			for i := range ref {
				if !bytes.Equal(elems[i], ref[i]) {
					t.Fatalf("ElementsValid(%q)[%d] = %s, want %s", data, i, elems[i], ref[i])
				}
			}
		}
	})
}
