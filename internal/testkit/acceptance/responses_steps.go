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

// responsesState keeps responses per key: previous_response_id continues
// one, retrieve and input_items read it, another key cannot, store:false
// keeps nothing, delete removes it.
func (s *suite) responsesState(t *testing.T) {
	c := s.client(s.key)
	ctx := ctxTimeout(t, 60*time.Second)
	n1, n2 := nonce(), nonce()
	first, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: upstreamModel,
		Instructions: openai.String("Be kind."), Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("remember " + n1)}})
	if err != nil {
		t.Fatal(err)
	}
	// The next turn, streamed, names the first.
	stream := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: upstreamModel, PreviousResponseID: openai.String(first.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("and then " + n2)}})
	var second responses.Response
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "response.completed" {
			second = ev.Response
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	reqs := s.Upstream.Find(n2)
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests for the second turn", len(reqs))
	}
	var sent struct {
		Messages []struct{ Role, Content string }
	}
	json.Unmarshal(reqs[0].Body, &sent)
	var got []string
	for _, m := range sent.Messages {
		got = append(got, m.Role+": "+m.Content)
	}
	// The instructions are not carried over, as OpenAI's are not.
	if want := []string{"user: remember " + n1, "assistant: echo: remember " + n1, "user: and then " + n2}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("the second turn sent %q, want %q", got, want)
	}
	if second.PreviousResponseID != first.ID {
		t.Fatalf("second = %+v", second)
	}
	// Retrieve and input items, at once after the stream ended.
	again, err := c.Responses.Get(ctx, second.ID, responses.ResponseGetParams{})
	if err != nil || again.OutputText() != "echo: and then "+n2 || again.ID != second.ID {
		t.Fatalf("retrieve = %+v, %v", again, err)
	}
	items, err := c.Responses.InputItems.List(ctx, first.ID, responses.InputItemListParams{})
	if err != nil || len(items.Data) != 1 || items.Data[0].Type != "message" || items.Data[0].ID == "" ||
		!strings.Contains(items.Data[0].Content.JSON.OfInputItemContentList.Raw()+items.Data[0].RawJSON(), "remember "+n1) {
		t.Fatalf("input items = %+v, %v", items, err)
	}
	// Another key sees none of it.
	other, _ := s.newKey(t, "responses-other", nil)
	oc := s.client(other)
	if _, err := oc.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); err == nil {
		t.Fatal("another key retrieved the response")
	} else {
		apiError(t, err, http.StatusNotFound, "")
	}
	_, err = oc.Responses.New(ctx, responses.ResponseNewParams{Model: upstreamModel, PreviousResponseID: openai.String(first.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("steal")}})
	if e := apiError(t, err, http.StatusNotFound, ""); e.Param != "previous_response_id" {
		t.Fatalf("param = %q", e.Param)
	}
	if err := oc.Responses.Delete(ctx, first.ID); err == nil {
		t.Fatal("another key deleted the response")
	}
	// store:false keeps nothing.
	unstored, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: upstreamModel, Store: openai.Bool(false),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("forget " + nonce())}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Responses.Get(ctx, unstored.ID, responses.ResponseGetParams{}); err == nil {
		t.Fatal("a store:false response was kept")
	}
	// Delete, and it is gone for every use.
	if err := c.Responses.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Responses.Get(ctx, first.ID, responses.ResponseGetParams{}); err == nil {
		t.Fatal("a deleted response was retrieved")
	}
	_, err = c.Responses.New(ctx, responses.ResponseNewParams{Model: upstreamModel, PreviousResponseID: openai.String(first.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("after delete")}})
	apiError(t, err, http.StatusNotFound, "")
}

// smallerDoors: one model by ID (a name with "/" escaped or not), the
// legacy completions API streamed and not, rerank through the RAG
// upstream with its model rules.
func (s *suite) smallerDoors(t *testing.T) {
	h := http.Header{"Authorization": {"Bearer " + s.key}}
	for _, path := range []string{"/v1/models/" + upstreamModel, "/v1/models/" + strings.ReplaceAll(upstreamModel, "/", "%2F")} {
		resp, b := do(t, nil, "GET", s.url(path), nil, h)
		var m struct{ ID, Object string }
		if json.Unmarshal(b, &m); resp.StatusCode != 200 || m.ID != upstreamModel || m.Object != "model" {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
		}
	}
	resp, b := do(t, nil, "GET", s.url("/v1/models/no-such-model"), nil, h)
	wantError(t, resp, b, http.StatusNotFound, "model_not_found")

	// The legacy completions API, through the SDK.
	c := s.client(s.key)
	n := nonce()
	got, err := c.Completions.New(ctxTimeout(t, 30*time.Second), openai.CompletionNewParams{Model: upstreamModel,
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once " + n)}})
	if err != nil || len(got.Choices) != 1 || got.Choices[0].Text != "echo: once "+n || got.Usage.PromptTokens != fakeupstream.PromptTokens {
		t.Fatalf("legacy completion = %+v, %v", got, err)
	}
	stream := c.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), openai.CompletionNewParams{Model: upstreamModel,
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("streamed " + n)}})
	var text strings.Builder
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text.WriteString(ch.Text)
		}
	}
	if err := stream.Err(); err != nil || text.String() != "echo: streamed "+n {
		t.Fatalf("streamed legacy completion %q, %v", text.String(), err)
	}
	stream.Close()
	if reqs := s.Upstream.Find("streamed " + n); len(reqs) != 1 || reqs[0].Path != "/v1/completions" {
		t.Fatalf("upstream got %+v", reqs)
	}

	// Rerank: the configured rerank model serves every key; another is
	// refused unless the key names it.
	s.putSettings(t, map[string]any{"rag": map[string]any{"rerank_model": "fake/reranker"}})
	defer s.putSettings(t, map[string]any{"rag": map[string]any{"rerank_model": ""}})
	s.settle()
	body := `{"query":"apple","documents":["banana","apple pie","car"],"top_n":2}`
	resp, b = do(t, nil, "POST", s.url("/v1/rerank"), body, h)
	var ranked struct {
		Results []struct {
			Index int     `json:"index"`
			Score float64 `json:"relevance_score"`
		} `json:"results"`
	}
	if json.Unmarshal(b, &ranked); resp.StatusCode != 200 || len(ranked.Results) == 0 || ranked.Results[0].Index != 1 {
		t.Fatalf("rerank = %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, nil, "POST", s.url("/v1/rerank"), `{"model":"other/reranker","query":"a","documents":["b"]}`, h)
	wantError(t, resp, b, http.StatusNotFound, "model_not_found")
}
