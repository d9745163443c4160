// Package responses translates OpenAI's Responses API onto a chat
// completions upstream: a Responses request into a chat completions
// request, and the chat completion (whole, or as a stream of chunks) back
// into a Response (whole, or as the Responses event sequence). The gateway
// runs the chat request through the same pipeline as /v1/chat/completions
// (keys, limits, public models, system prompts, knowledge, drawing,
// memory, usage), so this package knows nothing of those.
//
// What the translation cannot carry is refused with a clear error or, for
// what a chat upstream cannot do anyway (hosted web search), dropped with
// a log line; the README's table lists every field.
package responses

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
)

// fields are the request members read here; jsonobj refuses any of them
// held twice or in another case, so that the upstream and the gateway
// cannot read one request two ways.
var fields = []string{"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls",
	"max_output_tokens", "temperature", "top_p", "text", "reasoning", "metadata", "stream", "store",
	"previous_response_id", "user", "safety_identifier", "background", "conversation", "prompt",
	"include", "truncation", "service_tier", "prompt_cache_key", "top_logprobs", "stream_options",
	"max_tool_calls", "conversation_id"}

// request is a Responses request as read.
type request struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       *string           `json:"instructions"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	MaxOutputTokens    *int64            `json:"max_output_tokens"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	Text               *textConfig       `json:"text"`
	Reasoning          *reasoningConfig  `json:"reasoning"`
	Metadata           map[string]string `json:"metadata"`
	Stream             bool              `json:"stream"`
	Store              *bool             `json:"store"`
	PreviousResponseID string            `json:"previous_response_id"`
	User               string            `json:"user"`
	SafetyIdentifier   string            `json:"safety_identifier"`
	Background         bool              `json:"background"`
	Conversation       json.RawMessage   `json:"conversation"`
	Prompt             json.RawMessage   `json:"prompt"`
	ConversationID     string            `json:"conversation_id"`
}

type textConfig struct {
	Format    json.RawMessage `json:"format,omitempty"`
	Verbosity string          `json:"verbosity,omitempty"`
}

type reasoningConfig struct {
	Effort  string `json:"effort,omitempty"`
	Summary string `json:"summary,omitempty"`
}

// Request is a Responses request translated: the chat completions body
// for the pipeline, and what the Response echoes.
type Request struct {
	Chat     []byte            // a chat completions request
	Meta     Meta              //
	Messages []json.RawMessage // the input as chat messages, the instructions aside
	chat     chatRequest
	system   json.RawMessage
}

// HasSystem reports whether the chat request starts with the
// instructions as a system message.
func (r Request) HasSystem() bool { return r.system != nil }

// ChatWith returns the chat request with history (the chat messages of a
// previous response's conversation) between the instructions and the
// input.
func (r Request) ChatWith(history []json.RawMessage) []byte {
	if len(history) == 0 {
		return r.Chat
	}
	c := r.chat
	c.Messages = nil
	if r.system != nil {
		c.Messages = append(c.Messages, r.system)
	}
	c.Messages = append(append(c.Messages, history...), r.Messages...)
	return mustJSON(c)
}

// Meta is what a Response repeats of its request, and what the
// translation back needs.
type Meta struct {
	Model              string
	Stream             bool
	Store              bool
	PreviousResponseID string
	Instructions       *string
	Metadata           map[string]string
	Tools              []json.RawMessage
	ToolChoice         json.RawMessage
	ParallelToolCalls  bool
	MaxOutputTokens    *int64
	Temperature        *float64
	TopP               *float64
	Text               textConfig
	Reasoning          *reasoningConfig
	User               string
	// Custom names the custom (freeform) tools: their calls come back as
	// custom_tool_call items, their one "input" argument unwrapped.
	Custom map[string]bool
	// Input is the request's input as items, for input_items.
	Input []json.RawMessage
}

