package gateway_test

import (
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
)

// TestUnmarshalIsStrict: unknown fields, trailing values, empty bodies,
// bad syntax and wrong types are each refused as invalid, with a message
// that names the problem and nothing but the client's own input.
func TestUnmarshalIsStrict(t *testing.T) {
	type body struct {
		Name string `json:"name"`
		N    int    `json:"n"`
	}
	var ok body
	if err := gateway.Unmarshal([]byte(`{"name":"a","n":2}`), &ok); err != nil || ok != (body{"a", 2}) {
		t.Fatalf("good body: %+v, %v", ok, err)
	}
	for in, want := range map[string]string{
		`{"name":"a","extra":1}`: `unknown field "extra"`,
		`{"name":"a"} {}`:        "exactly one JSON value",
		``:                       "empty",
		`{"name":`:               "not valid JSON",
		`{"n":"two"}`:            `"n" must be of type int`,
	} {
		var v body
		err := gateway.Unmarshal([]byte(in), &v)
		if gateway.ErrorCode(err) != gateway.EInvalid || !strings.Contains(err.Error(), want) {
			t.Errorf("Unmarshal(%q) = %v, want an invalid error saying %q", in, err, want)
		}
	}
}
