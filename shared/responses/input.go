package responses

import (
	"encoding/json"
	"fmt"
	"strings"
)

// inputItems reads input: a string (one user message) or a list of items.
func inputItems(raw json.RawMessage) ([]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []json.RawMessage{mustJSON(map[string]any{"type": "message", "role": "user",
			"content": []map[string]string{{"type": "input_text", "text": s}}})}, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, invalid("input", "input must be a string or a list of items.")
	}
	return items, nil
}

// item is an input item as read: a message, a function or custom tool
// call, its output, a reasoning item.
type item struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	CallID  string          `json:"call_id"`
	Name    string          `json:"name"`
	Args    *string         `json:"arguments"`
	Input   *string         `json:"input"`
	Output  json.RawMessage `json:"output"`
}

// part is a content part of a message.
type part struct {
	Type     string          `json:"type"`
	Text     string          `json:"text"`
	ImageURL json.RawMessage `json:"image_url"`
	FileID   string          `json:"file_id"`
	Detail   string          `json:"detail"`
	Refusal  string          `json:"refusal"`
}

// Messages translates input items into chat messages: messages as
// messages (developer as system), calls as an assistant message's tool
// calls (consecutive calls in one message, as parallel calls), outputs as
// tool messages; reasoning items are left out, since chat upstreams refuse
// reasoning sent back. custom names the custom tools.
func Messages(items []json.RawMessage, custom map[string]bool) ([]json.RawMessage, error) {
	var out []map[string]any
	// last returns the assistant message that calls may join: the one just
	// made, when it is an assistant's.
	last := func() map[string]any {
		if n := len(out); n > 0 && out[n-1]["role"] == "assistant" {
			return out[n-1]
		}
		return nil
	}
	for i, raw := range items {
		var it item
		if err := json.Unmarshal(raw, &it); err != nil {
			return nil, invalid(fmt.Sprintf("input[%d]", i), "The input item is not an object of the Responses API: %v", err)
		}
		where := fmt.Sprintf("input[%d]", i)
		switch it.Type {
		case "", "message":
			m, err := message(it, where)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		case "function_call", "custom_tool_call":
			if it.CallID == "" || it.Name == "" {
				return nil, invalid(where, "A %s item needs its call_id and name.", it.Type)
			}
			args := "{}"
			if it.Type == "custom_tool_call" {
				in := ""
				if it.Input != nil {
					in = *it.Input
				}
				args = string(mustJSON(map[string]string{"input": in}))
			} else if it.Args != nil {
				args = *it.Args
			}
			call := map[string]any{"id": it.CallID, "type": "function", "function": map[string]string{"name": it.Name, "arguments": args}}
			// An assistant message just before takes the call, as one chat
			// message holds text and calls.
			m := last()
			if m == nil {
				m = map[string]any{"role": "assistant", "content": nil}
				out = append(out, m)
			}
			calls, _ := m["tool_calls"].([]any)
			m["tool_calls"] = append(calls, call)
		case "function_call_output", "custom_tool_call_output":
			if it.CallID == "" {
				return nil, invalid(where, "A %s item needs its call_id.", it.Type)
			}
			out = append(out, map[string]any{"role": "tool", "tool_call_id": it.CallID, "content": outputText(it.Output)})
		case "reasoning":
			// Left out: upstreams refuse reasoning sent back.
		case "item_reference":
			return nil, invalid(where, "Item references are not supported; send the items themselves.")
		case "web_search_call", "tool_search_call", "tool_search_output", "file_search_call", "image_generation_call", "compaction":
			// What a hosted tool did, echoed back by a client: a chat
			// upstream has nothing to read in it.
		default:
			return nil, invalid(where, "The input item type %q cannot be sent to a chat completions upstream.", it.Type)
		}
	}
	msgs := make([]json.RawMessage, len(out))
	for i, m := range out {
		msgs[i] = mustJSON(m)
	}
	return msgs, nil
}

// message translates a message item.
func message(it item, where string) (map[string]any, error) {
	role := it.Role
	switch role {
	case "user", "assistant", "system":
	case "developer":
		role = "system" // chat upstreams (DeepSeek, Qwen, vLLM) know system, not developer
	default:
		return nil, invalid(where+".role", "A message's role must be user, assistant, system or developer.")
	}
	var s string
	if json.Unmarshal(it.Content, &s) == nil {
		return map[string]any{"role": role, "content": s}, nil
	}
	var parts []part
	if err := json.Unmarshal(it.Content, &parts); err != nil {
		return nil, invalid(where+".content", "A message's content must be a string or a list of parts.")
	}
	var text strings.Builder
	var chatParts []map[string]any
	images := false
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			chatParts = append(chatParts, map[string]any{"type": "text", "text": p.Text})
			text.WriteString(p.Text)
		case "refusal":
			chatParts = append(chatParts, map[string]any{"type": "text", "text": p.Refusal})
			text.WriteString(p.Refusal)
		case "input_image":
			var url string
			if json.Unmarshal(p.ImageURL, &url) != nil || url == "" {
				var obj struct {
					URL string `json:"url"`
				}
				json.Unmarshal(p.ImageURL, &obj)
				url = obj.URL
			}
			if url == "" {
				return nil, invalid(fmt.Sprintf("%s.content[%d]", where, j), "An input image needs its image_url (a URL or a data: URL); file IDs are not supported.")
			}
			img := map[string]any{"url": url}
			if p.Detail != "" {
				img["detail"] = p.Detail
			}
			chatParts = append(chatParts, map[string]any{"type": "image_url", "image_url": img})
			images = true
		case "input_file", "input_audio":
			return nil, invalid(fmt.Sprintf("%s.content[%d]", where, j), "The content part %q is not supported; send its text.", p.Type)
		default:
			return nil, invalid(fmt.Sprintf("%s.content[%d]", where, j), "The content part type %q is not one of the Responses API's.", p.Type)
		}
	}
	// Text alone goes as a string: what every chat upstream reads, the
	// assistant's included.
	if !images {
		return map[string]any{"role": role, "content": text.String()}, nil
	}
	return map[string]any{"role": role, "content": chatParts}, nil
}

// outputText is a tool output as the chat tool message's content: a
// string as it is, a list of parts as their text.
func outputText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []part
	if json.Unmarshal(raw, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return string(raw)
}
