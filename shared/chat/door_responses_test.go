package chat

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/storage"
)

func stream(evs ...string) func() *rvAnswer {
	return func() *rvAnswer { return &rvAnswer{events: append([]string{}, evs...)} }
}

func respID(t *testing.T, body string) string {
	_, data := sseEvents(body)
	for _, d := range data {
		if r, ok := d["response"].(map[string]any); ok {
			return r["id"].(string)
		}
	}
	var r struct{ ID string }
	json.Unmarshal([]byte(body), &r)
	return r.ID
}

// TestStoredResponseIsScrubbed: an upstream that quotes its key in a 200
// answer: the stored response, read back by GET, holds no key either.
func TestStoredResponseIsScrubbed(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"my key is `+upKey+`"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"))
	code, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true}`)
	if code != 200 || strings.Contains(body, upKey[:16]) {
		t.Fatalf("stream itself leaked or failed: %d", code)
	}
	id := respID(t, body)
	_, got := g.do(t, "GET", "/v1/responses/"+id, "sk-client-a", "")
	if strings.Contains(got, upKey) {
		t.Errorf("GET /v1/responses/%s returns the upstream key: %s", id, got)
	}
}

// TestInStreamErrorFailsTheResponse: an error event inside a 200 stream
// ends the response as failed, and it is not kept.
func TestInStreamErrorFailsTheResponse(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"Half an ans"}`, ""),
		`{"error":{"message":"upstream overloaded","type":"server_error","code":"overloaded"}}`))
	code, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true}`)
	types, _ := sseEvents(body)
	if code != 200 || types[len(types)-1] != "response.failed" || !strings.Contains(body, "upstream overloaded") {
		t.Errorf("an upstream error event ends the stream with %v", types)
	}
	if id := respID(t, body); id != "" {
		if code, b := g.do(t, "GET", "/v1/responses/"+id, "sk-client-a", ""); code != 404 {
			t.Errorf("a failed response was kept: GET = %d %s", code, b)
		}
	}
	// and the chat door shows the client the error
	g2 := newRig(t, stream(chunk(`{"role":"assistant","content":"Half an ans"}`, ""),
		`{"error":{"message":"upstream overloaded","type":"server_error","code":"overloaded"}}`))
	_, cbody := g2.do(t, "POST", "/v1/chat/completions", "sk-client-a", `{"model":"pub","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	if !strings.Contains(cbody, "upstream overloaded") {
		t.Errorf("the chat door hides the upstream's error: %s", cbody)
	}
}

// TestFinishReasonErrorFails: finish_reason "error" (OpenRouter's) fails
// the response.
func TestFinishReasonErrorFails(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"Half"}`, ""), chunk(`{}`, "error"), "[DONE]"))
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true}`)
	types, _ := sseEvents(body)
	if types[len(types)-1] != "response.failed" {
		t.Errorf("finish_reason error ended as %s", types[len(types)-1])
	}
}

// TestReasoningEventsHaveTheirPart: a reasoning item is added with its
// content part, as the Node SDK's accumulator needs.
func TestReasoningEventsHaveTheirPart(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","reasoning_content":"think"}`, ""), chunk(`{"content":"answer"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"))
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true}`)
	types, data := sseEvents(body)
	item := data[2]["item"].(map[string]any)
	if _, ok := item["content"]; !ok || types[3] != "response.content_part.added" || types[4] != "response.reasoning_text.delta" {
		t.Errorf("the reasoning item is added as %v, then %v", item, types[3:5])
	}
}

// TestItemsAddedInOutputOrder: a custom call before a function call: the
// items are added in their output order.
func TestItemsAddedInOutputOrder(t *testing.T) {
	g := newRig(t, stream(
		chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"apply_patch","arguments":"{\"input\":\"x\"}"}}]}`, ""),
		chunk(`{"tool_calls":[{"index":1,"id":"call_2","type":"function","function":{"name":"shell","arguments":"{}"}}]}`, ""),
		chunk(`{}`, "tool_calls"), usageChunk, "[DONE]"))
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true,
	 "tools":[{"type":"custom","name":"apply_patch"},{"type":"function","name":"shell","parameters":{"type":"object"}}]}`)
	types, data := sseEvents(body)
	var added []int
	for i, ty := range types {
		if ty == "response.output_item.added" {
			added = append(added, int(data[i]["output_index"].(float64)))
		}
	}
	if len(added) != 2 {
		t.Fatalf("items added: %v", added)
	}
	for i, idx := range added {
		if idx != i {
			t.Errorf("output_item.added output_index order %v: an SDK that appends (openai-node: validateArrayAppend) throws", added)
			break
		}
	}
}

// TestTextAfterToolCallsKept: text after the tool calls began is kept, as
// a message item after them.
func TestTextAfterToolCallsKept(t *testing.T) {
	g := newRig(t, stream(
		chunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`, ""),
		chunk(`{"content":"I ran it."}`, ""),
		chunk(`{}`, "tool_calls"), usageChunk, "[DONE]"))
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true,
	 "tools":[{"type":"function","name":"shell","parameters":{"type":"object"}}]}`)
	if !strings.Contains(body, "I ran it.") {
		t.Errorf("text after the tool call is lost")
	}
}

// TestLargeInputIsStored: an input larger than a record is kept, and the
// conversation goes on from it.
func TestLargeInputIsStored(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"ok"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"))
	big := strings.Repeat("a", 300<<10)
	code, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"`+big+`","stream":true}`)
	id := respID(t, body)
	if code != 200 || !strings.Contains(body, `"store":true`) {
		t.Fatalf("first: %d, %.200s", code, body)
	}
	code, body = g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"next","previous_response_id":"`+id+`","stream":true}`)
	if code != 200 {
		t.Errorf("a response answered with store:true cannot be continued: %d %s", code, body[:min(len(body), 200)])
	}
}

// TestUnfinishedStreamFails: an upstream that stops without finish_reason
// or [DONE] fails the response, which is not kept.
func TestUnfinishedStreamFails(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"The answer is"}`, "")))
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true}`)
	types, _ := sseEvents(body)
	if types[len(types)-1] == "response.completed" {
		t.Errorf("a stream cut before finish_reason ended as response.completed")
	}
}

// TestAllowedToolsOnly: allowed_tools sends only the allowed tools.
func TestAllowedToolsOnly(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"ok"}`, ""), chunk(`{}`, "stop"), "[DONE]"))
	g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true,
	  "tools":[{"type":"function","name":"read"},{"type":"function","name":"delete_everything"}],
	  "tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"read"}]}}`)
	if strings.Contains(g.up.bodies[0], "delete_everything") {
		t.Errorf("a tool outside allowed_tools went upstream: %s", g.up.bodies[0])
	}
}

