// Package chatwire holds the chat completions wire format as the front
// doors' translations read it: a whole completion, a stream's chunk, the
// usage, an error event inside a stream.
package chatwire

import "encoding/json"

// Usage is a chat completion's usage.
type Usage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// ToolCall is a tool call, whole or a piece of one (Index says which).
type ToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Message is an assistant message, or a chunk's delta of one.
type Message struct {
	Content          *string    `json:"content"`
	Refusal          *string    `json:"refusal"`
	ReasoningContent *string    `json:"reasoning_content"`
	Reasoning        *string    `json:"reasoning"`
	ToolCalls        []ToolCall `json:"tool_calls"`
}

// Text is the message's text: its content and refusal.
func (m Message) Text() string { return str(m.Content) + str(m.Refusal) }

// Thinking is the message's reasoning text, under either name upstreams
// give it.
func (m Message) Thinking() string { return str(m.ReasoningContent) + str(m.Reasoning) }

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Completion is a whole chat completion.
type Completion struct {
	Choices []struct {
		Index        int     `json:"index"`
		Message      Message `json:"message"`
		FinishReason string  `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

// Chunk is one chunk of a streamed chat completion.
type Chunk struct {
	Choices []struct {
		Index        int     `json:"index"`
		Delta        Message `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *Usage `json:"usage"`
}

// ErrorEvent returns the message of an error an upstream sent inside its
// stream ({"error": {...}} with no choices), and whether data is one.
func ErrorEvent(data []byte) (string, bool) {
	var e struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Choices []json.RawMessage `json:"choices"`
	}
	if json.Unmarshal(data, &e) != nil || e.Error == nil || len(e.Choices) > 0 {
		return "", false
	}
	if e.Error.Message == "" {
		return "The upstream reported an error.", true
	}
	return e.Error.Message, true
}
