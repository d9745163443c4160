package awslocal

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Gateway stands in for an API Gateway REST API in tests. It routes each
// request by the routes the SAM translator generated for the API (the
// OpenAPI body API Gateway is given), as API Gateway does: the most
// specific resource path (a literal segment before a {variable}, a
// {variable} before a {greedy+}), then its own method before ANY. It turns
// the request into a REST proxy event, invokes the function under the
// Lambda runtime interface emulator, and relays the answer the way the
// route's integration says: buffered (JSON, where a streamed answer is a
// 502) or streamed (a prelude, 8 NUL bytes and the body, where a buffered
// answer is a 502), within the integration's timeout (504 past it).
type Gateway struct {
	routes    []Route
	binary    []string
	responses map[string]GatewayResponse
	invoke    map[string]string // function logical ID → emulator invoke URL
	locks     map[string]*sync.Mutex
	client    *http.Client
}

// NewGateway routes by the routes of the REST API api in the translated
// stack to the functions in invoke (logical ID → invoke URL), deployed with
// the template's parameter values params (defaults for the others).
func NewGateway(stack *Stack, api string, invoke map[string]string, params ...map[string]string) (*Gateway, error) {
	routes, err := stack.Routes(api)
	if err != nil {
		return nil, err
	}
	var p map[string]string
	if len(params) > 0 {
		p = params[0]
	}
	responses, err := stack.GatewayResponsesFor(api, p)
	if err != nil {
		return nil, err
	}
	g := &Gateway{routes: routes, binary: stack.BinaryMediaTypes(api), invoke: invoke,
		responses: responses, locks: map[string]*sync.Mutex{}, client: &http.Client{}}
	for fn := range invoke {
		g.locks[fn] = &sync.Mutex{}
	}
	return g, nil
}

// Match returns the route serving method and path, and the path
// parameters.
func (g *Gateway) Match(method, p string) (Route, map[string]string, bool) {
	rts, params := g.Candidates(method, p)
	if len(rts) == 0 {
		return Route{}, nil, false
	}
	return rts[0], params, true
}

// Candidates returns the routes that serve method and path equally well
// (a sound API has at most one), and the path parameters: those of the
// most specific resource path, with the exact method preferred to ANY.
func (g *Gateway) Candidates(method, p string) ([]Route, map[string]string) {
	var best []Route
	var bestParams map[string]string
	bestScore := -1
	for _, rt := range g.routes {
		params, score, ok := matchPath(rt.Path, p)
		switch {
		case !ok || score < bestScore:
		case score > bestScore:
			best, bestParams, bestScore = []Route{rt}, params, score
		default:
			best = append(best, rt)
		}
	}
	var exact, anyMethod []Route
	for _, rt := range best {
		switch rt.Method {
		case method:
			exact = append(exact, rt)
		case "ANY":
			anyMethod = append(anyMethod, rt)
		}
	}
	if len(exact) > 0 {
		return exact, bestParams
	}
	return anyMethod, bestParams
}

// matchPath matches a resource path against a request path; the score
// favours literal segments, then variables, over a greedy tail.
func matchPath(resource, p string) (map[string]string, int, bool) {
	rs := strings.Split(strings.Trim(resource, "/"), "/")
	ps := strings.Split(strings.Trim(p, "/"), "/")
	if resource == "/" {
		return nil, 0, strings.Trim(p, "/") == ""
	}
	params := map[string]string{}
	score := 0
	for i, seg := range rs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "+}") {
			if i >= len(ps) || ps[i] == "" {
				return nil, 0, false
			}
			params[strings.Trim(seg, "{+}")] = strings.Join(ps[i:], "/")
			return params, score, true
		}
		if i >= len(ps) {
			return nil, 0, false
		}
		switch {
		case strings.HasPrefix(seg, "{"):
			if ps[i] == "" {
				return nil, 0, false
			}
			params[strings.Trim(seg, "{}")] = ps[i]
			score += 1 << (2 * (16 - i))
		case seg == ps[i]:
			score += 2 << (2 * (16 - i))
		default:
			return nil, 0, false
		}
	}
	if len(ps) != len(rs) {
		return nil, 0, false
	}
	return params, score, true
}

