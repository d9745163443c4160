package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/storage"
)

type ctxKey struct{}

// SetupLogging makes slog write JSON lines to stderr at cfg.LogLevel, each
// record carrying the request ID of its context.
func SetupLogging(cfg Config) {
	h := slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel})
	slog.SetDefault(slog.New(requestIDHandler{h}))
}

type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id, ok := ctx.Value(ctxKey{}).(string); ok {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

// statusWriter remembers the status for the access log. It passes Flush
// through (via Unwrap) so that streaming still works.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// middleware gives every request an ID (X-Request-ID), turns panics into
// 500 errors, writes one access-log line and records the request's metrics
// under the function name fn. Request bodies,
// headers and query strings are never logged: they may hold secrets.
func middleware(fn string, rec metrics.Recorder, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := rand.Text()[:16]
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
		w.Header().Set("X-Request-ID", id)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p != http.ErrAbortHandler {
					slog.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(p))
				}
				if sw.status != 0 || p == http.ErrAbortHandler {
					// Part of the answer is out: end the connection without
					// finishing it, so that the client sees it broke off
					// rather than a short answer that looks whole.
					rec.Request(fn, http.StatusInternalServerError, time.Since(start))
					panic(http.ErrAbortHandler)
				}
				respond.Error(sw, r, fmt.Errorf("panic: %v", p))
			}
			latency := time.Since(start)
			slog.InfoContext(r.Context(), "request", "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "ms", latency.Milliseconds())
			rec.Request(fn, sw.status, latency)
		}()
		next.ServeHTTP(sw, r)
	})
}

func unavailable(err error) error {
	if gateway.ErrorCode(err) != gateway.EInternal {
		return err
	}
	return storage.Unavailable("open gateway", err)
}

// Middleware is what every answer of the function fn goes through, without
// metrics: a request ID, the access log line, and a panic turned into a
// 500 or, once the answer has started, an aborted connection.
func Middleware(fn string, next http.Handler) http.Handler {
	return middleware(fn, metrics.Nop{}, next)
}

// BodyDeadline bounds how long a request body may take to arrive on a
// long-running server: base, plus a second per 100 KB the request
// announces (five minutes for a body of unknown length), at most an hour.
// A client that trickles its body is cut off at the deadline. Once the body
// is read the deadline is lifted, so that a long streamed answer is not
// cut with it.
func BodyDeadline(base time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || base <= 0 {
			next.ServeHTTP(w, r)
			return
		}
		d := 5 * time.Minute
		if r.ContentLength >= 0 {
			d = base + time.Duration(r.ContentLength/(100<<10))*time.Second
		}
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(min(d, time.Hour))) == nil {
			// A copy: the server keeps its own body, so that it can tell a
			// large unread body (and close rather than read it) after a
			// handler that refused the request unread.
			r2 := *r
			r2.Body = &liftOnEOF{ReadCloser: r.Body, rc: rc}
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// liftOnEOF lifts the read deadline once the body has been read.
type liftOnEOF struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *liftOnEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
