package acceptance

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

var imageLink = regexp.MustCompile(`^!\[([^\]]*)\]\((https?://[^)]+/files/[a-z2-7]{26})\)$`)

// fetchImage GETs a stored image's link (following a redirect to the blob
// store) and checks it is the upstream's image for prompt, byte for byte.
func (s *suite) fetchImage(t *testing.T, link, prompt string) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fakeupstream.PNG(fakeupstream.ImageName(prompt, 0))
	if resp.StatusCode != http.StatusOK || !bytes.Equal(data, want) ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "image/png") {
		t.Fatalf("GET %s = %d %s, %d bytes; want the upstream's %d-byte PNG", link, resp.StatusCode,
			resp.Header.Get("Content-Type"), len(data), len(want))
	}
}

func (s *suite) drawingOff(t *testing.T) {
	s.putSettings(t, map[string]any{"drawing_enabled": false, "system_prompt": ""})
	got, err := s.chatAs(t, s.key, "my-bot", "画一只猫")
	if err != nil {
		t.Fatal(err)
	}
	if c := got.Choices[0].Message.Content; !strings.HasPrefix(c, "echo: 画一只猫") {
		t.Fatalf("with drawing off the answer = %q, want an ordinary chat", c)
	}
}

func (s *suite) drawing(t *testing.T) {
	s.putSettings(t, map[string]any{"drawing_enabled": true, "image_model": "fake/kolors", "draw_triggers": []string{"画", "/draw"}})
	defer s.putSettings(t, map[string]any{"drawing_enabled": false})

	// Plain content, SiliconFlow's answer shape.
	got, err := s.chatAs(t, s.key, "my-bot", "画一只可爱的小猫")
	if err != nil {
		t.Fatal(err)
	}
	m := imageLink.FindStringSubmatch(got.Choices[0].Message.Content)
	if m == nil || m[1] != "一只可爱的小猫" || got.Model != "my-bot" {
		t.Fatalf("answer = %q (model %s), want a markdown image of the prompt", got.Choices[0].Message.Content, got.Model)
	}
	s.fetchImage(t, m[2], "一只可爱的小猫")

	// Array content with leading spaces, another trigger, OpenAI's shape;
	// and streamed.
	p := openai.ChatCompletionNewParams{Model: "my-bot", Messages: []openai.ChatCompletionMessageParamUnion{
		openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
			openai.TextContentPart("   /draw #openai a red fox"),
			openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,iVBORw0KGgo="}),
		}),
	}}
	stream := s.client(s.key).Chat.Completions.NewStreaming(ctxTimeout(t, 30*time.Second), p)
	text, _ := streamText(t, stream)
	m = imageLink.FindStringSubmatch(text)
	if m == nil || m[1] != "#openai a red fox" {
		t.Fatalf("streamed answer = %q, want a markdown image", text)
	}
	s.fetchImage(t, m[2], "#openai a red fox")

	// OpenAI's base64 answer.
	got, err = s.chatAs(t, s.key, "my-bot", "画 #b64 a dog")
	if err != nil {
		t.Fatal(err)
	}
	if m = imageLink.FindStringSubmatch(got.Choices[0].Message.Content); m == nil {
		t.Fatalf("answer = %q", got.Choices[0].Message.Content)
	}
	s.fetchImage(t, m[2], "#b64 a dog")

	// A model without drawing chats instead.
	got, err = s.chatAs(t, s.key, "support", "画一只猫")
	if err != nil || !strings.HasPrefix(got.Choices[0].Message.Content, "echo:") {
		t.Fatalf("a model without drawing answered %v, %v", got, err)
	}

	// Refused images: a clear error that tells nothing of what answered at
	// the image's address (its status, its type, that it is private).
	for _, prompt := range []string{"画 #huge", "画 #html", "画 #private", "画 #otherport"} {
		_, err := s.chatAs(t, s.key, "my-bot", prompt)
		e := apiError(t, err, http.StatusBadGateway, "upstream_error")
		if !strings.Contains(e.Message, "could not be fetched") {
			t.Fatalf("%s: error %q, want it to say the image could not be fetched", prompt, e.Message)
		}
		for _, leak := range []string{"html", "private", "169.254", "status", "127.0.0.1"} {
			if strings.Contains(e.Message, leak) {
				t.Fatalf("%s: the error tells the client %q: %s", prompt, leak, e.Message)
			}
		}
	}
	resp, body := do(t, nil, "GET", s.url("/files/aaaaaaaaaaaaaaaaaaaaaaaaaa"), nil, nil)
	wantError(t, resp, body, http.StatusNotFound, "not_found")
}