func (g *Gateway) isBinary(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	for _, b := range g.binary {
		if ok, _ := path.Match(b, mt); ok || b == mt {
			return true
		}
	}
	return false
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt, params, ok := g.Match(r.Method, r.URL.Path)
	if !ok {
		// API Gateway's own answer for a path or method no resource serves.
		g.gatewayError(w, r, http.StatusForbidden, "MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
		return
	}
	if !rt.Streaming() && !rt.Buffered() {
		// A transfer mode that does not fit the invocation URI: API Gateway
		// cannot read the function's answer.
		g.gatewayError(w, r, http.StatusBadGateway, "API_CONFIGURATION_ERROR", "Internal server error")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if len(body) > 10<<20 {
		g.gatewayError(w, r, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "Request Too Long")
		return
	}
	url, ok := g.invoke[rt.Function]
	if !ok {
		http.Error(w, "no emulator runs "+rt.Function, http.StatusBadGateway)
		return
	}
	event := g.event(r, rt, params, body)
	payload, _ := json.Marshal(event)
	if len(payload) > MaxInvokePayload {
		// Lambda refuses the invocation; API Gateway answers for it.
		g.gatewayError(w, r, http.StatusRequestEntityTooLarge, "REQUEST_TOO_LARGE", "Request Too Long")
		return
	}

	// One emulator runs one invocation at a time, like one Lambda instance.
	lock := g.locks[rt.Function]
	lock.Lock()
	defer lock.Unlock()
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(rt.Timeout())*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	resp, err := g.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			g.gatewayError(w, r, http.StatusGatewayTimeout, "INTEGRATION_TIMEOUT", "Endpoint request timed out")
			return
		}
		g.gatewayError(w, r, http.StatusBadGateway, "INTEGRATION_FAILURE", "Internal server error")
		return
	}
	defer resp.Body.Close()
	if rt.Streaming() {
		g.relayStream(w, r, resp.Body)
		return
	}
	g.relayBuffered(w, r, resp.Body)
}

// Lambda's limits on a synchronous invocation: the event it takes (a
// base64-encoded body included) and the response it returns.
const (
	MaxInvokePayload   = 6 << 20
	MaxResponsePayload = 6<<20 + 100
)

