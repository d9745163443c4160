package messages

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/aigateway/aigateway/shared/chatwire"

	"github.com/aigateway/aigateway/shared/gateway"
)

// NewID returns a new message ID.
func NewID() string { return "msg_" + strings.ToLower(rand.Text()) }

// Usage is a message's token usage.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

// usageOf translates a chat completion's usage.
func usageOf(u chatwire.Usage) Usage {
	// Anthropic counts cached input apart from input_tokens.
	cached := min(u.PromptTokensDetails.CachedTokens, u.PromptTokens)
	return Usage{InputTokens: u.PromptTokens - cached, OutputTokens: u.CompletionTokens, CacheReadInputTokens: cached}
}

// stopReason maps a chat finish reason; stop with a stop sequence in the
// request may have been one of them, which the upstream does not say.
func stopReason(finish string, calls bool) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	if calls {
		return "tool_use"
	}
	return "end_turn"
}

// inputOf parses a tool call's arguments into the tool_use input object;
// arguments that are no JSON object are kept as a string under "input".
func inputOf(args string) json.RawMessage {
	args = strings.TrimSpace(args)
	if args == "" {
		return json.RawMessage("{}")
	}
	if json.Valid([]byte(args)) && strings.HasPrefix(args, "{") {
		return json.RawMessage(args)
	}
	return mustJSON(map[string]string{"input": args})
}

// FromCompletion translates a chat completion into a Message; prompt and
// completion are the gateway's estimate of the usage, for an upstream that
// reports none.
func FromCompletion(body []byte, req Request, id string, prompt, completion int64) ([]byte, error) {
	var c chatwire.Completion
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	content := []any{}
	reason := "end_turn"
	if len(c.Choices) > 0 {
		m := c.Choices[0].Message
		if t := m.Thinking(); t != "" {
			content = append(content, map[string]any{"type": "thinking", "thinking": t, "signature": ""})
		}
		if t := m.Text(); t != "" {
			content = append(content, map[string]any{"type": "text", "text": t})
		}
		for _, tc := range m.ToolCalls {
			content = append(content, map[string]any{"type": "tool_use", "id": toolID(tc.ID), "name": tc.Function.Name, "input": inputOf(tc.Function.Arguments)})
		}
		reason = stopReason(c.Choices[0].FinishReason, len(m.ToolCalls) > 0)
	}
	u := Usage{InputTokens: prompt, OutputTokens: completion}
	if c.Usage != nil {
		u = usageOf(*c.Usage)
	}
	return json.Marshal(map[string]any{"id": id, "type": "message", "role": "assistant", "model": req.Model,
		"content": content, "stop_reason": reason, "stop_sequence": nil, "usage": u})
}

// toolID is a tool call's ID as Anthropic clients expect one.
func toolID(id string) string {
	if id == "" {
		return "toolu_" + strings.ToLower(rand.Text())
	}
	return id
}

// Stream translates a chat completion's chunks into the Messages event
// sequence: message_start; for each content block content_block_start,
// its deltas and content_block_stop; message_delta with the stop reason
// and usage; message_stop. Thinking and text stream as they come; tool
// calls, whose arguments upstreams may interleave, are sent whole, each
// its own tool_use block, when the answer ends (Anthropic clients read a
// tool's input at content_block_stop anyway).
type Stream struct {
	req    Request
	id     string
	buf    bytes.Buffer
	index  int    // the next block's index
	open   string // the open block's type: thinking or text; "" for none
	calls  []*call
	byIdx  map[int]*call
	finish string
	usage  *Usage
	ended  bool
	late   strings.Builder // text after the tool calls began
}

type call struct {
	id, name string
	args     strings.Builder
}

// NewStream returns the translation of one answer into message id.
func NewStream(req Request, id string) *Stream {
	return &Stream{req: req, id: id, byIdx: map[int]*call{}}
}

func (s *Stream) event(typ string, data map[string]any) {
	data["type"] = typ
	s.buf.WriteString("event: " + typ + "\ndata: ")
	s.buf.Write(mustJSON(data))
	s.buf.WriteString("\n\n")
}

func (s *Stream) take() []byte {
	out := bytes.Clone(s.buf.Bytes())
	s.buf.Reset()
	return out
}

