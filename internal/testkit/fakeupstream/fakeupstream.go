// Package fakeupstream is a stand-in for the paid upstream model API in
// tests. It speaks the real OpenAI wire format (JSON answers, server-sent
// events, error bodies) and records every request it receives.
//
// The last user message steers it, so that tests against a gateway in
// another process can ask for each behaviour:
//
//	#status:503          answer with that status and an OpenAI error body
//	#echokey             answer 400 with an error quoting the request's key
//	#negusage, #hugeusage report negative, or absurdly large, usage
//	#nousage             report no usage
//	#reasoning           answer (not streamed) with reasoning_content
//	#keepopen            stream as usual, then keep the connection open
//	#storm               answer 429 with Retry-After: 1, always
//	#malformed           stream lines that are no SSE, data that is no JSON
//	#bigevent:N          stream one event of N MB in short data lines
//	#longline:N          stream one data line of N MB
//	#hang                never send a byte, until the request is cancelled
//	#hold:TOKEN          stream the first chunk, then wait for Release(TOKEN)
//	#endless:TOKEN       stream a chunk every 20 ms until the request ends;
//	                     Closed(TOKEN) is closed when it does
//	#reset               stream three chunks, then break the connection
//	#slow:N              stream N chunks, 50 ms apart
//	#fail-once:TOKEN     answer 503 to the first request with TOKEN only
//	#status-on:NAME:CODE answer CODE if this server is named NAME (see
//	                     Named), else as usual
//	#tool                answer with a tool call (get_weather) instead of text
//
// GET /v1/models lists fake/upstream-model, fake/embed and fake/kolors.
//
// Fail has the server fail every request (pull the plug, hang, a
// status); Refuse has it refuse one key (401,
// or 429 with insufficient_quota).
//
// /v1/completions (the legacy API) answers "echo: " + the prompt, streamed
// when asked, with usage.
//
// /v1/embeddings answers with Embed of each input, or never when an input
// holds "#hang".
//
// Any other message gets the answer "echo: " + the message, streamed as one
// chunk per word when the request asks for a stream.
package fakeupstream

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"image"
	"image/png"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Usage is what the fake reports for every answer.
const (
	PromptTokens     = 11
	CompletionTokens = 7
)

// Request is one request the fake received.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// JSON decodes the request body into a generic map.
func (r Request) JSON() map[string]any {
	var m map[string]any
	json.Unmarshal(r.Body, &m)
	return m
}

// Server is a running fake upstream.
type Server struct {
	*httptest.Server
	name string
	// side serves the same images on another port of the same host.
	side *httptest.Server

	mu       sync.Mutex
	fail     string
	refused  map[string]refusal // by the key the request carries
	seen     map[string]bool
	requests []Request
	releases map[string]chan struct{}
	closed   map[string]chan struct{}
}

// New starts a fake upstream; it is closed when the test ends.
func New(t interface{ Cleanup(func()) }) *Server { return Named(t, "") }

// Named starts a fake upstream with a name, for #status-on.
func Named(t interface{ Cleanup(func()) }, name string) *Server {
	s := &Server{name: name, seen: map[string]bool{}, releases: map[string]chan struct{}{}, closed: map[string]chan struct{}{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	s.side = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	t.Cleanup(s.side.Close)
	return s
}

type refusal struct {
	status int
	body   string
}

// Fail has every request fail: "down" closes its connection before an
// answer, as a dead host's; "hang" sends nothing until the request is
// cancelled; a status ("503", "429", "500") answers it with an OpenAI
// error body. "" puts the server back.
func (s *Server) Fail(mode string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = mode
}

// Refuse answers every request carrying key with status and an OpenAI
// error body of type typ (such as "insufficient_quota").
func (s *Server) Refuse(key string, status int, typ string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{"message": "refused by the fake: " + typ, "type": typ, "code": typ}})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refused == nil {
		s.refused = map[string]refusal{}
	}
	s.refused[key] = refusal{status: status, body: string(body)}
}

// Count returns how many requests whose body contains substr were
// received.
func (s *Server) Count(substr string) int { return len(s.Find(substr)) }

