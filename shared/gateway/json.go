package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// Unmarshal decodes one JSON value from data into v, refusing unknown fields
// and trailing data, with an EInvalid error that says what is wrong: the
// strict decoding of every request body and settings change.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if dec.More() {
		return Errorf(EInvalid, "The request body must hold exactly one JSON value.")
	}
	return nil
}

func decodeError(err error) error {
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok && te.Field != "" {
		e := Errorf(EInvalid, "The field %q must be of type %s.", te.Field, te.Type)
		e.Param = te.Field
		return e
	}
	if errors.Is(err, io.EOF) {
		return Errorf(EInvalid, "The request body is empty; a JSON object was expected.")
	}
	return Errorf(EInvalid, "The request body is not valid JSON: %s.", jsonReason(err))
}

// jsonReason returns the decoder's description of a syntax problem or an
// unknown field; these name only the client's own input.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return se.Error() + " at offset " + strconv.FormatInt(se.Offset, 10)
	}
	return err.Error()
}
