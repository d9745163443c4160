package responses

import (
	"bufio"
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	sdk "github.com/openai/openai-go/v3/responses"

	"github.com/aigateway/aigateway/shared/gateway"
)

// chatOf returns the chat request of a Responses body.
func chatOf(t *testing.T, body string) (map[string]any, Meta) {
	t.Helper()
	req, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse(%s): %v", body, err)
	}
	var m map[string]any
	if err := json.Unmarshal(req.Chat, &m); err != nil {
		t.Fatal(err)
	}
	return m, req.Meta
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRequestTranslation(t *testing.T) {
	for _, c := range []struct {
		name, body string
		want       map[string]string // chat member → its JSON
	}{
		{"string input and instructions",
			`{"model":"m","input":"hi","instructions":"Be brief.","max_output_tokens":50,"temperature":0.2,"top_p":0.9,"user":"u1"}`,
			map[string]string{"messages": `[{"content":"Be brief.","role":"system"},{"content":"hi","role":"user"}]`,
				"max_tokens": `50`, "temperature": `0.2`, "top_p": `0.9`, "user": `"u1"`, "model": `"m"`}},
		{"items: developer, text parts, an image",
			`{"model":"m","input":[{"role":"developer","content":"Rules."},{"type":"message","role":"user","content":[{"type":"input_text","text":"What is "},{"type":"input_text","text":"this?"},{"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"low"}]}]}`,
			map[string]string{"messages": `[{"content":"Rules.","role":"system"},{"content":[{"text":"What is ","type":"text"},{"text":"this?","type":"text"},{"image_url":{"detail":"low","url":"data:image/png;base64,AAAA"},"type":"image_url"}],"role":"user"}]`}},
		{"a tool round trip: text and two parallel calls in one assistant message, then their outputs; reasoning left out",
			`{"model":"m","input":[{"role":"user","content":"weather?"},{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":null},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Checking."}]},{"type":"function_call","call_id":"c1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},{"type":"function_call","call_id":"c2","name":"get_weather","arguments":"{\"city\":\"Rome\"}"},{"type":"function_call_output","call_id":"c1","output":"sunny"},{"type":"function_call_output","call_id":"c2","output":[{"type":"input_text","text":"rain"}]}]}`,
			map[string]string{"messages": `[{"content":"weather?","role":"user"},{"content":"Checking.","role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Paris\"}","name":"get_weather"},"id":"c1","type":"function"},{"function":{"arguments":"{\"city\":\"Rome\"}","name":"get_weather"},"id":"c2","type":"function"}]},{"content":"sunny","role":"tool","tool_call_id":"c1"},{"content":"rain","role":"tool","tool_call_id":"c2"}]`}},
		{"tools: function, custom (freeform), a namespace flattened, hosted web search dropped",
			`{"model":"m","input":"x","tools":[{"type":"function","name":"f","description":"F.","parameters":{"type":"object","properties":{}},"strict":true},{"type":"custom","name":"apply_patch","description":"Patch.","format":{"type":"grammar","syntax":"lark","definition":"start: /.+/"}},{"type":"namespace","name":"ns","tools":[{"type":"function","name":"g","parameters":null}]},{"type":"web_search"}],"tool_choice":{"type":"function","name":"f"},"parallel_tool_calls":false}`,
			map[string]string{"tools": `[{"function":{"description":"F.","name":"f","parameters":{"type":"object","properties":{}},"strict":true},"type":"function"},{"function":{"description":"Patch.\n\nThe input must follow this lark grammar:\nstart: /.+/","name":"apply_patch","parameters":{"type":"object","properties":{"input":{"type":"string","description":"The tool's whole input, as free text."}},"required":["input"],"additionalProperties":false}},"type":"function"},{"function":{"name":"g"},"type":"function"}]`,
				"tool_choice": `{"function":{"name":"f"},"type":"function"}`, "parallel_tool_calls": `false`}},
		{"a custom call and its output come back as a function call",
			`{"model":"m","input":[{"type":"custom_tool_call","call_id":"c9","name":"apply_patch","input":"*** Begin Patch"},{"type":"custom_tool_call_output","call_id":"c9","output":"Done!"}]}`,
			map[string]string{"messages": `[{"content":null,"role":"assistant","tool_calls":[{"function":{"arguments":"{\"input\":\"*** Begin Patch\"}","name":"apply_patch"},"id":"c9","type":"function"}]},{"content":"Done!","role":"tool","tool_call_id":"c9"}]`}},
		{"text.format json_schema and reasoning effort",
			`{"model":"m","input":"x","text":{"format":{"type":"json_schema","name":"out","schema":{"type":"object"},"strict":true}},"reasoning":{"effort":"high","summary":"auto"},"stream":true}`,
			map[string]string{"response_format": `{"json_schema":{"name":"out","schema":{"type":"object"},"strict":true},"type":"json_schema"}`,
				"reasoning_effort": `"high"`, "stream": `true`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := chatOf(t, c.body)
			for k, want := range c.want {
				var w any
				if err := json.Unmarshal([]byte(want), &w); err != nil {
					t.Fatal(err)
				}
				if got, want := jsonString(t, m[k]), jsonString(t, w); got != want {
					t.Errorf("%s = %s\nwant %s", k, got, want)
				}
			}
		})
	}
}

