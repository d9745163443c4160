package chat

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/responses"
)

// door is a front door of the chat pipeline: the API a client speaks
// (chat completions, the Responses API). It turns the client's request
// into a chat completions request, and the chat answer, whole or streamed,
// back into its own format; everything between (keys, limits, models,
// system prompts, knowledge, drawing, memory, usage) is the pipeline's.
type door interface {
	// name names the door in logs.
	name() string
	// translate returns the chat completions request of the client's body,
	// sent with key.
	translate(ctx context.Context, key gateway.APIKey, body []byte) ([]byte, error)
	// answer returns a whole answer, given as a chat completion, in the
	// door's format, and its content type.
	answer(c call, out outcome, completion []byte) ([]byte, string, error)
	// encoder returns the encoder of a streamed answer.
	encoder(c call) encoder
	// fail answers with an error, in the door's shape.
	fail(w http.ResponseWriter, r *http.Request, err error)
}

// encoder writes a streamed answer in a door's format. Each method returns
// the bytes to send (nil for none).
type encoder interface {
	// start opens the stream.
	start() []byte
	// event carries one upstream event (a chat completion chunk).
	event(ev gateway.Event) []byte
	// end closes a complete answer, given its outcome.
	end(out outcome) []byte
	// fail closes a broken answer.
	fail(err error) []byte
}

// chatDoor is /v1/chat/completions: the client speaks what the upstream
// speaks.
type chatDoor struct{}

func (chatDoor) name() string { return "chat" }
func (chatDoor) translate(_ context.Context, _ gateway.APIKey, body []byte) ([]byte, error) {
	return body, nil
}
func (chatDoor) answer(c call, _ outcome, completion []byte) ([]byte, string, error) {
	return completion, "application/json", nil
}
func (chatDoor) encoder(c call) encoder                                 { return &chatEncoder{clientUsage: c.clientUsage} }
func (chatDoor) fail(w http.ResponseWriter, r *http.Request, err error) { respond.Error(w, r, err) }

// chatEncoder relays the upstream's events as they came, but the usage
// chunk the client did not ask for.
type chatEncoder struct{ clientUsage bool }

func (e *chatEncoder) start() []byte { return nil }

func (e *chatEncoder) event(ev gateway.Event) []byte {
	if !e.clientUsage && onlyUsage(ev.Data) {
		if _, ok := usageOf(ev.Data); ok {
			return nil
		}
	}
	return ev.Raw
}

func (e *chatEncoder) end(outcome) []byte { return []byte("data: [DONE]\n\n") }

func (e *chatEncoder) fail(err error) []byte {
	body, _ := json.Marshal(respond.Body(err))
	return []byte("data: " + string(body) + "\n\ndata: [DONE]\n\n")
}

// responsesDoor is POST /v1/responses: one per request.
type responsesDoor struct {
	store   *responses.Store
	ctx     context.Context
	key     gateway.APIKey
	meta    responses.Meta
	id      string
	created int64
	// history is the conversation before this request (the previous
	// response's), input this request's input, as chat messages.
	history, input []json.RawMessage
	system         bool // the chat request starts with the instructions
}

func newResponsesDoor(store *responses.Store) *responsesDoor {
	return &responsesDoor{store: store, id: responses.NewID("resp"), created: time.Now().Unix()}
}

func (d *responsesDoor) name() string { return "responses" }

func (d *responsesDoor) fail(w http.ResponseWriter, r *http.Request, err error) {
	respond.Error(w, r, err)
}

func (d *responsesDoor) translate(ctx context.Context, key gateway.APIKey, body []byte) ([]byte, error) {
	req, err := responses.Parse(body)
	if err != nil {
		return nil, err
	}
	d.ctx, d.key, d.meta, d.input = context.WithoutCancel(ctx), key, req.Meta, req.Messages
	d.system = req.HasSystem()
	return req.Chat, nil
}

// historian is a door with a conversation of its own to put before the
// request's messages, read once the request is admitted.
type historian interface {
	withHistory(ctx context.Context, messages []json.RawMessage) ([]json.RawMessage, error)
}

