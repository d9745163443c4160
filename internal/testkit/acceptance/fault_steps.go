package acceptance

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// chatRaw posts a chat request body as key and returns the answer.
func (s *suite) chatRaw(t *testing.T, key, body string, header ...string) (*http.Response, []byte) {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + key}}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return do(t, nil, "POST", s.url("/v1/chat/completions"), body, h)
}

// upstreamFaults answers upstreams that misbehave: usage that is negative,
// absurd or missing is clamped or estimated (and never lowers a key's
// counters); an upstream that keeps its connection open after [DONE] does
// not hold the client; an event too large is refused with an error event.
func (s *suite) upstreamFaults(t *testing.T) {
	key, id := s.newKey(t, "faults", nil)
	msg := func(text string, stream bool) string {
		return fmt.Sprintf(`{"model":"my-bot","stream":%v,"messages":[{"role":"user","content":%q}]}`, stream, text)
	}

	// Negative usage counts as none, and is recorded as clamped.
	for _, stream := range []bool{false, true} {
		if resp, body := s.chatRaw(t, key, msg("#negusage hi", stream)); resp.StatusCode != http.StatusOK {
			t.Fatalf("negative usage (stream %v) = %d %s", stream, resp.StatusCode, body)
		}
	}
	got := s.waitUsage(t, id, 2, 10*time.Second)
	if got.PromptTokens < 0 || got.CompletionTokens < 0 {
		t.Fatalf("negative usage was recorded: %+v", got)
	}
	// Absurd usage is cut to a bound.
	if resp, body := s.chatRaw(t, key, msg("#hugeusage hi", false)); resp.StatusCode != http.StatusOK {
		t.Fatalf("absurd usage = %d %s", resp.StatusCode, body)
	}
	got = s.waitUsage(t, id, 3, 10*time.Second)
	if got.PromptTokens > 10_000_000 {
		t.Fatalf("absurd usage was recorded: %+v", got)
	}
	before := got.CompletionTokens
	// No usage reported, and no conversation: the answer is still counted.
	if resp, body := s.chatRaw(t, key, msg("#nousage count my answer please", false)); resp.StatusCode != http.StatusOK {
		t.Fatalf("no usage = %d %s", resp.StatusCode, body)
	}
	if got = s.waitUsage(t, id, 4, 10*time.Second); got.CompletionTokens <= before {
		t.Fatalf("an answer without usage was counted as %d completion tokens", got.CompletionTokens-before)
	}

	// [DONE] ends the exchange, even when the upstream stays connected.
	start := time.Now()
	resp, body := s.chatRaw(t, key, msg("#keepopen hello", true))
	if resp.StatusCode != http.StatusOK || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) ||
		bytes.Count(body, []byte("[DONE]")) != 1 || bytes.Contains(body, []byte(`"error"`)) {
		t.Fatalf("stream from an upstream that stays open = %d %q", resp.StatusCode, body)
	}
	if waited := time.Since(start); waited >= s.IdleTimeout {
		t.Fatalf("the client was held %v after [DONE]", waited)
	}
	got = s.waitUsage(t, id, 5, 10*time.Second)
	if got.Partial != 0 || got.Errors != 0 {
		t.Fatalf("a stream that ended with [DONE] was recorded partial or failed: %+v", got)
	}

	// A rate-limit storm: retried within bounds, then a 503 that says when
	// to come back; recorded once.
	resp, body = s.chatRaw(t, key, msg("#storm now", false))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a 429 storm = %d (Retry-After %q) %s, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if got = s.waitUsage(t, id, 6, 10*time.Second); got.Errors != 1 {
		t.Fatalf("the storm was recorded as %+v, want one error", got)
	}
	// Malformed SSE: what is no event is passed over, the stream ends.
	resp, body = s.chatRaw(t, key, msg("#malformed", true))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("still here")) || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("malformed stream = %d %q", resp.StatusCode, body)
	}
	s.waitUsage(t, id, 7, 10*time.Second)

	// An upstream that quotes its key, in an error answer or in an error
	// event mid-stream: the client never sees it.
	for _, stream := range []bool{false, true} {
		_, body = s.chatRaw(t, key, msg("#echokey", stream))
		for i := 0; i+12 <= len(upstreamKey); i++ {
			if bytes.Contains(body, []byte(upstreamKey[i:i+12])) {
				t.Fatalf("the upstream key reached the client (stream %v): %s", stream, body)
			}
		}
	}

	// One line of 20 MB: refused with a precise error too.
	resp, body = s.chatRaw(t, key, msg("#longline:20", true))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("line longer than 16 MB")) || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("a 20 MB line = %d, ends %q", resp.StatusCode, body[max(0, len(body)-300):])
	}

	// One event of 20 MB in short lines: refused with a precise error.
	if s.ChunkedFetch {
		return
	}
	resp, body = s.chatRaw(t, key, msg("#bigevent:20", true))
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("larger than 16 MB")) || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("a 20 MB event = %d, ends %q", resp.StatusCode, body[max(0, len(body)-300):])
	}
}

// conversationsStoredFirst checks what a conversation keeps: the exchange
// is stored before the client is told the answer is complete (a client
// that sends its next turn at once finds it), and without the upstream's
// reasoning, which the next turn would replay.
func (s *suite) conversationsStoredFirst(t *testing.T) {
	key, _ := s.newKey(t, "stored first", nil)
	for i := range 60 {
		conv := "first-" + nonce()
		stream := i%2 == 0
		body := fmt.Sprintf(`{"model":"my-bot","stream":%v,"messages":[{"role":"user","content":"turn %d"}]}`, stream, i)
		if resp, out := s.chatRaw(t, key, body, "X-Conversation-ID", conv); resp.StatusCode != http.StatusOK {
			t.Fatalf("turn %d = %d %s", i, resp.StatusCode, out)
		}
		if resp, v := s.getConversationAs(t, key, conv); resp.StatusCode != http.StatusOK || len(v.Messages) != 2 {
			t.Fatalf("right after turn %d (stream %v) the conversation holds %d messages, want 2", i, stream, len(v.Messages))
		}
	}
	conv := "reasoning-" + nonce()
	body := `{"model":"my-bot","messages":[{"role":"user","content":"#reasoning about cats"}]}`
	if resp, out := s.chatRaw(t, key, body, "X-Conversation-ID", conv); resp.StatusCode != http.StatusOK || !strings.Contains(string(out), "reasoning_content") {
		t.Fatalf("reasoning answer = %d %s", resp.StatusCode, out)
	}
	_, v := s.getConversationAs(t, key, conv)
	if len(v.Messages) != 2 || bytes.Contains(v.Messages[1], []byte(`"reasoning_content"`)) {
		t.Fatalf("stored answer = %s, want it without reasoning", v.Messages)
	}
}
