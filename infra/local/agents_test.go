package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/acceptance"
	"github.com/aigateway/aigateway/internal/testkit/awslocal"
)

// agentUpstream is a chat upstream scripted for a coding agent's task:
// while the conversation holds no tool result, it answers by calling the
// agent's patch tool to create hello.txt; then it says it is done.
type agentUpstream struct {
	dir      string // where the agent works
	mu       sync.Mutex
	requests []map[string]any
}

const agentPatch = "*** Begin Patch\n*** Add File: hello.txt\n+hello from the gateway\n*** End Patch\n"

func (u *agentUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req map[string]any
	json.Unmarshal(body, &req)
	u.mu.Lock()
	u.requests = append(u.requests, req)
	u.mu.Unlock()
	if r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"not here"}}`, 404)
		return
	}
	msgs, _ := req["messages"].([]any)
	done := false
	for _, m := range msgs {
		if mm, ok := m.(map[string]any); ok && mm["role"] == "tool" {
			done = true
		}
	}
	tool, args := "", ""
	for _, t := range asList(req["tools"]) {
		fn, _ := t.(map[string]any)["function"].(map[string]any)
		switch name, _ := fn["name"].(string); name {
		case "exec_command", "shell":
			if tool == "" {
				tool, args = name, mustJSONString(map[string]any{"cmd": "printf 'hello from the gateway\\n' > hello.txt", "tty": false})
				if name == "shell" {
					args = mustJSONString(map[string]any{"command": []string{"bash", "-lc", "printf 'hello from the gateway\\n' > hello.txt"}})
				}
			}
		case "Write": // Claude Code's
			tool, args = name, mustJSONString(map[string]any{"file_path": filepath.Join(u.dir, "hello.txt"), "content": "hello from the gateway\n"})
		case "apply_patch":
			tool = name
			if params, _ := json.Marshal(fn["parameters"]); strings.Contains(string(params), `"input"`) {
				args = mustJSONString(map[string]string{"input": agentPatch})
			} else {
				args = mustJSONString(map[string]string{"patch": agentPatch})
			}
		}
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(delta map[string]any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	if done || tool == "" {
		send(map[string]any{"role": "assistant", "content": "Created hello.txt."}, nil)
		send(map[string]any{}, "stop")
	} else {
		send(map[string]any{"role": "assistant", "tool_calls": []any{map[string]any{"index": 0, "id": "call_patch", "type": "function",
			"function": map[string]any{"name": tool, "arguments": args}}}}, nil)
		send(map[string]any{}, "tool_calls")
	}
	fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}}\n\ndata: [DONE]\n\n")
}

func asList(v any) []any { l, _ := v.([]any); return l }

func mustJSONString(v any) string { b, _ := json.Marshal(v); return string(b) }

// agentGateway starts a gateway set up over the scripted upstream and
// returns its URL and first key.
func agentGateway(t *testing.T, up http.Handler, env ...string) (string, string) {
	t.Helper()
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	bin := gatewayBinary(t)
	env = append(append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + filepath.Join(t.TempDir(), "data")}, acceptance.Env...), env...)
	base := start(t, bin, env...)
	body := `{"admin_password":"correct horse battery","ai":{"base_url":"` + srv.URL + `","api_key":"sk-up-0123456789","model":"fake/agent-model"}}`
	resp, err := http.Post(base+"/admin/api/setup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		APIKey string `json:"api_key"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if out.APIKey == "" {
		t.Fatalf("setup = %d", resp.StatusCode)
	}
	return base, out.APIKey
}

// TestCodexCLI runs OpenAI's Codex CLI (from npm) against the gateway's
// Responses API: it is asked to create a file, the scripted upstream has
// it call its apply_patch tool, and the file must be there after.
func TestCodexCLI(t *testing.T) {
	codex := awslocal.Tool(t, "agents/node_modules/.bin/codex")
	up := &agentUpstream{}
	base, key := agentGateway(t, up)
	work, home := t.TempDir(), t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, codex, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox",
		"-c", `model_provider="gateway"`,
		"-c", `model_providers.gateway={name="AI Gateway", base_url="`+base+`/v1", env_key="GATEWAY_KEY", wire_api="responses"}`,
		"-m", "fake/agent-model", "Create a file hello.txt that says hello.")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "CODEX_HOME="+home, "GATEWAY_KEY="+key, "HOME="+home)
	out, err := cmd.CombinedOutput()
	t.Logf("codex:\n%s", out)
	if err != nil {
		t.Fatalf("codex exec: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(work, "hello.txt"))
	if err != nil || strings.TrimSpace(string(got)) != "hello from the gateway" {
		t.Fatalf("hello.txt = %q, %v", got, err)
	}
	// What went through the gateway: the call, then its output back.
	if len(up.requests) != 2 || !strings.Contains(mustJSONString(up.requests[1]["messages"]), "call_patch") {
		t.Fatalf("the upstream got %d requests; the second should carry the tool's output", len(up.requests))
	}
}

// TestClaudeCode runs Anthropic's Claude Code (from npm) against the
// gateway's Messages API, its own model names mapped by model_aliases: it
// is asked to create a file, the scripted upstream has it call its Write
// tool, and the file must be there after.
func TestClaudeCode(t *testing.T) {
	claude := awslocal.Tool(t, "agents/node_modules/.bin/claude")
	work, home := t.TempDir(), t.TempDir()
	up := &agentUpstream{dir: work}
	base, key := agentGateway(t, up)
	c := login(t, base)
	if code, b := c.call("PUT", "/admin/api/settings", map[string]any{"model_aliases": []map[string]string{{"from": "claude-*", "to": "fake/agent-model"}}}); code != 200 {
		t.Fatalf("model_aliases = %d %s", code, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, claude, "-p", "Create a file hello.txt that says hello.", "--permission-mode", "bypassPermissions",
		"--allowedTools", "Write", "--output-format", "text")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+home, "ANTHROPIC_BASE_URL="+base, "ANTHROPIC_AUTH_TOKEN="+key,
		"DISABLE_TELEMETRY=1", "DISABLE_AUTOUPDATER=1", "DISABLE_ERROR_REPORTING=1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1", "IS_SANDBOX=1")
	out, err := cmd.CombinedOutput()
	t.Logf("claude:\n%s", out)
	if err != nil {
		t.Fatalf("claude -p: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(work, "hello.txt"))
	if err != nil || strings.TrimSpace(string(got)) != "hello from the gateway" {
		t.Fatalf("hello.txt = %q, %v", got, err)
	}
	// Its own model name went upstream as the public model's, and the
	// tool's result came back through the Messages API.
	last := up.requests[len(up.requests)-1]
	if last["model"] != "fake/agent-model" || !strings.Contains(mustJSONString(last["messages"]), `"role":"tool"`) {
		t.Fatalf("the last upstream request: %s", mustJSONString(last))
	}
}
