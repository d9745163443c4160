//go:build js && wasm

package cloudflare

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"syscall/js"

	"github.com/syumai/workers"
)

// Serve serves h to the Worker's fetch events and returns when every
// request it took has been answered and its handler has returned, so that
// main may end then (the shim runs one Go instance per event). An instance
// started for another event (a Cron Trigger) never returns: the runtime
// drops it when the event is done.
//
// It replaces syumai/workers' handleRequest, whose response stream panics
// (ending the Go program) when a client leaves during a stream: here a
// client that leaves cancels the request's context and fails the handler's
// writes, and the handler runs on as a waitUntil task of the request, so
// that what it writes after (usage, conversations) is not lost. Write
// hands each chunk to the client's stream as written; Flush is implied.
func Serve(h http.Handler) {
	var running sync.WaitGroup
	first := make(chan struct{})
	var once sync.Once
	handle := js.FuncOf(func(_ js.Value, args []js.Value) any {
		running.Add(1)
		once.Do(func() { close(first) })
		return newPromise(func(resolve, reject js.Value) {
			go func() {
				defer running.Done()
				serveOne(h, args[0], resolve)
			}()
		})
	})
	js.Global().Get("context").Get("binding").Set("handleRequest", handle)
	workers.Ready()
	<-first
	running.Wait()
	// Let the call that handed the request over return to JavaScript before
	// the program ends (a quick handler finishes within it).
	await(newPromise(func(resolve, _ js.Value) { js.Global().Get("globalThis").Call("setTimeout", resolve, 0) }))
}

// newPromise returns a Promise run by fn with its resolve and reject.
func newPromise(fn func(resolve, reject js.Value)) js.Value {
	var cb js.Func
	cb = js.FuncOf(func(_ js.Value, args []js.Value) any {
		defer cb.Release()
		fn(args[0], args[1])
		return nil
	})
	return js.Global().Get("Promise").New(cb)
}

// serveOne runs h on the JavaScript Request req and resolves with the
// Response as soon as the handler writes its head (or returns).
func serveOne(h http.Handler, jsReq js.Value, resolve js.Value) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := toRequest(ctx, jsReq)
	if err != nil {
		resolve.Invoke(js.Global().Get("Response").New("bad request: "+err.Error(), obj(map[string]any{"status": 400})))
		return
	}
	w := &responseWriter{header: http.Header{}, resolve: resolve, clientGone: cancel}
	w.body, _ = req.Body.(*streamReader)
	finished := make(chan struct{})
	waitUntil(finished)
	defer close(finished)
	defer func() {
		// A handler that panics (http.ErrAbortHandler among them) breaks its
		// answer visibly, as net/http's server does, instead of ending the
		// Go program with the stream looking complete.
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				slog.Error("handler panic", "panic", fmt.Sprint(p))
			}
			w.abort()
		}
		req.Body.Close()
	}()
	h.ServeHTTP(w, req)
	w.end()
}

// maxDiscard bounds what is read of a body the handler left: Cloudflare
// takes request bodies of at most 100 MB (500 MB on Enterprise).
const maxDiscard = 100 << 20

// waitUntil keeps the request alive until done closes, also when its
// client left.
func waitUntil(done <-chan struct{}) {
	exec := js.Global().Get("context").Get("ctx")
	if exec.IsUndefined() {
		return
	}
	exec.Call("waitUntil", newPromise(func(resolve, _ js.Value) {
		go func() {
			<-done
			resolve.Invoke()
		}()
	}))
}

func toRequest(ctx context.Context, jsReq js.Value) (*http.Request, error) {
	u, err := url.Parse(jsReq.Get("url").String())
	if err != nil {
		return nil, err
	}
	var body io.ReadCloser = http.NoBody
	if b := jsReq.Get("body"); !b.IsNull() && !b.IsUndefined() {
		body = newStreamReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, jsReq.Get("method").String(), u.String(), body)
	if err != nil {
		return nil, err
	}
	entries := js.Global().Get("Array").Call("from", jsReq.Get("headers").Call("entries"))
	for i := range entries.Length() {
		kv := entries.Index(i)
		req.Header.Add(kv.Index(0).String(), kv.Index(1).String())
	}
	req.Host = u.Host
	if n, err := strconv.ParseInt(req.Header.Get("Content-Length"), 10, 64); err == nil {
		req.ContentLength = n
	} else if body == http.NoBody {
		req.ContentLength = 0
	} else {
		req.ContentLength = -1
	}
	req.RemoteAddr = net.JoinHostPort(req.Header.Get("CF-Connecting-IP"), "0")
	if u.Scheme == "https" && req.Header.Get("X-Forwarded-Proto") == "" {
		req.Header.Set("X-Forwarded-Proto", "https")
	}
	return req, nil
}

