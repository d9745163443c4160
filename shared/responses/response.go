package responses

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"strings"

	"github.com/aigateway/aigateway/shared/chatwire"
)

// NewID returns a new ID with prefix ("resp", "msg", "fc", "rs").
func NewID(prefix string) string { return prefix + "_" + strings.ToLower(rand.Text()) }

// Response is a Response object of the Responses API.
type Response struct {
	ID                 string            `json:"id"`
	Object             string            `json:"object"`
	CreatedAt          int64             `json:"created_at"`
	Status             string            `json:"status"`
	Error              *Error            `json:"error"`
	IncompleteDetails  *Incomplete       `json:"incomplete_details"`
	Instructions       *string           `json:"instructions"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Metadata           map[string]string `json:"metadata"`
	Model              string            `json:"model"`
	Output             []json.RawMessage `json:"output"`
	ParallelToolCalls  bool              `json:"parallel_tool_calls"`
	PreviousResponseID *string           `json:"previous_response_id"`
	Reasoning          reasoningEcho     `json:"reasoning"`
	Store              bool              `json:"store"`
	Temperature        *float64          `json:"temperature"`
	Text               textEcho          `json:"text"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Tools              []json.RawMessage `json:"tools"`
	TopP               *float64          `json:"top_p"`
	Truncation         string            `json:"truncation"`
	Usage              *Usage            `json:"usage"`
	User               *string           `json:"user"`
}

// Error is why a response failed.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Incomplete is why a response is incomplete.
type Incomplete struct {
	Reason string `json:"reason"`
}

type reasoningEcho struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

type textEcho struct {
	Format    json.RawMessage `json:"format"`
	Verbosity string          `json:"verbosity,omitempty"`
}

// Usage is a response's token usage.
type Usage struct {
	InputTokens        int64 `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int64 `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int64 `json:"total_tokens"`
}

