// Package respond writes JSON answers and OpenAI-shaped errors, and reads
// JSON request bodies under a size limit. It holds the one table that maps
// gateway error codes to HTTP statuses and OpenAI error types.
package respond

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
)

type kind struct {
	status int
	typ    string
}

// kinds maps each error code to its status and OpenAI error type.
var kinds = map[string]kind{
	gateway.EInvalid:       {http.StatusBadRequest, "invalid_request_error"},
	gateway.EUnauthorized:  {http.StatusUnauthorized, "authentication_error"},
	gateway.EForbidden:     {http.StatusForbidden, "permission_error"},
	gateway.ENotFound:      {http.StatusNotFound, "invalid_request_error"},
	gateway.EModelNotFound: {http.StatusNotFound, "invalid_request_error"},
	gateway.EConflict:      {http.StatusConflict, "invalid_request_error"},
	gateway.ETooLarge:      {http.StatusRequestEntityTooLarge, "invalid_request_error"},
	gateway.EUnsupported:   {http.StatusUnsupportedMediaType, "invalid_request_error"},
	gateway.ELimited:       {http.StatusTooManyRequests, "rate_limit_error"},
	gateway.EQuota:         {http.StatusTooManyRequests, "insufficient_quota"},
	gateway.EUpstream:      {http.StatusBadGateway, "upstream_error"},
	gateway.EUnavailable:   {http.StatusServiceUnavailable, "server_error"},
	gateway.ETimeout:       {http.StatusGatewayTimeout, "upstream_error"},
	gateway.EInternal:      {http.StatusInternalServerError, "server_error"},
}

// Status returns the HTTP status for err's code.
func Status(err error) int { return kinds[gateway.ErrorCode(err)].status }

// ErrorBody is the OpenAI error envelope.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an OpenAI error.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    string  `json:"code"`
	Param   *string `json:"param"`
}

// Body returns the OpenAI error envelope of err. Internal errors get a
// generic message, never their own text.
func Body(err error) ErrorBody {
	code := gateway.ErrorCode(err)
	d := ErrorDetail{Message: gateway.ErrorMessage(err), Type: kinds[code].typ, Code: code}
	if e, ok := errors.AsType[*gateway.Error](err); ok && e.Param != "" {
		d.Param = &e.Param
	}
	return ErrorBody{Error: d}
}

// Error writes err as an OpenAI error with its status. Internal and
// unavailable errors are logged with their full text, which clients never
// see.
func Error(w http.ResponseWriter, r *http.Request, err error) {
	Log(r, err)
	code := gateway.ErrorCode(err)
	if e, ok := errors.AsType[*gateway.Error](err); ok && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	JSON(w, kinds[code].status, Body(err))
}

// Log logs an internal or unavailable error with its full text, which
// clients never see.
func Log(r *http.Request, err error) {
	code := gateway.ErrorCode(err)
	if (code == gateway.EInternal || code == gateway.EUnavailable) && r.Context().Err() == nil {
		slog.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// JSON writes v as JSON with the given status.
func JSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Answers are JSON with nosniff, never HTML: < > & need no escaping
	// (which would make stored text six times longer).
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Error("encode response", "err", err)
		http.Error(w, `{"error":{"message":"An internal error occurred.","type":"server_error","code":"internal","param":null}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// ReadBody reads the whole request body, at most limit bytes. A body that
// announces or reaches more is an ETooLarge error, detected before it is
// read in full.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, tooLarge(limit)
		}
		return nil, gateway.Errorf(gateway.EInvalid, "The request body could not be read.")
	}
	// JSON is UTF-8 (RFC 8259): other bytes would be read one way here and
	// another upstream, or stored and handed back broken.
	if !utf8.Valid(body) {
		return nil, gateway.Errorf(gateway.EInvalid, "The request body is not valid UTF-8 (at byte %d).", invalidAt(body))
	}
	return body, nil
}

// invalidAt returns the offset of the first byte that is not UTF-8.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

func tooLarge(limit int64) error {
	return gateway.Errorf(gateway.ETooLarge, "The request body is larger than the limit of %d bytes.", limit)
}

// DecodeJSON reads a JSON object of at most limit bytes from the request
// into v, refusing unknown fields and trailing data.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	body, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return gateway.Unmarshal(body, v)
}

// Methods returns a handler that dispatches on the request method and
// answers any other method with a 405 OpenAI error and an Allow header.
// HEAD is served by the GET handler where there is one (net/http sends no
// body).
func Methods(byMethod map[string]http.HandlerFunc) http.HandlerFunc {
	if get, ok := byMethod[http.MethodGet]; ok && byMethod[http.MethodHead] == nil {
		byMethod = maps.Clone(byMethod)
		byMethod[http.MethodHead] = get
	}
	allow := make([]string, 0, len(byMethod))
	for m := range byMethod {
		allow = append(allow, m)
	}
	slices.Sort(allow)
	return func(w http.ResponseWriter, r *http.Request) {
		if h, ok := byMethod[r.Method]; ok {
			h(w, r)
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		JSON(w, http.StatusMethodNotAllowed, ErrorBody{Error: ErrorDetail{
			Message: "The method " + r.Method + " is not allowed here; use " + strings.Join(allow, " or ") + ".",
			Type:    "invalid_request_error", Code: "method_not_allowed"}})
	}
}

// NotFound answers with a 404 OpenAI error naming the path.
func NotFound(w http.ResponseWriter, r *http.Request) {
	Error(w, r, gateway.Errorf(gateway.ENotFound, "No route for %s %s.", r.Method, r.URL.Path))
}

// Secure reports whether the client reached the gateway over HTTPS
// (directly, or through API Gateway or a proxy that says so).
func Secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// Prefix returns the path prefix in front of the gateway's routes, from
// X-Forwarded-Prefix (set by the Lambda adapter on execute-api URLs, or by
// a reverse proxy). Anything but a plain path is ignored, so that the
// header cannot turn a link or a redirect into one to another site.
func Prefix(r *http.Request) string {
	p := strings.TrimRight(r.Header.Get("X-Forwarded-Prefix"), "/")
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || len(p) > 128 {
		return ""
	}
	for _, c := range p {
		if !(c == '/' || c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return ""
		}
	}
	return p
}

// BaseURL returns the gateway's root URL as the client sees it.
func BaseURL(r *http.Request) string {
	scheme := "http"
	if Secure(r) {
		scheme = "https"
	}
	return scheme + "://" + r.Host + Prefix(r)
}

// Handle adapts a handler that returns its failure: nil means it answered;
// an error is answered as an OpenAI error.
func Handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			Error(w, r, err)
		}
	}
}

// ClientAddr identifies the caller for throttling: the connection's
// address (API Gateway's source IP on AWS). Forwarding headers are not
// trusted, since any client can set them.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