// Requests returns every request received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Find returns the requests whose body contains substr.
func (s *Server) Find(substr string) []Request {
	var out []Request
	for _, r := range s.Requests() {
		if strings.Contains(string(r.Body), substr) {
			out = append(out, r)
		}
	}
	return out
}

func (s *Server) channel(m map[string]chan struct{}, token string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := m[token]
	if !ok {
		c = make(chan struct{})
		m[token] = c
	}
	return c
}

// Release lets a "#hold:TOKEN" stream go on.
func (s *Server) Release(token string) { close(s.channel(s.releases, token)) }

// Closed returns a channel closed when the "#endless:TOKEN" stream's
// request has ended (the gateway closed the upstream connection).
func (s *Server) Closed(token string) <-chan struct{} { return s.channel(s.closed, token) }

type chatRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// lastUserText returns the text of the last user message (string content or
// the text parts of array content).
func (c chatRequest) lastUserText() string {
	for i := len(c.Messages) - 1; i >= 0; i-- {
		m := c.Messages[i]
		if m.Role != "user" {
			continue
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			return s
		}
		var parts []struct {
			Type, Text string
		}
		json.Unmarshal(m.Content, &parts)
		var b strings.Builder
		for _, p := range parts {
			if p.Type == "text" {
				b.WriteString(p.Text)
			}
		}
		return b.String()
	}
	return ""
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	fail := s.fail
	refused, isRefused := s.refused[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if fail != "down" {
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	}
	s.mu.Unlock()
	switch fail {
	case "":
	case "down":
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
		}
		return
	case "hang":
		<-r.Context().Done()
		return
	default:
		code, _ := strconv.Atoi(fail)
		writeError(w, code, "fake upstream failing on command")
		return
	}
	if isRefused {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(refused.status)
		io.WriteString(w, refused.body)
		return
	}

	if name, ok := strings.CutPrefix(r.URL.Path, "/img/"); ok {
		serveImage(w, r, name)
		return
	}
	switch r.URL.Path {
	case "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"fake/upstream-model","object":"model"},{"id":"fake/embed","object":"model"},{"id":"fake/kolors","object":"model"}]}`)
		return
	case "/v1/chat/completions":
	case "/v1/embeddings":
		if bytes.Contains(body, []byte("#hang")) {
			<-r.Context().Done() // an embedding that never comes
			return
		}
		s.embeddings(w, body)
		return
	case "/v1/rerank":
		rerank(w, body)
		return
	case "/v1/completions":
		legacy(w, body)
		return
	case "/v1/images/generations":
		s.images(w, body)
		return
	default:
		writeError(w, http.StatusNotFound, "unknown path "+r.URL.Path)
		return
	}
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	text := req.lastUserText()
	cmd, arg, _ := strings.Cut(strings.Fields(text + " ")[0], ":")
	switch cmd {
	case "#status":
		code, _ := strconv.Atoi(arg)
		writeError(w, code, "fake upstream failure")
		return
	case "#storm":
		// A provider rate limiting every request.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, "rate limited")
		return
	case "#echokey":
		// Some upstreams quote the credential they were sent, whole or cut.
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if req.Stream {
			// An error event after the stream began, as proxies send.
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n")
			fmt.Fprintf(w, "data: {\"error\":{\"message\":\"auth failed for Bearer %s\"}}\n\ndata: [DONE]\n\n", key)
			return
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Invalid request for key %s (starting %.12s…)", key, key))
		return
	case "#status-on":
		name, code, _ := strings.Cut(arg, ":")
		if name == s.name {
			c, _ := strconv.Atoi(code)
			writeError(w, c, "fake upstream failure")
			return
		}
	case "#fail-once":
		s.mu.Lock()
		first := !s.seen[arg]
		s.seen[arg] = true
		s.mu.Unlock()
		if first {
			writeError(w, http.StatusServiceUnavailable, "fake upstream overloaded")
			return
		}
	case "#tool":
		s.tool(w, req)
		return
	case "#hang":
		<-r.Context().Done()
		return
	}
	words := strings.Fields("echo: " + text)
	use := usage()
	switch cmd {
	case "#negusage":
		use = map[string]any{"prompt_tokens": -1000000, "completion_tokens": -5, "total_tokens": -1000005}
	case "#hugeusage":
		use = map[string]any{"prompt_tokens": 1 << 40, "completion_tokens": 7, "total_tokens": 1<<40 + 7}
	}
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": strings.Join(words, " ")}
		if cmd == "#reasoning" {
			msg["reasoning_content"] = "Let me think about " + text
		}
		answer := map[string]any{
			"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": msg}},
			"usage":   use,
		}
		if cmd == "#nousage" {
			delete(answer, "usage")
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(answer)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(),
			"model": req.Model, "choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	switch cmd {
	case "#hold":
		send(chunk(map[string]any{"content": "first"}, nil))
		select {
		case <-s.channel(s.releases, arg):
		case <-r.Context().Done():
			return
		}
		words = []string{" last"}
	case "#endless":
		defer close(s.channel(s.closed, arg))
		for i := 0; ; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			if !send(chunk(map[string]any{"content": fmt.Sprintf("tick %d ", i)}, nil)) {
				<-r.Context().Done()
				return
			}
		}
	case "#slow":
		n, _ := strconv.Atoi(arg)
		for i := range n {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			send(chunk(map[string]any{"content": fmt.Sprintf("slow %d ", i)}, nil))
		}
		words = nil
	case "#malformed":
		// Lines that are no SSE field, data that is no JSON, then the end.
		io.WriteString(w, "garbage without a colon\n\ndata: {not json\n\n:comment\nretry: x\n\n")
		send(chunk(map[string]any{"content": "still here"}, nil))
		io.WriteString(w, "data: [DONE]\n\n")
		rc.Flush()
		return
	case "#longline":
		// One data line of N MB.
		n, _ := strconv.Atoi(arg)
		io.WriteString(w, "data: ")
		chunkOf := strings.Repeat("y", 1<<20)
		for range n {
			if _, err := io.WriteString(w, chunkOf); err != nil {
				return
			}
		}
		io.WriteString(w, "\n\n")
		rc.Flush()
		<-r.Context().Done()
		return
	case "#bigevent":
		// One event of many short data lines, N MB in all.
		n, _ := strconv.Atoi(arg)
		line := "data: " + strings.Repeat("x", 1000) + "\n"
		for range n * 1000 {
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
		}
		io.WriteString(w, "\n")
		rc.Flush()
		<-r.Context().Done()
		return
	case "#reset":
		for i := range 3 {
			send(chunk(map[string]any{"content": fmt.Sprintf("part %d ", i)}, nil))
		}
		if conn, _, err := rc.Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	for i, word := range words {
		if i > 0 {
			word = " " + word
		}
		send(chunk(map[string]any{"content": word}, nil))
	}
	send(chunk(map[string]any{}, "stop"))
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage && cmd != "#nousage" {
		send(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(),
			"model": req.Model, "choices": []any{}, "usage": use})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	rc.Flush()
	if cmd == "#keepopen" {
		// Some upstreams keep the connection open after [DONE].
		<-r.Context().Done()
	}
}