func TestRequestRefusals(t *testing.T) {
	for name, c := range map[string]struct{ body, param string }{
		"no model":              {`{"input":"x"}`, "model"},
		"no input":              {`{"model":"m"}`, "input"},
		"a model twice":         {`{"model":"m","model":"other","input":"x"}`, ""},
		"a model in other case": {`{"model":"m","Model":"other","input":"x"}`, ""},
		"background":            {`{"model":"m","input":"x","background":true}`, "background"},
		"a hosted file search":  {`{"model":"m","input":"x","tools":[{"type":"file_search"}]}`, "tools"},
		"a tool twice":          {`{"model":"m","input":"x","tools":[{"type":"function","name":"f"},{"type":"function","name":"f"}]}`, "tools"},
		"an input file":         {`{"model":"m","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, "input[0].content[0]"},
		"an item reference":     {`{"model":"m","input":[{"type":"item_reference","id":"msg_1"}]}`, "input[0]"},
		"a bad role":            {`{"model":"m","input":[{"role":"tool","content":"x"}]}`, "input[0].role"},
		"a call without id":     {`{"model":"m","input":[{"type":"function_call","name":"f","arguments":"{}"}]}`, "input[0]"},
		"a bad effort":          {`{"model":"m","input":"x","reasoning":{"effort":"max"}}`, "reasoning.effort"},
		"a bad format":          {`{"model":"m","input":"x","text":{"format":{"type":"xml"}}}`, "text.format.type"},
		"zero output tokens":    {`{"model":"m","input":"x","max_output_tokens":0}`, "max_output_tokens"},
		"an allowed-tools mode": {`{"model":"m","input":"x","tool_choice":{"type":"mcp"}}`, "tool_choice"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.body))
			e, ok := err.(*gateway.Error)
			if !ok || e.Code != gateway.EInvalid {
				t.Fatalf("Parse = %v, want an invalid-request error", err)
			}
			if c.param != "" && e.Param != c.param {
				t.Fatalf("param = %q, want %q (%s)", e.Param, c.param, e.Message)
			}
		})
	}
}

func TestFromCompletion(t *testing.T) {
	_, meta := chatOf(t, `{"model":"pub","input":"x","tools":[{"type":"custom","name":"apply_patch"},{"type":"function","name":"f"}],"metadata":{"k":"v"},"store":false}`)
	body := `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Let me.","reasoning_content":"Think.","tool_calls":[
		{"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
		{"id":"call_2","type":"function","function":{"name":"apply_patch","arguments":"{\"input\":\"*** Begin Patch\"}"}}]},"finish_reason":"tool_calls"}],
		"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"completion_tokens_details":{"reasoning_tokens":3}}}`
	raw, _, err := FromCompletion([]byte(body), meta, "resp_1", 1700000000)
	if err != nil {
		t.Fatal(err)
	}
	var r sdk.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	if r.ID != "resp_1" || r.Status != "completed" || r.Model != "pub" || r.Metadata["k"] != "v" || !strings.Contains(string(raw), `"store":false`) {
		t.Fatalf("response = %s", raw)
	}
	if len(r.Output) != 4 || r.Output[0].Type != "reasoning" || r.Output[1].Type != "message" || r.Output[2].Type != "function_call" || r.Output[3].Type != "custom_tool_call" {
		t.Fatalf("output = %s", raw)
	}
	if r.OutputText() != "Let me." || r.Output[2].CallID != "call_1" || r.Output[2].Arguments.OfString != `{"a":1}` || r.Output[3].Input != "*** Begin Patch" {
		t.Fatalf("output = %s", raw)
	}
	if r.Usage.InputTokens != 11 || r.Usage.OutputTokens != 7 || r.Usage.TotalTokens != 18 || r.Usage.OutputTokensDetails.ReasoningTokens != 3 {
		t.Fatalf("usage = %+v", r.Usage)
	}
	raw, _, _ = FromCompletion([]byte(`{"choices":[{"message":{"content":"cut"},"finish_reason":"length"}]}`), meta, "resp_2", 1)
	json.Unmarshal(raw, &r)
	if r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" {
		t.Fatalf("a cut answer = %s", raw)
	}
}

