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
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		// What an interface holds is not addressable: walk a copy, put it back.
		cp := reflect.New(v.Elem().Type()).Elem()
		cp.Set(v.Elem())
		if err := eachSecret(cp, path, fn); err != nil {
			return err
		}
		if v.CanSet() {
			v.Set(cp)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			// As encoding/json: an embedded struct's fields are the
			// outer one's, even when its type is unexported.
			embedded := f.Anonymous && name == ""
			if !f.IsExported() && !embedded {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if path != "" {
				name = path + "." + name
			}
			if embedded {
				name = path
			}
			fv := v.Field(i)
			if !f.IsExported() {
				fv = reflect.NewAt(fv.Type(), fv.Addr().UnsafePointer()).Elem()
			}
			if err := eachSecret(fv, name, fn); err != nil {
				return err
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := eachSecret(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn); err != nil {
				return err
			}
		}
	case reflect.Map:
		// Map values are not addressable: walk a copy of each, put it back.
		for _, k := range v.MapKeys() {
			cp := reflect.New(v.Type().Elem()).Elem()
			cp.Set(v.MapIndex(k))
			if err := eachSecret(cp, fmt.Sprintf("%s[%v]", path, k.Interface()), fn); err != nil {
				return err
			}
			v.SetMapIndex(k, cp)
		}
	}
	return nil
}
