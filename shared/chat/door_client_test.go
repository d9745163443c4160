package chat

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/gateway"
)

type leavingAnswer struct {
	rvAnswer
	cancel context.CancelFunc
}

func (a *leavingAnswer) Next() (gateway.Event, error) {
	if a.i == 1 {
		a.cancel()
	}
	return a.rvAnswer.Next()
}

// TestDoorsRecordUsageWhenClientLeaves: a client that leaves mid-stream,
// on either door, has its usage recorded as on the chat route.
func TestDoorsRecordUsageWhenClientLeaves(t *testing.T) {
	for _, door := range []string{"chat", "responses"} {
		ctx, cancel := context.WithCancel(context.Background())
		evs := []string{chunk(`{"role":"assistant","content":"a"}`, ""), chunk(`{"content":"b"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"}
		g := newRig(t, nil)
		g.up.next = func() *rvAnswer { return nil }
		la := &leavingAnswer{rvAnswer: rvAnswer{events: evs}, cancel: cancel}
		h := g.h
		h.Upstream = posterFunc(func() gateway.Answer { return la })
		path, body := "/v1/chat/completions", `{"model":"pub","messages":[{"role":"user","content":"hi"}],"stream":true}`
		if door == "responses" {
			path, body = "/v1/responses", `{"model":"pub","input":"hi","stream":true}`
		}
		r := httptest.NewRequest("POST", path, strings.NewReader(body)).WithContext(ctx)
		r.Header.Set("Authorization", "Bearer sk-client-a")
		w := httptest.NewRecorder()
		if door == "chat" {
			h.Completions(w, r)
		} else {
			h.Responses(w, r)
		}
		if len(g.meter.recs) != 1 {
			t.Fatalf("%s: %d usage records", door, len(g.meter.recs))
		}
		// The upstream is read on for its usage after the client left.
		if rec := g.meter.recs[0]; rec.Status != statusClientGone || rec.PromptTokens != 11 || rec.CompletionTokens != 7 || rec.Estimated {
			t.Fatalf("%s: usage recorded %+v, want 499 with the upstream's 11/7", door, rec)
		}
	}
}

type posterFunc func() gateway.Answer

func (p posterFunc) Post(ctx context.Context, up gateway.Upstream, path string, body []byte) (gateway.Answer, error) {
	return p(), nil
}

// TestDoorsOnMidStreamTransportError: an upstream that breaks off
// mid-stream ends each door's stream with its error.
func TestDoorsOnMidStreamTransportError(t *testing.T) {
	g := newRig(t, func() *rvAnswer {
		return &rvAnswer{events: []string{chunk(`{"role":"assistant","content":"a"}`, "")}, err: gateway.Errorf(gateway.EUpstream, "The upstream connection broke.")}
	})
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi","stream":true}`)
	types, _ := sseEvents(body)
	if len(types) == 0 || types[len(types)-1] != "response.failed" {
		t.Fatalf("a broken stream ends with %v", types)
	}
}
