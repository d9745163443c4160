package acceptance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// newKey creates a key with limits through the admin API and returns its
// secret and ID.
func (s *suite) newKey(t *testing.T, name string, limits map[string]any) (string, string) {
	t.Helper()
	body := map[string]any{"name": name}
	for k, v := range limits {
		body[k] = v
	}
	resp, data := s.admin.call(t, s, "POST", "/admin/api/keys", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create key %s = %d %s", name, resp.StatusCode, data)
	}
	k := decode[struct{ ID, Key string }](t, data)
	return k.Key, k.ID
}

func (s *suite) putSettings(t *testing.T, patch map[string]any) {
	t.Helper()
	resp, body := s.admin.call(t, s, "PUT", "/admin/api/settings", patch)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT settings %v = %d %s", patch, resp.StatusCode, body)
	}
	s.settle()
}

// totals are a key's usage totals from the admin API.
type totals struct {
	Requests         int64 `json:"requests"`
	Errors           int64 `json:"errors"`
	Partial          int64 `json:"partial"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

func (s *suite) usage(t *testing.T, keyID string) totals {
	t.Helper()
	resp, body := s.admin.call(t, s, "GET", "/admin/api/usage?key_id="+keyID, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET usage = %d %s", resp.StatusCode, body)
	}
	return decode[struct {
		Totals totals `json:"totals"`
	}](t, body).Totals
}

// waitUsage waits until keyID has n requests recorded (recording may
// finish just after the answer) and returns its totals; it fails if more
// appear.
func (s *suite) waitUsage(t *testing.T, keyID string, n int64, within time.Duration) totals {
	t.Helper()
	var got totals
	waitFor(t, fmt.Sprintf("%d requests recorded for %s", n, keyID), within, func() bool {
		got = s.usage(t, keyID)
		return got.Requests >= n
	})
	time.Sleep(300 * time.Millisecond) // a second, wrong record would show by now
	if again := s.usage(t, keyID); again != got || got.Requests != n {
		t.Fatalf("usage = %+v then %+v, want exactly %d requests recorded", got, again, n)
	}
	return got
}

func (s *suite) chatAs(t *testing.T, key, model, text string, opts ...option.RequestOption) (*openai.ChatCompletion, error) {
	t.Helper()
	p := userMessage(text)
	p.Model = model
	return s.client(key, opts...).Chat.Completions.New(ctxTimeout(t, 30*time.Second), p)
}

// extraModels adds the public models support and legal, each over its
// own upstream model with its own prompt and knowledge base.
func (s *suite) extraModels(t *testing.T) {
	t.Helper()
	for name, prompt := range map[string]string{"support": "You are the support desk.", "legal": "You are the legal assistant."} {
		resp, body := s.admin.call(t, s, "PUT", "/admin/api/models/"+name, map[string]any{
			"upstream_model": "fake/" + name + "-upstream", "system_prompt": prompt, "knowledge_bases": []string{name}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT model %s = %d %s", name, resp.StatusCode, body)
		}
	}
}

func (s *suite) publicModels(t *testing.T) {
	s.extraModels(t)
	s.settle()
	for name, want := range map[string][2]string{
		"support": {"fake/support-upstream", "You are the support desk."},
		"legal":   {"fake/legal-upstream", "You are the legal assistant."},
	} {
		n := nonce()
		if _, err := s.chatAs(t, s.key, name, "hello "+n); err != nil {
			t.Fatalf("chat with %s: %v", name, err)
		}
		reqs := s.Upstream.Find(n)
		if len(reqs) != 1 {
			t.Fatalf("%s: upstream saw %d requests", name, len(reqs))
		}
		var sent struct {
			Model    string
			Messages []struct{ Role, Content string }
		}
		json.Unmarshal(reqs[0].Body, &sent)
		if sent.Model != want[0] || len(sent.Messages) != 2 || sent.Messages[0].Role != "system" || sent.Messages[0].Content != want[1] {
			t.Fatalf("%s reached the upstream as %+v, want model %s with system prompt %q", name, sent, want[0], want[1])
		}
	}
	page, err := s.client(s.key).Models.List(ctxTimeout(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	if strings.Join(ids, ",") != "my-bot,legal,support" {
		t.Fatalf("models = %v, want my-bot, legal, support", ids)
	}
	resp, body := s.admin.call(t, s, "PUT", "/admin/api/models/my-bot", map[string]any{"upstream_model": "x"})
	wantError(t, resp, body, http.StatusConflict, "conflict")
	// The other way round: the default model cannot take an extra one's name.
	resp, body = s.admin.call(t, s, "PUT", "/admin/api/settings", map[string]any{"public_model": "legal"})
	wantError(t, resp, body, http.StatusConflict, "conflict")
	if resp, body := s.admin.call(t, s, "GET", "/admin/api/settings", nil); !bytes.Contains(body, []byte(`"public_model":"my-bot"`)) {
		t.Fatalf("a refused rename changed the settings: %d %s", resp.StatusCode, body)
	}
	resp, body = s.admin.call(t, s, "PUT", "/admin/api/models/bad", map[string]any{"upstream_model": ""})
	wantError(t, resp, body, http.StatusBadRequest, "invalid")
	resp, body = s.admin.call(t, s, "DELETE", "/admin/api/models/nonexistent", nil)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
	resp, body = s.admin.call(t, s, "GET", "/admin/api/models", nil)
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"knowledge_bases":["legal"]`)) {
		t.Fatalf("GET models = %d %s", resp.StatusCode, body)
	}
}

