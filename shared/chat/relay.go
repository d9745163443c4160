package chat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/upstream"
)

// statusClientGone is the status recorded for a request whose client left
// before the answer was complete (nginx's "client closed request").
const statusClientGone = 499

// relay copies the upstream's events to the client as they arrive, flushing
// whenever no further event is already waiting. It drops the usage chunk
// the client did not ask for, keeps the usage the upstream reported, and
// rebuilds the answer when a conversation records it. When the client
// leaves, it reads on (until DrainTimeout) only to learn the usage. An
// upstream failure ends the stream with an error event and [DONE]; the
// upstream's [DONE] ends it, whether or not the upstream closes. store is
// called with the complete exchange before [DONE] goes to the client.
func (h *Handler) relay(w http.ResponseWriter, r *http.Request, resp gateway.Answer, c call, enc encoder, store func(outcome)) outcome {
	streamHeaders(w)
	rc := http.NewResponseController(w)
	if b := enc.start(); b != nil {
		w.Write(scrubbed(c, b))
	}
	rc.Flush()

	out := outcome{status: http.StatusOK}
	var acc *accumulator
	if c.conversation != "" || c.cacheKey != "" {
		acc = &accumulator{}
	}
	gone, done := false, false
	chunks := int64(0)
	for {
		ev, err := resp.Next()
		if err == io.EOF {
			break
		}
		gone = gone || r.Context().Err() != nil
		if err != nil {
			out.partial = true
			out.status = respond.Status(err)
			if !gone {
				slog.WarnContext(r.Context(), "upstream stream failed", "err", err)
				w.Write(scrubbed(c, enc.fail(err)))
				rc.Flush()
			}
			break
		}
		if ev.Done() {
			done = true
			if !gone {
				out.delivered = true
				h.settle(&out, c, chunks, acc)
				store(out)
				if _, err := w.Write(scrubbed(c, enc.end(out))); err != nil {
					gone = true
				} else if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
					gone = true
				}
			}
			break
		}
		if u, ok := usageOf(ev.Data); ok {
			out.used, out.reported = u, true
		}
		if !ev.Done() && (bytes.Contains(ev.Data, []byte(`"delta"`)) || bytes.Contains(ev.Data, []byte(`"text"`))) {
			chunks++
			if acc != nil {
				acc.add(ev.Data)
			}
		}
		if gone {
			if out.reported {
				break // all that was still wanted
			}
			continue
		}
		b := enc.event(ev)
		if b == nil {
			continue
		}
		if _, err := w.Write(scrubbed(c, b)); err != nil {
			gone = true
			continue
		}
		if !resp.Ready() {
			// A writer that cannot flush (http.ErrNotSupported) has not lost
			// its client: only a failed write or the request's end says so.
			if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
				gone = true
			}
		}
	}
	if gone {
		out.status = statusClientGone
		out.partial = out.partial || !out.reported
	}
	out.delivered = !gone && !out.partial
	h.settle(&out, c, chunks, acc)
	if !done && out.delivered {
		out.unended = true
		store(out) // an upstream that ends without [DONE]
		if _, plain := enc.(*chatEncoder); !plain {
			// The door's end, which a chat client does without.
			w.Write(scrubbed(c, enc.end(out)))
			rc.Flush()
		}
	}
	return out
}

// settle completes an outcome: the usage estimated when none was reported
// (a chunk is about a token; a token about four bytes of prompt), the
// answer rebuilt when it was delivered whole.
func (h *Handler) settle(out *outcome, c call, chunks int64, acc *accumulator) {
	if !out.reported {
		out.estimated = true
		out.used = tokens{PromptTokens: int64(len(c.req.Bytes()) / 4), CompletionTokens: chunks}
	}
	if acc != nil && out.delivered && out.answer == nil {
		out.answer = acc.message()
		if c.cacheKey != "" && !out.partial && out.reported {
			out.completion = acc.completion(out.used)
		}
	}
}

// scrubbed returns data without the upstream keys of c in it: an upstream
// may quote its credential even in a 200 answer (an error event in a
// stream). It looks for 8-character pieces of each key taken every 4
// characters, which finds any quote of 12 characters or more; only data
// that holds one is rewritten (Scrub then removes every run of 8).
func scrubbed(c call, data []byte) []byte {
	return scrub(data, c.model.upstream.APIKey)
}

// scrub returns data without the keys in it (see scrubbed).
func scrub(data []byte, keys ...gateway.Secret) []byte {
	var found []string
	for _, k := range keys {
		for i := 0; i+8 <= len(k); i += 4 {
			if bytes.Contains(data, []byte(k[i:i+8])) {
				found = append(found, string(k))
				break
			}
		}
	}
	if found == nil {
		return data
	}
	return []byte(upstream.Scrub(string(data), found...))
}

