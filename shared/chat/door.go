package chat

import (
	"encoding/json"
	"net/http"
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
	// translate returns the chat completions request of the client's body.
	translate(body []byte) ([]byte, error)
	// answer returns a whole answer, given as a chat completion, in the
	// door's format, and its content type.
	answer(c call, completion []byte) ([]byte, string, error)
	// encoder returns the encoder of a streamed answer.
	encoder(c call) encoder
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

func (chatDoor) name() string                          { return "chat" }
func (chatDoor) translate(body []byte) ([]byte, error) { return body, nil }
func (chatDoor) answer(c call, completion []byte) ([]byte, string, error) {
	return completion, "application/json", nil
}
func (chatDoor) encoder(c call) encoder { return &chatEncoder{clientUsage: c.clientUsage} }

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

// responsesDoor is POST /v1/responses.
type responsesDoor struct {
	meta    responses.Meta
	id      string
	created int64
}

func newResponsesDoor() *responsesDoor {
	return &responsesDoor{id: responses.NewID("resp"), created: time.Now().Unix()}
}

func (d *responsesDoor) name() string { return "responses" }

func (d *responsesDoor) translate(body []byte) ([]byte, error) {
	req, err := responses.Parse(body)
	if err != nil {
		return nil, err
	}
	d.meta = req.Meta
	return req.Chat, nil
}

func (d *responsesDoor) answer(c call, completion []byte) ([]byte, string, error) {
	out, _, err := responses.FromCompletion(completion, d.meta, d.id, d.created)
	return out, "application/json", err
}

func (d *responsesDoor) encoder(c call) encoder {
	return &responsesEncoder{s: responses.NewStream(d.meta, d.id, d.created), c: c}
}

type responsesEncoder struct {
	s *responses.Stream
	c call
}

func (e *responsesEncoder) start() []byte                 { return e.s.Start() }
func (e *responsesEncoder) event(ev gateway.Event) []byte { return e.s.Chunk(ev.Data) }

func (e *responsesEncoder) end(out outcome) []byte {
	if !out.reported {
		e.s.SetUsage(out.used.PromptTokens, out.used.CompletionTokens)
	}
	return e.s.End()
}

func (e *responsesEncoder) fail(err error) []byte {
	return e.s.Fail(gateway.ErrorCode(err), gateway.ErrorMessage(err))
}

// Responses serves POST /v1/responses: the Responses API over the public
// model's chat upstream, through the same pipeline as chat completions.
func (h *Handler) Responses(w http.ResponseWriter, r *http.Request) error {
	return h.serve(w, r, newResponsesDoor())
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
