package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
	"github.com/aigateway/aigateway/shared/respond"
)

// outcome is what became of a call, for the usage record, the metrics and
// the conversation.
type outcome struct {
	status   int
	used     tokens
	reported bool // the upstream reported usage
	// estimated marks tokens the gateway estimated, the upstream having
	// reported none; partial marks an answer that broke off.
	estimated bool
	partial   bool
	clamped   bool            // the upstream's usage was out of bounds
	images    int64           // images drawn
	answer    json.RawMessage // the assistant message, when complete
	// delivered is whether the client received the whole answer.
	delivered bool
	// unended marks a stream the upstream closed without its [DONE].
	unended bool
	// cache is "hit" or "miss" for a model with an exact response cache;
	// completion is the whole answer to keep there, when complete.
	cache      string
	completion []byte
}

// Completions serves POST /v1/chat/completions: a chat completion from the
// public model's upstream, streamed when the client asks, with the model's
// system prompt, knowledge and the conversation's memory merged in, or a
// drawing when the message asks for one.
func (h *Handler) Completions(w http.ResponseWriter, r *http.Request) error {
	return h.serve(w, r, chatDoor{})
}

// serve runs one request of door d through the pipeline.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, d door) error {
	start := time.Now()
	c, err := h.prepare(w, r, d)
	if err != nil {
		return err
	}
	// The upstream request outlives its client by up to DrainTimeout, so
	// that the usage of an answer the client left is still learnt.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stopDrain := drainAfter(r.Context(), h.opt.DrainTimeout, cancel)
	defer stopDrain()

	var out outcome
	defer func() { h.finish(r, c, d, start, out) }()
	if c.drawPrompt != "" {
		out = h.drawAnswer(w, r, c, d)
		return nil
	}
	if c.cacheKey != "" {
		if hit, ok := h.cached(r.Context(), c); ok {
			out = h.replay(w, r, c, d, hit)
			return nil
		}
	}
	ctx, c.route = gateway.WithRoute(ctx)
	resp, err := h.post(ctx, &c)
	if err != nil {
		out.status = respond.Status(err)
		d.fail(w, r, err)
		return nil
	}
	defer resp.Close()
	if c.stream && resp.Stream() {
		out = h.relay(w, r, resp, c, d.encoder(c), func(o outcome) {
			h.store(r.Context(), c, o)
			h.keep(r.Context(), c, o)
		})
		return nil
	}
	body, err := resp.ReadAll(maxAnswer)
	if err != nil {
		out.status = respond.Status(err)
		d.fail(w, r, err)
		return nil
	}
	out = outcome{status: http.StatusOK, delivered: r.Context().Err() == nil}
	if !out.delivered {
		out.status = statusClientGone
	}
	out.used, out.reported = usageOf(body)
	answer := firstMessage(body)
	if c.conversation != "" {
		out.answer = answer
	}
	if c.cacheKey != "" && out.reported && finished(body) {
		out.completion = body
	}
	if !out.reported {
		out.estimated = true
		out.used = tokens{PromptTokens: int64(len(c.req.Bytes()) / 4), CompletionTokens: int64(len(answer) / 4)}
	}
	h.store(r.Context(), c, out)
	h.keep(r.Context(), c, out)
	if _, plain := d.(chatDoor); c.stream && !plain {
		// The client asked for a stream and the upstream did not stream:
		// the door's stream, of one event.
		h.streamWhole(w, c, d.encoder(c), body, out)
		return nil
	}
	body, ct, err := d.answer(c, out, body)
	if _, plain := d.(chatDoor); plain {
		ct = contentType(resp) // the upstream's own
	}
	if err != nil {
		out.status = http.StatusBadGateway
		d.fail(w, r, gateway.Errorf(gateway.EUpstream, "The upstream's answer is not a chat completion."))
		return nil
	}
	writeWhole(w, ct, scrubbed(c, body))
	return nil
}

// keep puts a complete answer in the cache, before the client is told it
// is complete (as a conversation's turn is stored), so that the same
// request sent at once finds it.
func (h *Handler) keep(ctx context.Context, c call, out outcome) {
	if c.cacheKey == "" || out.completion == nil || out.status != http.StatusOK || out.partial {
		return
	}
	ttl := time.Duration(c.model.cache.TTLSeconds) * time.Second
	if err := h.Answers.Put(context.WithoutCancel(ctx), c.cacheKey, scrubbed(c, out.completion), ttl); err != nil {
		slog.WarnContext(ctx, "cache an answer", "err", err)
	}
}

