package chat

import (
	"context"
	"encoding/json"
	"net/http"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/messages"
	"github.com/aigateway/aigateway/shared/respond"
)

// messagesDoor is POST /v1/messages, Anthropic's Messages API: one per
// request.
type messagesDoor struct {
	req messages.Request
	id  string
}

func (d *messagesDoor) name() string { return "messages" }

func (d *messagesDoor) translate(_ context.Context, _ gateway.APIKey, body []byte) ([]byte, error) {
	req, err := messages.Parse(body)
	if err != nil {
		return nil, err
	}
	d.req = req
	return req.Chat, nil
}

func (d *messagesDoor) answer(c call, o outcome, completion []byte) ([]byte, string, error) {
	out, err := messages.FromCompletion(completion, d.req, d.id, o.used.PromptTokens, o.used.CompletionTokens)
	return out, "application/json", err
}

func (d *messagesDoor) encoder(c call) encoder {
	return &messagesEncoder{s: messages.NewStream(d.req, d.id)}
}

func (d *messagesDoor) fail(w http.ResponseWriter, r *http.Request, err error) {
	respond.Log(r, err)
	messages.WriteError(w, respond.Status(err), err)
}

type messagesEncoder struct{ s *messages.Stream }

func (e *messagesEncoder) start() []byte                 { return append(e.s.Start(), messages.Ping()...) }
func (e *messagesEncoder) event(ev gateway.Event) []byte { return e.s.Chunk(ev.Data) }
func (e *messagesEncoder) fail(err error) []byte         { return e.s.Fail(err) }

func (e *messagesEncoder) end(out outcome) []byte {
	if out.unended && !e.s.Finished() {
		return e.s.Fail(gateway.Errorf(gateway.EUpstream, "The upstream ended the answer without finishing it."))
	}
	if !out.reported {
		e.s.SetUsage(out.used.PromptTokens, out.used.CompletionTokens)
	}
	return e.s.End()
}

// Messages serves POST /v1/messages: Anthropic's Messages API over the
// public model's chat upstream, through the same pipeline as chat
// completions, its errors in Anthropic's shape.
func (h *Handler) Messages(w http.ResponseWriter, r *http.Request) error {
	d := &messagesDoor{id: messages.NewID()}
	if err := h.serve(w, r, d); err != nil {
		d.fail(w, r, err)
	}
	return nil
}

// CountTokens serves POST /v1/messages/count_tokens: an estimate of the
// request's input tokens, from its translation into what the upstream
// would get (the upstream has no such call): about one token per four
// bytes of ASCII and one per CJK character.
func (h *Handler) CountTokens(w http.ResponseWriter, r *http.Request) error {
	fail := func(err error) error {
		respond.Log(r, err)
		messages.WriteError(w, respond.Status(err), err)
		return nil
	}
	key, err := h.authenticate(r)
	if err != nil {
		return fail(err)
	}
	body, err := respond.ReadBody(w, r, h.opt.MaxBody)
	if err != nil {
		return fail(err)
	}
	// count_tokens needs no max_tokens; the translation does.
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) == nil && probe["max_tokens"] == nil {
		probe["max_tokens"] = json.RawMessage("1")
		body = mustJSON(probe)
	}
	req, err := messages.Parse(body)
	if err != nil {
		return fail(err)
	}
	if _, _, err := h.resolve(r.Context(), key, req.Model); err != nil {
		return fail(err)
	}
	respond.JSON(w, http.StatusOK, map[string]int{"input_tokens": estimateTokens(req.Chat)})
	return nil
}

// estimateTokens estimates the tokens of text: a token per four bytes of
// ASCII, one per other character (CJK text runs near a token a character).
func estimateTokens(b []byte) int {
	ascii, other := 0, 0
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		if r < utf8.RuneSelf {
			ascii++
		} else {
			other++
		}
		b = b[size:]
	}
	return max(1, ascii/4+other)
}