// events parses an SSE byte stream into the SDK's event type, checking
// each event line against its data's type and the sequence numbers.
func events(t *testing.T, b []byte) []sdk.ResponseStreamEventUnion {
	t.Helper()
	var out []sdk.ResponseStreamEventUnion
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var ev sdk.ResponseStreamEventUnion
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev); err != nil {
				t.Fatalf("event %q: %v", line, err)
			}
			if ev.Type != name {
				t.Fatalf("event line %q, data type %q", name, ev.Type)
			}
			if ev.SequenceNumber != int64(len(out)) {
				t.Fatalf("sequence number %d at event %d", ev.SequenceNumber, len(out))
			}
			out = append(out, ev)
		}
	}
	return out
}

func types(evs []sdk.ResponseStreamEventUnion) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Type)
	}
	return out
}

func chunk(delta string, extra ...string) []byte {
	s := `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}`
	if len(extra) > 0 {
		s = extra[0]
	}
	return []byte(s)
}

func TestStreamTextAndReasoning(t *testing.T) {
	_, meta := chatOf(t, `{"model":"pub","input":"x","stream":true}`)
	s := NewStream(meta, "resp_9", 1700000000)
	var b bytes.Buffer
	b.Write(s.Start())
	b.Write(s.Chunk(chunk(`{"role":"assistant","reasoning_content":"Let "}`)))
	b.Write(s.Chunk(chunk(`{"reasoning_content":"me think."}`)))
	b.Write(s.Chunk(chunk(`{"content":"Hel"}`)))
	b.Write(s.Chunk(chunk(`{"content":"lo."}`)))
	b.Write(s.Chunk(chunk("", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)))
	b.Write(s.Chunk(chunk("", `{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4,"total_tokens":9}}`)))
	b.Write(s.End())
	evs := events(t, b.Bytes())
	want := []string{"response.created", "response.in_progress",
		"response.output_item.added", "response.content_part.added", "response.reasoning_text.delta", "response.reasoning_text.delta",
		"response.reasoning_text.done", "response.content_part.done", "response.output_item.done",
		"response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"}
	if got := types(evs); !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n%v\nwant\n%v", got, want)
	}
	last := evs[len(evs)-1].Response
	if last.ID != "resp_9" || last.Status != "completed" || last.OutputText() != "Hello." || last.Usage.TotalTokens != 9 || len(last.Output) != 2 {
		t.Fatalf("final response = %+v", last)
	}
	if evs[13].Text != "Hello." || evs[6].Text != "Let me think." || evs[12].ItemID != evs[9].Item.ID || evs[12].OutputIndex != 1 {
		t.Fatalf("done events: %+v %+v", evs[13], evs[6])
	}
}