// cached returns the answer the cache holds for c, if any; a cache that
// cannot be read is a miss.
func (h *Handler) cached(ctx context.Context, c call) ([]byte, bool) {
	body, ok, err := h.Answers.Get(ctx, c.cacheKey)
	if err != nil {
		slog.WarnContext(ctx, "read the answer cache", "err", err)
		return nil, false
	}
	return body, ok
}

// replay answers c from a cached completion, in the shape the client
// asked for: the door's answer, or its stream (for chat completions, the
// events a live stream has: the answer's chunk, the usage chunk when
// asked for, [DONE]).
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, c call, d door, completion []byte) outcome {
	w.Header().Set("X-Cache", "hit")
	out := outcome{status: http.StatusOK, delivered: r.Context().Err() == nil, cache: "hit", reported: true}
	out.used, _ = usageOf(completion) // shown as the answer had it; recorded as none
	if c.conversation != "" {
		out.answer = firstMessage(completion)
	}
	h.store(r.Context(), c, out)
	if _, plain := d.(chatDoor); c.stream && plain {
		streamHeaders(w)
		obj, err := jsonobj.Split(completion)
		if err == nil {
			if chunk := chunkOf(obj.Del("usage").Bytes()); chunk != nil {
				w.Write([]byte("data: " + string(chunk) + "\n\n"))
			}
			if usage := obj.Get("usage"); c.clientUsage && usage != nil {
				w.Write([]byte("data: " + string(mustJSON(map[string]any{"id": obj.Get("id"), "object": "chat.completion.chunk",
					"created": obj.Get("created"), "model": obj.Get("model"), "choices": []any{}, "usage": usage})) + "\n\n"))
			}
		}
		w.Write([]byte("data: [DONE]\n\n"))
		return out
	}
	if c.stream {
		h.streamWhole(w, c, d.encoder(c), completion, out)
		return out
	}
	body, ct, err := d.answer(c, out, completion)
	if err != nil {
		out.status = http.StatusBadGateway
		d.fail(w, r, gateway.Errorf(gateway.EUpstream, "The cached answer is not a chat completion."))
		return out
	}
	writeWhole(w, ct, body)
	return out
}

// writeWhole answers 200 with a whole body of media type ct.
func writeWhole(w http.ResponseWriter, ct string, body []byte) {
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
	// The client has its answer now; recording it and the access log
	// come after, not before.
	http.NewResponseController(w).Flush()
}

// finished reports whether a completion's first choice has its finish
// reason: an answer whole, that a cache may keep.
func finished(completion []byte) bool {
	var v struct {
		Choices []struct {
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
	}
	return json.Unmarshal(completion, &v) == nil && len(v.Choices) == 1 && v.Choices[0].FinishReason != nil && completeFinish(*v.Choices[0].FinishReason)
}

// completeFinish reports whether a finish reason ends an answer the cache
// may keep: not one an upstream's error or filter cut short.
func completeFinish(reason string) bool {
	switch reason {
	case "stop", "length", "tool_calls", "function_call":
		return true
	}
	return false
}

// streamWhole writes a whole chat completion as a door's stream.
func (h *Handler) streamWhole(w http.ResponseWriter, c call, enc encoder, completion []byte, out outcome) {
	streamHeaders(w)
	w.Write(scrubbed(c, enc.start()))
	if chunk := chunkOf(completion); chunk != nil {
		w.Write(scrubbed(c, enc.event(gateway.Event{Data: chunk, Raw: []byte("data: " + string(chunk) + "\n\n")})))
	}
	w.Write(scrubbed(c, enc.end(out)))
	http.NewResponseController(w).Flush()
}

// streamHeaders starts a stream of server-sent events.
func streamHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream; charset=utf-8")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
}

// drainAfter calls cancel d after ctx ends, unless stop is called first.
func drainAfter(ctx context.Context, d time.Duration, cancel context.CancelFunc) (stop func()) {
	var mu sync.Mutex
	var timer *time.Timer
	stopAfter := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(d, cancel)
	})
	return func() {
		stopAfter()
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}
}

// post sends the call to its model's upstream: the channels serving it,
// which fail over among themselves before an answer comes. The key that
// answered is then the one scrubbed from what the client sees.
func (h *Handler) post(ctx context.Context, c *call) (gateway.Answer, error) {
	return h.postTo(ctx, c, "/chat/completions")
}

// postTo is post to another API path (the legacy completions).
func (h *Handler) postTo(ctx context.Context, c *call, path string) (gateway.Answer, error) {
	resp, err := h.Upstream.Post(ctx, c.model.upstream, path, c.body(c.model.upstream.Model))
	if sec := c.route.Secret(); sec != "" {
		c.model.upstream.APIKey = sec
	}
	return resp, err
}

