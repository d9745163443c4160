package lambdaserve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
)

// StreamHandler answers API Gateway REST proxy events with a streamed
// response.
type StreamHandler func(context.Context, events.APIGatewayProxyRequest) (*events.APIGatewayProxyStreamingResponse, error)

// Stream adapts h to REST API response streaming (integration transfer mode
// STREAM): the status and headers go out as soon as h decides them, then
// every Write of h reaches the client as the runtime reads it, without
// buffering. When the runtime stops reading (the client left, or the
// invocation ended), h's request context is cancelled and its writes fail.
func Stream(h http.Handler) StreamHandler {
	var accessor core.RequestAccessor
	return func(ctx context.Context, ev events.APIGatewayProxyRequest) (*events.APIGatewayProxyStreamingResponse, error) {
		req, err := accessor.EventToRequestWithContext(ctx, ev)
		if err != nil {
			body, _ := json.Marshal(map[string]any{"error": map[string]any{
				"message": "The request could not be read.", "type": "invalid_request_error", "code": "invalid", "param": nil}})
			return &events.APIGatewayProxyStreamingResponse{
				StatusCode: http.StatusBadRequest,
				Headers:    map[string]string{"Content-Type": "application/json"},
				Body:       bytes.NewReader(body),
			}, nil
		}
		ctx, cancel := context.WithCancel(req.Context())
		req = req.WithContext(ctx)
		pr, pw := io.Pipe()
		w := &streamWriter{header: http.Header{}, pipe: pw, ready: make(chan struct{})}
		go func() {
			defer func() {
				if p := recover(); p != nil {
					if p != http.ErrAbortHandler {
						slog.ErrorContext(ctx, "panic in streamed handler", "panic", fmt.Sprint(p))
					}
					w.WriteHeader(http.StatusInternalServerError)
					// The body breaks off with an error, which the runtime
					// reports: the client sees a broken answer, not a short
					// one that looks whole.
					pw.CloseWithError(errAborted)
					return
				}
				w.WriteHeader(http.StatusOK) // a handler that wrote nothing still answers
				pw.Close()
			}()
			h.ServeHTTP(w, req)
		}()
		<-w.ready
		return &events.APIGatewayProxyStreamingResponse{
			StatusCode:        w.status,
			MultiValueHeaders: w.sent,
			Body:              &streamBody{PipeReader: pr, cancel: cancel},
		}, nil
	}
}

// errAborted ends the body of a response whose handler panicked.
var errAborted = errors.New("lambdaserve: the handler aborted its response")

// streamWriter is the http.ResponseWriter of a streamed response. Its
// writes go straight into the pipe the runtime reads the body from.
type streamWriter struct {
	header http.Header
	pipe   *io.PipeWriter

	once   sync.Once
	ready  chan struct{}
	status int
	sent   map[string][]string
}

func (w *streamWriter) Header() http.Header { return w.header }

func (w *streamWriter) WriteHeader(code int) {
	w.once.Do(func() {
		w.status = code
		w.sent = maps.Clone(w.header)
		delete(w.sent, "Content-Length") // the body is streamed
		close(w.ready)
	})
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.pipe.Write(p)
}

// Flush implements http.Flusher. Writes are not buffered: each one is
// handed to the runtime as it reads, so there is nothing to flush.
func (w *streamWriter) Flush() { w.WriteHeader(http.StatusOK) }

// streamBody is the response body the runtime reads; closing it ends the
// handler's request.
type streamBody struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (b *streamBody) Close() error {
	b.cancel()
	return b.PipeReader.Close()
}
