package awslocal

import (
	"bufio"
	"bytes"
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

	"github.com/aws/aws-lambda-go/events"
)

// Gateway stands in for an API Gateway REST API in tests: it routes each
// request by the template's Api events, as API Gateway would (a literal
// segment before a {variable}, a {variable} before a {greedy+}), turns it
// into a REST proxy event, invokes the function under the Lambda runtime
// interface emulator and turns the function's answer, buffered JSON or a
// streamed prelude and body, back into an HTTP response.
type Gateway struct {
	events []APIEvent
	binary []string
	invoke map[string]string // function logical ID → emulator invoke URL
	locks  map[string]*sync.Mutex
	client *http.Client
}

// NewGateway routes by the Api events of tpl to the functions in invoke
// (logical ID → invoke URL); api is the logical ID of the REST API.
func NewGateway(tpl *Template, api string, invoke map[string]string) *Gateway {
	g := &Gateway{events: tpl.APIEvents(), binary: tpl.BinaryMediaTypes(api), invoke: invoke,
		locks: map[string]*sync.Mutex{}, client: &http.Client{}}
	for fn := range invoke {
		g.locks[fn] = &sync.Mutex{}
	}
	return g
}

// Match returns the event serving method and path, and the path parameters.
func (g *Gateway) Match(method, p string) (APIEvent, map[string]string, bool) {
	evs, params := g.Candidates(method, p)
	if len(evs) == 0 {
		return APIEvent{}, nil, false
	}
	return evs[0], params, true
}

// Candidates returns every event that serves method and path equally well
// (API Gateway needs exactly one), and the path parameters.
func (g *Gateway) Candidates(method, p string) ([]APIEvent, map[string]string) {
	var best []APIEvent
	var bestParams map[string]string
	bestScore := -1
	for _, ev := range g.events {
		if ev.Method != "ANY" && ev.Method != method {
			continue
		}
		params, score, ok := matchPath(ev.Path, p)
		switch {
		case !ok || score < bestScore:
		case score > bestScore:
			best, bestParams, bestScore = []APIEvent{ev}, params, score
		default:
			best = append(best, ev)
		}
	}
	return best, bestParams
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
	ev, params, ok := g.Match(r.Method, r.URL.Path)
	if !ok {
		// API Gateway's own answer for a path no resource serves.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"message":"Missing Authentication Token"}`)
		return
	}
	url, ok := g.invoke[ev.Function]
	if !ok {
		http.Error(w, "no emulator runs "+ev.Function, http.StatusBadGateway)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if len(body) > 10<<20 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"message":"Request Too Long"}`)
		return
	}
	event := g.event(r, ev, params, body)
	payload, _ := json.Marshal(event)

	// One emulator runs one invocation at a time, like one Lambda instance.
	lock := g.locks[ev.Function]
	lock.Lock()
	defer lock.Unlock()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, url, bytes.NewReader(payload))
	resp, err := g.client.Do(req)
	if err != nil {
		http.Error(w, `{"message":"Internal server error"}`, http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if ev.TransferMode == "STREAM" {
		g.relayStream(w, resp.Body)
		return
	}
	g.relayBuffered(w, resp.Body)
}

func (g *Gateway) event(r *http.Request, ev APIEvent, params map[string]string, body []byte) events.APIGatewayProxyRequest {
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
		Resource: ev.Path, Path: r.URL.Path, HTTPMethod: r.Method,
		Headers: headers, MultiValueHeaders: multi,
		QueryStringParameters: query, MultiValueQueryStringParameters: multiQuery,
		PathParameters: params,
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID: "123456789012", ResourceID: "local", Stage: "local", RequestID: rand.Text(),
			Identity:     events.APIGatewayRequestIdentity{SourceIP: host, UserAgent: r.UserAgent()},
			ResourcePath: ev.Path, HTTPMethod: r.Method, APIID: "local", DomainName: r.Host, Protocol: r.Proto,
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
func (g *Gateway) relayBuffered(w http.ResponseWriter, r io.Reader) {
	var out struct {
		events.APIGatewayProxyResponse
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.NewDecoder(r).Decode(&out); err != nil || out.ErrorMessage != "" || out.StatusCode == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, `{"message":"Internal server error"}`)
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
func (g *Gateway) relayStream(w http.ResponseWriter, r io.Reader) {
	br := bufio.NewReader(r)
	raw, err := br.ReadBytes(0)
	if err != nil {
		w.WriteHeader(http.StatusBadGateway)
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
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprint(w, `{"message":"Internal server error"}`)
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
