package acceptance

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// responsesCreate asks through the official Go SDK's Responses.New, the
// call its README leads with, with a key of its own: the answer, its
// usage, what the upstream got, and the usage recorded.
func (s *suite) responsesCreate(t *testing.T) {
	key, id := s.newKey(t, "responses", nil)
	n := nonce()
	got, err := s.client(key).Responses.New(ctxTimeout(t, 30*time.Second), responses.ResponseNewParams{
		Model:           upstreamModel,
		Instructions:    openai.String("Answer in one line."),
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("hello " + n)},
		MaxOutputTokens: openai.Int(64),
		Metadata:        map[string]string{"ticket": "T-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.OutputText() != "echo: hello "+n || got.Status != "completed" || !strings.HasPrefix(got.ID, "resp_") || got.Metadata["ticket"] != "T-1" {
		t.Fatalf("response = %+v", got)
	}
	if got.Usage.InputTokens != fakeupstream.PromptTokens || got.Usage.OutputTokens != fakeupstream.CompletionTokens {
		t.Fatalf("usage = %+v", got.Usage)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 || reqs[0].Path != "/v1/chat/completions" {
		t.Fatalf("upstream got %d requests", len(reqs))
	}
	var sent struct {
		Messages  []struct{ Role, Content string }
		MaxTokens int `json:"max_tokens"`
	}
	json.Unmarshal(reqs[0].Body, &sent)
	if len(sent.Messages) != 2 || sent.Messages[0].Role != "system" || sent.Messages[0].Content != "Answer in one line." || sent.MaxTokens != 64 {
		t.Fatalf("upstream request = %s", reqs[0].Body)
	}
	if u := s.waitUsage(t, id, 1, 10*time.Second); u.PromptTokens != fakeupstream.PromptTokens {
		t.Fatalf("usage recorded = %+v", u)
	}
}

// responsesStream streams through the SDK: the events in order, the text
// as deltas, the final response.completed with the usage.
func (s *suite) responsesStream(t *testing.T) {
	n := nonce()
	stream := s.client(s.key).Responses.NewStreaming(ctxTimeout(t, 30*time.Second), responses.ResponseNewParams{
		Model: upstreamModel,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("stream " + n)},
	})
	defer stream.Close()
	var types []string
	var text strings.Builder
	var final responses.Response
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			final = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(types) < 8 || types[0] != "response.created" || types[1] != "response.in_progress" || types[len(types)-1] != "response.completed" {
		t.Fatalf("events = %v", types)
	}
	if text.String() != "echo: stream "+n || final.OutputText() != text.String() || final.Usage.TotalTokens != fakeupstream.PromptTokens+fakeupstream.CompletionTokens {
		t.Fatalf("text %q, final %+v", text.String(), final)
	}
}

// responsesTools makes a tool round trip: the upstream's call comes back
// as a function_call item, streamed and not, and the output sent back
// reaches the upstream as a tool message.
func (s *suite) responsesTools(t *testing.T) {
	c := s.client(s.key)
	tools := []responses.ToolUnionParam{{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
		Parameters: map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
	params := responses.ResponseNewParams{Model: upstreamModel, Tools: tools,
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("#tool")}}
	got, err := c.Responses.New(ctxTimeout(t, 30*time.Second), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Output) != 1 || got.Output[0].Type != "function_call" || got.Output[0].Name != "get_weather" ||
		got.Output[0].Arguments.OfString != fakeupstream.ToolArguments || got.Output[0].CallID != "call_1" {
		t.Fatalf("output = %+v", got.Output)
	}
	stream := c.Responses.NewStreaming(ctxTimeout(t, 30*time.Second), params)
	var args strings.Builder
	var done responses.ResponseOutputItemUnion
	for stream.Next() {
		switch ev := stream.Current(); ev.Type {
		case "response.function_call_arguments.delta":
			args.WriteString(ev.Delta)
		case "response.output_item.done":
			done = ev.Item
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	if args.String() != fakeupstream.ToolArguments || done.Type != "function_call" || done.Arguments.OfString != fakeupstream.ToolArguments {
		t.Fatalf("streamed call: arguments %q, item %+v", args.String(), done)
	}
	// The output goes back with the call, as a client's next turn does.
	n := nonce()
	next := responses.ResponseNewParams{Model: upstreamModel, Tools: tools, Input: responses.ResponseNewParamsInputUnion{
		OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("#tool", responses.EasyInputMessageRoleUser),
			responses.ResponseInputItemParamOfFunctionCall(fakeupstream.ToolArguments, "call_1", "get_weather"),
			callOutput("call_1", "sunny "+n),
			responses.ResponseInputItemParamOfMessage("and tomorrow? "+n, responses.EasyInputMessageRoleUser),
		}}}
	if _, err := c.Responses.New(ctxTimeout(t, 30*time.Second), next); err != nil {
		t.Fatal(err)
	}
	reqs := s.Upstream.Find("sunny " + n)
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests with the output", len(reqs))
	}
	var sent struct {
		Messages []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
			ToolCalls  []struct {
				ID string `json:"id"`
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	json.Unmarshal(reqs[0].Body, &sent)
	roles := []string{}
	for _, m := range sent.Messages {
		roles = append(roles, m.Role)
	}
	if strings.Join(roles, ",") != "user,assistant,tool,user" || sent.Messages[1].ToolCalls[0].ID != "call_1" || sent.Messages[2].ToolCallID != "call_1" {
		t.Fatalf("upstream messages = %s", reqs[0].Body)
	}
}

// responsesErrors: what a chat upstream cannot serve is refused in the
// OpenAI error shape, before any upstream call.
func (s *suite) responsesErrors(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer " + s.key}}
	for _, body := range []string{
		`{"model":"` + upstreamModel + `","input":"x","tools":[{"type":"file_search","vector_store_ids":["v"]}]}`,
		`{"model":"` + upstreamModel + `","input":"x","background":true}`,
		`{"model":"` + upstreamModel + `","model":"other","input":"x"}`,
	} {
		resp, b := do(t, nil, "POST", s.url("/v1/responses"), body, h)
		wantError(t, resp, b, http.StatusBadRequest, "invalid")
	}
	resp, b := do(t, nil, "POST", s.url("/v1/responses"), `{"model":"no-such-model","input":"x"}`, h)
	wantError(t, resp, b, http.StatusNotFound, "model_not_found")
}

// callOutput is a function_call_output item.
func callOutput(callID, output string) responses.ResponseInputItemUnionParam {
	item := responses.ResponseInputItemParamOfFunctionCallOutput(output)
	item.OfFunctionCallOutput.CallID = openai.String(callID)
	return item
}
