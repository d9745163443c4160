// Package upstream is the client of OpenAI-compatible upstream APIs. It
// reuses connections, bounds the time to connect, to the first byte and
// between stream events, and turns upstream failures into gateway errors
// that are safe to show to clients.
package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
)

// Config holds the client's timeouts.
type Config struct {
	// ConnectTimeout bounds the TCP and TLS handshakes.
	ConnectTimeout time.Duration
	// FirstByteTimeout bounds the wait for the response headers.
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the silence between two reads of the body (two
	// stream events, or two chunks of a plain answer).
	IdleTimeout time.Duration
	// Retries is how many times a request that failed before any answer
	// (no connection, 429, 5xx) is sent again, after a jittered backoff
	// starting at RetryBackoff.
	Retries      int
	RetryBackoff time.Duration
}

// DefaultConfig suits reasoning models, which may think for minutes before
// the first token but then stream steadily.
func DefaultConfig() Config {
	return Config{ConnectTimeout: 10 * time.Second, FirstByteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute,
		Retries: 2, RetryBackoff: 250 * time.Millisecond}
}

// Client calls upstreams. It is safe for concurrent use.
type Client struct {
	hc     *http.Client
	cfg    Config
	router Router
}

// Router picks the upstreams a request is sent to: the channels serving
// its model, in the order to try them. Route calls try with each until
// one succeeds, or the failures say no other would do better, and returns
// the last failure. It retries and waits as it sees fit; try makes one
// attempt. The upstream a request names then gives only its model.
type Router interface {
	Route(ctx context.Context, model, capability string, try func(ctx context.Context, up gateway.Upstream) error) error
}

// Capability returns the channel capability an API path calls for.
func Capability(path string) string {
	switch path {
	case "/embeddings":
		return gateway.CapEmbeddings
	case "/rerank":
		return gateway.CapRerank
	case "/images/generations":
		return gateway.CapImages
	}
	return gateway.CapChat
}

// Route has the client send every request through r: its channels, not
// the upstream the caller names. It is set once, before the client is used.
func (c *Client) Route(r Router) { c.router = r }

// New returns a Client that sends its requests through hc: the target's
// own client (on Workers, one whose transport is the Fetch API), shared by
// every upstream call. A nil hc means NativeClient(cfg).
func New(cfg Config, hc *http.Client) *Client {
	if hc == nil {
		hc = NativeClient(cfg)
	}
	return &Client{hc: hc, cfg: cfg}
}

// NativeClient returns the client of the targets that open their own
// connections (the local server, Lambda): a pool of keep-alive connections,
// idle ones closed after 90 seconds, with cfg's connect timeout on the TCP
// and TLS handshakes.
func NativeClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   cfg.ConnectTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}
}

var (
	errFirstByte = errors.New("upstream first-byte timeout")
	errIdle      = errors.New("upstream idle timeout")
)

// Endpoint joins an upstream base URL and an API path such as
// "/chat/completions". Base URLs are accepted with or without their "/v1"
// ("https://api.siliconflow.cn" and "https://api.openai.com/v1" both work).
func Endpoint(base, path string) string {
	base = strings.TrimRight(base, "/")
	if !strings.HasSuffix(base, "/v1") {
		base += "/v1"
	}
	return base + path
}

