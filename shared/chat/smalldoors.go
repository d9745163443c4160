package chat

import (
	"bytes"
	"errors"
	"io"
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
	return h.forward(w, r, "rerank", "/rerank", func(st gateway.Settings) (gateway.Upstream, string) {
		return gateway.Upstream{BaseURL: st.RAG.BaseURL, APIKey: st.RAG.APIKey, Model: st.RAG.RerankModel}, st.RAG.RerankModel
	})
}

// forward passes a request to an upstream API the gateway does not
// translate (rerank), with the key's limits, model list and usage.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, kind, path string, upstream func(gateway.Settings) (gateway.Upstream, string)) error {
	start := time.Now()
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	body, err := respond.ReadBody(w, r, h.opt.MaxBody)
	if err != nil {
		return err
	}
	req, err := parseRequest(body)
	if err != nil {
		return err
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	up, configured := upstream(st)
	if up.BaseURL == "" || configured == "" {
		return gateway.Errorf(gateway.EUnavailable, "The %s upstream (rag.base_url and rag.rerank_model) is not configured.", kind)
	}
	name, _, err := req.GetString("model")
	if err != nil {
		return err
	}
	if name == "" {
		name = configured
		req = req.Set("model", mustJSON(name))
	}
	if name != configured && !slices.Contains(key.Models, name) {
		e := gateway.Errorf(gateway.EModelNotFound, "The model %q does not exist or you do not have access to it.", name)
		e.Param = "model"
		return e
	}
	res, err := h.Meter.Admit(r.Context(), key, int64(len(body)/4))
	if err != nil {
		return err
	}
	rec := gateway.UsageRecord{RequestID: requestID(w), KeyID: key.ID, Model: name, Kind: kind, Status: http.StatusOK,
		PerMinute: key.TPM > 0, Reservation: &res}
	defer func() {
		rec.LatencyMS = time.Since(start).Milliseconds()
		h.record(r.Context(), rec)
	}()
	resp, err := h.Upstream.Post(r.Context(), up, path, req.Bytes())
	if err != nil {
		rec.Status = respond.Status(err)
		return err
	}
	defer resp.Close()
	answer, err := answer(w, resp)
	if err != nil {
		rec.Status = respond.Status(err)
		return err
	}
	if u, ok := usageOf(answer); ok {
		rec.PromptTokens, rec.CompletionTokens = u.PromptTokens, u.CompletionTokens
	} else {
		rec.PromptTokens, rec.Estimated = int64(len(body)/4), true
	}
	return nil
}

// LegacyCompletions serves POST /v1/completions, the legacy completions
// API, forwarded to the public model's upstream (the model name mapped,
// every other field untouched), streamed when asked; the key's limits,
// model list and usage apply as on chat completions. The public model's
// system prompt, knowledge and drawing do not: a prompt has no messages
// to add them to.
func (h *Handler) LegacyCompletions(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	body, err := respond.ReadBody(w, r, h.opt.MaxBody)
	if err != nil {
		return err
	}
	req, err := parseRequest(body)
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
	_, m, err := h.resolve(r.Context(), key, name)
	if err != nil {
		return err
	}
	res, err := h.Meter.Admit(r.Context(), key, reserveFor(req, len(body)))
	if err != nil {
		return err
	}
	c := call{key: key, model: m, stream: stream, req: req, requestID: requestID(w), reservation: res}
	if stream {
		if c.req, c.clientUsage, err = withUsage(req); err != nil {
			h.Meter.Release(r.Context(), res)
			return err
		}
	}
	out := outcome{status: http.StatusOK}
	defer func() { h.finish(r, c, chatDoor{}, start, out) }()
	resp, err := h.Upstream.Post(r.Context(), m.upstream, "/completions", c.body(m.upstream.Model))
	if err != nil {
		out.status = respond.Status(err)
		respond.Error(w, r, err)
		return nil
	}
	defer resp.Close()
	if !stream || !resp.Stream() {
		body, err := resp.ReadAll(maxAnswer)
		if err != nil {
			out.status = respond.Status(err)
			respond.Error(w, r, err)
			return nil
		}
		out.used, out.reported = usageOf(body)
		if !out.reported {
			out.estimated, out.used = true, tokens{PromptTokens: int64(len(c.req.Bytes()) / 4), CompletionTokens: int64(len(body) / 4)}
		}
		w.Header().Set("Content-Type", contentType(resp))
		w.WriteHeader(http.StatusOK)
		w.Write(scrubbed(c, body))
		return nil
	}
	streamHeaders(w)
	rc := http.NewResponseController(w)
	enc := &chatEncoder{clientUsage: c.clientUsage}
	chunks := int64(0)
	for {
		ev, err := resp.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			out.status, out.partial = respond.Status(err), true
			w.Write(scrubbed(c, enc.fail(err)))
			break
		}
		if ev.Done() {
			w.Write(enc.end(out))
			break
		}
		if u, ok := usageOf(ev.Data); ok {
			out.used, out.reported = u, true
		}
		if bytes.Contains(ev.Data, []byte(`"text"`)) {
			chunks++
		}
		if b := enc.event(ev); b != nil {
			w.Write(scrubbed(c, b))
		}
		if !resp.Ready() {
			rc.Flush()
		}
	}
	rc.Flush()
	if r.Context().Err() != nil {
		out.status = statusClientGone
	}
	if !out.reported {
		out.estimated, out.used = true, tokens{PromptTokens: int64(len(c.req.Bytes()) / 4), CompletionTokens: chunks}
	}
	return nil
}