// responseWriter streams a handler's answer into a ReadableStream.
type responseWriter struct {
	header     http.Header
	status     int
	resolve    js.Value
	clientGone context.CancelFunc
	body       *streamReader // the request's, if it has one

	mu         sync.Mutex
	controller js.Value // the stream's controller, once the head went out
	gone       bool     // the client cancelled the stream
	ended      bool
	// room is signalled when the stream's queue has room again (its pull,
	// or its cancel): a Write past the queue's high-water mark waits for
	// it, so that a slow client holds the handler back rather than the
	// whole answer piling up in the isolate's memory.
	room chan struct{}
}

// highWater is how many bytes the client's stream queues before a Write
// waits for the client to read.
const highWater = 1 << 20

func (w *responseWriter) Header() http.Header { return w.header }

// WriteHeader sends the head: the promise resolves with a Response whose
// body is the stream the handler's writes go to.
func (w *responseWriter) WriteHeader(status int) {
	if status < 200 || status > 599 {
		return // informational heads are not sent; a Response cannot hold them
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.status != 0 {
		return
	}
	w.status = status
	if w.body != nil && !w.body.done {
		// An answer before the body was read (an early refusal): the rest
		// is read and dropped first, as net/http's server does (up to a
		// bound, past which it closes the connection). A client sends its
		// whole body before it reads an answer, and wrangler's local proxy
		// holds its next request until then.
		io.Copy(io.Discard, io.LimitReader(w.body, maxDiscard))
	}
	headers := js.Global().Get("Headers").New()
	for k, vs := range w.header {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	var body any = nil
	if status != http.StatusNoContent && status != http.StatusResetContent && status != http.StatusNotModified {
		started := make(chan js.Value, 1)
		var start, cancel js.Func
		start = js.FuncOf(func(_ js.Value, args []js.Value) any {
			started <- args[0]
			return nil
		})
		cancel = js.FuncOf(func(_ js.Value, _ []js.Value) any {
			w.mu.Lock()
			w.gone = true
			w.mu.Unlock()
			w.clientGone()
			w.signal()
			return nil
		})
		pull := js.FuncOf(func(_ js.Value, _ []js.Value) any {
			w.signal()
			return nil
		})
		w.room = make(chan struct{}, 1)
		strategy := js.Global().Get("ByteLengthQueuingStrategy").New(obj(map[string]any{"highWaterMark": highWater}))
		body = js.Global().Get("ReadableStream").New(obj(map[string]any{"start": start, "pull": pull, "cancel": cancel}), strategy)
		w.controller = <-started
		start.Release()
	}
	w.resolve.Invoke(js.Global().Get("Response").New(body, obj(map[string]any{"status": status, "headers": headers})))
}

// signal tells a waiting Write that the stream has room (or is gone).
func (w *responseWriter) signal() {
	select {
	case w.room <- struct{}{}:
	default:
	}
}

// Write hands p to the client's stream at once, then waits while the
// stream holds more than highWater bytes the client has not read.
func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	if w.gone || w.ended {
		w.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if w.controller.IsUndefined() || len(p) == 0 {
		w.mu.Unlock()
		return len(p), nil
	}
	if _, err := call(w.controller, "enqueue", jsBytes(p)); err != nil {
		w.gone = true
		w.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	for {
		if w.gone {
			w.mu.Unlock()
			return len(p), nil
		}
		ds := w.controller.Get("desiredSize") // null once the stream errored
		w.mu.Unlock()
		if ds.Type() != js.TypeNumber || ds.Float() > 0 {
			return len(p), nil
		}
		<-w.room
		w.mu.Lock()
	}
}

// Flush is a no-op: every Write is handed over as it is made.
func (w *responseWriter) Flush() {}

// abort ends the answer of a handler that panicked: a 500 when nothing was
// sent yet, else an error on the stream, so that the client sees it broke.
func (w *responseWriter) abort() {
	w.mu.Lock()
	sent := w.status != 0
	w.mu.Unlock()
	if !sent {
		w.header = http.Header{"Content-Type": {"application/json"}}
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"error":{"message":"An internal error occurred.","type":"server_error","code":"internal","param":null}}`))
		w.end()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended && !w.gone && !w.controller.IsUndefined() {
		w.ended = true
		call(w.controller, "error", js.Global().Get("Error").New("the answer broke off"))
	}
}

// end closes the stream once the handler returned.
func (w *responseWriter) end() {
	w.WriteHeader(http.StatusOK)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	w.ended = true
	if !w.gone && !w.controller.IsUndefined() {
		call(w.controller, "close")
	}
}