// usageOf translates a chat completion's usage.
func usageOf(u chatwire.Usage) *Usage {
	out := &Usage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if out.TotalTokens == 0 {
		out.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	out.InputTokensDetails.CachedTokens = u.PromptTokensDetails.CachedTokens
	out.OutputTokensDetails.ReasoningTokens = u.CompletionTokensDetails.ReasoningTokens
	return out
}

// Estimate is the usage of a response whose upstream reported none: the
// gateway's estimate, as it records it.
func Estimate(prompt, completion int64) *Usage {
	return usageOf(chatwire.Usage{PromptTokens: prompt, CompletionTokens: completion})
}

// shell returns the response with what it repeats of its request, no
// output yet.
func (m Meta) shell(id string, created int64, status string) Response {
	r := Response{ID: id, Object: "response", CreatedAt: created, Status: status, Instructions: m.Instructions,
		MaxOutputTokens: m.MaxOutputTokens, Metadata: m.Metadata, Model: m.Model, Output: []json.RawMessage{},
		ParallelToolCalls: m.ParallelToolCalls, Store: m.Store, Temperature: m.Temperature, TopP: m.TopP,
		Truncation: "disabled", Tools: m.Tools, ToolChoice: m.ToolChoice}
	if r.Metadata == nil {
		r.Metadata = map[string]string{}
	}
	if r.Tools == nil {
		r.Tools = []json.RawMessage{}
	}
	if len(r.ToolChoice) == 0 {
		r.ToolChoice = json.RawMessage(`"auto"`)
	}
	if m.PreviousResponseID != "" {
		r.PreviousResponseID = &m.PreviousResponseID
	}
	if m.User != "" {
		r.User = &m.User
	}
	if m.Reasoning != nil {
		if m.Reasoning.Effort != "" {
			r.Reasoning.Effort = &m.Reasoning.Effort
		}
		if m.Reasoning.Summary != "" {
			r.Reasoning.Summary = &m.Reasoning.Summary
		}
	}
	r.Text = textEcho{Format: m.Text.Format, Verbosity: m.Text.Verbosity}
	if len(r.Text.Format) == 0 {
		r.Text.Format = json.RawMessage(`{"type":"text"}`)
	}
	return r
}

// outItem is one output item being built.
type outItem struct {
	kind   string // reasoning, message, function_call, custom_tool_call
	id     string
	index  int
	text   strings.Builder // reasoning or message text, call arguments
	callID string
	name   string
}

// json returns the item as it is when done.
func (it *outItem) json() json.RawMessage {
	switch it.kind {
	case "reasoning":
		return mustJSON(map[string]any{"type": "reasoning", "id": it.id, "summary": []any{},
			"content": []any{map[string]string{"type": "reasoning_text", "text": it.text.String()}}})
	case "message":
		return mustJSON(map[string]any{"type": "message", "id": it.id, "status": "completed", "role": "assistant",
			"content": []any{textPart(it.text.String())}})
	case "custom_tool_call":
		return mustJSON(map[string]any{"type": "custom_tool_call", "id": it.id, "call_id": it.callID, "name": it.name,
			"input": customInput(it.text.String()), "status": "completed"})
	}
	return mustJSON(map[string]any{"type": "function_call", "id": it.id, "call_id": it.callID, "name": it.name,
		"arguments": it.text.String(), "status": "completed"})
}

func textPart(text string) map[string]any {
	return map[string]any{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}
}

// customInput unwraps a custom tool's input from the arguments of the
// function it was sent as; arguments that are not that are the input.
func customInput(args string) string {
	var v struct {
		Input *string `json:"input"`
	}
	if json.Unmarshal([]byte(args), &v) == nil && v.Input != nil {
		return *v.Input
	}
	return args
}

// finishStatus maps a chat finish reason to the response's status.
func finishStatus(reason string) (string, *Incomplete) {
	switch reason {
	case "length":
		return "incomplete", &Incomplete{Reason: "max_output_tokens"}
	case "content_filter":
		return "incomplete", &Incomplete{Reason: "content_filter"}
	case "error":
		return "failed", nil
	}
	return "completed", nil
}

// FromCompletion translates a chat completion into the Response with id,
// created at created (Unix seconds).
func FromCompletion(body []byte, meta Meta, id string, created int64) ([]byte, Response, error) {
	var c chatwire.Completion
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, Response{}, err
	}
	r := meta.shell(id, created, "completed")
	var items []*outItem
	add := func(kind, text string) *outItem {
		it := &outItem{kind: kind, index: len(items), id: NewID(prefixOf(kind))}
		it.text.WriteString(text)
		items = append(items, it)
		return it
	}
	if len(c.Choices) > 0 {
		msg := c.Choices[0].Message
		if t := msg.Thinking(); t != "" {
			add("reasoning", t)
		}
		if t := msg.Text(); t != "" {
			add("message", t)
		}
		for _, tc := range msg.ToolCalls {
			kind := "function_call"
			if meta.Custom[tc.Function.Name] {
				kind = "custom_tool_call"
			}
			it := add(kind, tc.Function.Arguments)
			it.callID, it.name = cmpOr(tc.ID, NewID("call")), tc.Function.Name
		}
		r.Status, r.IncompleteDetails = finishStatus(c.Choices[0].FinishReason)
	}
	for _, it := range items {
		r.Output = append(r.Output, it.json())
	}
	if c.Usage != nil {
		r.Usage = usageOf(*c.Usage)
	}
	out, err := json.Marshal(r)
	return out, r, err
}

func prefixOf(kind string) string {
	switch kind {
	case "reasoning":
		return "rs"
	case "message":
		return "msg"
	case "custom_tool_call":
		return "ctc"
	}
	return "fc"
}

// Stream translates a chat completion's chunks into the Responses event
// sequence: response.created and response.in_progress; for each output
// item output_item.added, its deltas, its .done events and
// output_item.done; then response.completed (or response.incomplete with
// the reason, or response.failed). Every event carries its sequence number.
type Stream struct {
	meta    Meta
	id      string
	created int64
	seq     int64
	buf     bytes.Buffer

	items     []*outItem
	reasoning *outItem // open
	text      *outItem // open
	calls     map[int]*outItem
	finish    string
	usage     *Usage
	ended     bool
	late      strings.Builder // text after the tool calls began
	failed    *Error          // an error event the upstream sent
}

// NewStream returns the translation of one answer into the response id.
func NewStream(meta Meta, id string, created int64) *Stream {
	return &Stream{meta: meta, id: id, created: created, calls: map[int]*outItem{}}
}

// event writes one event.
func (s *Stream) event(typ string, fields map[string]any) {
	fields["type"] = typ
	fields["sequence_number"] = s.seq
	s.seq++
	s.buf.WriteString("event: " + typ + "\ndata: ")
	s.buf.Write(mustJSON(fields))
	s.buf.WriteString("\n\n")
}

