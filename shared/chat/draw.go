package chat

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/usage"
)

// Drawer draws and keeps images.
type Drawer interface {
	Generate(ctx context.Context, up gateway.Upstream, req draw.Request) ([]draw.Image, error)
	Open(ctx context.Context, id string) (io.ReadCloser, storage.BlobInfo, error)
	SignedURL(ctx context.Context, id string, ttl time.Duration) (string, error)
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

// drawAnswer draws c's prompt and answers as a chat completion, streamed
// when the client streams.
func (h *Handler) drawAnswer(w http.ResponseWriter, r *http.Request, c call) outcome {
	images, err := h.Draw.Generate(r.Context(), c.image, draw.Request{Prompt: c.drawPrompt, N: 1, Size: c.imageSize})
	if err != nil {
		respond.Error(w, r, err)
		return outcome{status: respond.Status(err)}
	}
	content := markdownImage(c.drawPrompt, respond.BaseURL(r)+images[0].Path())
	answer := mustJSON(map[string]any{"role": "assistant", "content": content})
	id := "chatcmpl-" + strings.ToLower(rand.Text())
	created := time.Now().Unix()
	out := outcome{status: http.StatusOK, reported: true, answer: answer, delivered: true, images: int64(len(images))}
	h.store(r.Context(), c, out)
	if !c.stream {
		respond.JSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": c.model.public,
			"choices": []any{map[string]any{"index": 0, "message": answer, "finish_reason": "stop"}},
			"usage":   map[string]int{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
		})
		return out
	}
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	chunk := func(delta any, finish any) {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": c.model.public,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	chunk(map[string]any{"role": "assistant", "content": content}, nil)
	chunk(map[string]any{}, "stop")
	if c.clientUsage {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": c.model.public,
			"choices": []any{}, "usage": map[string]int{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	http.NewResponseController(w).Flush()
	return out
}

// imagesRequest is an OpenAI images request, checked.
type imagesRequest struct {
	Model, Prompt, Size, ResponseFormat string
	N                                   int
	// Options are the other documented members, for the upstream.
	Options map[string]json.RawMessage
}

// imageOptions are the members of OpenAI's (and SiliconFlow's) images API
// that the gateway passes on as they came.
var imageOptions = []string{"quality", "style", "background", "moderation", "output_format", "output_compression",
	"user", "seed", "negative_prompt", "guidance_scale", "num_inference_steps"}

var sizeForm = regexp.MustCompile(`^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$`)

// readImagesRequest reads and checks an images request: each member once,
// the ones the gateway reads of the right type and range (n from 1 to 4,
// default 1; a size like 1024x1024 or auto), the documented others kept
// for the upstream; an unknown member is named.
func readImagesRequest(w http.ResponseWriter, r *http.Request, limit int64) (imagesRequest, error) {
	body, err := respond.ReadBody(w, r, limit)
	if err != nil {
		return imagesRequest{}, err
	}
	obj, err := parseObject(body)
	if err != nil {
		return imagesRequest{}, err
	}
	req := imagesRequest{N: 1, Options: map[string]json.RawMessage{}}
	str := func(key string, dst *string) error {
		v, _, err := obj.stringValue(key)
		*dst = v
		return err
	}
	for _, f := range obj {
		switch f.key {
		case "model":
			err = str("model", &req.Model)
		case "prompt":
			err = str("prompt", &req.Prompt)
		case "size":
			err = str("size", &req.Size)
			if err == nil && !sizeForm.MatchString(req.Size) {
				err = invalidField("size", `a size like "1024x1024", or "auto"`)
			}
		case "response_format":
			err = str("response_format", &req.ResponseFormat)
			if err == nil && req.ResponseFormat != "url" && req.ResponseFormat != "b64_json" {
				err = invalidField("response_format", `"url" or "b64_json"`)
			}
		case "n":
			if json.Unmarshal(f.raw, &req.N) != nil || req.N < 1 || req.N > 4 {
				err = invalidField("n", "a whole number from 1 to 4")
			}
		default:
			if !slices.Contains(imageOptions, f.key) {
				e := gateway.Errorf(gateway.EInvalid, "The images API has no member %q.", f.key)
				e.Param = f.key
				return imagesRequest{}, e
			}
			req.Options[f.key] = f.raw
		}
		if err != nil {
			return imagesRequest{}, err
		}
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return imagesRequest{}, invalidField("prompt", "what to draw")
	}
	return req, nil
}

// images serves POST /v1/images/generations: prompt, n (1 to 4), size,
// response_format "url" (links to the gateway's stored copies) or
// "b64_json".
func (h *Handler) images(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	req, err := readImagesRequest(w, r, h.opt.MaxBody)
	if err != nil {
		return err
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	switch {
	case !st.DrawingEnabled:
		return gateway.Errorf(gateway.EForbidden, "Drawing is turned off on this gateway.")
	case req.Model != "" && req.Model != st.ImageModel, !key.Allows(st.ImageModel):
		e := gateway.Errorf(gateway.EModelNotFound, "The model %q does not exist or you do not have access to it.", req.Model)
		e.Param = "model"
		return e
	}
	if req.Size == "" {
		req.Size = st.ImageSize
	}
	res, err := h.Meter.Admit(r.Context(), key, int64(req.N)*usage.ImageTokens)
	if err != nil {
		return err
	}
	rec := usage.Record{RequestID: requestID(w), KeyID: key.ID, Model: st.ImageModel, Kind: "image", Status: http.StatusOK,
		Reservation: &res, PerMinute: key.TPM > 0}
	defer func() {
		rec.LatencyMS = time.Since(start).Milliseconds()
		h.record(r.Context(), rec)
	}()
	images, err := h.Draw.Generate(r.Context(), st.ImageUpstream(), draw.Request{Prompt: req.Prompt, N: req.N, Size: req.Size, Options: req.Options})
	if err != nil {
		rec.Status = respond.Status(err)
		return err
	}
	rec.Images = int64(len(images))
	data := make([]map[string]string, len(images))
	for i, im := range images {
		if req.ResponseFormat == "b64_json" {
			data[i] = map[string]string{"b64_json": base64.StdEncoding.EncodeToString(im.Data)}
		} else {
			data[i] = map[string]string{"url": respond.BaseURL(r) + im.Path()}
		}
		if im.RevisedPrompt != "" {
			data[i]["revised_prompt"] = im.RevisedPrompt
		}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"created": time.Now().Unix(), "data": data})
	return nil
}

// file serves GET /files/{id}: a stored image, by its unguessable ID. Where
// the blob store signs URLs (S3), it redirects to a short-lived one.
func (h *Handler) file(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	url, err := h.Draw.SignedURL(r.Context(), id, 10*time.Minute)
	if err != nil {
		return err
	}
	if url != "" {
		w.Header().Set("Cache-Control", "private, max-age=300")
		http.Redirect(w, r, url, http.StatusFound)
		return nil
	}
	rc, info, err := h.Draw.Open(r.Context(), id)
	if err != nil {
		return err
	}
	defer rc.Close()
	hd := w.Header()
	hd.Set("Content-Type", info.ContentType)
	hd.Set("Content-Length", fmt.Sprint(info.Size))
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
	return nil
}
