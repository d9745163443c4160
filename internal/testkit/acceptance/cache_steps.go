package acceptance

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// responseCache turns the exact response cache on for a public model and
// checks: a repeated request is answered from it (the upstream asked once,
// the answer the same); a stream of it is replayed as events the official
// SDK reads into the same completion as the live stream, usage chunk
// included when asked; sampled requests (temperature, n) always go
// upstream; each key has its own answers unless the model shares them;
// the Responses API gets a hit in its own shape; hits are recorded with
// the cache flag and no tokens; an answer expires with its TTL.
func (s *suite) responseCache(t *testing.T) {
	putModel := func(cache map[string]any) {
		t.Helper()
		resp, body := s.admin.call(t, s, "PUT", "/admin/api/models/cached-bot", map[string]any{"upstream_model": "fake/cached", "cache": cache})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT model = %d %s", resp.StatusCode, body)
		}
		s.settle()
	}
	if resp, body := s.admin.call(t, s, "PUT", "/admin/api/models/cached-bot", map[string]any{"upstream_model": "fake/cached", "cache": map[string]any{"ttl_seconds": -1}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a negative TTL = %d %s, want 400", resp.StatusCode, body)
	}
	putModel(map[string]any{"ttl_seconds": 300})
	defer s.admin.call(t, s, "DELETE", "/admin/api/models/cached-bot", nil)
	key, keyID := s.newKey(t, "cache", nil)
	upstreamSaw := func(tag string) int { return len(s.Upstream.Find(tag)) }

	// Plain: asked twice, answered once upstream.
	tag := nonce()
	first, err := s.chatAs(t, key, "cached-bot", "cache me "+tag)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.chatAs(t, key, "cached-bot", "cache me "+tag)
	if err != nil {
		t.Fatal(err)
	}
	if upstreamSaw(tag) != 1 || second.Choices[0].Message.Content != first.Choices[0].Message.Content || second.ID != first.ID {
		t.Fatalf("the same request twice: upstream asked %d times, answers %q and %q", upstreamSaw(tag), first.Choices[0].Message.Content, second.Choices[0].Message.Content)
	}

	// Streamed: the live stream is cached; its replay reads the same.
	stream := func(text string) (openai.ChatCompletion, []byte) {
		t.Helper()
		p := userMessage(text)
		p.Model = "cached-bot"
		p.StreamOptions.IncludeUsage = openai.Bool(true)
		st := s.client(key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p)
		acc := openai.ChatCompletionAccumulator{}
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if err := st.Err(); err != nil {
			t.Fatalf("stream: %v", err)
		}
		// The same, raw: every event is JSON but the last, [DONE].
		raw, _ := json.Marshal(map[string]any{"model": "cached-bot", "stream": true, "stream_options": map[string]any{"include_usage": true},
			"messages": []map[string]string{{"role": "user", "content": text}}})
		resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), raw, http.Header{"Authorization": {"Bearer " + key}})
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("raw stream = %d %s", resp.StatusCode, body)
		}
		return acc.ChatCompletion, body
	}
	tag = nonce()
	live, _ := stream("stream me " + tag)
	replayed, raw := stream("stream me " + tag)
	if upstreamSaw(tag) != 1 {
		t.Fatalf("a streamed request asked again went upstream: %d times", upstreamSaw(tag))
	}
	if len(live.Choices) != 1 || len(replayed.Choices) != 1 || replayed.Choices[0].Message.Content != live.Choices[0].Message.Content ||
		replayed.Choices[0].FinishReason != live.Choices[0].FinishReason || replayed.Choices[0].Message.Role != live.Choices[0].Message.Role ||
		replayed.Usage.TotalTokens != live.Usage.TotalTokens || replayed.Usage.TotalTokens == 0 || replayed.ID != live.ID {
		t.Fatalf("replayed %+v\nlive %+v", replayed, live)
	}
	events := bytes.Split(bytes.TrimSpace(raw), []byte("\n\n"))
	if len(events) < 2 || string(events[len(events)-1]) != "data: [DONE]" {
		t.Fatalf("the replay does not end with [DONE]: %s", raw)
	}
	for _, ev := range events[:len(events)-1] {
		data, ok := bytes.CutPrefix(ev, []byte("data: "))
		if !ok || !json.Valid(data) || !bytes.Contains(data, []byte(`"object":"chat.completion.chunk"`)) {
			t.Fatalf("a replayed event is not a chunk: %q", ev)
		}
	}

	// Sampled requests always go upstream.
	tag = nonce()
	for range 2 {
		p := userMessage("sampled " + tag)
		p.Model = "cached-bot"
		p.Temperature = openai.Float(0.7)
		if _, err := s.client(key).Chat.Completions.New(ctxTimeout(t, 30*time.Second), p); err != nil {
			t.Fatal(err)
		}
	}
	if upstreamSaw(tag) != 2 {
		t.Fatalf("a sampled request was answered from the cache: upstream asked %d of 2 times", upstreamSaw(tag))
	}

	// Another key has its own answers, unless the model shares them.
	other, _ := s.newKey(t, "cache other", nil)
	tag = nonce()
	s.chatAs(t, key, "cached-bot", "per key "+tag)
	s.chatAs(t, other, "cached-bot", "per key "+tag)
	if upstreamSaw(tag) != 2 {
		t.Fatalf("another key was answered from the first key's cache: upstream asked %d of 2 times", upstreamSaw(tag))
	}
	putModel(map[string]any{"ttl_seconds": 300, "shared": true})
	tag = nonce()
	s.chatAs(t, key, "cached-bot", "shared "+tag)
	if _, err := s.chatAs(t, other, "cached-bot", "shared "+tag); err != nil || upstreamSaw(tag) != 1 {
		t.Fatalf("a shared cache: upstream asked %d times, %v", upstreamSaw(tag), err)
	}

	// The Responses API: a hit in its own shape.
	tag = nonce()
	var texts []string
	for range 2 {
		resp, body := do(t, nil, "POST", s.url("/v1/responses"), map[string]any{"model": "cached-bot", "input": "responses " + tag},
			http.Header{"Authorization": {"Bearer " + key}})
		r := decode[struct {
			Object string `json:"object"`
			Output []struct {
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			} `json:"output"`
		}](t, body)
		if resp.StatusCode != http.StatusOK || r.Object != "response" || len(r.Output) == 0 || len(r.Output[0].Content) == 0 {
			t.Fatalf("POST /v1/responses = %d %s", resp.StatusCode, body)
		}
		texts = append(texts, r.Output[0].Content[0].Text)
	}
	if upstreamSaw(tag) != 1 || texts[0] != texts[1] || !strings.Contains(texts[0], tag) {
		t.Fatalf("the Responses API asked twice: upstream %d times, %q", upstreamSaw(tag), texts)
	}

	// Usage: hits with the flag and no tokens. This key: the plain pair
	// (1 miss, 1 hit), two streams and two raw streams (1 miss, 3 hits),
	// two sampled requests (not cacheable: neither), one per-key request
	// (1 miss), one shared (1 miss) and the Responses pair (1 miss, 1 hit).
	want := struct{ hits, misses int64 }{5, 5}
	waitFor(t, "the cache's usage", 10*time.Second, func() bool {
		resp, body := s.admin.call(t, s, "GET", "/admin/api/usage?key_id="+keyID, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET usage = %d %s", resp.StatusCode, body)
		}
		rows := decode[struct {
			Data []struct {
				Model       string `json:"model"`
				Requests    int64  `json:"requests"`
				CacheHits   int64  `json:"cache_hits"`
				CacheMisses int64  `json:"cache_misses"`
			} `json:"data"`
		}](t, body).Data
		var hits, misses int64
		for _, r := range rows {
			hits += r.CacheHits
			misses += r.CacheMisses
		}
		return hits == want.hits && misses == want.misses
	})

	// The TTL.
	putModel(map[string]any{"ttl_seconds": 1})
	tag = nonce()
	s.chatAs(t, key, "cached-bot", "short "+tag)
	s.chatAs(t, key, "cached-bot", "short "+tag)
	time.Sleep(2200 * time.Millisecond) // expiry is kept to the second, rounded up
	s.chatAs(t, key, "cached-bot", "short "+tag)
	if upstreamSaw(tag) != 2 {
		t.Fatalf("with a TTL of 1 s: upstream asked %d times, want 2 (once, then after it expired)", upstreamSaw(tag))
	}
}
