// Package chat serves the public OpenAI-compatible API: chat completions
// (streamed and not) and the model list. It authenticates the client's key,
// resolves the public model to its upstream, merges the system prompt and
// forwards every other field untouched.
package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/upstream"
)

// Keys authenticates client API keys.
type Keys interface {
	// Authenticate returns the active key with this secret, or EUnauthorized.
	Authenticate(ctx context.Context, secret string) (gateway.APIKey, error)
}

// Settings supplies the current settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Upstream calls the upstream API.
type Upstream interface {
	Post(ctx context.Context, up gateway.Upstream, path string, body []byte) (*upstream.Response, error)
}

// Metrics records chat metrics.
type Metrics interface {
	Chat(model string, status int, latency time.Duration, promptTokens, completionTokens int64)
}

// Handler serves /v1/chat/completions, /v1/models and /v1/embeddings.
type Handler struct {
	keys     Keys
	settings Settings
	upstream Upstream
	metrics  Metrics
	maxBody  int64
	mux      *http.ServeMux
}

// maxAnswer bounds a non-streamed upstream answer held in memory.
const maxAnswer = 64 << 20

// New returns the chat handler. maxBody bounds request bodies.
func New(keys Keys, settings Settings, up Upstream, m Metrics, maxBody int64) *Handler {
	h := &Handler{keys: keys, settings: settings, upstream: up, metrics: m, maxBody: maxBody, mux: http.NewServeMux()}
	h.mux.HandleFunc("/v1/chat/completions", respond.Methods(map[string]http.HandlerFunc{http.MethodPost: h.completions}))
	h.mux.HandleFunc("/v1/models", respond.Methods(map[string]http.HandlerFunc{http.MethodGet: h.models}))
	h.mux.HandleFunc("/v1/embeddings", respond.Methods(map[string]http.HandlerFunc{http.MethodPost: h.embeddings}))
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// authenticate returns the key of the request's bearer token.
func (h *Handler) authenticate(r *http.Request) (gateway.APIKey, error) {
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || secret == "" {
		return gateway.APIKey{}, gateway.Errorf(gateway.EUnauthorized, "No API key provided. Send it as \"Authorization: Bearer sk-…\".")
	}
	return h.keys.Authenticate(r.Context(), strings.TrimSpace(secret))
}

// model is a public model resolved to its upstream.
type model struct {
	public       string
	upstream     gateway.Upstream
	systemPrompt string
}

// resolve maps a public model name to its upstream, or EModelNotFound.
func resolve(st gateway.Settings, name string) (model, error) {
	if public := st.PublicModelName(); public != "" && name == public {
		return model{public: public, upstream: st.AI, systemPrompt: st.SystemPrompt}, nil
	}
	e := gateway.Errorf(gateway.EModelNotFound, "The model %q does not exist or you do not have access to it.", name)
	e.Param = "model"
	return model{}, e
}

func (h *Handler) models(w http.ResponseWriter, r *http.Request) {
	if _, err := h.authenticate(r); err != nil {
		respond.Error(w, r, err)
		return
	}
	st, err := h.settings.Get(r.Context())
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []entry `json:"data"`
	}{Object: "list", Data: []entry{}}
	if name := st.PublicModelName(); name != "" {
		list.Data = append(list.Data, entry{ID: name, Object: "model", OwnedBy: "ai-gateway"})
	}
	if st.DrawingEnabled && st.ImageModel != "" {
		list.Data = append(list.Data, entry{ID: st.ImageModel, Object: "model", OwnedBy: "ai-gateway"})
	}
	respond.JSON(w, http.StatusOK, list)
}

// call is a chat request, checked and resolved, ready to go upstream.
type call struct {
	key    gateway.APIKey
	model  model
	stream bool
	body   []byte // what the upstream receives
}

// prepare authenticates, reads and checks the request, resolves its model
// and rewrites the body for the upstream. Nothing reaches the upstream
// before all of it succeeded.
func (h *Handler) prepare(w http.ResponseWriter, r *http.Request) (call, error) {
	key, err := h.authenticate(r)
	if err != nil {
		return call{}, err
	}
	body, err := respond.ReadBody(w, r, h.maxBody)
	if err != nil {
		return call{}, err
	}
	req, err := parseObject(body)
	if err != nil {
		return call{}, err
	}
	name, ok, err := req.stringValue("model")
	if err != nil {
		return call{}, err
	}
	if !ok || name == "" {
		return call{}, invalidField("model", "the name of a model")
	}
	messages, err := messagesOf(req)
	if err != nil {
		return call{}, err
	}
	stream, err := req.boolValue("stream")
	if err != nil {
		return call{}, err
	}
	st, err := h.settings.Get(r.Context())
	if err != nil {
		return call{}, err
	}
	m, err := resolve(st, name)
	if err != nil {
		return call{}, err
	}
	req = req.set("model", mustJSON(m.upstream.Model))
	if m.systemPrompt != "" {
		system := mustJSON(map[string]string{"role": "system", "content": m.systemPrompt})
		req = req.set("messages", mustJSON(append([]json.RawMessage{system}, messages...)))
	}
	return call{key: key, model: m, stream: stream, body: req.bytes()}, nil
}

