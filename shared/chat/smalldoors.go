package chat

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
	"github.com/aigateway/aigateway/shared/respond"
)

// Model serves GET /v1/models/{id}: one public model the key may use (its
// name may hold "/", percent-encoded or not), in OpenAI's shape, or
// Anthropic's when the request carries anthropic-version.
func (h *Handler) Model(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	name := r.PathValue("id")
	st, _, err := h.resolve(r.Context(), key, name)
	if err != nil {
		// The image model is listed too.
		if !(gateway.ErrorCode(err) == gateway.EModelNotFound && st.DrawingEnabled && st.ImageModel == name && key.Allows(name)) {
			return err
		}
	}
	if r.Header.Get("Anthropic-Version") != "" {
		respond.JSON(w, http.StatusOK, map[string]any{"type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z"})
		return nil
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": name, "object": "model", "created": 0, "owned_by": "ai-gateway"})
	return nil
}

// Rerank serves POST /v1/rerank: the request goes to the RAG upstream's
// rerank, every field untouched; without a model, the configured rerank
// model. The configured model serves every key, another only a key whose
// model list names it.
func (h *Handler) Rerank(w http.ResponseWriter, r *http.Request) error {
	return h.forward(w, r, forwarding{kind: "rerank", path: "/rerank",
		upstream: func(st gateway.Settings) (gateway.Upstream, string) {
			return gateway.Upstream{BaseURL: st.RAG.BaseURL, APIKey: st.RAG.APIKey, Model: st.RAG.RerankModel}, st.RAG.RerankModel
		}})
}

// Embeddings serves POST /v1/embeddings: it forwards the request to the
// RAG upstream, every field untouched; a request without a model gets the
// configured one.
func (h *Handler) Embeddings(w http.ResponseWriter, r *http.Request) error {
	return h.forward(w, r, forwarding{kind: "embeddings", path: "/embeddings",
		check: func(req jsonobj.Object) error { return checkEmbeddingInput(req.Get("input")) },
		upstream: func(st gateway.Settings) (gateway.Upstream, string) {
			return gateway.Upstream{BaseURL: st.RAG.BaseURL, APIKey: st.RAG.APIKey, Model: st.RAG.Model}, st.RAG.Model
		}})
}

// forwarding is an upstream API the gateway passes on untranslated.
type forwarding struct {
	kind, path string
	check      func(jsonobj.Object) error // the request's own checks, if any
	// upstream returns the upstream and its configured model.
	upstream func(gateway.Settings) (gateway.Upstream, string)
}

// forward passes a request to an upstream API the gateway does not
// translate (embeddings, rerank), with the key's limits, model list and
// usage. The configured model serves every key, another only a key whose
// model list names it (the gateway's upstream key pays for it).
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, f forwarding) error {
	start := time.Now()
	key, body, req, err := h.readRequest(w, r)
	if err != nil {
		return err
	}
	if f.check != nil {
		if err := f.check(req); err != nil {
			return err
		}
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	up, configured := f.upstream(st)
	name, _, err := req.GetString("model")
	if err != nil {
		return err
	}
	if name == "" {
		if configured == "" {
			return jsonobj.Invalid("model", "the name of a "+f.kind+" model")
		}
		name = configured
		req = req.Set("model", mustJSON(name))
	}
	if name != configured && !slices.Contains(key.Models, name) {
		e := gateway.Errorf(gateway.EModelNotFound, "The model %q does not exist or you do not have access to it.", name)
		e.Param = "model"
		return e
	}
	price, _ := st.PriceOf(name)
	estimate := int64(len(body) / 4)
	res, err := h.Meter.Admit(r.Context(), key, gateway.Ask{Tokens: estimate, Cost: estimate * price.PerToken(), PerToken: price.PerToken()})
	if err != nil {
		return err
	}
	rec := gateway.UsageRecord{RequestID: requestID(w), KeyID: key.ID, Model: name, Kind: f.kind, Status: http.StatusOK,
		PerMinute: key.TPM > 0, Reservation: &res}
	defer func() {
		rec.LatencyMS = time.Since(start).Milliseconds()
		rec.CostMicros = price.Cost(rec.PromptTokens, 0, 0, false)
		h.record(r.Context(), rec)
	}()
	ctx, route := gateway.WithRoute(r.Context())
	up.Model = name
	resp, err := h.Upstream.Post(ctx, up, f.path, req.Bytes())
	rec.Channel, rec.FailedChannels = route.Channel(), route.FailedChannels()
	if err != nil {
		rec.Status = respond.Status(err)
		return err
	}
	defer resp.Close()
	if sec := route.Secret(); sec != "" {
		up.APIKey = sec
	}
	answer, err := answer(w, resp, up.APIKey)
	if err != nil {
		rec.Status = respond.Status(err)
		return err
	}
	if n := inputTokens(answer); n > 0 {
		rec.PromptTokens = min(n, maxReportedTokens)
	} else {
		rec.PromptTokens, rec.Estimated = int64(len(body)/4), true
	}
	return nil
}

// readRequest authenticates a request of the doors that take it as it
// comes, and reads its body as a JSON object.
func (h *Handler) readRequest(w http.ResponseWriter, r *http.Request) (gateway.APIKey, []byte, jsonobj.Object, error) {
	key, err := h.authenticate(r)
	if err != nil {
		return gateway.APIKey{}, nil, nil, err
	}
	body, err := respond.ReadBody(w, r, h.opt.MaxBody)
	if err != nil {
		return gateway.APIKey{}, nil, nil, err
	}
	req, err := parseRequest(body)
	return key, body, req, err
}

// inputTokens reads the tokens an embeddings or rerank answer says it
// used: usage's prompt or total tokens (OpenAI, SiliconFlow, Jina, vLLM),
// or Cohere's meta input tokens; 0 when it says none.
func inputTokens(answer []byte) int64 {
	var v struct {
		Usage struct {
			PromptTokens int64 `json:"prompt_tokens"`
			TotalTokens  int64 `json:"total_tokens"`
		} `json:"usage"`
		Meta struct {
			Tokens struct {
				InputTokens int64 `json:"input_tokens"`
			} `json:"tokens"`
		} `json:"meta"`
	}
	if json.Unmarshal(answer, &v) != nil {
		return 0
	}
	return max(v.Usage.PromptTokens, v.Usage.TotalTokens, v.Meta.Tokens.InputTokens, 0)
}

// legacyDoor names the legacy completions API in logs; it relays like
// chat.
type legacyDoor struct{ chatDoor }

func (legacyDoor) name() string { return "completions" }

// LegacyCompletions serves POST /v1/completions, the legacy completions
// API, forwarded to the public model's upstream (the model name mapped,
// every other field untouched), streamed when asked; the key's limits,
// model list, output cap and usage apply as on chat completions, a client
// that leaves included. A prompt has no messages to put a system prompt
// before, so a public model that has one is refused here (the legacy API
// must not be a way around it); knowledge is not retrieved for it.
func (h *Handler) LegacyCompletions(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	key, body, req, err := h.readRequest(w, r)
	if err != nil {
		return err
	}
	name, ok, err := req.GetString("model")
	if err != nil {
		return err
	}
	if !ok || name == "" {
		return jsonobj.Invalid("model", "the name of a model")
	}
	if p := req.Get("prompt"); p == nil {
		return jsonobj.Invalid("prompt", "a prompt")
	}
	stream, err := req.GetBool("stream")
	if err != nil {
		return err
	}
	st, m, err := h.resolve(r.Context(), key, name)
	if err != nil {
		return err
	}
	if m.systemPrompt != "" {
		e := gateway.Errorf(gateway.EInvalid, "The model %q has a system prompt, which the legacy completions API cannot carry: use /v1/chat/completions.", name)
		e.Param = "model"
		return e
	}
	req = capOutput(req, st.MaxOutputTokens)
	clientUsage := false
	if stream {
		if req, clientUsage, err = withUsage(req); err != nil {
			return err
		}
	}
	price, _ := st.PriceOf(m.upstream.Model)
	reserve := reserveFor(req, len(body))
	res, err := h.Meter.Admit(r.Context(), key, gateway.Ask{Tokens: reserve, Cost: reserve * price.PerToken(), PerToken: price.PerToken()})
	if err != nil {
		return err
	}
	c := call{key: key, model: m, stream: stream, clientUsage: clientUsage, req: req, requestID: requestID(w), reservation: res, price: price}
	// As on chat, the upstream request outlives its client by up to
	// DrainTimeout, so that the usage of an answer the client left is
	// still learnt.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stopDrain := drainAfter(r.Context(), h.opt.DrainTimeout, cancel)
	defer stopDrain()
	d := legacyDoor{}
	var out outcome
	defer func() { h.finish(r, c, d, start, out) }()
	ctx, c.route = gateway.WithRoute(ctx)
	resp, err := h.postTo(ctx, &c, "/completions")
	if err != nil {
		out.status = respond.Status(err)
		respond.Error(w, r, err)
		return nil
	}
	defer resp.Close()
	if stream && resp.Stream() {
		out = h.relay(w, r, resp, c, d.encoder(c), func(outcome) {})
		return nil
	}
	answer, err := resp.ReadAll(maxAnswer)
	if err != nil {
		out.status = respond.Status(err)
		respond.Error(w, r, err)
		return nil
	}
	out = outcome{status: http.StatusOK, delivered: r.Context().Err() == nil}
	if !out.delivered {
		out.status = statusClientGone
	}
	out.used, out.reported = usageOf(answer)
	if !out.reported {
		out.estimated, out.used = true, tokens{PromptTokens: int64(len(c.req.Bytes()) / 4), CompletionTokens: int64(len(answer) / 4)}
	}
	w.Header().Set("Content-Type", contentType(resp))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(scrubbed(c, answer))
	return nil
}
