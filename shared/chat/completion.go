package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/upstream"
	"github.com/aigateway/aigateway/shared/usage"
)

// call is a chat request, checked and resolved, ready to go upstream.
type call struct {
	key    gateway.APIKey
	model  model
	stream bool
	// clientUsage is whether the client asked for the usage chunk; the
	// gateway always asks the upstream for it.
	clientUsage bool
	req         object // the request as the upstream gets it, model aside
	// conversation names the conversation the exchange belongs to; fresh
	// are the request's messages it does not hold yet.
	conversation string
	fresh        []json.RawMessage
	keep         int
	// drawPrompt, when set, is what to draw instead of chatting, with the
	// image upstream and size.
	drawPrompt string
	image      gateway.Upstream
	imageSize  string
	requestID  string
	// reservation is what the request holds of its key's token limits.
	reservation usage.Reservation
}

// body returns the upstream request for the upstream model name.
func (c call) body(upstreamModel string) []byte {
	return c.req.set("model", mustJSON(upstreamModel)).bytes()
}

// conversationID returns the conversation the request names, by header or
// body field, or "".
func conversationID(r *http.Request, req object) (string, error) {
	id := r.Header.Get("X-Conversation-ID")
	if field, ok, err := req.stringValue("conversation_id"); err != nil {
		return "", err
	} else if ok && id == "" {
		id = field
	}
	if id == "" {
		return "", nil
	}
	return id, conversations.CheckID(id)
}

// prepare authenticates, reads and checks the request, resolves its model,
// admits it under the key's limits and builds what the upstream receives:
// memory merged, the model's system prompt first, the context trimmed.
// Nothing reaches the upstream before all of it succeeded.
func (h *Handler) prepare(w http.ResponseWriter, r *http.Request) (_ call, err error) {
	key, err := h.authenticate(r)
	if err != nil {
		return call{}, err
	}
	body, err := respond.ReadBody(w, r, h.opt.MaxBody)
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
	conv, err := conversationID(r, req)
	if err != nil {
		return call{}, err
	}
	if conv != "" {
		w.Header().Set("X-Conversation-ID", conv)
	}
	st, m, err := h.resolve(r.Context(), key, name)
	if err != nil {
		return call{}, err
	}
	res, err := h.Meter.Admit(r.Context(), key, reserveFor(req, len(body)))
	if err != nil {
		return call{}, err
	}
	// A request refused from here on gives its reservation back.
	defer func() {
		if err != nil {
			h.Meter.Release(r.Context(), res)
		}
	}()
	c := call{key: key, model: m, stream: stream, conversation: conv, keep: st.MaxConversations, requestID: requestID(w),
		reservation: res}

	send := messages
	if conv != "" {
		if send, c.fresh, err = h.history(r.Context(), key.ID, conv, messages, st.ServerMemory); err != nil {
			return call{}, err
		}
	}
	if stream {
		if req, c.clientUsage, err = withUsage(req); err != nil {
			return call{}, err
		}
	}
	if m.drawing && h.Draw != nil {
		if prompt, ok := drawPrompt(messages, st.DrawTriggers); ok {
			c.drawPrompt, c.image, c.imageSize = prompt, st.ImageUpstream(), st.ImageSize
			return c, nil
		}
	}
	if sources := h.sources(r.Context(), st, m, messages); sources != nil {
		send = append([]json.RawMessage{sources}, send...)
	}
	if m.systemPrompt != "" {
		system := mustJSON(map[string]string{"role": "system", "content": m.systemPrompt})
		send = append([]json.RawMessage{system}, send...)
	}
	send = trim(send, st.MaxMessages)
	// Untouched messages go as they came; changed ones keep every message
	// byte for byte.
	if len(send) != len(messages) || &send[0] != &messages[0] {
		req = req.set("messages", rawArray(send))
	}
	c.req = req.del("conversation_id")
	// What goes upstream is known now (history, system prompt, sources):
	// the reservation grows to it, so that concurrent requests see it.
	if more := reserveFor(c.req, len(c.req.bytes())) - c.reservation.Tokens; more > 0 && c.reservation.Tokens > 0 {
		if err = h.Meter.Extend(r.Context(), &c.reservation, key, more); err != nil {
			return call{}, err
		}
		res = c.reservation
	}
	return c, nil
}