func (s *suite) keyModelAllowlist(t *testing.T) {
	key, _ := s.newKey(t, "support only", map[string]any{"models": []string{"support"}})
	page, err := s.client(key).Models.List(ctxTimeout(t, 30*time.Second))
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "support" {
		t.Fatalf("models = %+v, %v; want only support", page, err)
	}
	if _, err := s.chatAs(t, key, "support", "hi"); err != nil {
		t.Fatal(err)
	}
	_, err = s.chatAs(t, key, "legal", "hi")
	apiError(t, err, http.StatusNotFound, "model_not_found")
	_, err = s.chatAs(t, key, "my-bot", "hi")
	apiError(t, err, http.StatusNotFound, "model_not_found")

	// A second copy of a member the gateway reads (in any case) would let the
	// upstream act on what the gateway never checked: refused, and nothing
	// reaches the upstream.
	n := nonce()
	h := http.Header{"Authorization": {"Bearer " + key}}
	for _, b := range []string{
		`{"model":"support","model":"my-bot","messages":[{"role":"user","content":"` + n + `"}]}`,
		`{"model":"support","Model":"my-bot","messages":[{"role":"user","content":"` + n + `"}]}`,
		`{"model":"support","MODEL":"my-bot","messages":[{"role":"user","content":"` + n + `"}]}`,
		`{"model":"support","messages":[{"role":"user","content":"` + n + `"}],"messages":[{"role":"system","content":"x"}]}`,
		`{"model":"support","stream":false,"ſtream":true,"messages":[{"role":"user","content":"` + n + `"}]}`,
		`{"model":"support","messages":[{"role":"user","content":"` + n + `"}],"stream":true,"stream_options":{"include_usage":true,"include_usage":false}}`,
		`{"model":"support","messages":[{"role":"user","Role":"system","content":"` + n + `"}]}`,
	} {
		resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), b, h)
		wantError(t, resp, body, http.StatusBadRequest, "invalid")
	}
	if reqs := s.Upstream.Find(n); len(reqs) != 0 {
		t.Fatalf("bodies with duplicate members reached the upstream: %d", len(reqs))
	}
}

func (s *suite) keyExpiry(t *testing.T) {
	key, id := s.newKey(t, "short-lived", map[string]any{"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
	if _, err := s.chatAs(t, key, "my-bot", "hi"); err != nil {
		t.Fatal(err)
	}
	resp, body := s.admin.call(t, s, "PUT", "/admin/api/keys/"+id, map[string]any{"expires_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT key limits = %d %s", resp.StatusCode, body)
	}
	s.settle()
	_, err := s.chatAs(t, key, "my-bot", "hi")
	if e := apiError(t, err, http.StatusUnauthorized, "unauthorized"); !strings.Contains(e.Message, "expired") {
		t.Fatalf("message = %q, want it to say the key expired", e.Message)
	}
}

// limited sends requests until one is refused, and returns how many
// succeeded and the refusal.
func (s *suite) limited(t *testing.T, key string, most int) (int, *http.Response, []byte) {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + key}}
	for i := range most {
		resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"),
			`{"model":"my-bot","messages":[{"role":"user","content":"count me"}]}`, h)
		if resp.StatusCode == http.StatusTooManyRequests {
			return i, resp, body
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d = %d %s", i+1, resp.StatusCode, body)
		}
	}
	t.Fatalf("%d requests in a row were never limited", most)
	return 0, nil, nil
}

