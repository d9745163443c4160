package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aigateway/aigateway/shared/answers"
	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
	"github.com/aigateway/aigateway/shared/respond"
)

// call is a chat request, checked and resolved, ready to go upstream.
type call struct {
	key    gateway.APIKey
	model  model
	stream bool
	// clientUsage is whether the client asked for the usage chunk; the
	// gateway always asks the upstream for it.
	clientUsage bool
	req         jsonobj.Object // the request as the upstream gets it, model aside
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
	reservation gateway.Reservation
	// route is what the routing found: the channel that answered.
	route *gateway.Route
	// cacheKey, when set, is the digest the answer is cached under.
	cacheKey string
	// price is what the upstream model (the image model, drawing) costs.
	price gateway.Price
}

// body returns the upstream request for the upstream model name.
func (c call) body(upstreamModel string) []byte {
	return c.req.Set("model", mustJSON(upstreamModel)).Bytes()
}

// conversationID returns the conversation the request names, by header or
// body field, or "".
func conversationID(r *http.Request, req jsonobj.Object) (string, error) {
	id := r.Header.Get("X-Conversation-ID")
	if field, ok, err := req.GetString("conversation_id"); err != nil {
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
func (h *Handler) prepare(w http.ResponseWriter, r *http.Request, d door) (_ call, err error) {
	key, err := h.authenticate(r)
	if err != nil {
		return call{}, err
	}
	body, err := respond.ReadBody(w, r, h.opt.MaxBody)
	if err != nil {
		return call{}, err
	}
	if body, err = d.translate(r.Context(), key, body); err != nil {
		return call{}, err
	}
	req, err := parseRequest(body)
	if err != nil {
		return call{}, err
	}
	name, ok, err := req.GetString("model")
	if err != nil {
		return call{}, err
	}
	if !ok || name == "" {
		return call{}, jsonobj.Invalid("model", "the name of a model")
	}
	messages, err := messagesOf(req)
	if err != nil {
		return call{}, err
	}
	stream, err := req.GetBool("stream")
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
	req = capOutput(req, st.MaxOutputTokens)
	// The reservation counts what is known before admission: the body, the
	// model's system prompt and what the gateway adds (stream_options, the
	// system message's envelope), so that a plain request needs no Extend:
	// under a burst, an Extend meets the reservations of requests being
	// refused at that moment, and could refuse every request of the burst.
	price, _ := st.PriceOf(m.upstream.Model)
	reserve := reserveFor(req, len(body)+len(m.systemPrompt)+gatewayAdds)
	res, err := h.Meter.Admit(r.Context(), key, gateway.Ask{Tokens: reserve, Cost: reserve * price.PerToken(), PerToken: price.PerToken()})
	if err != nil {
		return call{}, err
	}
	// A request refused from here on gives its reservation back.
	defer func() {
		if err != nil {
			h.Meter.Release(r.Context(), res)
		}
	}()
	// A door's own history (a previous response's conversation) is read
	// only now, once the key's limits admitted the request.
	if hist, ok := d.(historian); ok {
		grown, err := hist.withHistory(r.Context(), messages)
		if err != nil {
			return call{}, err
		}
		if len(grown) != len(messages) {
			messages = grown
			req = req.Set("messages", rawArray(messages))
		}
	}
	c := call{key: key, model: m, stream: stream, conversation: conv, keep: st.MaxConversations, requestID: requestID(w),
		reservation: res, price: price}

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
			c.price, _ = st.PriceOf(st.ImageModel)
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
		req = req.Set("messages", rawArray(send))
	}
	c.req = req.Del("conversation_id")
	if h.Answers != nil && answers.Cacheable(m.cache, c.req.Bytes()) {
		scope := key.ID
		if m.cache.Shared {
			scope = ""
		}
		// The upstream model is part of what is asked: a public model
		// moved to another has answers of its own.
		if c.cacheKey, err = answers.Key(m.public, scope, c.body(m.upstream.Model)); err != nil {
			return call{}, err
		}
	}
	// What goes upstream is known now (history, system prompt, sources):
	// the reservation grows to it, so that concurrent requests see it.
	if more := reserveFor(c.req, len(c.req.Bytes())) - c.reservation.Tokens; more > 0 && c.reservation.Tokens > 0 {
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
	if len(m.knowledgeBases) == 0 || st.RAG.Model == "" || h.Knowledge == nil {
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
func withUsage(req jsonobj.Object) (jsonobj.Object, bool, error) {
	opts := jsonobj.Object{}
	if raw := req.Get("stream_options"); raw != nil && string(raw) != "null" {
		var err error
		if opts, err = parseRequest(raw); err != nil {
			return nil, false, jsonobj.Invalid("stream_options", "an object")
		}
	}
	asked, err := opts.GetBool("include_usage")
	if err != nil {
		return nil, false, jsonobj.Invalid("stream_options.include_usage", "a boolean")
	}
	return req.Set("stream_options", opts.Set("include_usage", json.RawMessage("true")).Bytes()), asked, nil
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
func messagesOf(req jsonobj.Object) ([]json.RawMessage, error) {
	// The request was valid JSON when parsed: its parts need no second
	// check, only splitting.
	raw := req.Get("messages")
	messages, ok := jsonobj.ElementsValid(raw)
	if raw == nil || !ok || len(messages) == 0 {
		return nil, jsonobj.Invalid("messages", "a non-empty array of messages")
	}
	for i, m := range messages {
		msg, ok := jsonobj.SplitValid(m)
		if !ok {
			return nil, jsonobj.Invalid("messages", "an array of message objects")
		}
		if err := msg.Check(fmt.Sprintf("messages[%d]", i), messageMembers); err != nil {
			return nil, err
		}
	}
	if raw := req.Get("stream_options"); raw != nil && string(raw) != "null" {
		opts, err := jsonobj.Split(raw)
		if err != nil {
			return nil, jsonobj.Invalid("stream_options", "an object")
		}
		if err := opts.Check("stream_options", []string{"include_usage"}); err != nil {
			return nil, err
		}
	}
	return messages, nil
}

// The members the gateway reads itself, of a request and of a message.
// Upstreams decode JSON their own way: some take the last of two equal
// keys, some the first, and Go's decoder takes "Model" (or "ſtream") for
// "model" ("stream"). So that the upstream can never act on a member the
// gateway read differently, an object the gateway reads may hold no key
// twice, not even in another case, and no case variant of these.
var (
	requestMembers = []string{"model", "messages", "stream", "stream_options", "conversation_id", "max_tokens",
		"max_completion_tokens", "n", "input", "prompt", "size", "response_format", "encoding_format", "tools", "tool_choice"}
	messageMembers = []string{"role", "content", "tool_calls", "tool_call_id", "name", "reasoning_content"}
)

// gatewayAdds bounds, in bytes, what the gateway adds to a request besides
// the system prompt's text: stream_options and a system message's JSON.
const gatewayAdds = 128

// parseRequest splits a chat or embeddings request body into its members.
func parseRequest(data []byte) (jsonobj.Object, error) { return jsonobj.Parse(data, requestMembers) }

// capOutput lowers the tokens the request asks the upstream to write to
// limit (zero: no cap).
func capOutput(req jsonobj.Object, limit int) jsonobj.Object {
	if limit <= 0 {
		return req
	}
	for _, k := range []string{"max_tokens", "max_completion_tokens"} {
		// As a number of any form: 32000.0 and 3.2e4 are 32000 to upstreams.
		var v float64
		if raw := req.Get(k); raw != nil && json.Unmarshal(raw, &v) == nil && v > float64(limit) {
			req = req.Set(k, mustJSON(limit))
		}
	}
	return req
}
