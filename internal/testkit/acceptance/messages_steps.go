package acceptance

import (
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// anthropicClient is the official Anthropic Go SDK pointed at the gateway
// with a gateway key (sent as x-api-key, as the SDK does).
func (s *suite) anthropicClient(key string) *anthropic.Client {
	c := anthropic.NewClient(aoption.WithBaseURL(s.BaseURL), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))
	return &c
}

func userText(text string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}
}

// messagesCreate asks through the SDK's Messages.New: the answer, usage,
// what the upstream got, the usage recorded.
func (s *suite) messagesCreate(t *testing.T) {
	key, id := s.newKey(t, "messages", nil)
	n := nonce()
	msg, err := s.anthropicClient(key).Messages.New(ctxTimeout(t, 30*time.Second), anthropic.MessageNewParams{
		Model: upstreamModel, MaxTokens: 256, System: []anthropic.TextBlockParam{{Text: "Answer briefly."}},
		Messages: userText("hello " + n)})
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "echo: hello "+n || msg.StopReason != "end_turn" || !strings.HasPrefix(msg.ID, "msg_") {
		t.Fatalf("message = %+v", msg)
	}
	if msg.Usage.InputTokens != fakeupstream.PromptTokens || msg.Usage.OutputTokens != fakeupstream.CompletionTokens {
		t.Fatalf("usage = %+v", msg.Usage)
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
	if len(sent.Messages) != 2 || sent.Messages[0].Content != "Answer briefly." || sent.MaxTokens != 256 {
		t.Fatalf("upstream request = %s", reqs[0].Body)
	}
	if u := s.waitUsage(t, id, 1, 10*time.Second); u.CompletionTokens != fakeupstream.CompletionTokens {
		t.Fatalf("usage recorded = %+v", u)
	}
}

// messagesStream streams and accumulates with the SDK, which checks the
// event sequence.
func (s *suite) messagesStream(t *testing.T) {
	n := nonce()
	stream := s.anthropicClient(s.key).Messages.NewStreaming(ctxTimeout(t, 30*time.Second), anthropic.MessageNewParams{
		Model: upstreamModel, MaxTokens: 64, Messages: userText("stream " + n)})
	defer stream.Close()
	var msg anthropic.Message
	var text strings.Builder
	for stream.Next() {
		ev := stream.Current()
		if err := msg.Accumulate(ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == "content_block_delta" && ev.Delta.Type == "text_delta" {
			text.WriteString(ev.Delta.Text)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "echo: stream "+n || len(msg.Content) != 1 || msg.Content[0].Text != text.String() || msg.StopReason != "end_turn" ||
		msg.Usage.OutputTokens != fakeupstream.CompletionTokens {
		t.Fatalf("text %q, message %+v", text.String(), msg)
	}
}

// messagesTools makes a tool use round trip, streamed and not.
func (s *suite) messagesTools(t *testing.T) {
	c := s.anthropicClient(s.key)
	ctx := ctxTimeout(t, 60*time.Second)
	tools := []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_weather",
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}}
	params := anthropic.MessageNewParams{Model: upstreamModel, MaxTokens: 64, Tools: tools, Messages: userText("#tool")}
	msg, err := c.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != "tool_use" || len(msg.Content) != 1 || msg.Content[0].Type != "tool_use" || msg.Content[0].Name != "get_weather" {
		t.Fatalf("message = %+v", msg)
	}
	var want, got any
	json.Unmarshal([]byte(fakeupstream.ToolArguments), &want)
	json.Unmarshal(msg.Content[0].Input, &got)
	if !jsonEqual(want, got) {
		t.Fatalf("tool input = %s, want %s", msg.Content[0].Input, fakeupstream.ToolArguments)
	}
	stream := c.Messages.NewStreaming(ctx, params)
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	json.Unmarshal(acc.Content[len(acc.Content)-1].Input, &got)
	if acc.StopReason != "tool_use" || !jsonEqual(want, got) {
		t.Fatalf("streamed message = %+v", acc)
	}
	// The result goes back, as a client's next turn does.
	n := nonce()
	_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: upstreamModel, MaxTokens: 64, Tools: tools,
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("#tool")),
			anthropic.NewAssistantMessage(anthropic.NewToolUseBlock(msg.Content[0].ID, json.RawMessage(fakeupstream.ToolArguments), "get_weather")),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[0].ID, "sunny "+n, false), anthropic.NewTextBlock("thanks "+n)),
		}})
	if err != nil {
		t.Fatal(err)
	}
	reqs := s.Upstream.Find("sunny " + n)
	if len(reqs) != 1 {
		t.Fatalf("upstream got %d requests with the result", len(reqs))
	}
	var sent struct {
		Messages []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
		} `json:"messages"`
	}
	json.Unmarshal(reqs[0].Body, &sent)
	var roles []string
	for _, m := range sent.Messages {
		roles = append(roles, m.Role)
	}
	if strings.Join(roles, ",") != "user,assistant,tool,user" || sent.Messages[2].ToolCallID != msg.Content[0].ID {
		t.Fatalf("upstream messages = %s", reqs[0].Body)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// messagesErrorsAndAliases: errors in Anthropic's shape; a client's own
// model name served through model_aliases; count_tokens and the model list
// in Anthropic's shapes.
func (s *suite) messagesErrorsAndAliases(t *testing.T) {
	ctx := ctxTimeout(t, 30*time.Second)
	anthropicError := func(err error, status int, typ string) {
		t.Helper()
		var e *anthropic.Error
		if !errors.As(err, &e) || e.StatusCode != status {
			t.Fatalf("err = %v, want an API error %d", err, status)
		}
		var body struct {
			Type  string `json:"type"`
			Error struct{ Type, Message string }
		}
		if json.Unmarshal([]byte(e.RawJSON()), &body); body.Type != "error" || body.Error.Type != typ || body.Error.Message == "" {
			t.Fatalf("error body = %s, want type %s", e.RawJSON(), typ)
		}
	}
	_, err := s.anthropicClient("sk-wrong0000000000").Messages.New(ctx, anthropic.MessageNewParams{Model: upstreamModel, MaxTokens: 8, Messages: userText("x")})
	anthropicError(err, http.StatusUnauthorized, "authentication_error")
	c := s.anthropicClient(s.key)
	_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 8, Messages: userText("x")})
	anthropicError(err, http.StatusNotFound, "not_found_error")
	_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: upstreamModel, MaxTokens: 8, Messages: []anthropic.MessageParam{}})
	anthropicError(err, http.StatusBadRequest, "invalid_request_error")

	s.putSettings(t, map[string]any{"model_aliases": []map[string]string{{"from": "claude-*", "to": upstreamModel}}})
	defer s.putSettings(t, map[string]any{"model_aliases": []any{}})
	s.settle()
	n := nonce()
	msg, err := c.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-4-5-20250929", MaxTokens: 8, Messages: userText("alias " + n)})
	if err != nil || msg.Content[0].Text != "echo: alias "+n {
		t.Fatalf("through the alias: %+v, %v", msg, err)
	}
	if reqs := s.Upstream.Find(n); len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"model":"`+upstreamModel+`"`) {
		t.Fatalf("the alias sent %+v", reqs)
	}
	count, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: upstreamModel, Messages: userText("count these tokens, please")})
	if err != nil || count.InputTokens < 5 || count.InputTokens > 100 {
		t.Fatalf("count_tokens = %+v, %v", count, err)
	}
	models, err := c.Models.List(ctx, anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range models.Data {
		found = found || m.ID == upstreamModel && string(m.Type) == "model"
	}
	if !found {
		t.Fatalf("models = %+v", models.Data)
	}
}

// outputCap: max_output_tokens lowers what a client asks the upstream to
// write, on the Messages door as on chat.
func (s *suite) outputCap(t *testing.T) {
	s.putSettings(t, map[string]any{"max_output_tokens": 4096})
	defer s.putSettings(t, map[string]any{"max_output_tokens": 0})
	s.settle()
	n := nonce()
	// Streamed, as Claude Code asks (the SDK refuses 32000 tokens unstreamed).
	stream := s.anthropicClient(s.key).Messages.NewStreaming(ctxTimeout(t, 30*time.Second), anthropic.MessageNewParams{
		Model: upstreamModel, MaxTokens: 32000, Messages: userText("capped " + n)})
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	stream.Close()
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"max_tokens":4096`) {
		t.Fatalf("the upstream got %+v", reqs)
	}
}