// Parse translates a Responses request body.
func Parse(body []byte) (Request, error) {
	obj, err := jsonobj.Parse(body, fields)
	if err != nil {
		return Request{}, err
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(obj.Bytes()))
	if err := dec.Decode(&req); err != nil {
		return Request{}, invalid("", "The request does not match the Responses API: %v", err)
	}
	if req.Model == "" {
		return Request{}, invalid("model", "model is required.")
	}
	if req.Background {
		return Request{}, invalid("background", "Background responses are not supported: send the request and wait for its answer, or stream it.")
	}
	if len(req.Conversation) > 0 && string(req.Conversation) != "null" {
		return Request{}, invalid("conversation", "The conversation parameter is not supported; use previous_response_id, or the X-Conversation-ID header of the gateway's conversation memory.")
	}
	if len(req.Prompt) > 0 && string(req.Prompt) != "null" {
		return Request{}, invalid("prompt", "Stored prompt templates are not supported; send the instructions and input instead.")
	}
	meta := Meta{Model: req.Model, Stream: req.Stream, Store: req.Store == nil || *req.Store, PreviousResponseID: req.PreviousResponseID,
		Instructions: req.Instructions, Metadata: req.Metadata, Tools: req.Tools, ToolChoice: req.ToolChoice,
		ParallelToolCalls: req.ParallelToolCalls == nil || *req.ParallelToolCalls, MaxOutputTokens: req.MaxOutputTokens,
		Temperature: req.Temperature, TopP: req.TopP, Reasoning: req.Reasoning, User: cmpOr(req.User, req.SafetyIdentifier),
		Custom: map[string]bool{}}
	if req.Text != nil {
		meta.Text = *req.Text
	}
	if len(req.Metadata) > 16 {
		return Request{}, invalid("metadata", "metadata holds at most 16 pairs.")
	}
	chat := chatRequest{Model: req.Model, Stream: req.Stream, ParallelToolCalls: req.ParallelToolCalls,
		MaxTokens: req.MaxOutputTokens, Temperature: req.Temperature, TopP: req.TopP, User: meta.User,
		ConversationID: req.ConversationID}
	if req.MaxOutputTokens != nil && *req.MaxOutputTokens < 1 {
		return Request{}, invalid("max_output_tokens", "max_output_tokens must be at least 1.")
	}
	if req.Reasoning != nil && req.Reasoning.Effort != "" {
		switch req.Reasoning.Effort {
		case "minimal", "low", "medium", "high", "xhigh", "none":
			chat.ReasoningEffort = req.Reasoning.Effort
		default:
			return Request{}, invalid("reasoning.effort", "reasoning.effort must be none, minimal, low, medium, high or xhigh.")
		}
	}
	if chat.Tools, err = tools(req.Tools, meta.Custom); err != nil {
		return Request{}, err
	}
	var allowed []string
	if chat.ToolChoice, allowed, err = toolChoice(req.ToolChoice); err != nil {
		return Request{}, err
	}
	if allowed != nil {
		// allowed_tools: only those go upstream.
		chat.Tools = slices.DeleteFunc(chat.Tools, func(t json.RawMessage) bool {
			var f struct {
				Function struct {
					Name string `json:"name"`
				} `json:"function"`
			}
			json.Unmarshal(t, &f)
			return !slices.Contains(allowed, f.Function.Name)
		})
	}
	if len(chat.Tools) == 0 {
		// Upstreams (vLLM, OpenAI) refuse these without tools; Codex sends
		// them on turns without any.
		chat.ToolChoice, chat.ParallelToolCalls = nil, nil
	}
	if req.Text != nil && len(req.Text.Format) > 0 {
		if chat.ResponseFormat, err = responseFormat(req.Text.Format); err != nil {
			return Request{}, err
		}
	}
	items, err := inputItems(req.Input)
	if err != nil {
		return Request{}, err
	}
	meta.Input = items
	var system json.RawMessage
	if req.Instructions != nil && *req.Instructions != "" {
		system = mustJSON(map[string]string{"role": "system", "content": *req.Instructions})
		chat.Messages = append(chat.Messages, system)
	}
	msgs, err := Messages(items, meta.Custom)
	if err != nil {
		return Request{}, err
	}
	chat.Messages = append(chat.Messages, msgs...)
	if len(msgs) == 0 {
		return Request{}, invalid("input", "input is required: a string, or a list of items.")
	}
	return Request{Chat: mustJSON(chat), Meta: meta, Messages: msgs, chat: chat, system: system}, nil
}

