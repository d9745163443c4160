package chat

import (
	"encoding/json"
	"strings"
)

// roleOf returns the role of a message.
func roleOf(raw json.RawMessage) string {
	var m struct {
		Role string `json:"role"`
	}
	json.Unmarshal(raw, &m)
	return m.Role
}

// normalize renders a message so that two renderings of one message compare
// equal: members sorted, nulls and fields that do not change its meaning
// (refusal, annotations, reasoning) dropped, an empty content beside tool
// calls dropped.
func normalize(raw json.RawMessage) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return string(raw)
	}
	for k, v := range m {
		if v == nil {
			delete(m, k)
		}
	}
	for _, k := range []string{"refusal", "annotations", "audio", "reasoning_content", "reasoning", "reasoning_details"} {
		delete(m, k)
	}
	// Content as text parts means the same as that text.
	if parts, ok := m["content"].([]any); ok {
		var text strings.Builder
		onlyText := true
		for _, p := range parts {
			pm, _ := p.(map[string]any)
			t, isText := pm["text"].(string)
			if pm["type"] != "text" || !isText {
				onlyText = false
				break
			}
			text.WriteString(t)
		}
		if onlyText {
			m["content"] = text.String()
		}
	}
	if c, ok := m["content"].(string); ok && c == "" && m["tool_calls"] != nil {
		delete(m, "content")
	}
	// Tool-call arguments are JSON in a string: clients re-encode them
	// (spaces, key order), which changes nothing.
	if calls, ok := m["tool_calls"].([]any); ok {
		for _, c := range calls {
			cm, _ := c.(map[string]any)
			delete(cm, "index")
			fn, _ := cm["function"].(map[string]any)
			if args, ok := fn["arguments"].(string); ok {
				var v any
				if json.Unmarshal([]byte(args), &v) == nil {
					canon, _ := json.Marshal(v)
					fn["arguments"] = string(canon)
				}
			}
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

// toolCallIDs returns the tool-call IDs msgs name: of assistants' calls and
// of tool results.
func toolCallIDs(msgs []json.RawMessage) map[string]bool {
	ids := map[string]bool{}
	for _, raw := range msgs {
		var m struct {
			ToolCallID string `json:"tool_call_id"`
			ToolCalls  []struct {
				ID string `json:"id"`
			} `json:"tool_calls"`
		}
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		if m.ToolCallID != "" {
			ids[m.ToolCallID] = true
		}
		for _, c := range m.ToolCalls {
			if c.ID != "" {
				ids[c.ID] = true
			}
		}
	}
	return ids
}

// split separates system messages from the rest, keeping order.
func split(msgs []json.RawMessage) (system, rest []json.RawMessage) {
	for _, m := range msgs {
		if roleOf(m) == "system" || roleOf(m) == "developer" {
			system = append(system, m)
		} else {
			rest = append(rest, m)
		}
	}
	return system, rest
}

// assemble merges a request's messages with a conversation's stored ones.
// It returns what goes upstream and what is new to the conversation:
//
//   - a client that sends the whole conversation (its messages start with
//     the stored ones) is taken as it is, and only its tail is new;
//   - otherwise, with memory on, the stored messages go before the
//     client's (after its system messages), and all of the client's are new;
//   - with memory off, the client's messages go as they are, and those
//     after the part that matches the stored ones are new.
//
// System messages are never stored: the client resends its own, and the
// gateway adds the model's.
func assemble(client, stored []json.RawMessage, memory bool) (upstream, fresh []json.RawMessage) {
	system, rest := split(client)
	k := 0
	for k < len(rest) && k < len(stored) && normalize(rest[k]) == normalize(stored[k]) {
		k++
	}
	switch {
	case k == len(stored) || !memory:
		return client, rest[k:]
	case sharesToolCall(rest, stored):
		// The client holds this history itself, in its own spelling:
		// prepending the stored turns would send its tool calls twice.
		return client, rest[k:]
	default:
		// A history whose oldest turns were dropped may start inside an
		// exchange: it is replayed from its first user turn.
		for len(stored) > 0 && roleOf(stored[0]) != "user" {
			stored = stored[1:]
		}
		merged := make([]json.RawMessage, 0, len(system)+len(stored)+len(rest))
		merged = append(append(append(merged, system...), stored...), rest...)
		return merged, rest
	}
}

// sharesToolCall reports whether the client's messages name a tool call
// the stored ones name too.
func sharesToolCall(client, stored []json.RawMessage) bool {
	if len(stored) == 0 {
		return false
	}
	ids := toolCallIDs(stored)
	if len(ids) == 0 {
		return false
	}
	for id := range toolCallIDs(client) {
		if ids[id] {
			return true
		}
	}
	return false
}

// trim keeps every system message and the last max others (all when max
// is 0), cut at a user turn: what is kept starts with the user's message,
// never inside a tool exchange (an assistant's tool calls and their
// results) and never with the assistant. When no user turn lies within the
// last max, the cut is at the last user turn, so that the task is not lost.
func trim(msgs []json.RawMessage, max int) []json.RawMessage {
	if max <= 0 || len(msgs) <= max {
		return msgs // nothing to cut, without looking at the roles
	}
	_, rest := split(msgs)
	if len(rest) <= max {
		return msgs
	}
	start, last := -1, -1
	for i, m := range rest {
		if roleOf(m) != "user" {
			continue
		}
		last = i
		if start < 0 && len(rest)-i <= max {
			start = i
		}
	}
	if start < 0 {
		start = last
	}
	if start <= 0 {
		return msgs // no user turn to cut at, or the cut keeps everything
	}
	out := make([]json.RawMessage, 0, len(msgs))
	for _, m := range msgs {
		if r := roleOf(m); r == "system" || r == "developer" {
			out = append(out, m)
		}
	}
	return append(out, rest[start:]...)
}

// rawArray encodes messages as a JSON array, each one byte for byte.
func rawArray(msgs []json.RawMessage) json.RawMessage {
	n := 2
	for _, m := range msgs {
		n += len(m) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	return append(b, ']')
}