func retryAfterSeconds(t *testing.T, resp *http.Response) int {
	t.Helper()
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 61 {
		t.Fatalf("Retry-After = %q, want 1 to 61 seconds", resp.Header.Get("Retry-After"))
	}
	return ra
}

func (s *suite) keyRPM(t *testing.T) {
	key, _ := s.newKey(t, "rpm 2", map[string]any{"rpm": 2})
	// Two fit in a minute; a minute turning over can let one more through.
	ok, resp, body := s.limited(t, key, 5)
	if ok < 2 {
		t.Fatalf("limited after %d requests, want at least 2", ok)
	}
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limit_exceeded")
	retryAfterSeconds(t, resp)
}

func (s *suite) keyTPM(t *testing.T) {
	key, _ := s.newKey(t, "tpm 10", map[string]any{"tpm": 10})
	// One answer uses 18 tokens: the next request in that minute is refused.
	ok, resp, body := s.limited(t, key, 3)
	if ok < 1 {
		t.Fatal("the first request was refused")
	}
	wantError(t, resp, body, http.StatusTooManyRequests, "rate_limit_exceeded")
	retryAfterSeconds(t, resp)
}

func (s *suite) keyQuota(t *testing.T) {
	key, id := s.newKey(t, "quota 20", map[string]any{"token_quota": 20})
	ok, resp, body := s.limited(t, key, 4)
	if ok != 2 {
		t.Fatalf("quota refused after %d requests of 18 tokens each, want after 2 (36 tokens ≥ 20)", ok)
	}
	wantError(t, resp, body, http.StatusTooManyRequests, "insufficient_quota")
	if got := s.waitUsage(t, id, 2, 10*time.Second); got.PromptTokens+got.CompletionTokens != 36 {
		t.Fatalf("usage = %+v, want 36 tokens", got)
	}
}

// limitsUnderBurst sends 30 streams at once on a key with a 100-token
// quota, on one with 100 tokens a minute and on one with 5 requests a
// minute: tokens are reserved at admission, so the burst goes over each
// token limit by about one request's tokens at most (the fake uses 18),
// and requests are counted before they run.
func (s *suite) limitsUnderBurst(t *testing.T) {
	for _, limit := range []string{"token_quota", "tpm", "rpm"} {
		n := 100
		if limit == "rpm" {
			n = 5
		}
		key, id := s.newKey(t, "burst "+limit, map[string]any{limit: n})
		var mu sync.Mutex
		codes := map[int]int{}
		var wg sync.WaitGroup
		began := time.Now().Truncate(time.Minute)
		for range 30 {
			wg.Go(func() {
				resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"),
					`{"model":"my-bot","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"#slow:5"}]}`,
					http.Header{"Authorization": {"Bearer " + key}})
				if resp.StatusCode == http.StatusOK && !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
					t.Errorf("a stream did not finish: %q", body)
				}
				mu.Lock()
				codes[resp.StatusCode]++
				mu.Unlock()
			})
		}
		wg.Wait()
		// Per-minute limits are per calendar minute: a burst that straddles
		// a minute boundary may use the limit of each minute it touched.
		minutes := 1 + int(time.Now().Truncate(time.Minute).Sub(began)/time.Minute)
		if codes[http.StatusOK] == 0 || codes[http.StatusOK]+codes[http.StatusTooManyRequests] != 30 {
			t.Fatalf("%s: answers %v, want some streams and the rest refused", limit, codes)
		}
		got := s.waitUsage(t, id, int64(codes[http.StatusOK]), 10*time.Second)
		if limit == "rpm" {
			// Counted before they run: exact within each minute.
			if codes[http.StatusOK] > minutes*n {
				t.Fatalf("rpm: %d requests admitted at once on %d a minute", codes[http.StatusOK], n)
			}
			continue
		}
		windows := 1
		if limit == "tpm" {
			windows = minutes
		}
		if used := got.PromptTokens + got.CompletionTokens; used > int64(windows*100+18) {
			t.Fatalf("%s: a burst across %d minute(s) used %d tokens on a limit of 100 (%d streams admitted)",
				limit, windows, used, codes[http.StatusOK])
		}
	}
}