// chatRequest is the chat completions request the translation makes.
type chatRequest struct {
	Model             string            `json:"model"`
	Messages          []json.RawMessage `json:"messages"`
	Stream            bool              `json:"stream,omitempty"`
	Tools             []json.RawMessage `json:"tools,omitempty"`
	ToolChoice        json.RawMessage   `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool             `json:"parallel_tool_calls,omitempty"`
	MaxTokens         *int64            `json:"max_tokens,omitempty"`
	Temperature       *float64          `json:"temperature,omitempty"`
	TopP              *float64          `json:"top_p,omitempty"`
	ResponseFormat    json.RawMessage   `json:"response_format,omitempty"`
	ReasoningEffort   string            `json:"reasoning_effort,omitempty"`
	User              string            `json:"user,omitempty"`
	ConversationID    string            `json:"conversation_id,omitempty"`
}

func invalid(param, format string, args ...any) error {
	e := gateway.Errorf(gateway.EInvalid, format, args...)
	e.Param = param
	return e
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only values that always encode reach here
	}
	return b
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Hosted tools a chat upstream cannot run: clients (Codex) send them with
// every request, so they are dropped, with a log line, rather than refused.
var dropped = map[string]bool{"web_search": true, "web_search_preview": true, "web_search_2025_08_26": true,
	"web_search_preview_2025_03_11": true, "tool_search": true}

// customParameters is the JSON schema of a custom (freeform) tool turned
// into a function: one string argument, the tool's input.
var customParameters = json.RawMessage(`{"type":"object","properties":{"input":{"type":"string","description":"The tool's whole input, as free text."}},"required":["input"],"additionalProperties":false}`)

// tools translates the tools: functions as they are, custom tools as
// functions of one string (their names noted in custom), namespaces
// flattened.
func tools(in []json.RawMessage, custom map[string]bool) ([]json.RawMessage, error) {
	var out []json.RawMessage
	names := map[string]bool{}
	add := func(name, description string, parameters json.RawMessage, strict *bool) error {
		if name == "" {
			return invalid("tools", "Every tool needs a name.")
		}
		if names[name] {
			return invalid("tools", "The tool name %q is used twice.", name)
		}
		names[name] = true
		fn := map[string]any{"name": name}
		if description != "" {
			fn["description"] = description
		}
		if len(parameters) > 0 && string(parameters) != "null" {
			fn["parameters"] = parameters
		}
		if strict != nil {
			fn["strict"] = *strict
		}
		out = append(out, mustJSON(map[string]any{"type": "function", "function": fn}))
		return nil
	}
	var walk func(in []json.RawMessage, depth int) error
	walk = func(in []json.RawMessage, depth int) error {
		for _, raw := range in {
			var t struct {
				Type        string            `json:"type"`
				Name        string            `json:"name"`
				Description string            `json:"description"`
				Parameters  json.RawMessage   `json:"parameters"`
				Strict      *bool             `json:"strict"`
				Format      json.RawMessage   `json:"format"`
				Tools       []json.RawMessage `json:"tools"`
			}
			if err := json.Unmarshal(raw, &t); err != nil {
				return invalid("tools", "A tool is not an object of the Responses API: %v", err)
			}
			switch {
			case t.Type == "function":
				if err := add(t.Name, t.Description, t.Parameters, t.Strict); err != nil {
					return err
				}
			case t.Type == "custom":
				desc := t.Description
				if f := formatNote(t.Format); f != "" {
					desc = strings.TrimSpace(desc + "\n\n" + f)
				}
				if err := add(t.Name, desc, customParameters, nil); err != nil {
					return err
				}
				custom[t.Name] = true
			case t.Type == "namespace" && depth == 0:
				if err := walk(t.Tools, depth+1); err != nil {
					return err
				}
			case dropped[t.Type]:
				slog.Info("responses: a hosted tool the chat upstream cannot run was dropped", "tool", t.Type)
			default:
				return invalid("tools", "The tool type %q cannot run on a chat completions upstream: the gateway serves function and custom tools.", t.Type)
			}
		}
		return nil
	}
	if err := walk(in, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// formatNote describes a custom tool's input format for the model, which
// a chat upstream cannot enforce.
func formatNote(format json.RawMessage) string {
	var f struct {
		Type       string `json:"type"`
		Syntax     string `json:"syntax"`
		Definition string `json:"definition"`
	}
	if json.Unmarshal(format, &f) != nil || f.Type != "grammar" || f.Definition == "" {
		return ""
	}
	return fmt.Sprintf("The input must follow this %s grammar:\n%s", cmpOr(f.Syntax, "lark"), f.Definition)
}

// toolChoice translates tool_choice; allowed names the tools an
// allowed_tools choice allows (nil for any other).
func toolChoice(raw json.RawMessage) (choice json.RawMessage, allowed []string, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto", "none", "required":
			return mustJSON(s), nil, nil
		}
		return nil, nil, invalid("tool_choice", "tool_choice must be auto, none, required or a tool.")
	}
	var c struct {
		Type  string `json:"type"`
		Name  string `json:"name"`
		Mode  string `json:"mode"`
		Tools []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, nil, invalid("tool_choice", "tool_choice must be auto, none, required or a tool: %v", err)
	}
	switch c.Type {
	case "function", "custom":
		if c.Name == "" {
			return nil, nil, invalid("tool_choice", "tool_choice names no tool.")
		}
		return mustJSON(map[string]any{"type": "function", "function": map[string]string{"name": c.Name}}), nil, nil
	case "allowed_tools":
		allowed = []string{}
		for _, t := range c.Tools {
			allowed = append(allowed, t.Name)
		}
		if c.Mode == "required" {
			return mustJSON("required"), allowed, nil
		}
		return mustJSON("auto"), allowed, nil
	}
	return nil, nil, invalid("tool_choice", "tool_choice of type %q cannot be served by a chat completions upstream.", c.Type)
}

// responseFormat translates text.format.
func responseFormat(raw json.RawMessage) (json.RawMessage, error) {
	var f struct {
		Type        string          `json:"type"`
		Name        string          `json:"name"`
		Schema      json.RawMessage `json:"schema"`
		Strict      *bool           `json:"strict"`
		Description string          `json:"description"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, invalid("text.format", "text.format is not a format object: %v", err)
	}
	switch f.Type {
	case "", "text":
		return nil, nil
	case "json_object":
		return mustJSON(map[string]string{"type": "json_object"}), nil
	case "json_schema":
		if len(f.Schema) == 0 {
			return nil, invalid("text.format.schema", "A json_schema format needs its schema.")
		}
		js := map[string]any{"name": cmpOr(f.Name, "response"), "schema": f.Schema}
		if f.Strict != nil {
			js["strict"] = *f.Strict
		}
		if f.Description != "" {
			js["description"] = f.Description
		}
		return mustJSON(map[string]any{"type": "json_schema", "json_schema": js}), nil
	}
	return nil, invalid("text.format.type", "text.format.type must be text, json_object or json_schema.")
}
