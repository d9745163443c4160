package acceptance

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3/option"
)

// say sends one user message in a conversation as key and returns what the
// upstream received.
func (s *suite) say(t *testing.T, key, conv, text string) []struct{ Role, Content string } {
	t.Helper()
	n := nonce()
	if _, err := s.chatAs(t, key, "my-bot", text+" "+n, option.WithHeader("X-Conversation-ID", conv)); err != nil {
		t.Fatalf("say %q: %v", text, err)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	var sent struct {
		Messages []struct{ Role, Content string }
	}
	json.Unmarshal(reqs[0].Body, &sent)
	return sent.Messages
}

func contents(msgs []struct{ Role, Content string }) string {
	var parts []string
	for _, m := range msgs {
		c := m.Content
		if i := strings.LastIndex(c, " n"); i > 0 && m.Role == "user" {
			c = c[:i] // drop the nonce
		}
		if i := strings.LastIndex(c, " n"); i > 0 && m.Role == "assistant" {
			c = c[:i]
		}
		parts = append(parts, m.Role+":"+c)
	}
	return strings.Join(parts, " | ")
}

type conversationView struct {
	ID       string            `json:"id"`
	Messages []json.RawMessage `json:"messages"`
	Count    int               `json:"message_count"`
}

func (s *suite) getConversationAs(t *testing.T, key, id string) (*http.Response, conversationView) {
	t.Helper()
	resp, body := do(t, nil, "GET", s.url("/v1/conversations/"+id), nil, http.Header{"Authorization": {"Bearer " + key}})
	var v conversationView
	if resp.StatusCode == http.StatusOK {
		v = decode[conversationView](t, body)
	}
	return resp, v
}

func (s *suite) memoryOff(t *testing.T) {
	s.putSettings(t, map[string]any{"server_memory": false, "system_prompt": ""})
	key, _ := s.newKey(t, "memory off", nil)
	conv := "c-" + nonce()
	sent := s.say(t, key, conv, "first")
	if got := contents(sent); got != "user:first" {
		t.Fatalf("first turn sent %q", got)
	}
	// Memory off: the second turn goes as the client sent it, alone.
	sent = s.say(t, key, conv, "second")
	if got := contents(sent); got != "user:second" {
		t.Fatalf("second turn sent %q, want only the client's message", got)
	}
	resp, v := s.getConversationAs(t, key, conv)
	if resp.StatusCode != http.StatusOK || len(v.Messages) != 4 {
		t.Fatalf("conversation = %d with %d messages, want 4 (two exchanges recorded)", resp.StatusCode, len(v.Messages))
	}
	if resp.Header.Get("Content-Type") == "" {
		t.Fatal("no content type")
	}
}

func (s *suite) memoryOn(t *testing.T) {
	s.putSettings(t, map[string]any{"server_memory": true, "system_prompt": "", "max_messages": 0})
	defer s.putSettings(t, map[string]any{"server_memory": false, "max_messages": 20})
	key, _ := s.newKey(t, "memory on", nil)
	conv := "c-" + nonce()
	s.say(t, key, conv, "my name is Ada")
	sent := s.say(t, key, conv, "what is my name?")
	if got := contents(sent); !strings.HasPrefix(got, "user:my name is Ada | assistant:echo: my name is Ada | user:what is my name?") {
		t.Fatalf("with memory on the upstream got %q, want the stored exchange first", got)
	}
	// A client that sends the whole conversation itself is not doubled.
	resp, v := s.getConversationAs(t, key, conv)
	if resp.StatusCode != http.StatusOK || len(v.Messages) != 4 {
		t.Fatalf("conversation has %d messages, want 4", len(v.Messages))
	}
	h := http.Header{"Authorization": {"Bearer " + key}, "X-Conversation-Id": {conv}}
	var full []json.RawMessage
	full = append(full, v.Messages...)
	full = append(full, json.RawMessage(`{"role":"user","content":"again"}`))
	body, _ := json.Marshal(map[string]any{"model": "my-bot", "messages": full})
	r, data := do(t, nil, "POST", s.url("/v1/chat/completions"), body, h)
	if r.StatusCode != http.StatusOK || r.Header.Get("X-Conversation-ID") != conv {
		t.Fatalf("full-history turn = %d %s (X-Conversation-ID %q)", r.StatusCode, data, r.Header.Get("X-Conversation-ID"))
	}
	if _, v := s.getConversationAs(t, key, conv); len(v.Messages) != 6 {
		t.Fatalf("after a full-history turn the conversation has %d messages, want 6", len(v.Messages))
	}

	// Trimming keeps the system prompt and the latest messages, from a
	// user turn.
	s.putSettings(t, map[string]any{"max_messages": 3, "system_prompt": "Be brief."})
	sent = s.say(t, key, conv, "last one")
	if got := contents(sent); got != "system:Be brief. | user:again | assistant:echo: again | user:last one" {
		t.Fatalf("trimmed context = %q, want the system prompt and the last 3 messages", got)
	}
	s.putSettings(t, map[string]any{"max_messages": 2})
	sent = s.say(t, key, conv, "very last")
	if got := contents(sent); got != "system:Be brief. | user:very last" {
		t.Fatalf("trimmed context = %q, want the system prompt and the last user turn", got)
	}
}

func (s *suite) conversationIsolation(t *testing.T) {
	a, _ := s.newKey(t, "isolation a", nil)
	b, _ := s.newKey(t, "isolation b", nil)
	conv := "c-" + nonce()
	s.say(t, a, conv, "secret of a")
	resp, _ := s.getConversationAs(t, b, conv)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("key b reading key a's conversation = %d, want 404", resp.StatusCode)
	}
	r, body := do(t, nil, "DELETE", s.url("/v1/conversations/"+conv), nil, http.Header{"Authorization": {"Bearer " + b}})
	wantError(t, r, body, http.StatusNotFound, "not_found")
	r, body = do(t, nil, "GET", s.url("/v1/conversations"), nil, http.Header{"Authorization": {"Bearer " + b}})
	if r.StatusCode != http.StatusOK || strings.Contains(string(body), conv) {
		t.Fatalf("key b's list = %d %s, want no trace of a's conversation", r.StatusCode, body)
	}
	// The same ID under b is b's own conversation.
	if got := contents(s.say(t, b, conv, "hello from b")); strings.Contains(got, "secret") {
		t.Fatalf("b's turn carried a's history: %q", got)
	}
	r, body = do(t, nil, "DELETE", s.url("/v1/conversations/"+conv), nil, http.Header{"Authorization": {"Bearer " + a}})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("delete = %d %s", r.StatusCode, body)
	}
	if resp, _ := s.getConversationAs(t, a, conv); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("after delete = %d, want 404", resp.StatusCode)
	}
	if resp, v := s.getConversationAs(t, b, conv); resp.StatusCode != http.StatusOK || len(v.Messages) != 2 {
		t.Fatalf("deleting a's conversation touched b's: %d, %d messages", resp.StatusCode, len(v.Messages))
	}
	r, body = do(t, nil, "POST", s.url("/v1/chat/completions"), `{"model":"my-bot","messages":[{"role":"user","content":"x"}]}`,
		http.Header{"Authorization": {"Bearer " + a}, "X-Conversation-Id": {"bad id!"}})
	wantError(t, r, body, http.StatusBadRequest, "invalid")
}