// sources retrieves from the model's knowledge bases for the last user
// message and returns a system message with the chunks found, numbered for
// citation; nil when there is nothing to add. Retrieval failing does not
// fail the chat: the answer goes without sources, and the log says why.
func (h *Handler) sources(ctx context.Context, st gateway.Settings, m model, messages []json.RawMessage) json.RawMessage {
	if len(m.knowledgeBases) == 0 || st.RAG.BaseURL == "" || h.Knowledge == nil {
		return nil
	}
	query := ""
	for i := len(messages) - 1; i >= 0 && query == ""; i-- {
		var msg struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(messages[i], &msg) == nil && msg.Role == "user" {
			query = conversations.Text(msg.Content)
		}
	}
	hits, err := h.Knowledge.Retrieve(ctx, m.knowledgeBases, query, st.RAG)
	if err != nil {
		slog.WarnContext(ctx, "retrieval failed; answering without sources", "err", err)
		return nil
	}
	if len(hits) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("Reference material from the knowledge base follows. Use it when it helps to answer, and cite what you use by its number, like [1]. If it does not hold the answer, say so instead of guessing.\n")
	for i, hit := range hits {
		fmt.Fprintf(&b, "\n[%d] %s", i+1, hit.Title)
		if hit.Heading != "" {
			b.WriteString(" › " + hit.Heading)
		}
		b.WriteString("\n" + hit.Text + "\n")
	}
	return mustJSON(map[string]string{"role": "system", "content": b.String()})
}

// withUsage sets stream_options.include_usage, keeping the other stream
// options, and reports whether the client had asked for it.
func withUsage(req object) (object, bool, error) {
	opts := object{}
	if raw := req.get("stream_options"); raw != nil && string(raw) != "null" {
		var err error
		if opts, err = parseObject(raw); err != nil {
			return nil, false, invalidField("stream_options", "an object")
		}
	}
	asked, err := opts.boolValue("include_usage")
	if err != nil {
		return nil, false, invalidField("stream_options.include_usage", "a boolean")
	}
	return req.set("stream_options", opts.set("include_usage", json.RawMessage("true")).bytes()), asked, nil
}

// history merges a named conversation's stored messages into what the
// client sent (with memory on), and returns the client's messages the
// conversation does not hold yet. With memory off only the conversation's
// length and last message are read: the client's messages after them are
// new, or all of them when the client did not resend the history.
func (h *Handler) history(ctx context.Context, keyID, conv string, messages []json.RawMessage, memory bool) (send, fresh []json.RawMessage, err error) {
	if !memory {
		n, last, err := h.Conversations.Last(ctx, keyID, conv)
		if err != nil {
			return nil, nil, err
		}
		_, rest := split(messages)
		if n > 0 && len(rest) >= n && normalize(rest[n-1]) == normalize(last) {
			return messages, rest[n:], nil
		}
		// A client that does not resend the history sent only new turns.
		return messages, rest, nil
	}
	stored, err := h.Conversations.History(ctx, keyID, conv)
	if err != nil {
		return nil, nil, err
	}
	send, fresh = assemble(messages, stored, memory)
	return send, fresh, nil
}