// gatewayError answers for API Gateway itself, with the API's gateway
// response of that type (or its DEFAULT_4XX or DEFAULT_5XX): its headers,
// static or mapped from the request, and its body template; or API
// Gateway's default body.
func (g *Gateway) gatewayError(w http.ResponseWriter, r *http.Request, status int, typ, msg string) {
	gr, ok := g.responses[typ]
	if !ok && status < 500 {
		gr, ok = g.responses["DEFAULT_4XX"]
	} else if !ok {
		gr, ok = g.responses["DEFAULT_5XX"]
	}
	for name, val := range gr.Headers {
		if v, ok := strings.CutPrefix(val, "method.request.header."); ok {
			if rv := r.Header.Get(v); rv != "" {
				w.Header().Set(name, rv)
			}
			continue
		}
		w.Header().Set(name, strings.Trim(val, "'"))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if !ok || gr.Template == "" {
		fmt.Fprintf(w, `{"message":%q}`, msg)
		return
	}
	quoted, _ := json.Marshal(msg)
	io.WriteString(w, strings.NewReplacer("$context.error.messageString", string(quoted),
		"$context.error.responseType", typ, "$context.error.message", msg).Replace(gr.Template))
}

func (g *Gateway) event(r *http.Request, rt Route, params map[string]string, body []byte) events.APIGatewayProxyRequest {
	headers := map[string]string{}
	multi := map[string][]string{}
	for k, v := range r.Header {
		headers[k] = v[len(v)-1]
		multi[k] = v
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	for k, v := range map[string]string{"X-Forwarded-For": host, "X-Forwarded-Proto": "http", "Host": r.Host} {
		headers[k] = v
		multi[k] = []string{v}
	}
	var query map[string]string
	var multiQuery map[string][]string
	if q := r.URL.Query(); len(q) > 0 {
		query, multiQuery = map[string]string{}, map[string][]string(q)
		for k, v := range q {
			query[k] = v[len(v)-1]
		}
	}
	if len(params) == 0 {
		params = nil
	}
	e := events.APIGatewayProxyRequest{
		Resource: rt.Path, Path: r.URL.Path, HTTPMethod: r.Method,
		Headers: headers, MultiValueHeaders: multi,
		QueryStringParameters: query, MultiValueQueryStringParameters: multiQuery,
		PathParameters: params,
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID: "123456789012", ResourceID: "local", Stage: "local", RequestID: rand.Text(),
			Identity:     events.APIGatewayRequestIdentity{SourceIP: host, UserAgent: r.UserAgent()},
			ResourcePath: rt.Path, HTTPMethod: r.Method, APIID: "local", DomainName: r.Host, Protocol: r.Proto,
		},
	}
	if len(body) > 0 {
		if g.isBinary(r.Header.Get("Content-Type")) {
			e.Body, e.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		} else {
			e.Body = string(body)
		}
	}
	return e
}

// relayBuffered writes a buffered proxy response (or the emulator's error).
func (g *Gateway) relayBuffered(w http.ResponseWriter, req *http.Request, r io.Reader) {
	var out struct {
		events.APIGatewayProxyResponse
		ErrorMessage string `json:"errorMessage"`
	}
	raw, err := io.ReadAll(io.LimitReader(r, MaxResponsePayload+1))
	if err != nil || len(raw) > MaxResponsePayload {
		// Lambda refuses a response over its limit; API Gateway answers 502.
		g.gatewayError(w, req, http.StatusBadGateway, "INTEGRATION_FAILURE", "Internal server error")
		return
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ErrorMessage != "" || out.StatusCode == 0 {
		g.gatewayError(w, req, http.StatusBadGateway, "INTEGRATION_FAILURE", "Internal server error")
		return
	}
	copyHeaders(w.Header(), out.Headers, out.MultiValueHeaders)
	body := []byte(out.Body)
	if out.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(out.Body); err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
	}
	w.Header().Del("Content-Length")
	w.WriteHeader(out.StatusCode)
	w.Write(body)
}

// relayStream writes a streamed response: a JSON prelude, 8 NUL bytes, then
// the body, copied as it arrives.
func (g *Gateway) relayStream(w http.ResponseWriter, req *http.Request, r io.Reader) {
	br := bufio.NewReader(r)
	raw, err := br.ReadBytes(0)
	if err != nil {
		g.gatewayError(w, req, http.StatusBadGateway, "INTEGRATION_FAILURE", "Internal server error")
		return
	}
	var prelude struct {
		StatusCode        int                 `json:"statusCode"`
		Headers           map[string]string   `json:"headers"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
		Cookies           []string            `json:"cookies"`
		ErrorMessage      string              `json:"errorMessage"`
	}
	if err := json.Unmarshal(raw[:len(raw)-1], &prelude); err != nil || prelude.ErrorMessage != "" {
		g.gatewayError(w, req, http.StatusBadGateway, "INTEGRATION_FAILURE", "Internal server error")
		return
	}
	if _, err := br.Discard(7); err != nil {
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	copyHeaders(w.Header(), prelude.Headers, prelude.MultiValueHeaders)
	for _, c := range prelude.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	if prelude.StatusCode == 0 {
		prelude.StatusCode = http.StatusOK
	}
	w.WriteHeader(prelude.StatusCode)
	rc := http.NewResponseController(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			w.Write(buf[:n])
			rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

// copyHeaders sets a proxy response's headers; multi-value ones win, as in
// API Gateway.
func copyHeaders(h http.Header, single map[string]string, multi map[string][]string) {
	for k, v := range single {
		h.Set(k, v)
	}
	for k, vs := range multi {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
}