func TestStreamToolCalls(t *testing.T) {
	_, meta := chatOf(t, `{"model":"pub","input":"x","stream":true,"tools":[{"type":"function","name":"get_weather"},{"type":"custom","name":"apply_patch"}]}`)
	s := NewStream(meta, "resp_t", 1)
	var b bytes.Buffer
	b.Write(s.Start())
	// Two parallel calls whose arguments arrive interleaved, in pieces,
	// then a custom call.
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}},{"index":1,"function":{"arguments":"ty\":\"Rome\"}"}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":2,"id":"call_c","type":"function","function":{"name":"apply_patch","arguments":"{\"input\":\"*** Begin"}}]}`)))
	b.Write(s.Chunk(chunk(`{"tool_calls":[{"index":2,"function":{"arguments":" Patch\"}"}}]}`)))
	b.Write(s.Chunk(chunk("", `{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`)))
	b.Write(s.End())
	evs := events(t, b.Bytes())
	args := map[string]string{}
	done := map[string]string{}
	for _, e := range evs {
		switch e.Type {
		case "response.function_call_arguments.delta":
			args[e.ItemID] += e.Delta
		case "response.function_call_arguments.done":
			done[e.ItemID] = e.Arguments
		}
	}
	final := evs[len(evs)-1].Response
	if final.Status != "completed" || len(final.Output) != 3 {
		t.Fatalf("final = %+v", final)
	}
	a, bb, c := final.Output[0], final.Output[1], final.Output[2]
	if a.CallID != "call_a" || a.Arguments.OfString != `{"city":"Paris"}` || args[a.ID] != a.Arguments.OfString || done[a.ID] != a.Arguments.OfString {
		t.Fatalf("first call = %+v (deltas %q, done %q)", a, args[a.ID], done[a.ID])
	}
	if bb.CallID != "call_b" || bb.Arguments.OfString != `{"city":"Rome"}` || args[bb.ID] != bb.Arguments.OfString {
		t.Fatalf("second call = %+v", bb)
	}
	if c.Type != "custom_tool_call" || c.Input != "*** Begin Patch" || c.CallID != "call_c" {
		t.Fatalf("custom call = %+v", c)
	}
	// Each item is added once and done once.
	added, itemDone := map[string]int{}, map[string]int{}
	for _, e := range evs {
		switch e.Type {
		case "response.output_item.added":
			added[e.Item.ID]++
		case "response.output_item.done":
			itemDone[e.Item.ID]++
		}
	}
	for _, it := range final.Output {
		if added[it.ID] != 1 || itemDone[it.ID] != 1 {
			t.Fatalf("item %s added %d, done %d times", it.ID, added[it.ID], itemDone[it.ID])
		}
	}
}

func TestStreamEnds(t *testing.T) {
	_, meta := chatOf(t, `{"model":"pub","input":"x","stream":true}`)
	s := NewStream(meta, "resp_f", 1)
	var b bytes.Buffer
	b.Write(s.Start())
	b.Write(s.Chunk(chunk(`{"content":"Hal"}`)))
	b.Write(s.Fail("upstream_error", "The upstream broke off."))
	b.Write(s.End()) // nothing after the end
	evs := events(t, b.Bytes())
	last := evs[len(evs)-1]
	if last.Type != "response.failed" || last.Response.Status != "failed" || last.Response.Error.Message != "The upstream broke off." || len(evs) != 6 {
		t.Fatalf("events = %v, last %+v", types(evs), last.Response)
	}

	s = NewStream(meta, "resp_l", 1)
	b.Reset()
	b.Write(s.Start())
	b.Write(s.Chunk(chunk(`{"content":"cut"}`)))
	b.Write(s.Chunk(chunk("", `{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}`)))
	s.SetUsage(10, 1)
	b.Write(s.End())
	evs = events(t, b.Bytes())
	last = evs[len(evs)-1]
	if last.Type != "response.incomplete" || last.Response.IncompleteDetails.Reason != "max_output_tokens" || last.Response.Usage.InputTokens != 10 {
		t.Fatalf("a cut stream ends with %+v", last)
	}
}