// take returns the events written since the last take.
func (s *Stream) take() []byte {
	out := bytes.Clone(s.buf.Bytes())
	s.buf.Reset()
	return out
}

// Start returns the events that open the stream.
func (s *Stream) Start() []byte {
	r := s.meta.shell(s.id, s.created, "in_progress")
	s.event("response.created", map[string]any{"response": r})
	s.event("response.in_progress", map[string]any{"response": r})
	return s.take()
}

// open starts an output item.
func (s *Stream) open(kind string) *outItem {
	it := &outItem{kind: kind, index: len(s.items), id: NewID(prefixOf(kind))}
	s.items = append(s.items, it)
	return it
}

// closeReasoning ends the open reasoning item.
func (s *Stream) closeReasoning() {
	it := s.reasoning
	if it == nil {
		return
	}
	s.reasoning = nil
	s.event("response.reasoning_text.done", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0, "text": it.text.String()})
	s.event("response.content_part.done", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0,
		"part": map[string]string{"type": "reasoning_text", "text": it.text.String()}})
	s.event("response.output_item.done", map[string]any{"output_index": it.index, "item": it.json()})
}

// closeText ends the open message item.
func (s *Stream) closeText() {
	it := s.text
	if it == nil {
		return
	}
	s.text = nil
	text := it.text.String()
	s.event("response.output_text.done", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0, "text": text, "logprobs": []any{}})
	s.event("response.content_part.done", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0, "part": textPart(text)})
	s.event("response.output_item.done", map[string]any{"output_index": it.index, "item": it.json()})
}

// Chunk returns the events that carry one chat completion chunk.
func (s *Stream) Chunk(data []byte) []byte {
	var c chatwire.Chunk
	if json.Unmarshal(data, &c) != nil || s.ended {
		return nil
	}
	// An error the upstream sent inside its stream ends the response.
	if msg, ok := chatwire.ErrorEvent(data); ok {
		return s.Fail("upstream_error", msg)
	}
	if c.Usage != nil {
		s.usage = usageOf(*c.Usage)
	}
	for _, ch := range c.Choices {
		if ch.Index != 0 {
			continue
		}
		d := ch.Delta
		if t := d.Thinking(); t != "" && s.text == nil && len(s.calls) == 0 {
			if s.reasoning == nil {
				s.reasoning = s.open("reasoning")
				s.event("response.output_item.added", map[string]any{"output_index": s.reasoning.index,
					"item": map[string]any{"type": "reasoning", "id": s.reasoning.id, "summary": []any{}, "content": []any{}}})
				s.event("response.content_part.added", map[string]any{"item_id": s.reasoning.id, "output_index": s.reasoning.index,
					"content_index": 0, "part": map[string]string{"type": "reasoning_text", "text": ""}})
			}
			s.reasoning.text.WriteString(t)
			s.event("response.reasoning_text.delta", map[string]any{"item_id": s.reasoning.id, "output_index": s.reasoning.index, "content_index": 0, "delta": t})
		}
		if t := d.Text(); t != "" {
			s.closeReasoning()
			if s.text == nil && len(s.calls) == 0 {
				s.text = s.open("message")
				s.event("response.output_item.added", map[string]any{"output_index": s.text.index,
					"item": map[string]any{"type": "message", "id": s.text.id, "status": "in_progress", "role": "assistant", "content": []any{}}})
				s.event("response.content_part.added", map[string]any{"item_id": s.text.id, "output_index": s.text.index, "content_index": 0, "part": textPart("")})
			}
			if s.text != nil {
				s.text.text.WriteString(t)
				s.event("response.output_text.delta", map[string]any{"item_id": s.text.id, "output_index": s.text.index, "content_index": 0, "delta": t, "logprobs": []any{}})
			} else {
				s.late.WriteString(t) // after the tool calls: a message of its own at the end
			}
		}
		for _, tc := range d.ToolCalls {
			it := s.calls[tc.Index]
			if it == nil {
				s.closeReasoning()
				s.closeText()
				kind := "function_call"
				if s.meta.Custom[tc.Function.Name] {
					kind = "custom_tool_call"
				}
				it = s.open(kind)
				it.callID, it.name = cmpOr(tc.ID, NewID("call")), tc.Function.Name
				s.calls[tc.Index] = it
				if kind == "function_call" {
					s.event("response.output_item.added", map[string]any{"output_index": it.index,
						"item": map[string]any{"type": "function_call", "id": it.id, "call_id": it.callID, "name": it.name, "arguments": "", "status": "in_progress"}})
				} else {
					s.event("response.output_item.added", map[string]any{"output_index": it.index,
						"item": map[string]any{"type": "custom_tool_call", "id": it.id, "call_id": it.callID, "name": it.name, "input": "", "status": "in_progress"}})
				}
			}
			if it.name != tc.Function.Name && tc.ID == "" {
				it.name += tc.Function.Name // a name that comes in pieces
			}
			if tc.Function.Arguments == "" {
				continue
			}
			it.text.WriteString(tc.Function.Arguments)
			if it.kind == "function_call" {
				s.event("response.function_call_arguments.delta", map[string]any{"item_id": it.id, "output_index": it.index, "delta": tc.Function.Arguments})
			}
		}
		if ch.FinishReason != nil && *ch.FinishReason != "" {
			s.finish = *ch.FinishReason
		}
	}
	return s.take()
}