func (s *suite) imagesEndpoint(t *testing.T) {
	s.putSettings(t, map[string]any{"drawing_enabled": true, "image_model": "fake/kolors"})
	defer s.putSettings(t, map[string]any{"drawing_enabled": false})
	c := s.client(s.key)
	got, err := c.Images.Generate(ctxTimeout(t, 30*time.Second), openai.ImageGenerateParams{
		Prompt: "a lighthouse", Model: "fake/kolors", N: openai.Int(2), Size: openai.ImageGenerateParamsSize1024x1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Data) != 2 || !strings.Contains(got.Data[0].URL, "/files/") {
		t.Fatalf("images = %+v", got.Data)
	}
	s.fetchImage(t, got.Data[0].URL, "a lighthouse")
	got, err = c.Images.Generate(ctxTimeout(t, 30*time.Second), openai.ImageGenerateParams{
		Prompt: "#b64 a harbour", ResponseFormat: openai.ImageGenerateParamsResponseFormatB64JSON,
	})
	if err != nil {
		t.Fatal(err)
	}
	data, err := base64.StdEncoding.DecodeString(got.Data[0].B64JSON)
	if err != nil || !bytes.Equal(data, fakeupstream.PNG(fakeupstream.ImageName("#b64 a harbour", 0))) {
		t.Fatalf("b64_json image = %d bytes, %v", len(data), err)
	}
	_, err = c.Images.Generate(ctxTimeout(t, 30*time.Second), openai.ImageGenerateParams{Prompt: "x", Model: "dall-e-3"})
	apiError(t, err, http.StatusNotFound, "model_not_found")
	resp, body := do(t, nil, "POST", s.url("/v1/images/generations"), `{"prompt":"x","response_format":"gif"}`, s.auth())
	wantError(t, resp, body, http.StatusBadRequest, "invalid")
	// OpenAI's documented members are taken, and passed to the upstream.
	n := nonce()
	resp, body = do(t, nil, "POST", s.url("/v1/images/generations"), `{"prompt":"a kite `+n+`","output_format":"webp","background":"transparent",`+
		`"moderation":"low","output_compression":80,"quality":"high","user":"u-1"}`, s.auth())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("images with documented members = %d %s", resp.StatusCode, body)
	}
	if reqs := s.Upstream.Find(n); len(reqs) != 1 || reqs[0].JSON()["output_format"] != "webp" || reqs[0].JSON()["quality"] != "high" {
		t.Fatalf("the upstream got %+v, want output_format and quality passed on", reqs)
	}
	// Images are metered: each counts 1,000 tokens against a key's quota,
	// so a quota stops drawing too.
	key, id := s.newKey(t, "drawing quota", map[string]any{"token_quota": 2500})
	h := http.Header{"Authorization": {"Bearer " + key}}
	drawn := 0
	for range 5 {
		resp, body = do(t, nil, "POST", s.url("/v1/images/generations"), `{"prompt":"a boat","n":1}`, h)
		if resp.StatusCode == http.StatusTooManyRequests {
			wantError(t, resp, body, http.StatusTooManyRequests, "insufficient_quota")
			break
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("image = %d %s", resp.StatusCode, body)
		}
		drawn++
	}
	if drawn != 3 {
		t.Fatalf("%d images drawn on a 2,500-token quota, want 3 (1,000 tokens each; refused once at or over)", drawn)
	}
	_, body = s.admin.call(t, s, "GET", "/admin/api/usage?key_id="+id, nil)
	if !bytes.Contains(body, []byte(`"images":3`)) {
		t.Fatalf("usage = %s, want 3 images", body)
	}
	s.putSettings(t, map[string]any{"drawing_enabled": false})
	resp, body = do(t, nil, "POST", s.url("/v1/images/generations"), `{"prompt":"x"}`, s.auth())
	wantError(t, resp, body, http.StatusForbidden, "forbidden")
}
