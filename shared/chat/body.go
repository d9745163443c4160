package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/aigateway/aigateway/shared/gateway"
)

// field is one member of a JSON object, its value kept byte for byte.
type field struct {
	key string
	raw json.RawMessage
}

// object is a JSON object whose members keep their order and their exact
// bytes, so that the gateway rewrites only what it must and forwards every
// other field untouched.
type object []field

// parseObject splits a request body, a JSON object, into its members,
// refusing members it holds twice (see requestMembers).
func parseObject(data []byte) (object, error) {
	obj, err := parseMember(data)
	if err != nil {
		return nil, err
	}
	if err := obj.checkMembers("", requestMembers); err != nil {
		return nil, err
	}
	return obj, nil
}

// parseMember splits a JSON object into its members.
func parseMember(data []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, badJSON(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, gateway.Errorf(gateway.EInvalid, "The request body must be a JSON object.")
	}
	var obj object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, badJSON(err)
		}
		key, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, badJSON(err)
		}
		obj = append(obj, field{key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, badJSON(err)
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) != 0 {
		return nil, gateway.Errorf(gateway.EInvalid, "The request body must hold exactly one JSON object.")
	}
	return obj, nil
}

// The members the gateway reads itself, of a request and of a message.
// Upstreams decode JSON their own way: some take the last of two equal
// keys, some the first, and Go's decoder takes "Model" (or "ſtream") for
// "model" ("stream"). So that the upstream can never act on a member the
// gateway read differently, an object the gateway reads may hold no key
// twice, not even in another case, and no case variant of these.
var (
	requestMembers = []string{"model", "messages", "stream", "stream_options", "conversation_id", "max_tokens",
		"max_completion_tokens", "n", "input", "prompt", "size", "response_format", "encoding_format", "tools", "tool_choice"}
	messageMembers = []string{"role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content"}
)

// fold maps a key to what case-insensitive decoders match it as.
func fold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// maxMembers bounds the members of one object the gateway reads: far more
// than any request needs, few enough that checking them costs nothing.
const maxMembers = 1000

// checkMembers refuses duplicate keys (in any case) and case variants of
// names; where names the object ("messages[2]"), "" for the request. It
// folds each key once: linear in the members.
func (o object) checkMembers(where string, names []string) error {
	if len(o) > maxMembers {
		return gateway.Errorf(gateway.EInvalid, "The request%s has more than %d members.", at(where), maxMembers)
	}
	seen := make(map[string]string, len(o))
	for _, f := range o {
		k := fold(f.key)
		if first, dup := seen[k]; dup {
			e := gateway.Errorf(gateway.EInvalid, "The request has the member %q%s twice%s; send it once.", f.key, at(where), alsoAs(first, f.key))
			e.Param = paramName(where, f.key)
			return e
		}
		seen[k] = f.key
		if k != f.key && slices.Contains(names, k) {
			e := gateway.Errorf(gateway.EInvalid, "The member %q%s must be written %q.", f.key, at(where), k)
			e.Param = paramName(where, f.key)
			return e
		}
	}
	return nil
}

func at(where string) string {
	if where == "" {
		return ""
	}
	return " of " + where
}

func alsoAs(a, b string) string {
	if a == b {
		return ""
	}
	return fmt.Sprintf(" (also as %q)", a)
}

func paramName(where, key string) string {
	if where == "" {
		return key
	}
	return where + "." + key
}

func badJSON(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return gateway.Errorf(gateway.EInvalid, "The request body is not valid JSON: %s at offset %d.", se.Error(), se.Offset)
	}
	return gateway.Errorf(gateway.EInvalid, "The request body is not valid JSON.")
}

// get returns the raw value of key, or nil.
func (o object) get(key string) json.RawMessage {
	for _, f := range o {
		if f.key == key {
			return f.raw
		}
	}
	return nil
}

// set replaces the value of key, or appends it.
func (o object) set(key string, raw json.RawMessage) object {
	for i, f := range o {
		if f.key == key {
			o[i].raw = raw
			return o
		}
	}
	return append(o, field{key: key, raw: raw})
}

// del removes key.
func (o object) del(key string) object {
	for i, f := range o {
		if f.key == key {
			return append(o[:i], o[i+1:]...)
		}
	}
	return o
}

// bytes encodes the object, every unchanged value as it came.
func (o object) bytes() []byte {
	n := 2
	for _, f := range o {
		n += len(f.key) + len(f.raw) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.key) // a string always encodes
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, f.raw...)
	}
	return append(b, '}')
}

// stringValue returns the string value of key; ok is false when the key is
// absent, and err is EInvalid when it is not a string.
func (o object) stringValue(key string) (s string, ok bool, err error) {
	raw := o.get(key)
	if raw == nil {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, invalidField(key, "a string")
	}
	return s, true, nil
}

// boolValue returns the boolean value of key, false when absent or null.
func (o object) boolValue(key string) (bool, error) {
	raw := o.get(key)
	if raw == nil || string(raw) == "null" {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, invalidField(key, "a boolean")
	}
	return b, nil
}

func invalidField(key, want string) error {
	e := gateway.Errorf(gateway.EInvalid, "The field %q must be %s.", key, want)
	e.Param = key
	return e
}