// Post sends body as JSON to path of the upstream and returns the response
// once its headers arrived with a 2xx status. A request that fails before
// any answer (no connection, 429, 5xx) is retried up to Config.Retries
// times with jittered exponential backoff, honouring a short Retry-After.
// What still fails comes back as a gateway error (EUpstream, ETimeout,
// EUnavailable, EInvalid for a request the upstream refused as bad). The
// caller closes the answer. It is the gateway.Poster of the chat handler.
func (c *Client) Post(ctx context.Context, up gateway.Upstream, path string, body []byte) (gateway.Answer, error) {
	resp, err := c.send(ctx, up, path, func(to gateway.Upstream) ([]byte, error) {
		if to.Model == up.Model {
			return body, nil
		}
		return withModel(body, to.Model)
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// withModel returns the JSON object body with its model member set to
// model: the name a channel's upstream knows the model by.
func withModel(body []byte, model string) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return nil, fmt.Errorf("set the upstream model: %w", err)
	}
	name, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	obj["model"] = name
	return json.Marshal(obj)
}

// send posts the body build makes for an upstream, through the router
// when there is one, else to up with retries.
func (c *Client) send(ctx context.Context, up gateway.Upstream, path string, build func(gateway.Upstream) ([]byte, error)) (*Response, error) {
	if c.router != nil {
		var resp *Response
		err := c.router.Route(ctx, up.Model, Capability(path), func(ctx context.Context, to gateway.Upstream) error {
			body, err := build(to)
			if err != nil {
				return err
			}
			r, _, err := c.post(ctx, to, path, body)
			resp = r
			return err
		})
		return resp, err
	}
	body, err := build(up)
	if err != nil {
		return nil, err
	}
	if up.BaseURL == "" {
		return nil, gateway.Errorf(gateway.EUnavailable, "The upstream API is not configured yet; set it in the admin panel.")
	}
	for attempt := 0; ; attempt++ {
		resp, retry, err := c.post(ctx, up, path, body)
		if err == nil || !retry || attempt >= c.cfg.Retries {
			return resp, err
		}
		wait := RetryWait(err, c.cfg.RetryBackoff, attempt)
		slog.WarnContext(ctx, "upstream failed; retrying", "attempt", attempt+1, "wait_ms", wait.Milliseconds(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("upstream retry: %w", context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

// RetryWait returns the wait before retry attempt+1 after err: a short
// Retry-After the upstream asked for (at most 8 s), else the backoff.
func RetryWait(err error, base time.Duration, attempt int) time.Duration {
	if e, ok := errors.AsType[*gateway.Error](err); ok && e.RetryAfter > 0 && time.Duration(e.RetryAfter)*time.Second <= 8*time.Second {
		return time.Duration(e.RetryAfter) * time.Second
	}
	return backoff(base, attempt)
}

// backoff returns the wait before retry attempt+1: base doubling each time,
// capped at 4 s, spread by ±50% so that instances do not retry in step.
func backoff(base time.Duration, attempt int) time.Duration {
	d := min(base<<attempt, 4*time.Second)
	return d/2 + rand.N(d)
}

// post makes one attempt and reports whether a failure may be retried.
func (c *Client) post(ctx context.Context, up gateway.Upstream, path string, body []byte) (*Response, bool, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, Endpoint(up.BaseURL, path), bytes.NewReader(body))
	if err != nil {
		cancel(nil)
		return nil, false, gateway.Errorf(gateway.EUnavailable, "The upstream base URL is not usable; fix it in the admin panel.")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if up.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+string(up.APIKey))
	}
	timer := time.AfterFunc(c.cfg.FirstByteTimeout, func() { cancel(errFirstByte) })
	resp, err := c.hc.Do(req)
	timer.Stop()
	if err != nil {
		cause := context.Cause(ctx)
		cancel(nil)
		switch {
		case errors.Is(cause, errFirstByte):
			e := gateway.Errorf(gateway.ETimeout, "The upstream did not answer within %s.", c.cfg.FirstByteTimeout)
			e.Fault = gateway.FaultChannel
			return nil, false, e
		case ctx.Err() != nil && cause != nil:
			return nil, false, fmt.Errorf("upstream request: %w", cause)
		}
		return nil, true, &gateway.Error{Code: gateway.EUpstream, Message: "The upstream could not be reached.", Cause: err, Fault: gateway.FaultChannel}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500, statusError(resp, string(up.APIKey))
	}
	r := &Response{StatusCode: resp.StatusCode, Header: resp.Header, cancel: cancel,
		idle: c.cfg.IdleTimeout, contentLength: resp.ContentLength}
	r.timer = time.AfterFunc(c.cfg.IdleTimeout, func() { cancel(errIdle) })
	r.body = idleReader{resp.Body, r.timer, c.cfg.IdleTimeout}
	r.ctx = ctx
	// A cancelled answer stops a read in progress: the native transport
	// breaks its connection by itself, but the Fetch API's body (GOOS=js)
	// does not watch the context, so the body is closed as well.
	context.AfterFunc(ctx, func() { resp.Body.Close() })
	return r, false, nil
}

// statusError turns a non-2xx upstream answer into a gateway error. The
// upstream's own message is passed on only for requests it refused as bad,
// where it describes the client's input; never for credential failures;
// and never with the credential in it (an upstream may echo it). Its Fault
// tells the router what the failure means.
func statusError(resp *http.Response, secret string) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := Scrub(upstreamMessage(data), secret)
	var e *gateway.Error
	switch s := resp.StatusCode; {
	case s == http.StatusBadRequest || s == http.StatusUnprocessableEntity:
		if msg == "" {
			msg = "no reason given"
		}
		e = gateway.Errorf(gateway.EInvalid, "The upstream refused the request: %s", msg)
		e.Fault = gateway.FaultRequest
	case s == http.StatusRequestEntityTooLarge:
		e = gateway.Errorf(gateway.ETooLarge, "The upstream refused the request as too large.")
		e.Fault = gateway.FaultRequest
	case s == http.StatusUnauthorized || s == http.StatusForbidden:
		e = gateway.Errorf(gateway.EUpstream, "The upstream refused the gateway's credentials (status %d); check the upstream API key in the admin panel.", s)
		e.Fault = gateway.FaultKey
	case s == http.StatusPaymentRequired || s == http.StatusTooManyRequests && quotaSpent(data):
		e = gateway.Errorf(gateway.EUpstream, "The upstream says the gateway's quota or balance is used up (status %d); top it up or add another key in the admin panel.", s)
		e.Fault = gateway.FaultQuota
	case s == http.StatusTooManyRequests:
		e = gateway.Errorf(gateway.EUnavailable, "The upstream is rate limiting the gateway; try again shortly.")
		e.RetryAfter = 1
		if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
			e.RetryAfter = ra
		}
		e.Fault = gateway.FaultRate
	default:
		e = gateway.Errorf(gateway.EUpstream, "The upstream failed with status %d.", s)
		e.Fault = gateway.FaultChannel
	}
	e.Cause = fmt.Errorf("upstream status %d: %s", resp.StatusCode, msg)
	return e
}

// quotaSpent reports whether a 429's body says the key's quota or balance
// is spent (OpenAI's insufficient_quota, and the words other providers
// use), not that it is sending too fast.
func quotaSpent(body []byte) bool {
	var v struct {
		Error struct {
			Code, Type any
		} `json:"error"`
	}
	json.Unmarshal(body, &v)
	for _, x := range []any{v.Error.Code, v.Error.Type} {
		if s, ok := x.(string); ok && (s == "insufficient_quota" || s == "billing_hard_limit_reached") {
			return true
		}
	}
	low := strings.ToLower(string(body))
	for _, w := range []string{"insufficient_quota", "exceeded your current quota", "quota exceeded", "insufficient balance", "balance is insufficient", "余额不足", "额度"} {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

// minSecretRun is the shortest run of a secret's characters that Scrub
// hides: long enough not to hide ordinary words, short enough that what
// is left of a key does not help guess it.
const minSecretRun = 8

// Scrub returns text with every run of at least minSecretRun characters of
// any of secrets replaced by "[redacted]": the whole key, or the part of it
// an upstream quotes.
func Scrub(text string, secrets ...string) string {
	for _, secret := range secrets {
		if len(secret) < minSecretRun || len(text) < minSecretRun {
			continue
		}
		var b strings.Builder
		for i := 0; i < len(text); {
			n := longestRun(text[i:], secret)
			if n >= minSecretRun {
				b.WriteString("[redacted]")
				i += n
				continue
			}
			b.WriteByte(text[i])
			i++
		}
		text = b.String()
	}
	return text
}

// longestRun returns the length of the longest prefix of text found in
// secret.
func longestRun(text, secret string) int {
	best := 0
	for j := 0; j+best < len(secret); j++ {
		n := 0
		for n < len(text) && j+n < len(secret) && text[n] == secret[j+n] {
			n++
		}
		best = max(best, n)
	}
	return best
}

// upstreamMessage extracts error.message from an OpenAI-shaped error body,
// cut to a readable length.
func upstreamMessage(data []byte) string {
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &body) != nil {
		return ""
	}
	msg := body.Error.Message
	if msg == "" {
		msg = body.Message
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

// Response is a 2xx upstream answer whose body is read as one value
// (ReadAll) or as server-sent events (Next): the gateway.Answer of the HTTP
// upstreams.
type Response struct {
	StatusCode int
	Header     http.Header

	body   io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	idle   time.Duration

	contentLength int64

	// The event reader, from the first Next to the end of the stream.
	br        *bufio.Reader
	raw, data []byte // the event being read
	long      []byte // a line longer than br's buffer
	err       error  // what every later Next returns
}

// Stream reports whether the upstream answered with server-sent events.
func (r *Response) Stream() bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream")
}

// ContentType is the Content-Type the upstream sent.
func (r *Response) ContentType() string { return r.Header.Get("Content-Type") }

// Close releases the response and its connection.
func (r *Response) Close() {
	r.timer.Stop()
	r.cancel(nil)
	r.body.Close()
	r.release()
}

// readErr turns a body read failure into a gateway error.
func (r *Response) readErr(err error) error {
	cause := context.Cause(r.ctx)
	switch {
	case errors.Is(cause, errIdle):
		return gateway.Errorf(gateway.ETimeout, "The upstream sent nothing for %s.", r.idle)
	case r.ctx.Err() != nil && cause != nil:
		return fmt.Errorf("read upstream: %w", cause)
	case errors.Is(err, errLineTooLong):
		return &gateway.Error{Code: gateway.EUpstream, Message: fmt.Sprintf("The upstream sent a line longer than %d MB.", maxLine>>20), Cause: err}
	case errors.Is(err, errEventTooLong):
		return &gateway.Error{Code: gateway.EUpstream, Message: fmt.Sprintf("The upstream sent an event larger than %d MB.", MaxEvent>>20), Cause: err}
	}
	return &gateway.Error{Code: gateway.EUpstream, Message: "The upstream connection broke.", Cause: err}
}

var (
	errLineTooLong  = errors.New("sse line too long")
	errEventTooLong = errors.New("sse event too long")
)

// ReadAll reads the whole body, at most limit bytes; each read resets the
// idle timeout.
func (r *Response) ReadAll(limit int64) ([]byte, error) {
	size := int64(4 << 10)
	if n := r.contentLength; n > 0 && n <= limit {
		size = n + 1 // +1 so that the final read sees EOF without growing
	}
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, gateway.Errorf(gateway.EUpstream, "The upstream answer is larger than %d bytes.", limit)
		}
		if err == io.EOF && r.ctx.Err() == nil {
			return buf, nil
		}
		if err != nil {
			return nil, r.readErr(err)
		}
	}
}

// idleReader restarts the idle timer whenever bytes arrive: silence is
// what it measures, so a long line that keeps arriving (slowly, on a
// Worker's Fetch API) is no silence.
type idleReader struct {
	io.ReadCloser
	timer *time.Timer
	idle  time.Duration
}

func (r idleReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

// Ready reports whether another complete event has already been received
// and Next can return it without waiting on the network. A relay flushes
// when it is false, so that events that arrive together leave together,
// and no event waits for one that has not arrived.
func (r *Response) Ready() bool {
	if r.br == nil || r.br.Buffered() == 0 {
		return false
	}
	rest, _ := r.br.Peek(r.br.Buffered())
	rest = bytes.TrimLeft(rest, "\r\n") // blank lines before an event are no event
	return bytes.Contains(rest, []byte("\n\n")) || bytes.Contains(rest, []byte("\n\r\n"))
}

// maxLine bounds one SSE line (a chunk with a large tool-call argument or an
// inline image can be long), and MaxEvent one event, however many lines it
// has: past either, the stream ends with an error.
const (
	maxLine  = 16 << 20
	MaxEvent = 16 << 20
)

// readers recycles the buffered readers of event streams.
var readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}

// Next returns the body's next event as it arrives; each read resets the
// idle timeout. The event's Raw and Data are valid until the next call.
// After the last event it returns io.EOF; after a failure, the failure
// again.
func (r *Response) Next() (gateway.Event, error) {
	if r.err != nil {
		return gateway.Event{}, r.err
	}
	if r.br == nil {
		r.br = readers.Get().(*bufio.Reader)
		r.br.Reset(r.body)
		if r.raw == nil {
			r.raw, r.data = make([]byte, 0, 1024), make([]byte, 0, 1024)
		}
	}
	r.raw, r.data = r.raw[:0], r.data[:0]
	hasData := false
	for {
		line, err := readLine(r.br, &r.long)
		if err != nil {
			r.release()
			if err != io.EOF || r.ctx.Err() != nil { // a closed body ends with EOF too
				r.err = r.readErr(err)
				return gateway.Event{}, r.err
			}
			r.err = io.EOF
			if len(r.raw) > 0 { // the last event, without its blank line
				return gateway.Event{Raw: append(r.raw, '\n'), Data: r.data}, nil
			}
			return gateway.Event{}, io.EOF
		}
		if len(line) == 0 {
			if len(r.raw) == 0 {
				continue
			}
			return gateway.Event{Raw: append(r.raw, '\n'), Data: r.data}, nil
		}
		if len(r.raw)+len(line) > MaxEvent {
			r.release()
			r.err = r.readErr(errEventTooLong)
			return gateway.Event{}, r.err
		}
		r.raw = append(append(r.raw, line...), '\n')
		if v, ok := field(line, "data"); ok {
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, v...)
			hasData = true
		}
	}
}

// release returns the event reader to the pool.
func (r *Response) release() {
	if r.br != nil {
		r.br.Reset(nil)
		readers.Put(r.br)
		r.br = nil
	}
}

// readLine returns one line without its line end, valid until the next
// call. Lines longer than the reader's buffer are gathered in *long; one
// longer than maxLine is an error.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	part, err := br.ReadSlice('\n')
	if err == nil {
		return bytes.TrimRight(part, "\r\n"), nil
	}
	line := append((*long)[:0], part...)
	for err == bufio.ErrBufferFull {
		if len(line) > maxLine {
			return nil, errLineTooLong
		}
		part, err = br.ReadSlice('\n')
		line = append(line, part...)
	}
	*long = line
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// field returns the value of an SSE line "name: value" (one leading space
// dropped, as the SSE spec says).
func field(line []byte, name string) ([]byte, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(name))
	if !ok || (len(rest) > 0 && rest[0] != ':') {
		return nil, false
	}
	if len(rest) == 0 {
		return nil, true
	}
	rest = rest[1:]
	return bytes.TrimPrefix(rest, []byte(" ")), true
}