// finish records the call once, whatever became of it: usage, metrics, log
// line, and the exchange in its conversation when the client got the whole
// answer.
func (h *Handler) finish(r *http.Request, c call, d door, start time.Time, out outcome) {
	ctx := context.WithoutCancel(r.Context())
	latency := time.Since(start)
	kind := "chat"
	if c.drawPrompt != "" {
		kind = "image"
	}
	if c.cacheKey != "" {
		h.Metrics.CacheLookup(c.model.public, out.cache == "hit")
		if out.cache == "" {
			out.cache = "miss"
		}
		if out.cache == "hit" {
			out.used = tokens{} // no upstream tokens
		}
	}
	out.used, out.clamped = out.used.clampOr(out.clamped)
	cost := c.price.Cost(out.used.PromptTokens, out.used.CompletionTokens, out.images, out.cache == "hit")
	h.record(ctx, gateway.UsageRecord{RequestID: c.requestID, KeyID: c.key.ID, Model: c.model.public, Kind: kind,
		Stream: c.stream, Status: out.status, PromptTokens: out.used.PromptTokens, CompletionTokens: out.used.CompletionTokens,
		LatencyMS: latency.Milliseconds(), Partial: out.partial, Estimated: out.estimated, Clamped: out.clamped, PerMinute: c.key.TPM > 0,
		Reservation: &c.reservation, Images: out.images, Channel: c.route.Channel(), FailedChannels: c.route.FailedChannels(), Cache: out.cache, CostMicros: cost})
	h.Metrics.Chat(c.model.public, out.status, latency, out.used.PromptTokens, out.used.CompletionTokens)
	slog.InfoContext(ctx, "chat", "api", d.name(), "key", c.key.ID, "model", c.model.public, "upstream_model", c.model.upstream.Model, "channel", c.route.Channel(),
		"stream", c.stream, "status", out.status, "ms", latency.Milliseconds(), "partial", out.partial,
		"prompt_tokens", out.used.PromptTokens, "completion_tokens", out.used.CompletionTokens)
	if out.clamped {
		slog.WarnContext(ctx, "the upstream reported usage out of bounds; recorded clamped", "model", c.model.upstream.Model)
	}
}

// store keeps a completed exchange in its conversation: before the client
// is told the answer is complete (the last byte of a plain answer, the
// [DONE] of a stream), so that a next turn sent at once finds it. Only the
// answer's message goes in, without reasoning, which upstreams refuse to
// be sent back.
func (h *Handler) store(ctx context.Context, c call, out outcome) {
	if c.conversation == "" || out.status != http.StatusOK || out.partial || out.answer == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	msgs := append(append([]json.RawMessage{}, c.fresh...), scrubbed(c, withoutReasoning(out.answer)))
	if err := h.Conversations.Append(ctx, c.key.ID, c.conversation, msgs, c.keep); err != nil {
		slog.ErrorContext(ctx, "record conversation", "conversation", c.conversation, "err", err)
	}
}

// reasoningMembers are what upstreams add to an answer's message to show
// their reasoning, and refuse (DeepSeek: 400) in a message sent back.
var reasoningMembers = []string{"reasoning_content", "reasoning", "reasoning_details", "thinking"}

// withoutReasoning returns the message m without its reasoning members.
func withoutReasoning(m json.RawMessage) json.RawMessage {
	if !slices.ContainsFunc(reasoningMembers, func(k string) bool { return bytes.Contains(m, []byte(`"`+k+`"`)) }) {
		return m
	}
	obj, err := jsonobj.Split(m)
	if err != nil {
		return m
	}
	for _, k := range reasoningMembers {
		obj = obj.Del(k)
	}
	return obj.Bytes()
}

// record stores a usage record; a failure is logged, since the answer has
// gone out already.
func (h *Handler) record(ctx context.Context, rec gateway.UsageRecord) {
	if rec.RequestID == "" {
		rec.RequestID = "none"
	}
	if err := h.Meter.Record(context.WithoutCancel(ctx), rec); err != nil {
		slog.ErrorContext(ctx, "record usage", "err", err)
	}
}

// maxReportedTokens bounds what one request may be said to have used:
// more than any model's context, so that only nonsense is cut.
const maxReportedTokens = 10_000_000

// firstMessage returns choices[0].message of a completion, as it came.
func firstMessage(body []byte) json.RawMessage {
	var v struct {
		Choices []struct {
			Message json.RawMessage `json:"message"`
		} `json:"choices"`
	}
	if json.Unmarshal(body, &v) != nil || len(v.Choices) == 0 || len(v.Choices[0].Message) == 0 {
		return nil
	}
	return v.Choices[0].Message
}
