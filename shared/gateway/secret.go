package gateway

import (
	"fmt"
	"reflect"
	"strings"
)

// Secret is an upstream credential. Every Secret field, wherever it sits
// in the settings (or anything else EachSecret walks), is sealed at rest,
// masked when shown, and round-trips unchanged when its masked form is
// sent back: the stores find them all by type, so a new one needs no code
// of its own.
type Secret string

// Masked returns the secret as it may be shown: its first three and last
// four characters, or "****" when it is short, or "" when empty.
func (s Secret) Masked() string { return Mask(string(s)) }

var secretType = reflect.TypeFor[Secret]()

// EachSecret calls fn with the JSON path ("ai.api_key",
// "channels[2].api_keys[0]") and the address of every Secret in *v, which
// must be a pointer: through structs (their exported fields, named by
// their json tags), pointers, slices and arrays, in order. It stops at the
// first error fn returns.
func EachSecret(v any, fn func(path string, s *Secret) error) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("gateway: EachSecret needs a non-nil pointer, not %T", v)
	}
	return eachSecret(rv.Elem(), "", fn)
}

func eachSecret(v reflect.Value, path string, fn func(string, *Secret) error) error {
	if v.Type() == secretType {
		return fn(path, v.Addr().Interface().(*Secret))
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return eachSecret(v.Elem(), path, fn)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if f.Anonymous && f.Tag.Get("json") == "" {
				name = path
			}
			if err := eachSecret(v.Field(i), name, fn); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := eachSecret(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn); err != nil {
				return err
			}
		}
	}
	return nil
}