// closeCalls ends the tool call items: a function call's arguments done,
// a custom call's input (known only whole) sent and done.
func (s *Stream) closeCalls() {
	for _, it := range s.items {
		switch it.kind {
		case "function_call":
			s.event("response.function_call_arguments.done", map[string]any{"item_id": it.id, "output_index": it.index, "name": it.name, "arguments": it.text.String()})
			s.event("response.output_item.done", map[string]any{"output_index": it.index, "item": it.json()})
		case "custom_tool_call":
			input := customInput(it.text.String())
			s.event("response.custom_tool_call_input.delta", map[string]any{"item_id": it.id, "output_index": it.index, "delta": input})
			s.event("response.custom_tool_call_input.done", map[string]any{"item_id": it.id, "output_index": it.index, "input": input})
			s.event("response.output_item.done", map[string]any{"output_index": it.index, "item": it.json()})
		}
	}
}

// Response returns the response as it stands: its output items, status
// and usage (the usage nil when the upstream reported none).
func (s *Stream) Response() Response {
	r := s.meta.shell(s.id, s.created, "completed")
	r.Status, r.IncompleteDetails = finishStatus(s.finish)
	if s.failed != nil {
		r.Status, r.IncompleteDetails, r.Error = "failed", nil, s.failed
	}
	for _, it := range s.items {
		r.Output = append(r.Output, it.json())
	}
	r.Usage = s.usage
	return r
}

// SetUsage sets the usage of the final response when the upstream
// reported none (the gateway's estimate).
func (s *Stream) SetUsage(prompt, completion int64) {
	if s.usage == nil {
		s.usage = usageOf(chatwire.Usage{PromptTokens: prompt, CompletionTokens: completion})
	}
}

// End returns the events that end a complete answer: the open items done,
// then response.completed, or response.incomplete with the reason.
func (s *Stream) End() []byte {
	if s.ended {
		return nil
	}
	if s.finish == "error" {
		return s.Fail("upstream_error", "The upstream ended the answer with an error.")
	}
	s.closeReasoning()
	s.closeText()
	s.closeCalls()
	if s.late.Len() > 0 {
		it := s.open("message")
		text := s.late.String()
		s.event("response.output_item.added", map[string]any{"output_index": it.index,
			"item": map[string]any{"type": "message", "id": it.id, "status": "in_progress", "role": "assistant", "content": []any{}}})
		s.event("response.content_part.added", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0, "part": textPart("")})
		s.event("response.output_text.delta", map[string]any{"item_id": it.id, "output_index": it.index, "content_index": 0, "delta": text, "logprobs": []any{}})
		it.text.WriteString(text)
		s.text = it
		s.closeText()
	}
	s.ended = true
	r := s.Response()
	typ := "response.completed"
	if r.Status == "incomplete" {
		typ = "response.incomplete"
	}
	s.event(typ, map[string]any{"response": r})
	return s.take()
}

// Finished reports whether the upstream said how the answer finished (a
// finish reason): a stream that stops without one was cut.
func (s *Stream) Finished() bool { return s.finish != "" }

// NotStored marks the response as not kept: its final event says store
// false.
func (s *Stream) NotStored() { s.meta.Store = false }

// Fail returns the event that ends a broken answer: response.failed with
// the error.
func (s *Stream) Fail(code, message string) []byte {
	if s.ended {
		return nil
	}
	s.ended = true
	s.failed = &Error{Code: code, Message: message}
	r := s.Response()
	s.event("response.failed", map[string]any{"response": r})
	return s.take()
}