// Dimensions is the length of the fake's embeddings.
const Dimensions = 256

// Embed returns the fake's embedding of text, a deterministic local
// stand-in for an embedding model: signed feature hashing of character
// n-grams (trigrams of each lower-cased word with its edges marked, and
// the characters and character pairs of CJK text). Texts that share
// spelling share direction, so a misspelt or reordered name still lands
// near its original, as with a real model; meaning beyond spelling it does
// not know.
func Embed(text string) []float64 {
	v := make([]float64, Dimensions)
	add := func(feature string) {
		h := fnv.New64a()
		h.Write([]byte(feature))
		x := h.Sum64()
		sign := 1.0
		if x&(1<<63) != 0 {
			sign = -1
		}
		v[x%Dimensions] += sign
	}
	var word []rune
	var han []rune
	flushWord := func() {
		if len(word) == 0 {
			return
		}
		w := append(append([]rune{'#'}, word...), '#')
		for i := 0; i+3 <= len(w); i++ {
			add(string(w[i : i+3]))
		}
		word = word[:0]
	}
	flushHan := func() {
		for i, r := range han {
			add(string(r))
			if i+1 < len(han) {
				add(string(han[i : i+2]))
			}
		}
		han = han[:0]
	}
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.Is(unicode.Han, r):
			flushWord()
			han = append(han, r)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			flushHan()
			word = append(word, r)
		default:
			flushWord()
			flushHan()
		}
	}
	flushWord()
	flushHan()
	return v
}

