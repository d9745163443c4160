package chat

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// Drawer draws images and keeps them.
type Drawer interface {
	Generate(ctx context.Context, up gateway.Upstream, req gateway.ImageRequest) ([]draw.Image, error)
}

// drawPrompt returns what to draw when the last user message starts with
// one of the triggers (after leading spaces; the text parts of array
// content count): the rest of the message. A trigger alone is no drawing.
func drawPrompt(messages []json.RawMessage, triggers []string) (string, bool) {
	for i := len(messages) - 1; i >= 0; i-- {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(messages[i], &m) != nil || m.Role != "user" {
			continue
		}
		text := strings.TrimLeftFunc(conversations.Text(m.Content), unicode.IsSpace)
		for _, t := range triggers {
			if rest, ok := strings.CutPrefix(text, t); ok {
				rest = strings.TrimFunc(rest, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(":：,，", r) })
				return rest, rest != ""
			}
		}
		return "", false
	}
	return "", false
}

// markdownImage renders an image link with the prompt as its alt text.
func markdownImage(prompt, url string) string {
	alt := strings.NewReplacer("[", "(", "]", ")", "\n", " ").Replace(prompt)
	return "![" + alt + "](" + url + ")"
}

// drawAnswer draws c's prompt and answers, through door d, as a chat
// completion would, streamed when the client streams.
func (h *Handler) drawAnswer(w http.ResponseWriter, r *http.Request, c call, d door) outcome {
	images, err := h.Draw.Generate(r.Context(), c.image, gateway.ImageRequest{Prompt: c.drawPrompt, N: 1, Size: c.imageSize})
	if err != nil {
		d.fail(w, r, err)
		return outcome{status: respond.Status(err)}
	}
	content := markdownImage(c.drawPrompt, respond.BaseURL(r)+images[0].Path())
	answer := mustJSON(map[string]any{"role": "assistant", "content": content})
	id := "chatcmpl-" + strings.ToLower(rand.Text())
	created := time.Now().Unix()
	out := outcome{status: http.StatusOK, reported: true, answer: answer, delivered: true, images: int64(len(images))}
	h.store(r.Context(), c, out)
	usage := map[string]int{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
	if !c.stream {
		completion := mustJSON(map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": c.model.public,
			"choices": []any{map[string]any{"index": 0, "message": answer, "finish_reason": "stop"}},
			"usage":   usage,
		})
		body, ct, err := d.answer(c, out, completion)
		if err != nil {
			d.fail(w, r, err)
			return outcome{status: respond.Status(err)}
		}
		writeWhole(w, ct, body)
		return out
	}
	enc := d.encoder(c)
	streamHeaders(w)
	w.Write(enc.start())
	event := func(chunk map[string]any) {
		data := mustJSON(chunk)
		if b := enc.event(gateway.Event{Data: data, Raw: []byte(fmt.Sprintf("data: %s\n\n", data))}); b != nil {
			w.Write(b)
		}
	}
	chunk := func(delta any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": c.model.public,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	event(chunk(map[string]any{"role": "assistant", "content": content}, nil))
	event(chunk(map[string]any{}, "stop"))
	event(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": c.model.public,
		"choices": []any{}, "usage": usage})
	w.Write(enc.end(out))
	http.NewResponseController(w).Flush()
	return out
}