// messagesOf returns the request's messages, each kept byte for byte.
func messagesOf(req object) ([]json.RawMessage, error) {
	raw := req.get("messages")
	var messages []json.RawMessage
	if raw == nil || json.Unmarshal(raw, &messages) != nil || len(messages) == 0 {
		return nil, invalidField("messages", "a non-empty array of messages")
	}
	for i, m := range messages {
		if len(m) == 0 || m[0] != '{' {
			return nil, invalidField("messages", "an array of message objects")
		}
		msg, err := parseMember(m)
		if err != nil {
			return nil, err
		}
		if err := msg.checkMembers(fmt.Sprintf("messages[%d]", i), messageMembers); err != nil {
			return nil, err
		}
	}
	if raw := req.get("stream_options"); raw != nil && string(raw) != "null" {
		opts, err := parseMember(raw)
		if err != nil {
			return nil, invalidField("stream_options", "an object")
		}
		if err := opts.checkMembers("stream_options", []string{"include_usage"}); err != nil {
			return nil, err
		}
	}
	return messages, nil
}

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
}

func (h *Handler) completions(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c, err := h.prepare(w, r)
	if err != nil {
		respond.Error(w, r, err)
		return
	}
	// The upstream request outlives its client by up to DrainTimeout, so
	// that the usage of an answer the client left is still learnt.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	stopDrain := drainAfter(r.Context(), h.opt.DrainTimeout, cancel)
	defer stopDrain()

	var out outcome
	defer func() { h.finish(r, c, start, out) }()
	if c.drawPrompt != "" {
		out = h.drawAnswer(w, r, c)
		return
	}
	resp, err := h.post(ctx, c)
	if err != nil {
		out.status = respond.Status(err)
		respond.Error(w, r, err)
		return
	}
	defer resp.Close()
	if c.stream && resp.IsEventStream() {
		out = h.relay(w, r, resp, c, func(o outcome) { h.store(r.Context(), c, o) })
		return
	}
	body, err := resp.ReadAll(maxAnswer)
	if err != nil {
		out.status = respond.Status(err)
		respond.Error(w, r, err)
		return
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
	if !out.reported {
		out.estimated = true
		out.used = tokens{PromptTokens: int64(len(c.req.bytes()) / 4), CompletionTokens: int64(len(answer) / 4)}
	}
	h.store(r.Context(), c, out)
	w.Header().Set("Content-Type", contentType(resp))
	w.Header().Set("Cache-Control", "no-store")
	body = scrubbed(c, body)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
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

// post sends the call to its model's upstream, and to the fallback
// upstream when the primary keeps failing (after its own retries) with an
// error that another upstream may not have.
func (h *Handler) post(ctx context.Context, c call) (*upstream.Response, error) {
	resp, err := h.Upstream.Post(ctx, c.model.upstream, "/chat/completions", c.body(c.model.upstream.Model))
	if err == nil || c.model.fallback.BaseURL == "" || ctx.Err() != nil {
		return resp, err
	}
	switch gateway.ErrorCode(err) {
	case gateway.EUpstream, gateway.EUnavailable, gateway.ETimeout:
	default:
		return nil, err
	}
	slog.WarnContext(ctx, "primary upstream failed; using the fallback", "err", err)
	resp, ferr := h.Upstream.Post(ctx, c.model.fallback, "/chat/completions", c.body(c.model.fallback.Model))
	if ferr != nil {
		return nil, ferr
	}
	return resp, nil
}

// finish records the call once, whatever became of it: usage, metrics, log
// line, and the exchange in its conversation when the client got the whole
// answer.
func (h *Handler) finish(r *http.Request, c call, start time.Time, out outcome) {
	ctx := context.WithoutCancel(r.Context())
	latency := time.Since(start)
	kind := "chat"
	if c.drawPrompt != "" {
		kind = "image"
	}
	out.used, out.clamped = out.used.clampOr(out.clamped)
	h.record(ctx, usage.Record{RequestID: c.requestID, KeyID: c.key.ID, Model: c.model.public, Kind: kind,
		Stream: c.stream, Status: out.status, PromptTokens: out.used.PromptTokens, CompletionTokens: out.used.CompletionTokens,
		LatencyMS: latency.Milliseconds(), Partial: out.partial, Estimated: out.estimated, Clamped: out.clamped, PerMinute: c.key.TPM > 0,
		Reservation: &c.reservation, Images: out.images})
	h.Metrics.Chat(c.model.public, out.status, latency, out.used.PromptTokens, out.used.CompletionTokens)
	slog.InfoContext(ctx, "chat", "key", c.key.ID, "model", c.model.public, "upstream_model", c.model.upstream.Model,
		"stream", c.stream, "status", out.status, "ms", latency.Milliseconds(), "partial", out.partial,
		"prompt_tokens", out.used.PromptTokens, "completion_tokens", out.used.CompletionTokens)
	if out.clamped {
		slog.WarnContext(ctx, "the upstream reported usage out of bounds; recorded clamped", "model", c.model.upstream.Model)
	}
}

// clampOr clamps t, and reports whether it or earlier was out of bounds.
func (t tokens) clampOr(was bool) (tokens, bool) {
	c, clamped := t.clamp()
	return c, was || clamped
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
	obj, err := parseMember(m)
	if err != nil {
		return m
	}
	for _, k := range reasoningMembers {
		obj = obj.del(k)
	}
	return obj.bytes()
}

// record stores a usage record; a failure is logged, since the answer has
// gone out already.
func (h *Handler) record(ctx context.Context, rec usage.Record) {
	if rec.RequestID == "" {
		rec.RequestID = "none"
	}
	if err := h.Meter.Record(context.WithoutCancel(ctx), rec); err != nil {
		slog.ErrorContext(ctx, "record usage", "err", err)
	}
}

// tokens is the token count an upstream reported.
type tokens struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// defaultCompletion is the answer a request without max_tokens is
// expected to be, for reserving tokens.
const defaultCompletion = 1024

// reserveFor estimates the tokens a chat request will use: its prompt (a
// token is about four bytes) and its answers (n of them, each max_tokens or
// max_completion_tokens, the larger, or a default).
func reserveFor(req object, size int) int64 {
	answer, n := int64(0), int64(1)
	for _, k := range []string{"max_completion_tokens", "max_tokens"} {
		var v int64
		if raw := req.get(k); raw != nil && json.Unmarshal(raw, &v) == nil && v > 0 {
			answer = max(answer, min(v, maxReportedTokens))
		}
	}
	if answer == 0 {
		answer = defaultCompletion
	}
	if raw := req.get("n"); raw != nil && json.Unmarshal(raw, &n) == nil {
		n = min(max(n, 1), 128)
	}
	return int64(size/4) + n*answer
}

// maxReportedTokens bounds what one request may be said to have used:
// more than any model's context, so that only nonsense is cut.
const maxReportedTokens = 10_000_000

// clamp returns t within [0, maxReportedTokens], and whether it was not:
// an upstream's negative or absurd usage must not move a key's counters.
func (t tokens) clamp() (tokens, bool) {
	c := tokens{PromptTokens: min(max(t.PromptTokens, 0), maxReportedTokens),
		CompletionTokens: min(max(t.CompletionTokens, 0), maxReportedTokens)}
	return c, c != t
}

// usageOf returns the usage member of a completion or a stream chunk; the
// cheap check first, since most chunks have none. Usage comes last in the
// answers of every upstream seen, so the object after the last "usage" key
// is decoded alone; anything unusual falls back to decoding the whole.
func usageOf(data []byte) (tokens, bool) {
	i := bytes.LastIndex(data, []byte(`"usage"`))
	if i < 0 {
		return tokens{}, false
	}
	rest := bytes.TrimLeft(data[i+len(`"usage"`):], " \t\r\n")
	if len(rest) > 0 && rest[0] == ':' {
		var u *tokens
		if json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&u) == nil {
			if u == nil {
				return tokens{}, false
			}
			return *u, true
		}
	}
	var v struct {
		Usage *tokens `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil || v.Usage == nil {
		return tokens{}, false
	}
	return *v.Usage, true
}

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