func (s *Server) embeddings(w http.ResponseWriter, body []byte) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			writeError(w, http.StatusBadRequest, "input must be a string or an array of strings")
			return
		}
		inputs = []string{one}
	}
	data := make([]any, len(inputs))
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Embed(in)}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]any{"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
}

// ToolArguments are the arguments of the fake's tool call.
const ToolArguments = `{"city":"北京","unit":"celsius"}`

// tool answers with a call of get_weather, streamed in pieces or whole.
func (s *Server) tool(w http.ResponseWriter, req chatRequest) {
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-tool", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "tool_calls", "message": map[string]any{
				"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"id": "call_1", "type": "function",
					"function": map[string]any{"name": "get_weather", "arguments": ToolArguments}}}}}},
			"usage": usage(),
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": time.Now().Unix(),
			"model": req.Model, "choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
		w.(http.Flusher).Flush()
	}
	send(map[string]any{"role": "assistant", "content": nil, "tool_calls": []any{map[string]any{"index": 0, "id": "call_1",
		"type": "function", "function": map[string]any{"name": "get_weather", "arguments": ""}}}}, nil)
	half := strings.Index(ToolArguments, ",") // a split that keeps runes whole
	for _, part := range []string{ToolArguments[:half], ToolArguments[half:]} {
		send(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": part}}}}, nil)
	}
	send(map[string]any{}, "tool_calls")
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-tool", "object": "chat.completion.chunk", "choices": []any{}, "usage": usage()})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// rerank scores each document by the cosine of its Embed with the query's,
// in the SiliconFlow (and Jina) answer shape.
func rerank(w http.ResponseWriter, body []byte) {
	var req struct {
		Query     string   `json:"query"`
		Documents []string `json:"documents"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Query == "" {
		writeError(w, http.StatusBadRequest, "query and documents are required")
		return
	}
	q := Embed(req.Query)
	results := make([]map[string]any, len(req.Documents))
	for i, d := range req.Documents {
		results[i] = map[string]any{"index": i, "relevance_score": cosine(q, Embed(d))}
	}
	slices.SortFunc(results, func(a, b map[string]any) int {
		return cmp.Compare(b["relevance_score"].(float64), a["relevance_score"].(float64))
	})
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"id": "rerank-fake", "results": results})
}

func cosine(a, b []float64) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += a[i] * b[i]
		aa += a[i] * a[i]
		bb += b[i] * b[i]
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// PNG returns the fake's image for a name: a small valid PNG whose pixels
// depend on the name, so that tests can check a stored copy byte for byte.
func PNG(name string) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	h := fnv.New32a()
	h.Write([]byte(name))
	seed := h.Sum32()
	for i := range img.Pix {
		img.Pix[i] = byte(seed >> (i % 4 * 8))
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// HugeImageSize is the size of the image behind #huge.
const HugeImageSize = 2 << 20

func serveImage(w http.ResponseWriter, r *http.Request, name string) {
	switch name {
	case "redirect":
		// Where a malicious upstream would send the gateway: the cloud
		// metadata service.
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
	case "page.html":
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>not an image</body></html>")
	case "huge.png":
		w.Header().Set("Content-Type", "image/png")
		data := make([]byte, HugeImageSize)
		copy(data, "\x89PNG\r\n\x1a\n")
		w.Write(data)
	default:
		w.Header().Set("Content-Type", "image/png")
		w.Write(PNG(name))
	}
}

// images answers /v1/images/generations. The prompt steers the shape:
// SiliconFlow's images[].url by default, OpenAI's data[].url with
// "#openai", data[].b64_json with "#b64", both images[] and data[] (the
// same pictures) with "#both"; "#many" answers 40 pictures whatever n is;
// "#huge", "#html", "#private" and "#otherport" link to an image too
// large, a page, a redirect to a private address, and an image on
// another port of the upstream's host.
func (s *Server) images(w http.ResponseWriter, body []byte) {
	var req struct {
		Prompt string `json:"prompt"`
		N      int    `json:"n"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Prompt == "" {
		writeError(w, http.StatusBadRequest, "prompt is required")
		return
	}
	n := max(req.N, 1)
	if strings.Contains(req.Prompt, "#many") {
		n = 40
	}
	name := func(i int) string { return ImageName(req.Prompt, i) }
	link := func(i int) string {
		switch {
		case strings.Contains(req.Prompt, "#huge"):
			return s.URL + "/img/huge.png"
		case strings.Contains(req.Prompt, "#html"):
			return s.URL + "/img/page.html"
		case strings.Contains(req.Prompt, "#private"):
			return s.URL + "/img/redirect"
		case strings.Contains(req.Prompt, "#otherport"):
			return s.side.URL + "/img/" + name(i)
		}
		return s.URL + "/img/" + name(i)
	}
	w.Header().Set("Content-Type", "application/json")
	switch {
	case strings.Contains(req.Prompt, "#b64"):
		data := make([]any, n)
		for i := range data {
			data[i] = map[string]any{"b64_json": base64.StdEncoding.EncodeToString(PNG(name(i))), "revised_prompt": "a revised " + req.Prompt}
		}
		json.NewEncoder(w).Encode(map[string]any{"created": time.Now().Unix(), "data": data})
	case strings.Contains(req.Prompt, "#both"):
		data, images := make([]any, n), make([]any, n)
		for i := range data {
			data[i] = map[string]any{"url": link(i)}
			images[i] = map[string]any{"url": link(i)}
		}
		json.NewEncoder(w).Encode(map[string]any{"created": time.Now().Unix(), "data": data, "images": images})
	case strings.Contains(req.Prompt, "#openai"):
		data := make([]any, n)
		for i := range data {
			data[i] = map[string]any{"url": link(i)}
		}
		json.NewEncoder(w).Encode(map[string]any{"created": time.Now().Unix(), "data": data})
	default:
		images := make([]any, n)
		for i := range images {
			images[i] = map[string]any{"url": link(i)}
		}
		json.NewEncoder(w).Encode(map[string]any{"images": images, "timings": map[string]any{"inference": 1.2}, "seed": 42})
	}
}

// ImageName is the name of the i-th image the fake draws for prompt; PNG
// of it is the image.
func ImageName(prompt string, i int) string {
	h := fnv.New32a()
	h.Write([]byte(prompt))
	return fmt.Sprintf("%08x-%d.png", h.Sum32(), i)
}

func usage() map[string]any {
	return map[string]any{"prompt_tokens": PromptTokens, "completion_tokens": CompletionTokens,
		"total_tokens": PromptTokens + CompletionTokens}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": "server_error", "code": nil, "param": nil}})
}

// legacy answers the legacy completions API.
func legacy(w http.ResponseWriter, body []byte) {
	var req struct {
		Model  string `json:"model"`
		Prompt string `json:"prompt"`
		Stream bool   `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON: "+err.Error())
		return
	}
	text := "echo: " + req.Prompt
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": "cmpl-fake", "object": "text_completion", "created": time.Now().Unix(),
			"model": req.Model, "choices": []any{map[string]any{"index": 0, "text": text, "finish_reason": "stop"}}, "usage": usage()})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	for _, word := range strings.SplitAfter(text, " ") {
		b, _ := json.Marshal(map[string]any{"id": "cmpl-fake", "object": "text_completion", "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "text": word, "finish_reason": nil}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	b, _ := json.Marshal(map[string]any{"id": "cmpl-fake", "object": "text_completion", "model": req.Model,
		"choices": []any{map[string]any{"index": 0, "text": "", "finish_reason": "stop"}}, "usage": usage()})
	fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", b)
}