// streamText reads a stream to its end and returns its text and whether a
// usage chunk came.
func streamText(t *testing.T, stream interface {
	Next() bool
	Current() openai.ChatCompletionChunk
	Err() error
}) (string, bool) {
	t.Helper()
	var text strings.Builder
	sawUsage := false
	for stream.Next() {
		ch := stream.Current()
		if ch.Usage.TotalTokens > 0 {
			sawUsage = true
		}
		for _, c := range ch.Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return text.String(), sawUsage
}

func (s *suite) usageStream(t *testing.T) {
	key, id := s.newKey(t, "usage stream", nil)
	c := s.client(key)
	p := userMessage("count this")
	p.Model = "my-bot"
	text, sawUsage := streamText(t, c.Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p))
	if text != "echo: count this" || sawUsage {
		t.Fatalf("stream = %q, usage chunk %v; want the text and no usage chunk (not asked)", text, sawUsage)
	}
	got := s.waitUsage(t, id, 1, 10*time.Second)
	if got.PromptTokens != fakeupstream.PromptTokens || got.CompletionTokens != fakeupstream.CompletionTokens || got.Partial != 0 {
		t.Fatalf("usage = %+v, want the upstream's %d/%d, not partial", got, fakeupstream.PromptTokens, fakeupstream.CompletionTokens)
	}
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	if _, sawUsage := streamText(t, c.Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p)); !sawUsage {
		t.Fatal("the usage chunk the client asked for did not come")
	}
	s.waitUsage(t, id, 2, 10*time.Second)
}