// TestNoToolChoiceWithoutTools: with every tool dropped, neither
// tool_choice nor parallel_tool_calls goes upstream.
func TestNoToolChoiceWithoutTools(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"ok"}`, ""), chunk(`{}`, "stop"), "[DONE]"))
	g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true,
	  "tools":[{"type":"web_search"}],"tool_choice":"auto","parallel_tool_calls":true}`)
	b := g.up.bodies[0]
	if !strings.Contains(b, `"tools"`) && (strings.Contains(b, "tool_choice") || strings.Contains(b, "parallel_tool_calls")) {
		t.Errorf("tool_choice/parallel_tool_calls without tools (OpenAI chat refuses this): %s", b)
	}
}

// TestThreeTurnsWithTools: three turns with a tool call: the history sent
// upstream is the conversation.
func TestThreeTurnsWithTools(t *testing.T) {
	answers := []func() *rvAnswer{
		stream(chunk(`{"role":"assistant","content":"Let me look.","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{\"cmd\":\"ls\"}"}}]}`, ""), chunk(`{}`, "tool_calls"), usageChunk, "[DONE]"),
		stream(chunk(`{"role":"assistant","content":"Two files."}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"),
		stream(chunk(`{"role":"assistant","content":"Bye."}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"),
	}
	n := 0
	g := newRig(t, func() *rvAnswer { a := answers[n](); n++; return a })
	tools := `"tools":[{"type":"function","name":"shell","parameters":{"type":"object"}}]`
	_, b := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","instructions":"be brief","input":"list",`+tools+`,"stream":true}`)
	id1 := respID(t, b)
	_, b = g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","previous_response_id":"`+id1+`","input":[{"type":"function_call_output","call_id":"call_1","output":"a b"}],`+tools+`,"stream":true}`)
	id2 := respID(t, b)
	g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","previous_response_id":"`+id2+`","input":"thanks",`+tools+`,"stream":true}`)
	var third struct {
		Messages []struct {
			Role       string `json:"role"`
			Content    any    `json:"content"`
			ToolCallID string `json:"tool_call_id"`
			ToolCalls  []struct {
				ID string `json:"id"`
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(g.up.bodies[2]), &third); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range third.Messages {
		s := fmt.Sprintf("%s:%v", m.Role, m.Content)
		if len(m.ToolCalls) > 0 {
			s += "+" + m.ToolCalls[0].ID
		}
		if m.ToolCallID != "" {
			s += "@" + m.ToolCallID
		}
		got = append(got, s)
	}
	// The instructions of the first turn are not carried over, as OpenAI's
	// are not; the tool call and its output are.
	want := []string{"user:list", "assistant:Let me look.+call_1", "tool:a b@call_1", "assistant:Two files.", "user:thanks"}
	if strings.Join(got, " | ") != strings.Join(want, " | ") {
		t.Fatalf("the third turn sent\n%q\nwant\n%q", got, want)
	}
}

// TestStorageGrowsLinearly: 60 turns of 8 KB are stored in far less than
// every turn keeping the whole conversation would take.
func TestStorageGrowsLinearly(t *testing.T) {
	g := newRig(t, stream(chunk(`{"role":"assistant","content":"`+strings.Repeat("r", 4000)+`"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"))
	prev := ""
	for range 60 {
		p := ""
		if prev != "" {
			p = `,"previous_response_id":"` + prev + `"`
		}
		_, b := g.do(t, "POST", "/v1/responses", "sk-client-a", fmt.Sprintf(`{"model":"pub","input":"%s"%s,"stream":true}`, strings.Repeat("q", 4000), p))
		prev = respID(t, b)
	}
	page, _ := g.ms.Records().Query(t.Context(), "response", storage.Query{Limit: 1000})
	total, n := 0, 0
	for {
		for _, it := range page.Items {
			total += len(it.Value)
			n++
		}
		if page.Cursor == "" {
			break
		}
		page, _ = g.ms.Records().Query(t.Context(), "response", storage.Query{Limit: 1000, Cursor: page.Cursor})
	}
	t.Logf("60 turns of 8 KB each: %d records, %d KB stored (the conversation itself is %d KB)", n, total>>10, 60*8)
	// Every turn keeping the whole conversation stored 14.9 MB.
	if total > 4<<20 {
		t.Fatalf("a 480 KB conversation took %d KB to store", total>>10)
	}
	t.Logf("last upstream request %d KB", len(g.up.bodies[len(g.up.bodies)-1])>>10)
}
