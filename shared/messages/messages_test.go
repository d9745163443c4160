package messages

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"

	"github.com/aigateway/aigateway/shared/gateway"
)

func chatOf(t *testing.T, body string) map[string]any {
	t.Helper()
	req, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse(%s): %v", body, err)
	}
	var m map[string]any
	if err := json.Unmarshal(req.Chat, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func norm(t *testing.T, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		var x any
		if err := json.Unmarshal([]byte(s), &x); err != nil {
			t.Fatal(err)
		}
		v = x
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRequestTranslation(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       map[string]string
	}{
		{"system blocks, a system message hoisted, sampling",
			`{"model":"claude-sonnet-4-5","max_tokens":32000,"system":[{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"system","content":"Extra rules."},{"role":"user","content":"hi"}],"temperature":0.5,"top_k":40,"stop_sequences":["END"],"metadata":{"user_id":"u1"}}`,
			map[string]string{"messages": `[{"role":"system","content":"You are Claude Code.\n\nExtra rules."},{"role":"user","content":"hi"}]`,
				"max_tokens": `32000`, "temperature": `0.5`, "top_k": `40`, "stop": `["END"]`, "user": `"u1"`}},
		{"images: base64 and URL",
			`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}`,
			map[string]string{"messages": `[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]`}},
		{"a tool round trip: text and two tool_use blocks, then results before the user's next text; thinking left out",
			`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"weather?"},{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"toolu_2","name":"get_weather","input":{"city":"Rome"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"tool_result","tool_use_id":"toolu_2","content":[{"type":"text","text":"no data"}],"is_error":true},{"type":"text","text":"and tomorrow?"}]}]}`,
			map[string]string{"messages": `[{"role":"user","content":"weather?"},{"role":"assistant","content":"Checking.","tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"toolu_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},{"role":"tool","tool_call_id":"toolu_1","content":"sunny"},{"role":"tool","tool_call_id":"toolu_2","content":"Error: no data"},{"role":"user","content":"and tomorrow?"}]`}},
		{"tools: $schema, cache_control and defer_loading dropped, a server tool dropped; tool_choice any without parallel calls",
			`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"Read","description":"Reads.","input_schema":{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"path":{"type":"string"}}},"cache_control":{"type":"ephemeral"},"defer_loading":true},{"type":"web_search_20250305","name":"web_search"}],"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`,
			map[string]string{"tools": `[{"type":"function","function":{"name":"Read","description":"Reads.","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}}]`,
				"tool_choice": `"required"`, "parallel_tool_calls": `false`}},
		{"thinking enabled and adaptive",
			`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":31999}}`,
			map[string]string{"reasoning_effort": `"high"`}},
		{"adaptive thinking with an effort",
			`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],"thinking":{"type":"adaptive"},"output_config":{"effort":"low"}}`,
			map[string]string{"reasoning_effort": `"low"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := chatOf(t, c.body)
			for k, want := range c.want {
				got, _ := json.Marshal(m[k])
				if string(got) != norm(t, want) {
					t.Errorf("%s = %s\nwant %s", k, got, norm(t, want))
				}
			}
		})
	}
}

func TestRequestRefusals(t *testing.T) {
	for name, body := range map[string]string{
		"no max_tokens":          `{"model":"m","messages":[{"role":"user","content":"x"}]}`,
		"no model":               `{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`,
		"a model twice":          `{"model":"m","model":"n","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`,
		"no messages":            `{"model":"m","max_tokens":1,"messages":[]}`,
		"a bad role":             `{"model":"m","max_tokens":1,"messages":[{"role":"tool","content":"x"}]}`,
		"a pdf":                  `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"AA"}}]}]}`,
		"a tool_use of the user": `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_use","id":"t","name":"n","input":{}}]}]}`,
		"mcp servers":            `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"mcp_servers":[{"type":"url","url":"https://x","name":"x"}]}`,
		"an unknown tool type":   `{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"quantum_2030","name":"q"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(body))
			if e, ok := err.(*gateway.Error); !ok || e.Code != gateway.EInvalid {
				t.Fatalf("Parse = %v, want an invalid request", err)
			}
		})
	}
}

func TestFromCompletion(t *testing.T) {
	req, _ := Parse([]byte(`{"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`))
	body := `{"choices":[{"index":0,"message":{"role":"assistant","content":"Let me.","reasoning_content":"Think.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":4}}}`
	raw, err := FromCompletion([]byte(body), req, "msg_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var m anthropic.Message
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "msg_1" || string(m.Model) != "claude-x" || m.StopReason != "tool_use" || len(m.Content) != 3 {
		t.Fatalf("message = %s", raw)
	}
	if m.Content[0].Type != "thinking" || m.Content[0].Thinking != "Think." || m.Content[1].Text != "Let me." ||
		m.Content[2].Type != "tool_use" || m.Content[2].ID != "call_1" || string(m.Content[2].Input) != `{"a":1}` {
		t.Fatalf("content = %s", raw)
	}
	if m.Usage.InputTokens != 7 || m.Usage.CacheReadInputTokens != 4 || m.Usage.OutputTokens != 7 {
		t.Fatalf("usage = %+v", m.Usage)
	}
	raw, _ = FromCompletion([]byte(`{"choices":[{"message":{"content":"cut"},"finish_reason":"length"}]}`), req, "msg_2", 0, 0)
	json.Unmarshal(raw, &m)
	if m.StopReason != "max_tokens" {
		t.Fatalf("a cut answer = %s", raw)
	}
}

// accumulate parses an event stream with the SDK's types and builds the
// message as the SDK's accumulator does, which checks the sequence.
func accumulate(t *testing.T, b []byte) (anthropic.Message, []string) {
	t.Helper()
	var msg anthropic.Message
	var types []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var ev anthropic.MessageStreamEventUnion
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				t.Fatalf("event %q: %v", line, err)
			}
			if ev.Type != name {
				t.Fatalf("event line %q, data type %q", name, ev.Type)
			}
			types = append(types, ev.Type)
			if ev.Type == "error" {
				continue
			}
			if err := msg.Accumulate(ev); err != nil {
				t.Fatalf("accumulate %s: %v", line, err)
			}
		}
	}
	return msg, types
}

func chunk(delta string) []byte {
	return []byte(`{"choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}`)
}

func TestStream(t *testing.T) {
	req, _ := Parse([]byte(`{"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"x"}],"stream":true}`))
	s := NewStream(req, "msg_s")
	var b bytes.Buffer
	b.Write(s.Start())
	b.Write(s.Chunk(chunk(`{"role":"assistant","reasoning_content":"Let me "}`)))
	b.Write(s.Chunk(chunk(`{"reasoning_content":"think."}`)))
	b.Write(s.Chunk(chunk(`{"content":"Sure, "}`)))
	b.Write(s.Chunk(chunk(`{"content":"checking."}`)))
	// Two parallel calls, their arguments interleaved in pieces.
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"get_weather","arguments":"{\"ci"}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":1,"id":"call_b","function":{"name":"get_weather","arguments":"{\"city\":"}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}},{"index":1,"function":{"arguments":"\"Rome\"}"}}]}`)))
	b.Write(s.Chunk([]byte(`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":5,"completion_tokens":9}}`)))
	b.Write(s.End())
	msg, types := accumulate(t, b.Bytes())
	if types[0] != "message_start" || types[len(types)-1] != "message_stop" || types[len(types)-2] != "message_delta" {
		t.Fatalf("events = %v", types)
	}
	if len(msg.Content) != 4 || msg.Content[0].Thinking != "Let me think." || msg.Content[1].Text != "Sure, checking." {
		t.Fatalf("message = %+v", msg.Content)
	}
	if msg.Content[2].Type != "tool_use" || msg.Content[2].ID != "call_a" || string(msg.Content[2].Input) != `{"city":"Paris"}` ||
		string(msg.Content[3].Input) != `{"city":"Rome"}` {
		t.Fatalf("tool uses = %+v %+v", msg.Content[2], msg.Content[3])
	}
	if msg.StopReason != "tool_use" || msg.Usage.OutputTokens != 9 || msg.Usage.InputTokens != 5 {
		t.Fatalf("stop %q usage %+v", msg.StopReason, msg.Usage)
	}

	s = NewStream(req, "msg_f")
	b.Reset()
	b.Write(s.Start())
	b.Write(s.Chunk(chunk(`{"content":"Hal"}`)))
	b.Write(s.Fail(gateway.Errorf(gateway.EUpstream, "The upstream broke off.")))
	b.Write(s.End())
	_, types = accumulate(t, b.Bytes())
	if types[len(types)-1] != "error" {
		t.Fatalf("a broken stream: %v", types)
	}
	if !bytes.Contains(b.Bytes(), []byte(`"error":{"message":"The upstream broke off.","type":"api_error"}`)) {
		t.Fatalf("error event: %s", b.Bytes())
	}
}

func TestErrorTypes(t *testing.T) {
	for code, want := range map[string]string{gateway.EInvalid: "invalid_request_error", gateway.EUnauthorized: "authentication_error",
		gateway.ENotFound: "not_found_error", gateway.ELimited: "rate_limit_error", gateway.EUnavailable: "overloaded_error"} {
		if got := ErrorType(gateway.Errorf(code, "x")); got != want {
			t.Errorf("%s → %s, want %s", code, got, want)
		}
	}
	if ErrorType(errors.New("boom")) != "api_error" {
		t.Error("an internal error is not api_error")
	}
}