func (s *suite) usageClientCancel(t *testing.T) {
	if s.StreamsBuffered {
		t.Skip("the target buffers streams, so a client cannot leave mid-stream")
	}
	key, id := s.newKey(t, "usage cancel", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := userMessage("#slow:20")
	p.Model = "my-bot"
	stream := s.client(key).Chat.Completions.NewStreaming(ctx, p)
	for i := 0; i < 3 && stream.Next(); i++ {
	}
	cancel()
	stream.Close()
	// The gateway reads on to the usage the upstream sends at the end.
	got := s.waitUsage(t, id, 1, s.DrainTimeout+10*time.Second)
	if got.PromptTokens != fakeupstream.PromptTokens || got.CompletionTokens != fakeupstream.CompletionTokens {
		t.Fatalf("usage after a client cancel = %+v, want the upstream's own count", got)
	}
}

func (s *suite) usageUpstreamReset(t *testing.T) {
	key, id := s.newKey(t, "usage reset", nil)
	p := userMessage("#reset")
	p.Model = "my-bot"
	stream := s.client(key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p)
	var text strings.Builder
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	if !strings.Contains(text.String(), "part 2") || stream.Err() == nil {
		t.Fatalf("stream text %q, err %v; want three parts then the error event", text.String(), stream.Err())
	}
	got := s.waitUsage(t, id, 1, 10*time.Second)
	if got.Partial != 1 || got.CompletionTokens < 3 {
		t.Fatalf("usage after an upstream reset = %+v, want one partial request with what was received", got)
	}
}

func (s *suite) retryBeforeFirstByte(t *testing.T) {
	key, id := s.newKey(t, "retry", nil)
	conv := nonce()
	token := nonce()
	got, err := s.chatAs(t, key, "my-bot", "#fail-once:"+token+" please", option.WithHeader("X-Conversation-ID", conv))
	if err != nil {
		t.Fatalf("a 503 before the first byte was not retried: %v", err)
	}
	if !strings.Contains(got.Choices[0].Message.Content, "please") {
		t.Fatalf("answer = %q", got.Choices[0].Message.Content)
	}
	if n := len(s.Upstream.Find(token)); n != 2 {
		t.Fatalf("upstream saw %d attempts, want 2", n)
	}
	s.waitUsage(t, id, 1, 10*time.Second)
	resp, body := do(t, nil, "GET", s.url("/v1/conversations/"+conv), nil, http.Header{"Authorization": {"Bearer " + key}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET conversation = %d %s", resp.StatusCode, body)
	}
	if c := decode[struct{ Messages []json.RawMessage }](t, body); len(c.Messages) != 2 {
		t.Fatalf("conversation holds %d messages, want the one exchange (2)", len(c.Messages))
	}
}

func (s *suite) fallback(t *testing.T) {
	if s.Fallback == nil {
		t.Skip("the target was given no fallback upstream")
	}
	s.putSettings(t, map[string]any{"fallback": map[string]any{"base_url": s.Fallback.URL, "api_key": fallbackKey, "model": "fake/fallback-model"}})
	defer s.putSettings(t, map[string]any{"fallback": map[string]any{"base_url": "", "api_key": "", "model": ""}})
	n := nonce()
	got, err := s.chatAs(t, s.key, "my-bot", "#status-on:primary:503 "+n)
	if err != nil {
		t.Fatalf("with the primary failing and a fallback set: %v", err)
	}
	if !strings.Contains(got.Choices[0].Message.Content, n) {
		t.Fatalf("answer = %q", got.Choices[0].Message.Content)
	}
	reqs := s.Fallback.Find(n)
	if len(reqs) == 0 || reqs[0].JSON()["model"] != "fake/fallback-model" || reqs[0].Header.Get("Authorization") != "Bearer sk-fallback-key-123456" {
		t.Fatalf("fallback saw %+v, want the request with its own model and key", reqs)
	}
	if len(s.Upstream.Find(n)) == 0 {
		t.Fatal("the primary was never tried")
	}
}

// payloadsIntact sends vision and tool-call messages with odd spacing and
// checks each reaches the upstream byte for byte, and that tool calls come
// back intact, streamed and not.
func (s *suite) payloadsIntact(t *testing.T) {
	n := nonce()
	msgs := []string{
		`{"role":"user", "content":[ {"type":"text","text":"what is in this image? ` + n + `"}, {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==","detail":"low"}} ]}`,
		`{"role":"assistant","content":null,"tool_calls":[{"id":"call_9","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"上海\"}"}}]}`,
		`{"role":"tool", "tool_call_id":"call_9", "content":"晴, 22°C"}`,
		`{"role":"user","content":"and tomorrow?"}`,
	}
	raw := `{"model":"my-bot","messages":[` + strings.Join(msgs, " ,\n ") + `]}`
	resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), raw, s.auth())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	reqs := s.Upstream.Find(n)
	if len(reqs) != 1 {
		t.Fatalf("upstream saw %d requests", len(reqs))
	}
	for _, m := range msgs {
		if !bytes.Contains(reqs[0].Body, []byte(m)) {
			t.Fatalf("upstream body\n%s\ndoes not carry\n%s\nbyte for byte", reqs[0].Body, m)
		}
	}

	got, err := s.chatAs(t, s.key, "my-bot", "#tool")
	if err != nil {
		t.Fatal(err)
	}
	tc := got.Choices[0].Message.ToolCalls
	if len(tc) != 1 || tc[0].ID != "call_1" || tc[0].Function.Name != "get_weather" || tc[0].Function.Arguments != fakeupstream.ToolArguments {
		t.Fatalf("tool calls = %+v", tc)
	}
	p := userMessage("#tool")
	p.Model = "my-bot"
	stream := s.client(s.key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || len(acc.Choices[0].Message.ToolCalls) != 1 ||
		acc.Choices[0].Message.ToolCalls[0].Function.Arguments != fakeupstream.ToolArguments {
		t.Fatalf("streamed tool call = %+v", acc.Choices)
	}
}

// stalledStream checks that a stream whose upstream goes quiet mid-answer
// ends, after the idle timeout, with an error event and [DONE], and is
// recorded as partial.
func (s *suite) stalledStream(t *testing.T) {
	key, id := s.newKey(t, "stalled", nil)
	p := userMessage("#hold:" + nonce()) // never released
	p.Model = "my-bot"
	start := time.Now()
	stream := s.client(key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p)
	var text strings.Builder
	for stream.Next() {
		for _, c := range stream.Current().Choices {
			text.WriteString(c.Delta.Content)
		}
	}
	err := stream.Err()
	if text.String() != "first" || err == nil || !strings.Contains(err.Error(), "sent nothing") {
		t.Fatalf("stalled stream: text %q, err %v; want the first event, then the idle-timeout error", text.String(), err)
	}
	if elapsed := time.Since(start); elapsed < s.IdleTimeout {
		t.Fatalf("the stream ended after %s, before the idle timeout of %s", elapsed, s.IdleTimeout)
	}
	if got := s.waitUsage(t, id, 1, 10*time.Second); got.Partial != 1 {
		t.Fatalf("usage = %+v, want one partial request", got)
	}
}