func (h *Handler) completions(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c, err := h.prepare(w, r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	status := http.StatusOK
	var used usage
	defer func() { h.log(r, c, start, status, used) }()
	resp, err := h.upstream.Post(r.Context(), c.model.upstream, "/chat/completions", c.body)
	if err != nil {
		status = respond.Status(err)
		respond.Error(w, r, err)
		return
	}
	defer resp.Close()
	if c.stream && resp.IsEventStream() {
		used, err = h.relay(w, r, resp)
		if err != nil {
			status = respond.Status(err)
		}
		return
	}
	body, err := answer(w, resp)
	if err != nil {
		status = respond.Status(err)
		respond.Error(w, r, err)
		return
	}
	used, _ = usageOf(body)
}

// usage is the token count an upstream reported.
type usage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// usageOf returns the usage member of a completion or a stream chunk; the
// cheap check first, since most chunks have none.
func usageOf(data []byte) (usage, bool) {
	if !bytes.Contains(data, []byte(`"usage"`)) {
		return usage{}, false
	}
	var v struct {
		Usage *usage `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil || v.Usage == nil {
		return usage{}, false
	}
	return *v.Usage, true
}

// embeddings forwards an embeddings request to the RAG upstream, every
// field untouched; a request without a model gets the configured one.
func (h *Handler) embeddings(w http.ResponseWriter, r *http.Request) {
	if _, err := h.authenticate(r); err != nil {
		respond.Error(w, r, err)
		return
	}
	body, err := respond.ReadBody(w, r, h.maxBody)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	req, err := parseObject(body)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	if req.get("input") == nil {
		respond.Error(w, r, invalidField("input", "the text or texts to embed"))
		return
	}
	st, err := h.settings.Get(r.Context())
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	if st.RAG.BaseURL == "" {
		respond.Error(w, r, gateway.Errorf(gateway.EUnavailable, "The embeddings upstream (rag.base_url) is not configured."))
		return
	}
	if name, _, err := req.stringValue("model"); err != nil || name == "" {
		if st.RAG.Model == "" {
			respond.Error(w, r, invalidField("model", "the name of an embedding model"))
			return
		}
		req = req.set("model", mustJSON(st.RAG.Model))
	}
	up := gateway.Upstream{BaseURL: st.RAG.BaseURL, APIKey: st.RAG.APIKey, Model: st.RAG.Model}
	resp, err := h.upstream.Post(r.Context(), up, "/embeddings", req.bytes())
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	defer resp.Close()
	if _, err := answer(w, resp); err != nil {
		respond.Error(w, r, err)
	}
}

// answer reads a whole upstream answer and writes it to the client as it
// came, and returns it. It writes nothing when reading fails, so the caller
// can still answer with an error.
func answer(w http.ResponseWriter, resp *upstream.Response) ([]byte, error) {
	body, err := resp.ReadAll(maxAnswer)
	if err != nil {
		return nil, err
	}
	w.Header().Set("Content-Type", contentType(resp))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	return body, nil
}

func contentType(resp *upstream.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/json"
}

// messagesOf returns the request's messages, each kept byte for byte.
func messagesOf(req object) ([]json.RawMessage, error) {
	raw := req.get("messages")
	var messages []json.RawMessage
	if raw == nil || json.Unmarshal(raw, &messages) != nil || len(messages) == 0 {
		return nil, invalidField("messages", "a non-empty array of messages")
	}
	for _, m := range messages {
		if len(m) == 0 || m[0] != '{' {
			return nil, invalidField("messages", "an array of message objects")
		}
	}
	return messages, nil
}

// relay copies the upstream's events to the client as they arrive, flushing
// whenever no further event is already waiting, and returns the usage the
// upstream reported. An upstream failure after the first event ends the
// stream with an error event and [DONE], and is returned.
func (h *Handler) relay(w http.ResponseWriter, r *http.Request, resp *upstream.Response) (usage, error) {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.Flush()
	var used usage
	for ev, err := range resp.Events() {
		if err != nil {
			if r.Context().Err() != nil {
				return used, err // the client left; nobody to tell
			}
			slog.WarnContext(r.Context(), "upstream stream failed", "err", err)
			body, _ := json.Marshal(respond.Body(err))
			w.Write([]byte("data: " + string(body) + "\n\ndata: [DONE]\n\n"))
			rc.Flush()
			return used, err
		}
		if u, ok := usageOf(ev.Data); ok {
			used = u
		}
		if _, err := w.Write(ev.Raw); err != nil {
			return used, err
		}
		if resp.EventReady() {
			continue // more is here already: it goes out with the next flush
		}
		if err := rc.Flush(); err != nil {
			return used, err
		}
	}
	return used, nil
}

func (h *Handler) log(r *http.Request, c call, start time.Time, status int, used usage) {
	latency := time.Since(start)
	slog.InfoContext(r.Context(), "chat", "key", c.key.ID, "model", c.model.public, "upstream_model", c.model.upstream.Model,
		"stream", c.stream, "status", status, "ms", latency.Milliseconds(),
		"prompt_tokens", used.PromptTokens, "completion_tokens", used.CompletionTokens)
	h.metrics.Chat(c.model.public, status, latency, used.PromptTokens, used.CompletionTokens)
}

// mustJSON encodes values that always encode (strings, string maps, raw
// messages).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("chat: encode " + err.Error())
	}
	return b
}