// withHistory puts the previous response's conversation between the
// instructions and the input.
func (d *responsesDoor) withHistory(ctx context.Context, messages []json.RawMessage) ([]json.RawMessage, error) {
	prev := d.meta.PreviousResponseID
	if prev == "" {
		return messages, nil
	}
	st, err := d.store.Get(ctx, d.key.ID, prev, true)
	if err != nil {
		if e, ok := errors.AsType[*gateway.Error](err); ok && e.Code == gateway.ENotFound {
			e.Param = "previous_response_id"
		}
		return nil, err
	}
	d.history = st.History
	at := 0
	if d.system {
		at = 1
	}
	out := slices.Concat(messages[:at], st.History, messages[at:])
	return out, nil
}

// keep stores the response, when the request asked (store, the default)
// and it came to an end, before the client learns it did: a next request
// naming it at once finds it. What is kept is scrubbed of the upstream
// keys, as what goes to the client is. It reports whether the response
// is kept; a response that could not be is answered with store false.
func (d *responsesDoor) keep(c call, r *responses.Response) bool {
	if !d.meta.Store || r.Status != "completed" && r.Status != "incomplete" {
		return false
	}
	out, err := responses.Messages(r.Output, nil)
	if err != nil {
		slog.ErrorContext(d.ctx, "keep response: its output as messages", "response", d.id, "err", err)
		r.Store = false
		return false
	}
	added := append(slices.Clone(d.input), out...)
	for i, m := range added {
		added[i] = scrubbed(c, m)
	}
	whole := append(slices.Clone(d.history), added...)
	st := responses.Stored{Response: scrubbed(c, mustJSON(r)), Input: responses.WithIDs(d.meta.Input),
		Previous: d.meta.PreviousResponseID, History: added}
	for i, m := range st.Input {
		st.Input[i] = scrubbed(c, m)
	}
	if err := d.store.Put(d.ctx, d.key.ID, d.id, st, whole); err != nil {
		slog.ErrorContext(d.ctx, "keep response", "response", d.id, "err", err)
		r.Store = false
		return false
	}
	return true
}

func (d *responsesDoor) answer(c call, o outcome, completion []byte) ([]byte, string, error) {
	_, r, err := responses.FromCompletion(completion, d.meta, d.id, d.created)
	if err != nil {
		return nil, "", err
	}
	if r.Usage == nil {
		r.Usage = responses.Estimate(o.used.PromptTokens, o.used.CompletionTokens)
	}
	if !d.keep(c, &r) {
		r.Store = false
	}
	return mustJSON(r), "application/json", nil
}

func (d *responsesDoor) encoder(c call) encoder {
	return &responsesEncoder{s: responses.NewStream(d.meta, d.id, d.created), d: d, c: c}
}

type responsesEncoder struct {
	s *responses.Stream
	d *responsesDoor
	c call
}

func (e *responsesEncoder) start() []byte                 { return e.s.Start() }
func (e *responsesEncoder) event(ev gateway.Event) []byte { return e.s.Chunk(ev.Data) }

func (e *responsesEncoder) end(out outcome) []byte {
	if out.unended && !e.s.Finished() {
		return e.s.Fail("upstream_error", "The upstream ended the answer without finishing it.")
	}
	if !out.reported {
		e.s.SetUsage(out.used.PromptTokens, out.used.CompletionTokens)
	}
	r := e.s.Response()
	if r.Status != "failed" && !e.d.keep(e.c, &r) {
		e.s.NotStored()
	}
	return e.s.End()
}

func (e *responsesEncoder) fail(err error) []byte {
	return e.s.Fail(gateway.ErrorCode(err), gateway.ErrorMessage(err))
}

// Responses serves POST /v1/responses: the Responses API over the public
// model's chat upstream, through the same pipeline as chat completions.
func (h *Handler) Responses(w http.ResponseWriter, r *http.Request) error {
	return h.serve(w, r, newResponsesDoor(h.ResponseStore))
}

// GetResponse serves GET /v1/responses/{id}: a response the key's
// requests stored.
func (h *Handler) GetResponse(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	st, err := h.ResponseStore.Get(r.Context(), key.ID, r.PathValue("id"), false)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(st.Response)
	return nil
}