func (s *suite) conversationEviction(t *testing.T) {
	s.putSettings(t, map[string]any{"max_conversations": 2})
	defer s.putSettings(t, map[string]any{"max_conversations": 50})
	key, id := s.newKey(t, "eviction", nil)
	for _, c := range []string{"one", "two", "three"} {
		s.say(t, key, c, "hi "+c)
		time.Sleep(20 * time.Millisecond) // distinct last-used times
	}
	resp, _ := s.getConversationAs(t, key, "one")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the oldest conversation = %d, want evicted (404)", resp.StatusCode)
	}
	for _, c := range []string{"two", "three"} {
		if resp, _ := s.getConversationAs(t, key, c); resp.StatusCode != http.StatusOK {
			t.Fatalf("conversation %s = %d, want kept", c, resp.StatusCode)
		}
	}
	// The admin sees them, with their key.
	r, body := s.admin.call(t, s, "GET", "/admin/api/conversations?key_id="+id, nil)
	list := decode[struct {
		Data []struct {
			AdminID string `json:"admin_id"`
			ID      string `json:"id"`
			KeyID   string `json:"key_id"`
		}
	}](t, body)
	if r.StatusCode != http.StatusOK || len(list.Data) != 2 || list.Data[0].ID != "three" || list.Data[0].KeyID != id {
		t.Fatalf("admin list = %d %s", r.StatusCode, body)
	}
	r, body = s.admin.call(t, s, "GET", "/admin/api/conversations/"+list.Data[0].AdminID, nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(body), "hi three") {
		t.Fatalf("admin detail = %d %s", r.StatusCode, body)
	}
	// The admin deletes one, a message of which is too large for the table
	// (kept as a blob); its key no longer finds it, the other stays.
	s.say(t, key, "three", strings.Repeat("large ", 15000))
	r, body = s.admin.call(t, s, "DELETE", "/admin/api/conversations/"+list.Data[0].AdminID, nil)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(body), `"deleted":true`) {
		t.Fatalf("admin DELETE = %d %s", r.StatusCode, body)
	}
	if resp, _ := s.getConversationAs(t, key, "three"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the deleted conversation = %d for its key, want 404", resp.StatusCode)
	}
	if resp, _ := s.getConversationAs(t, key, "two"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the other conversation = %d after a delete, want kept", resp.StatusCode)
	}
}