// Start returns message_start.
func (s *Stream) Start() []byte {
	s.event("message_start", map[string]any{"message": map[string]any{"id": s.id, "type": "message", "role": "assistant",
		"model": s.req.Model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": Usage{}}})
	return s.take()
}

// Ping returns a ping event, which clients expect while an answer takes
// its time.
func Ping() []byte { return []byte("event: ping\ndata: {\"type\": \"ping\"}\n\n") }

// closeBlock ends the open block.
func (s *Stream) closeBlock() {
	if s.open == "" {
		return
	}
	if s.open == "thinking" {
		s.event("content_block_delta", map[string]any{"index": s.index - 1, "delta": map[string]any{"type": "signature_delta", "signature": ""}})
	}
	s.event("content_block_stop", map[string]any{"index": s.index - 1})
	s.open = ""
}

// openBlock starts a block.
func (s *Stream) openBlock(kind string, block map[string]any) {
	s.closeBlock()
	s.event("content_block_start", map[string]any{"index": s.index, "content_block": block})
	s.index++
	s.open = kind
}

// Chunk returns the events of one chat completion chunk.
func (s *Stream) Chunk(data []byte) []byte {
	var c chatwire.Chunk
	if s.ended || json.Unmarshal(data, &c) != nil {
		return nil
	}
	// An error the upstream sent inside its stream ends the message.
	if msg, ok := chatwire.ErrorEvent(data); ok {
		return s.Fail(gateway.Errorf(gateway.EUpstream, "%s", msg))
	}
	if c.Usage != nil {
		u := usageOf(*c.Usage)
		s.usage = &u
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		d := ch.Delta
		if t := d.Thinking(); t != "" && len(s.calls) == 0 {
			if s.open != "thinking" {
				s.openBlock("thinking", map[string]any{"type": "thinking", "thinking": "", "signature": ""})
			}
			s.event("content_block_delta", map[string]any{"index": s.index - 1, "delta": map[string]any{"type": "thinking_delta", "thinking": t}})
		}
		if t := d.Text(); t != "" && len(s.calls) > 0 {
			s.late.WriteString(t) // a text block of its own, before the tool uses
		} else if t != "" {
			if s.open != "text" {
				s.openBlock("text", map[string]any{"type": "text", "text": ""})
			}
			s.event("content_block_delta", map[string]any{"index": s.index - 1, "delta": map[string]any{"type": "text_delta", "text": t}})
		}
		for _, tc := range d.ToolCalls {
			cl := s.byIdx[tc.Index]
			if cl == nil {
				s.closeBlock()
				cl = &call{id: toolID(tc.ID)}
				s.byIdx[tc.Index] = cl
				s.calls = append(s.calls, cl)
			}
			cl.name += tc.Function.Name // a name may come in pieces
			cl.args.WriteString(tc.Function.Arguments)
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
	}
	return s.take()
}

// Finished reports whether the upstream said how the answer finished (a
// finish reason): a stream that stops without one was cut.
func (s *Stream) Finished() bool { return s.finish != "" }

// SetUsage sets the usage the final message_delta reports when the
// upstream reported none (the gateway's estimate).
func (s *Stream) SetUsage(prompt, completion int64) {
	if s.usage == nil {
		s.usage = &Usage{InputTokens: prompt, OutputTokens: completion}
	}
}

// End returns the events that end a complete answer.
func (s *Stream) End() []byte {
	if s.ended {
		return nil
	}
	if s.finish == "error" {
		return s.Fail(gateway.Errorf(gateway.EUpstream, "The upstream ended the answer with an error."))
	}
	s.ended = true
	s.closeBlock()
	if s.late.Len() > 0 {
		s.openBlock("text", map[string]any{"type": "text", "text": ""})
		s.event("content_block_delta", map[string]any{"index": s.index - 1, "delta": map[string]any{"type": "text_delta", "text": s.late.String()}})
	}
	for _, cl := range s.calls {
		s.openBlock("tool_use", map[string]any{"type": "tool_use", "id": cl.id, "name": cl.name, "input": map[string]any{}})
		s.event("content_block_delta", map[string]any{"index": s.index - 1, "delta": map[string]any{"type": "input_json_delta", "partial_json": string(inputOf(cl.args.String()))}})
	}
	s.closeBlock()
	u := Usage{}
	if s.usage != nil {
		u = *s.usage
	}
	s.event("message_delta", map[string]any{"delta": map[string]any{"stop_reason": stopReason(s.finish, len(s.calls) > 0), "stop_sequence": nil}, "usage": u})
	s.event("message_stop", map[string]any{})
	return s.take()
}

// Fail returns the error event that ends a broken answer.
func (s *Stream) Fail(err error) []byte {
	if s.ended {
		return nil
	}
	s.ended = true
	typ, msg := ErrorType(err), gateway.ErrorMessage(err)
	s.event("error", map[string]any{"error": map[string]string{"type": typ, "message": msg}})
	return s.take()
}

// ErrorType is the Anthropic error type of a gateway error.
func ErrorType(err error) string {
	switch gateway.ErrorCode(err) {
	case gateway.EInvalid, gateway.EUnsupported, gateway.EConflict:
		return "invalid_request_error"
	case gateway.EUnauthorized:
		return "authentication_error"
	case gateway.EForbidden:
		return "permission_error"
	case gateway.ENotFound, gateway.EModelNotFound:
		return "not_found_error"
	case gateway.ETooLarge:
		return "request_too_large"
	case gateway.ELimited, gateway.EQuota:
		return "rate_limit_error"
	case gateway.EUnavailable:
		return "overloaded_error"
	case gateway.ETimeout:
		return "timeout_error"
	}
	return "api_error"
}

// WriteError writes err in Anthropic's shape with the status the gateway
// gives it.
func WriteError(w http.ResponseWriter, status int, err error) {
	if e, ok := errors.AsType[*gateway.Error](err); ok && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(mustJSON(map[string]any{"type": "error", "error": map[string]string{"type": ErrorType(err), "message": gateway.ErrorMessage(err)}}))
}