//go:embed node/sdk-check.mjs
var nodeSDKCheck []byte

// nodeSDKs drives the gateway with the official Node SDKs (openai, the
// Responses API; @anthropic-ai/sdk, the Messages API), installed by make
// tools beside the coding agents.
func (s *suite) nodeSDKs(t *testing.T) {
	dir := filepath.Join(awslocal.ToolsDir(), "agents")
	awslocal.Tool(t, "agents/node_modules/openai/package.json")
	awslocal.Tool(t, "agents/node_modules/@anthropic-ai/sdk/package.json")
	script := filepath.Join(dir, "sdk-check-"+nonce()+".mjs")
	if err := os.WriteFile(script, nodeSDKCheck, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(script)
	ctx := ctxTimeout(t, 2*time.Minute)
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BASE_URL="+s.BaseURL, "KEY="+s.key, "MODEL="+upstreamModel, "NONCE="+nonce())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Node SDKs: %v\n%s", err, out)
	}
	for _, want := range []string{"responses.create", "responses.stream", "responses.tools", "responses.state",
		"messages.create", "messages.stream", "messages.tools", "messages.errors"} {
		if !strings.Contains(string(out), "ok "+want+"\n") {
			t.Fatalf("the Node SDKs did not pass %s:\n%s", want, out)
		}
	}
}
