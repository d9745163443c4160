//go:build js && wasm

// Package cloudflare implements the storage roles on a Worker's bindings:
// KV on Workers KV, Records on D1 (package sqlstore's statements, through
// syumai/workers' database/sql driver), Blobs on R2. It calls the bindings'
// JavaScript APIs directly, through syscall/js, where the Go wrappers stop
// short (R2 listing by prefix, multipart uploads, a missing KV value).
package cloudflare

import (
	"errors"
	"fmt"
	"io"
	"syscall/js"
)

var (
	uint8Array = js.Global().Get("Uint8Array")
	object     = js.Global().Get("Object")
)

// jsError turns a thrown or rejected JavaScript value into a Go error.
func jsError(v js.Value) error {
	if v.Type() == js.TypeObject {
		if msg := v.Get("message"); msg.Type() == js.TypeString {
			return errors.New(msg.String())
		}
	}
	return errors.New(js.Global().Get("String").Invoke(v).String())
}

// call calls method of v, turning a synchronous throw into an error.
func call(v js.Value, method string, args ...any) (res js.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			if je, ok := r.(js.Error); ok {
				err = jsError(je.Value)
				return
			}
			err = fmt.Errorf("%s: %v", method, r)
		}
	}()
	return v.Call(method, args...), nil
}

// await waits for a promise and returns what it resolved to.
func await(p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	resolve := js.FuncOf(func(_ js.Value, args []js.Value) any {
		v := js.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	reject := js.FuncOf(func(_ js.Value, args []js.Value) any {
		err := errors.New("rejected")
		if len(args) > 0 {
			err = jsError(args[0])
		}
		ch <- result{err: err}
		return nil
	})
	defer resolve.Release()
	defer reject.Release()
	if _, err := call(p, "then", resolve, reject); err != nil {
		return js.Undefined(), err
	}
	r := <-ch
	return r.v, r.err
}

// callAwait calls method of v and waits for the promise it returns.
func callAwait(v js.Value, method string, args ...any) (js.Value, error) {
	p, err := call(v, method, args...)
	if err != nil {
		return js.Undefined(), err
	}
	return await(p)
}

// jsBytes copies b into a new Uint8Array.
func jsBytes(b []byte) js.Value {
	a := uint8Array.New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}

// goBytes copies an ArrayBuffer or a typed array into Go.
func goBytes(v js.Value) []byte {
	a := v
	if !a.InstanceOf(uint8Array) {
		a = uint8Array.New(v)
	}
	b := make([]byte, a.Get("length").Int())
	js.CopyBytesToGo(b, a)
	return b
}

// obj makes a JavaScript object of m.
func obj(m map[string]any) js.Value {
	o := object.New()
	for k, v := range m {
		o.Set(k, v)
	}
	return o
}

// streamReader reads a ReadableStream of bytes.
type streamReader struct {
	reader js.Value
	buf    []byte
	done   bool
}

func newStreamReader(stream js.Value) *streamReader {
	return &streamReader{reader: stream.Call("getReader")}
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.done {
			return 0, io.EOF
		}
		chunk, err := callAwait(s.reader, "read")
		if err != nil {
			return 0, err
		}
		if chunk.Get("done").Bool() {
			s.done = true
			continue
		}
		s.buf = goBytes(chunk.Get("value"))
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

// Close cancels the stream, without waiting for the cancellation.
func (s *streamReader) Close() error {
	if !s.done {
		s.done = true
		call(s.reader, "cancel")
	}
	return nil
}