// DeleteResponse serves DELETE /v1/responses/{id}.
func (h *Handler) DeleteResponse(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	if err := h.ResponseStore.Delete(r.Context(), key.ID, id); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": id, "object": "response", "deleted": true})
	return nil
}

// ResponseInputItems serves GET /v1/responses/{id}/input_items: the input
// items of a stored response, newest first unless order=asc, limit (1 to
// 100, default 20) at a time after the item named by after.
func (h *Handler) ResponseInputItems(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	st, err := h.ResponseStore.Get(r.Context(), key.ID, r.PathValue("id"), false)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			e := gateway.Errorf(gateway.EInvalid, "limit must be a number from 1 to 100.")
			e.Param = "limit"
			return e
		}
		limit = n
	}
	items := slices.Clone(st.Input)
	switch q.Get("order") {
	case "", "desc":
		slices.Reverse(items)
	case "asc":
	default:
		e := gateway.Errorf(gateway.EInvalid, "order must be asc or desc.")
		e.Param = "order"
		return e
	}
	if after := q.Get("after"); after != "" {
		i := slices.IndexFunc(items, func(it json.RawMessage) bool {
			var v struct {
				ID string `json:"id"`
			}
			return json.Unmarshal(it, &v) == nil && v.ID == after
		})
		items = items[i+1:] // not found: from the start
	}
	more := len(items) > limit
	items = items[:min(limit, len(items))]
	out := map[string]any{"object": "list", "data": items, "has_more": more, "first_id": nil, "last_id": nil}
	if len(items) > 0 {
		var first, last struct {
			ID string `json:"id"`
		}
		json.Unmarshal(items[0], &first)
		json.Unmarshal(items[len(items)-1], &last)
		out["first_id"], out["last_id"] = first.ID, last.ID
	}
	respond.JSON(w, http.StatusOK, out)
	return nil
}

// chunkOf turns a whole chat completion into one chat completion chunk
// holding all of it, so that an encoder can stream an answer the upstream
// did not stream.
func chunkOf(completion []byte) []byte {
	var c struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role             string          `json:"role"`
				Content          json.RawMessage `json:"content,omitempty"`
				Refusal          json.RawMessage `json:"refusal,omitempty"`
				ReasoningContent json.RawMessage `json:"reasoning_content,omitempty"`
				Reasoning        json.RawMessage `json:"reasoning,omitempty"`
				ToolCalls        []struct {
					ID       string          `json:"id"`
					Type     string          `json:"type"`
					Function json.RawMessage `json:"function"`
				} `json:"tool_calls,omitempty"`
			} `json:"message"`
			FinishReason json.RawMessage `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage,omitempty"`
	}
	if json.Unmarshal(completion, &c) != nil {
		return nil
	}
	type call struct {
		Index    int             `json:"index"`
		ID       string          `json:"id"`
		Type     string          `json:"type"`
		Function json.RawMessage `json:"function"`
	}
	choices := []any{}
	for _, ch := range c.Choices {
		delta := map[string]any{"role": "assistant"}
		if len(ch.Message.Content) > 0 {
			delta["content"] = ch.Message.Content
		}
		if len(ch.Message.Refusal) > 0 && string(ch.Message.Refusal) != "null" {
			delta["refusal"] = ch.Message.Refusal
		}
		if len(ch.Message.ReasoningContent) > 0 {
			delta["reasoning_content"] = ch.Message.ReasoningContent
		}
		if len(ch.Message.Reasoning) > 0 {
			delta["reasoning"] = ch.Message.Reasoning
		}
		if len(ch.Message.ToolCalls) > 0 {
			calls := make([]call, len(ch.Message.ToolCalls))
			for i, tc := range ch.Message.ToolCalls {
				calls[i] = call{Index: i, ID: tc.ID, Type: tc.Type, Function: tc.Function}
			}
			delta["tool_calls"] = calls
		}
		choices = append(choices, map[string]any{"index": ch.Index, "delta": delta, "finish_reason": ch.FinishReason})
	}
	chunk := map[string]any{"id": c.ID, "object": "chat.completion.chunk", "created": c.Created, "model": c.Model, "choices": choices}
	if len(c.Usage) > 0 {
		chunk["usage"] = c.Usage
	}
	return mustJSON(chunk)
}
