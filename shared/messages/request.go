// Package messages translates Anthropic's Messages API onto a chat
// completions upstream: a Messages request into a chat completions
// request, and the chat completion (whole, or as a stream of chunks) back
// into a Message (whole, or as the Messages event sequence), with errors
// in Anthropic's shape. The gateway runs the chat request through the same
// pipeline as /v1/chat/completions, so this package knows nothing of keys,
// limits or models.
package messages

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
)

// fields are the request members read here; jsonobj refuses any of them
// held twice or in another case.
var fields = []string{"model", "messages", "system", "max_tokens", "stop_sequences", "temperature", "top_p",
	"top_k", "tools", "tool_choice", "thinking", "metadata", "stream", "service_tier", "container", "mcp_servers",
	"output_config", "context_management"}

type request struct {
	Model         string            `json:"model"`
	Messages      []message         `json:"messages"`
	System        json.RawMessage   `json:"system"`
	MaxTokens     *int64            `json:"max_tokens"`
	StopSequences []string          `json:"stop_sequences"`
	Temperature   *float64          `json:"temperature"`
	TopP          *float64          `json:"top_p"`
	TopK          *int64            `json:"top_k"`
	Tools         []json.RawMessage `json:"tools"`
	ToolChoice    *toolChoice       `json:"tool_choice"`
	Thinking      *thinking         `json:"thinking"`
	Metadata      *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	Stream       bool            `json:"stream"`
	MCPServers   json.RawMessage `json:"mcp_servers"`
	Container    json.RawMessage `json:"container"`
	OutputConfig *struct {
		Effort string `json:"effort"`
	} `json:"output_config"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

type thinking struct {
	Type         string `json:"type"`
	BudgetTokens int64  `json:"budget_tokens"`
}

// block is a content block as read.
type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *source         `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

type source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

// Request is a Messages request translated.
type Request struct {
	Chat   []byte // a chat completions request
	Model  string
	Stream bool
	// MaxTokens is what the client asked for, so that the answer's
	// stop_reason can tell a cut answer.
	MaxTokens int64
	// StopSequences are the client's, to name the one that stopped the
	// answer when the upstream says it stopped.
	StopSequences []string
}

// Parse translates a Messages request body.
func Parse(body []byte) (Request, error) {
	obj, err := jsonobj.Parse(body, fields)
	if err != nil {
		return Request{}, err
	}
	var req request
	if err := json.NewDecoder(bytes.NewReader(obj.Bytes())).Decode(&req); err != nil {
		return Request{}, invalid("The request does not match the Messages API: %v", err)
	}
	if req.Model == "" {
		return Request{}, invalid("model: Field required")
	}
	if req.MaxTokens == nil || *req.MaxTokens < 1 {
		return Request{}, invalid("max_tokens: Field required, at least 1")
	}
	if len(req.MCPServers) > 0 && string(req.MCPServers) != "null" && string(req.MCPServers) != "[]" {
		return Request{}, invalid("mcp_servers: MCP servers cannot be reached through a chat completions upstream.")
	}
	chat := chatRequest{Model: req.Model, Stream: req.Stream, MaxTokens: *req.MaxTokens, Temperature: req.Temperature,
		TopP: req.TopP, TopK: req.TopK, Stop: req.StopSequences}
	if req.Metadata != nil {
		chat.User = req.Metadata.UserID
	}
	if len(req.StopSequences) > 4 {
		// OpenAI-style upstreams take at most four; the rest could not stop
		// the answer.
		return Request{}, invalid("stop_sequences: at most 4 are supported by the upstream.")
	}
	if req.Thinking != nil {
		switch req.Thinking.Type {
		case "enabled":
			chat.ReasoningEffort = effortOf(req.Thinking.BudgetTokens)
		case "adaptive":
			chat.ReasoningEffort = "medium"
			if req.OutputConfig != nil && req.OutputConfig.Effort != "" {
				chat.ReasoningEffort = req.OutputConfig.Effort
				if chat.ReasoningEffort == "max" {
					chat.ReasoningEffort = "high"
				}
			}
		case "disabled", "":
		default:
			return Request{}, invalid("thinking.type: must be enabled, adaptive or disabled")
		}
	}
	system, err := systemText(req.System)
	if err != nil {
		return Request{}, err
	}
	var msgs []map[string]any
	for i, m := range req.Messages {
		out, sys, err := translate(m, i)
		if err != nil {
			return Request{}, err
		}
		// A system message inside messages (Claude Code sends one for
		// models it does not know) joins the system prompt.
		if sys != "" {
			system = strings.TrimSpace(system + "\n\n" + sys)
		}
		for _, o := range out {
			// Consecutive assistant messages are one turn (Anthropic merges
			// them): their text and calls go together, so that calls are
			// followed by their results.
			if n := len(msgs); n > 0 && o["role"] == "assistant" && msgs[n-1]["role"] == "assistant" {
				mergeAssistant(msgs[n-1], o)
				continue
			}
			msgs = append(msgs, o)
		}
	}
	if len(msgs) == 0 {
		return Request{}, invalid("messages: at least one message is required")
	}
	if system != "" {
		chat.Messages = append(chat.Messages, mustJSON(map[string]string{"role": "system", "content": system}))
	}
	for _, m := range msgs {
		chat.Messages = append(chat.Messages, mustJSON(m))
	}
	if chat.Tools, err = tools(req.Tools); err != nil {
		return Request{}, err
	}
	if tc := req.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto", "":
			chat.ToolChoice = mustJSON("auto")
		case "any":
			chat.ToolChoice = mustJSON("required")
		case "none":
			chat.ToolChoice = mustJSON("none")
		case "tool":
			if tc.Name == "" {
				return Request{}, invalid("tool_choice.name: Field required")
			}
			chat.ToolChoice = mustJSON(map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}})
		default:
			return Request{}, invalid("tool_choice.type: must be auto, any, tool or none")
		}
		if tc.DisableParallelToolUse && len(chat.Tools) > 0 {
			f := false
			chat.ParallelToolCalls = &f
		}
	}
	if len(chat.Tools) == 0 {
		// Upstreams refuse a tool choice without tools.
		chat.ToolChoice, chat.ParallelToolCalls = nil, nil
	}
	return Request{Chat: mustJSON(chat), Model: req.Model, Stream: req.Stream, MaxTokens: *req.MaxTokens, StopSequences: req.StopSequences}, nil
}

