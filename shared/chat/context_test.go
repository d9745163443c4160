package chat

import (
	"encoding/json"
	"strings"
	"testing"
)

func msgs(specs ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(specs))
	for i, s := range specs {
		role, content, _ := strings.Cut(s, ":")
		out[i] = mustJSON(map[string]string{"role": role, "content": content})
	}
	return out
}

func show(ms []json.RawMessage) string {
	var parts []string
	for _, m := range ms {
		var v struct{ Role, Content string }
		json.Unmarshal(m, &v)
		parts = append(parts, v.Role+":"+v.Content)
	}
	return strings.Join(parts, " ")
}

func TestAssemble(t *testing.T) {
	stored := msgs("user:hi", "assistant:hello")
	tests := []struct {
		name           string
		client         []json.RawMessage
		memory         bool
		upstream, news string
	}{
		{"client sends the whole history", msgs("system:s", "user:hi", "assistant:hello", "user:next"), true,
			"system:s user:hi assistant:hello user:next", "user:next"},
		{"memory adds the history after system messages", msgs("system:s", "user:next"), true,
			"system:s user:hi assistant:hello user:next", "user:next"},
		{"memory off sends what the client sent", msgs("user:next"), false, "user:next", "user:next"},
		{"memory off records only the tail", msgs("user:hi", "assistant:hello", "user:next"), false,
			"user:hi assistant:hello user:next", "user:next"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up, fresh := assemble(tc.client, stored, tc.memory)
			if show(up) != tc.upstream || show(fresh) != tc.news {
				t.Fatalf("assemble = %q / new %q, want %q / %q", show(up), show(fresh), tc.upstream, tc.news)
			}
		})
	}
	// The same message in another rendering is recognised.
	client := []json.RawMessage{json.RawMessage(`{ "content" : "hi", "role":"user", "name": null }`), msgs("user:next")[0]}
	if _, fresh := assemble(client, stored[:1], true); show(fresh) != "user:next" {
		t.Fatalf("a re-rendered stored message was taken as new: %q", show(fresh))
	}
}

func TestTrim(t *testing.T) {
	call := json.RawMessage(`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]}`)
	result := json.RawMessage(`{"role":"tool","tool_call_id":"c1","content":"42"}`)
	all := append(msgs("system:s", "user:a"), call, result)
	all = append(all, msgs("assistant:b", "user:c")...)
	tests := []struct {
		max  int
		want string
	}{
		{0, "system:s user:a assistant: tool:42 assistant:b user:c"},
		{10, "system:s user:a assistant: tool:42 assistant:b user:c"},
		{5, "system:s user:a assistant: tool:42 assistant:b user:c"},
		// The cut is at a user turn: never inside a tool exchange, never
		// starting with the assistant.
		{2, "system:s user:c"},
		{4, "system:s user:c"},
		{1, "system:s user:c"},
	}
	for _, tc := range tests {
		if got := show(trim(all, tc.max)); got != tc.want {
			t.Errorf("trim(%d) = %q, want %q", tc.max, got, tc.want)
		}
	}
	// An agent's long tool loop after one user turn: the task is kept,
	// even past max.
	loop := msgs("user:do the task")
	for range 10 {
		loop = append(loop, call, result)
	}
	if got := trim(loop, 4); len(got) != len(loop) || roleOf(got[0]) != "user" {
		t.Errorf("trim of a tool loop = %d messages starting %s, want all %d from the task", len(got), roleOf(got[0]), len(loop))
	}
	more := append(msgs("user:first task", "assistant:done"), loop...)
	if got := trim(more, 4); len(got) != len(loop) || !strings.Contains(string(got[0]), "do the task") {
		t.Errorf("trim = %d messages from %s, want the last task and its loop", len(got), got[0])
	}
}