// onlyUsage reports whether a chunk carries nothing but usage: the chunk a
// stream ends with when usage is asked for.
func onlyUsage(data []byte) bool {
	// Most chunks have no usage, or "usage": null: no need to decode them.
	i := lastUsage(data)
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(data[i+len(`"usage"`):], " \t\r\n:")
	if len(rest) == 0 || rest[0] != '{' {
		return false
	}
	var v struct {
		Choices []json.RawMessage `json:"choices"`
	}
	return json.Unmarshal(data, &v) == nil && len(v.Choices) == 0
}

// accumulator rebuilds the assistant message of a stream from its deltas
// (choice 0): content and tool calls.
type accumulator struct {
	// id, model, created and finish are the stream's own, for the
	// completion the cache keeps.
	id, model string
	created   int64
	finish    json.RawMessage
	// partial marks a stream the cache may not keep as rebuilt: more than
	// one choice, or members the rebuilt message leaves out (reasoning, a
	// refusal).
	partial   bool
	content   bytes.Buffer
	hasText   bool
	toolCalls []toolCall
	size      int // bytes of text and tool calls gathered
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// maxAccumulated bounds the answer the relay rebuilds for a conversation:
// past it, the stream goes on to the client but the answer is not kept
// whole (conversations keep at most 4 MiB a message anyway).
const maxAccumulated = 4 << 20

func (a *accumulator) add(data []byte) {
	if a.size > maxAccumulated {
		return
	}
	var chunk struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Created int64  `json:"created"`
		Choices []struct {
			Index        int             `json:"index"`
			FinishReason json.RawMessage `json:"finish_reason"`
			Delta        struct {
				Content          *string         `json:"content"`
				ReasoningContent json.RawMessage `json:"reasoning_content"`
				Reasoning        json.RawMessage `json:"reasoning"`
				Refusal          json.RawMessage `json:"refusal"`
				ToolCalls        []struct {
					Index int `json:"index"`
					toolCall
				} `json:"tool_calls"`
			} `json:"delta"`
		} `json:"choices"`
	}
	if json.Unmarshal(data, &chunk) != nil {
		return
	}
	if a.id == "" {
		a.id, a.model, a.created = chunk.ID, chunk.Model, chunk.Created
	}
	for _, ch := range chunk.Choices {
		if ch.Index != 0 {
			a.partial = true
			continue
		}
		for _, m := range []json.RawMessage{ch.Delta.ReasoningContent, ch.Delta.Reasoning, ch.Delta.Refusal} {
			if len(m) > 0 && string(m) != "null" && string(m) != `""` {
				a.partial = true
			}
		}
		if len(ch.FinishReason) > 0 && string(ch.FinishReason) != "null" {
			a.finish = ch.FinishReason
		}
		if ch.Delta.Content != nil {
			a.size += len(*ch.Delta.Content)
			a.content.WriteString(*ch.Delta.Content)
			a.hasText = a.hasText || *ch.Delta.Content != ""
		}
		for _, tc := range ch.Delta.ToolCalls {
			for len(a.toolCalls) <= tc.Index {
				a.toolCalls = append(a.toolCalls, toolCall{Type: "function"})
			}
			t := &a.toolCalls[tc.Index]
			if tc.ID != "" {
				t.ID = tc.ID
			}
			if tc.Type != "" {
				t.Type = tc.Type
			}
			a.size += len(tc.Function.Name) + len(tc.Function.Arguments)
			t.Function.Name += tc.Function.Name
			t.Function.Arguments += tc.Function.Arguments
		}
	}
}

// completion returns the stream as one chat completion, with used as its
// usage: what the cache keeps. Nil unless the stream finished (a finish
// reason came) and was rebuilt whole.
func (a *accumulator) completion(used tokens) []byte {
	var reason string
	if a.finish == nil || a.partial || a.size > maxAccumulated || json.Unmarshal(a.finish, &reason) != nil || !completeFinish(reason) {
		return nil
	}
	return mustJSON(map[string]any{"id": a.id, "object": "chat.completion", "created": a.created, "model": a.model,
		"choices": []any{map[string]any{"index": 0, "message": a.message(), "finish_reason": a.finish}},
		"usage": map[string]int64{"prompt_tokens": used.PromptTokens, "completion_tokens": used.CompletionTokens,
			"total_tokens": used.PromptTokens + used.CompletionTokens}})
}

// message returns the rebuilt assistant message, or a note of its size
// when it was too large to rebuild.
func (a *accumulator) message() json.RawMessage {
	if a.size > maxAccumulated {
		return mustJSON(map[string]any{"role": "assistant", "content": fmt.Sprintf("[An answer of about %d bytes was too large to keep.]", a.size)})
	}
	m := map[string]any{"role": "assistant", "content": a.content.String()}
	if len(a.toolCalls) > 0 {
		m["tool_calls"] = a.toolCalls
		if !a.hasText {
			m["content"] = nil
		}
	}
	return mustJSON(m)
}