// effortOf maps a thinking budget to a reasoning effort.
func effortOf(budget int64) string {
	switch {
	case budget <= 4096:
		return "low"
	case budget <= 16384:
		return "medium"
	}
	return "high"
}

// chatRequest is the chat completions request the translation makes.
type chatRequest struct {
	Model             string            `json:"model"`
	Messages          []json.RawMessage `json:"messages"`
	Stream            bool              `json:"stream,omitempty"`
	MaxTokens         int64             `json:"max_tokens"`
	Temperature       *float64          `json:"temperature,omitempty"`
	TopP              *float64          `json:"top_p,omitempty"`
	TopK              *int64            `json:"top_k,omitempty"`
	Stop              []string          `json:"stop,omitempty"`
	Tools             []json.RawMessage `json:"tools,omitempty"`
	ToolChoice        json.RawMessage   `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool             `json:"parallel_tool_calls,omitempty"`
	ReasoningEffort   string            `json:"reasoning_effort,omitempty"`
	User              string            `json:"user,omitempty"`
}

func invalid(format string, args ...any) error {
	return gateway.Errorf(gateway.EInvalid, format, args...)
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values that always encode reach here
	}
	return b
}

// systemText reads system: a string or text blocks.
func systemText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", invalid("system: must be a string or a list of text blocks")
	}
	var parts []string
	for _, b := range blocks {
		if b.Type != "text" {
			return "", invalid("system: only text blocks are supported, not %q", b.Type)
		}
		parts = append(parts, b.Text)
	}
	return strings.Join(parts, "\n\n"), nil
}

// translate turns one Messages message into chat messages: a user's
// tool_result blocks become tool messages (first, as they answer the
// assistant's calls), its other blocks a user message; an assistant's
// tool_use blocks become tool calls beside its text; thinking is left out.
// A system message returns its text as sys.
func translate(m message, i int) (out []map[string]any, sys string, err error) {
	where := fmt.Sprintf("messages.%d", i)
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		switch m.Role {
		case "user", "assistant":
			return []map[string]any{{"role": m.Role, "content": s}}, "", nil
		case "system":
			return nil, s, nil
		}
		return nil, "", invalid("%s.role: must be user or assistant", where)
	}
	var blocks []block
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return nil, "", invalid("%s.content: must be a string or a list of content blocks", where)
	}
	var parts []map[string]any
	var text strings.Builder
	images := false
	var calls []map[string]any
	var results []map[string]any
	for j, b := range blocks {
		at := fmt.Sprintf("%s.content.%d", where, j)
		switch b.Type {
		case "text":
			parts = append(parts, map[string]any{"type": "text", "text": b.Text})
			join(&text, b.Text)
		case "image":
			if m.Role != "user" {
				return nil, "", invalid("%s: images are sent by the user", at)
			}
			url, err := imageURL(b.Source, at)
			if err != nil {
				return nil, "", err
			}
			parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": url}})
			images = true
		case "tool_use", "server_tool_use":
			if m.Role != "assistant" || b.ID == "" || b.Name == "" {
				return nil, "", invalid("%s: a tool_use block is the assistant's, with its id and name", at)
			}
			input := b.Input
			if len(input) == 0 || string(input) == "null" {
				input = json.RawMessage("{}")
			}
			calls = append(calls, map[string]any{"id": b.ID, "type": "function", "function": map[string]string{"name": b.Name, "arguments": string(input)}})
		case "tool_result":
			if m.Role != "user" || b.ToolUseID == "" {
				return nil, "", invalid("%s: a tool_result block is the user's, with its tool_use_id", at)
			}
			content, imgs, err := resultText(b, at)
			if err != nil {
				return nil, "", err
			}
			results = append(results, map[string]any{"role": "tool", "tool_call_id": b.ToolUseID, "content": content})
			// A chat tool message holds text only: the images a tool
			// returned (a screenshot it read) go with the user's message.
			for _, u := range imgs {
				parts = append(parts, map[string]any{"type": "image_url", "image_url": map[string]string{"url": u}})
				images = true
			}
		case "thinking", "redacted_thinking":
			// Left out: chat upstreams refuse reasoning sent back.
		case "document":
			if b.Source != nil && b.Source.Type == "text" {
				parts = append(parts, map[string]any{"type": "text", "text": b.Source.Data})
				join(&text, b.Source.Data)
				continue
			}
			return nil, "", invalid("%s: only text documents are supported; send the document's text", at)
		default:
			return nil, "", invalid("%s.type: the content block type %q cannot be sent to a chat completions upstream", at, b.Type)
		}
	}
	switch m.Role {
	case "system":
		return nil, text.String(), nil
	case "user":
		out = append(out, results...)
		if len(parts) > 0 {
			if images {
				out = append(out, map[string]any{"role": "user", "content": parts})
			} else {
				out = append(out, map[string]any{"role": "user", "content": text.String()})
			}
		}
	case "assistant":
		if text.Len() == 0 && len(calls) == 0 {
			return nil, "", nil // thinking alone: nothing a chat upstream reads
		}
		msg := map[string]any{"role": "assistant", "content": text.String()}
		if len(calls) > 0 {
			msg["tool_calls"] = calls
			if text.Len() == 0 {
				msg["content"] = nil
			}
		}
		out = append(out, msg)
	default:
		return nil, "", invalid("%s.role: must be user or assistant", where)
	}
	return out, "", nil
}

// imageURL returns an image source as a URL: base64 data as a data: URL.
func imageURL(s *source, at string) (string, error) {
	if s == nil {
		return "", invalid("%s.source: Field required", at)
	}
	switch s.Type {
	case "base64":
		if s.MediaType == "" || s.Data == "" {
			return "", invalid("%s.source: base64 images need media_type and data", at)
		}
		return "data:" + s.MediaType + ";base64," + s.Data, nil
	case "url":
		if s.URL == "" {
			return "", invalid("%s.source.url: Field required", at)
		}
		return s.URL, nil
	}
	return "", invalid("%s.source.type: must be base64 or url", at)
}

// resultText is a tool result's content as the chat tool message's text
// (an error result says so), and its images as URLs.
func resultText(b block, at string) (string, []string, error) {
	var text string
	var images []string
	if len(b.Content) > 0 && string(b.Content) != "null" {
		if json.Unmarshal(b.Content, &text) != nil {
			var parts []block
			if err := json.Unmarshal(b.Content, &parts); err != nil {
				return "", nil, invalid("%s.content: must be a string or a list of blocks", at)
			}
			var sb strings.Builder
			for j, p := range parts {
				switch p.Type {
				case "text":
					join(&sb, p.Text)
				case "image":
					u, err := imageURL(p.Source, fmt.Sprintf("%s.content.%d", at, j))
					if err != nil {
						return "", nil, err
					}
					images = append(images, u)
					join(&sb, fmt.Sprintf("[image %d of this result: sent with the next user message]", len(images)))
				}
			}
			text = sb.String()
		}
	}
	if b.IsError {
		text = "Error: " + text
	}
	return text, images, nil
}

// join adds text to b, after a blank line when b holds some already:
// blocks are apart (Claude Code sends a reminder and the prompt as two).
func join(b *strings.Builder, text string) {
	if b.Len() > 0 && text != "" {
		b.WriteString("\n\n")
	}
	b.WriteString(text)
}

// Server tools a chat upstream cannot run, dropped with a log line.
var dropped = []string{"web_search_", "web_fetch_", "code_execution_", "bash_", "text_editor_", "computer_", "memory_", "tool_search_"}

// tools translates the tools: custom tools (name, description,
// input_schema) as functions; server tools dropped.
func tools(in []json.RawMessage) ([]json.RawMessage, error) {
	var out []json.RawMessage
	for i, raw := range in {
		var t struct {
			Type        string          `json:"type"`
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"input_schema"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, invalid("tools.%d: not a tool object", i)
		}
		if t.Type != "" && t.Type != "custom" {
			server := false
			for _, p := range dropped {
				server = server || strings.HasPrefix(t.Type, p)
			}
			if !server {
				return nil, invalid("tools.%d.type: %q cannot run on a chat completions upstream", i, t.Type)
			}
			slog.Info("messages: a server tool the chat upstream cannot run was dropped", "tool", t.Type)
			continue
		}
		if t.Name == "" {
			return nil, invalid("tools.%d.name: Field required", i)
		}
		fn := map[string]any{"name": t.Name, "parameters": schema(t.InputSchema)}
		if t.Description != "" {
			fn["description"] = t.Description
		}
		out = append(out, mustJSON(map[string]any{"type": "function", "function": fn}))
	}
	return out, nil
}

// schema returns an input schema without "$schema", which some upstreams
// refuse in function parameters.
func schema(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{"type":"object","properties":{}}`)
	}
	obj, err := jsonobj.Split(raw)
	if err != nil {
		return raw
	}
	return obj.Del("$schema").Bytes()
}

// mergeAssistant adds assistant message b to a.
func mergeAssistant(a, b map[string]any) {
	at, _ := a["content"].(string)
	bt, _ := b["content"].(string)
	var sb strings.Builder
	join(&sb, at)
	join(&sb, bt)
	a["content"] = sb.String()
	calls, _ := a["tool_calls"].([]map[string]any)
	more, _ := b["tool_calls"].([]map[string]any)
	if calls = append(calls, more...); len(calls) > 0 {
		a["tool_calls"] = calls
		if sb.Len() == 0 {
			a["content"] = nil
		}
	}
}
