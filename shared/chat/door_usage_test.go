package chat

import (
	"strings"
	"testing"
)

// TestNonStreamEstimatedUsage: an upstream that reports no usage: the
// response carries the gateway's estimate.
func TestNonStreamEstimatedUsage(t *testing.T) {
	g := newRig(t, func() *rvAnswer {
		return &rvAnswer{body: `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}]}`}
	})
	_, body := g.do(t, "POST", "/v1/responses", "sk-client-a", `{"model":"pub","input":"hi"}`)
	if strings.Contains(body, `"usage":null`) {
		t.Errorf("usage null though the gateway estimated (and recorded %d+%d): %s", g.meter.recs[0].PromptTokens, g.meter.recs[0].CompletionTokens, body)
	}
}