func TestAccumulator(t *testing.T) {
	var a accumulator
	for _, chunk := range []string{
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"weather","arguments":"{\"city\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"北京\"}"}}]}}]}`,
		`{"choices":[{"index":1,"delta":{"content":"other choice"}}]}`,
	} {
		a.add([]byte(chunk))
	}
	want := `{"content":null,"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"北京\"}"}}]}`
	if got := string(a.message()); got != want {
		t.Fatalf("message = %s\nwant      %s", got, want)
	}
	var b accumulator
	b.add([]byte(`{"choices":[{"index":0,"delta":{"content":"Hel"}}]}`))
	b.add([]byte(`{"choices":[{"index":0,"delta":{"content":"lo"}}]}`))
	if got := string(b.message()); got != `{"content":"Hello","role":"assistant"}` {
		t.Fatalf("message = %s", got)
	}
}

func TestDrawPrompt(t *testing.T) {
	triggers := []string{"画", "/draw"}
	tests := []struct {
		name    string
		content string
		prompt  string
		draw    bool
	}{
		{"plain", `"画一只猫"`, "一只猫", true},
		{"leading spaces", `"  　画 一只猫"`, "一只猫", true},
		{"colon", `"画：山水"`, "山水", true},
		{"other trigger", `"/draw a red fox"`, "a red fox", true},
		{"array content", `[{"type":"text","text":"  画星空"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]`, "星空", true},
		{"trigger alone", `"画"`, "", false},
		{"not at the start", `"我想画一只猫"`, "", false},
		{"no text", `[{"type":"image_url","image_url":{"url":"x"}}]`, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs := []json.RawMessage{json.RawMessage(`{"role":"user","content":"画 earlier"}`),
				json.RawMessage(`{"role":"assistant","content":"ok"}`),
				json.RawMessage(`{"role":"user","content":` + tc.content + `}`)}
			prompt, ok := drawPrompt(msgs, triggers)
			if ok != tc.draw || prompt != tc.prompt {
				t.Fatalf("drawPrompt = %q, %v; want %q, %v", prompt, ok, tc.prompt, tc.draw)
			}
		})
	}
}

func TestUsageOf(t *testing.T) {
	tests := []struct {
		name string
		data string
		want tokens
		ok   bool
	}{
		{"completion", `{"choices":[{"message":{"content":"the \"usage\": key"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7},"system_fingerprint":"x"}`, tokens{3, 4}, true},
		{"chunk without usage", `{"choices":[{"delta":{"content":"hi"}}]}`, tokens{}, false},
		{"null usage", `{"choices":[],"usage":null}`, tokens{}, false},
		{"spaced", `{"usage" : {"prompt_tokens": 9, "completion_tokens": 1}}`, tokens{9, 1}, true},
		{"usage only in content", `{"choices":[{"delta":{"content":"\"usage\""}}]}`, tokens{}, false},
		{"a choice's null usage first", `{"choices":[{"index":0,"delta":{},"usage":null}],"usage":{"prompt_tokens":5,"completion_tokens":3}}`, tokens{5, 3}, true},
		{"a member's null usage first", `{"choices":[],"x":{"usage":null},"usage":{"prompt_tokens":5,"completion_tokens":3}}`, tokens{5, 3}, true},
	}
	for _, tc := range tests {
		got, ok := usageOf([]byte(tc.data))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: usageOf = %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	for data, want := range map[string]bool{
		`{"choices":[],"usage":{"prompt_tokens":5}}`:                          true,
		`{"choices":[],"x":{"usage":null},"usage":{"prompt_tokens":5}}`:       true,
		`{"choices":[{"delta":{"content":"a"}}],"usage":null}`:                false,
		`{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":5}}`: false,
	} {
		if got := onlyUsage([]byte(data)); got != want {
			t.Errorf("onlyUsage(%s) = %v, want %v", data, got, want)
		}
	}
}

// TestAssembleRecognisesReencodedHistory stores a tool loop and gets it
// back from a client that re-encodes it (the AI SDK and LangChain
// re-serialise tool-call arguments, send text as parts, add an index):
// with memory on, the client's own history is recognised, nothing is
// prepended, and only the new turn is new.
func TestAssembleRecognisesReencodedHistory(t *testing.T) {
	stored := []json.RawMessage{
		json.RawMessage(`{"role":"user","content":"weather in Paris?"}`),
		json.RawMessage(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"unit\": \"c\"}"}}]}`),
		json.RawMessage(`{"role":"tool","tool_call_id":"call_1","content":"18C"}`),
		json.RawMessage(`{"role":"assistant","content":"It is 18C."}`),
	}
	client := []json.RawMessage{
		json.RawMessage(`{"role":"system","content":"be kind"}`),
		json.RawMessage(`{"role":"user","content":[{"type":"text","text":"weather in Paris?"}]}`),
		json.RawMessage(`{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"unit\":\"c\",\"city\":\"Paris\"}"}}]}`),
		json.RawMessage(`{"role":"tool","tool_call_id":"call_1","content":[{"type":"text","text":"18C"}]}`),
		json.RawMessage(`{"role":"assistant","content":[{"type":"text","text":"It is 18C."}]}`),
		json.RawMessage(`{"role":"user","content":"and tomorrow?"}`),
	}
	up, fresh := assemble(client, stored, true)
	if len(up) != len(client) || len(fresh) != 1 || roleOf(fresh[0]) != "user" {
		t.Fatalf("upstream gets %d messages (fresh %d), want the client's %d and one new", len(up), len(fresh), len(client))
	}
	// A client whose history differs in substance but names the stored
	// tool call is still not given the stored turns again.
	client[4] = json.RawMessage(`{"role":"assistant","content":"Eighteen degrees."}`)
	up, _ = assemble(client, stored, true)
	if len(up) != len(client) {
		t.Fatalf("the stored turns were prepended to a client that holds their tool call: %d messages", len(up))
	}
	// A stateless client gets the history.
	up, _ = assemble(client[5:], stored, true)
	if len(up) != len(stored)+1 {
		t.Fatalf("a stateless client got %d messages, want the %d stored and its own", len(up), len(stored))
	}
}
