// Package jsonobj reads request bodies as JSON objects whose members keep
// their order and their exact bytes, so that the gateway rewrites only what
// it must and forwards every other member untouched. It refuses what
// upstreams would read differently from the gateway: a member held twice,
// in any case, and case variants of the members the gateway reads.
package jsonobj

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
)

// Field is one member of a JSON object, its value kept byte for byte.
type Field struct {
	Key string
	Raw json.RawMessage
}

// Object is a JSON object whose members keep their order and their exact
// bytes, so that the gateway rewrites only what it must and forwards every
// other field untouched.
type Object []Field

// Parse splits a request body, a JSON object, into its members, refusing
// members it holds twice and case variants of names (see Check).
func Parse(data []byte, names []string) (Object, error) {
	obj, err := Split(data)
	if err != nil {
		return nil, err
	}
	if err := obj.Check("", names); err != nil {
		return nil, err
	}
	return obj, nil
}

// Split splits a JSON object into its members, checking nothing else.
func Split(data []byte) (Object, error) {
	if !json.Valid(data) {
		// The decoder says where and what went wrong.
		return nil, badJSON(json.Unmarshal(data, new(json.RawMessage)))
	}
	obj, ok := SplitValid(data)
	if !ok {
		return nil, gateway.Errorf(gateway.EInvalid, "The request body must be a JSON object.")
	}
	return obj, nil
}

// SplitValid splits data, valid JSON (json.Valid), into its members if it
// is an object; ok is false if it is not. It scans the bytes once and
// copies nothing but the keys.
func SplitValid(data []byte) (obj Object, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return nil, false
	}
	for i = skipSpace(data, i+1); i < len(data) && data[i] != '}'; {
		end := skipString(data, i)
		key := data[i:end]
		var name string
		if bytes.IndexByte(key, '\\') >= 0 || !utf8.Valid(key) {
			json.Unmarshal(key, &name)
		} else {
			name = string(key[1 : len(key)-1])
		}
		i = skipSpace(data, end)
		i = skipSpace(data, i+1) // the colon
		end = skipValue(data, i)
		obj = append(obj, Field{Key: name, Raw: json.RawMessage(data[i:end:end])})
		i = skipSpace(data, end)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return obj, true
}

// ElementsValid returns the elements of data, a valid JSON array, each
// byte for byte; ok is false if data is not an array.
func ElementsValid(data []byte) (elems []json.RawMessage, ok bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, false
	}
	for i = skipSpace(data, i+1); i < len(data) && data[i] != ']'; {
		end := skipValue(data, i)
		elems = append(elems, json.RawMessage(data[i:end:end]))
		i = skipSpace(data, end)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return elems, true
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the end of the string that starts at data[i].
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// skipValue returns the end of the (valid) value that starts at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = skipString(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	default: // a number, true, false or null
		for j := i; j < len(data); j++ {
			switch data[j] {
			case ' ', '\t', '\r', '\n', ',', ']', '}':
				return j
			}
		}
		return len(data)
	}
}

// Fold maps a key to what case-insensitive decoders match it as.
func Fold(s string) string { return strings.ToLower(strings.ToUpper(s)) }

// MaxMembers bounds the members of one object the gateway reads: far more
// than any request needs, few enough that checking them costs nothing.
const MaxMembers = 1000

// Check refuses duplicate keys (in any case) and case variants of
// names; where names the object ("messages[2]"), "" for the request. It
// folds each key once: linear in the members.
func (o Object) Check(where string, names []string) error {
	if len(o) > MaxMembers {
		return gateway.Errorf(gateway.EInvalid, "The request%s has more than %d members.", at(where), MaxMembers)
	}
	seen := make(map[string]string, len(o))
	for _, f := range o {
		k := Fold(f.Key)
		if first, dup := seen[k]; dup {
			e := gateway.Errorf(gateway.EInvalid, "The request has the member %q%s twice%s; send it once.", f.Key, at(where), alsoAs(first, f.Key))
			e.Param = paramName(where, f.Key)
			return e
		}
		seen[k] = f.Key
		if k != f.Key && slices.Contains(names, k) {
			e := gateway.Errorf(gateway.EInvalid, "The member %q%s must be written %q.", f.Key, at(where), k)
			e.Param = paramName(where, f.Key)
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

// Get returns the raw value of key, or nil.
func (o Object) Get(key string) json.RawMessage {
	for _, f := range o {
		if f.Key == key {
			return f.Raw
		}
	}
	return nil
}

// Set replaces the value of key, or appends it.
func (o Object) Set(key string, raw json.RawMessage) Object {
	for i, f := range o {
		if f.Key == key {
			o[i].Raw = raw
			return o
		}
	}
	return append(o, Field{Key: key, Raw: raw})
}

// Del removes key.
func (o Object) Del(key string) Object {
	for i, f := range o {
		if f.Key == key {
			return append(o[:i], o[i+1:]...)
		}
	}
	return o
}

// Bytes encodes the object, every unchanged value as it came.
func (o Object) Bytes() []byte {
	n := 2
	for _, f := range o {
		n += len(f.Key) + len(f.Raw) + 4
	}
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		k, _ := json.Marshal(f.Key) // a string always encodes
		b = append(b, k...)
		b = append(b, ':')
		b = append(b, f.Raw...)
	}
	return append(b, '}')
}

// GetString returns the string value of key; ok is false when the key is
// absent, and err is EInvalid when it is not a string.
func (o Object) GetString(key string) (s string, ok bool, err error) {
	raw := o.Get(key)
	if raw == nil {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, Invalid(key, "a string")
	}
	return s, true, nil
}

// GetBool returns the boolean value of key, false when absent or null.
func (o Object) GetBool(key string) (bool, error) {
	raw := o.Get(key)
	if raw == nil || string(raw) == "null" {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, Invalid(key, "a boolean")
	}
	return b, nil
}

// Invalid is the EInvalid error of a member that is not what it must be.
func Invalid(key, want string) error {
	e := gateway.Errorf(gateway.EInvalid, "The field %q must be %s.", key, want)
	e.Param = key
	return e
}
