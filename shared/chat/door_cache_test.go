package chat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/answers"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/responses"
)

func cacheRig(t *testing.T, policy gateway.CachePolicy, next func() *rvAnswer) *rig {
	st := gateway.DefaultSettings()
	st.AI = gateway.Upstream{BaseURL: "http://up.invalid", APIKey: gateway.Secret(upKey), Model: "up-model"}
	st.PublicModel = "pub"
	st.Cache = policy
	up := &rvPoster{next: next}
	meter := &rvMeter{}
	ms := memstore.New(nil)
	h := New(Deps{Keys: rvKeys{}, Settings: rvSettings{st}, Catalog: rvCatalog{}, Meter: meter, Upstream: up,
		Metrics: rvMetrics{}, ResponseStore: responses.NewStore(ms.Records()), Answers: answers.New(ms.Records())},
		Options{MaxBody: 32 << 20, DrainTimeout: time.Second})
	return &rig{ms: ms, h: h, up: up, meter: meter}
}

func (g *rig) doH(t *testing.T, path, body string) (int, string, string) {
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer sk-client-a")
	w := httptest.NewRecorder()
	mux := http.NewServeMux()
	wrap := func(f func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				respond.Error(w, r, err)
			}
		}
	}
	mux.HandleFunc("POST /v1/responses", wrap(g.h.Responses))
	mux.HandleFunc("POST /v1/chat/completions", wrap(g.h.Completions))
	mux.ServeHTTP(w, r)
	return w.Code, w.Header().Get("X-Cache"), w.Body.String()
}

// TestCacheKeepsAWholeStream: a stream that finished is kept, and the
// same request asked whole is answered from the cache with its text.
func TestCacheKeepsAWholeStream(t *testing.T) {
	g := cacheRig(t, gateway.CachePolicy{TTLSeconds: 600}, stream(
		chunk(`{"role":"assistant","content":"4"}`, ""), chunk(`{"content":"2"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"))
	req := `{"model":"pub","messages":[{"role":"user","content":"q"}]`
	g.doH(t, "/v1/chat/completions", req+`,"stream":true}`)
	code, xc, body := g.doH(t, "/v1/chat/completions", req+`}`)
	if code != http.StatusOK || xc != "hit" || !strings.Contains(body, `"content":"42"`) || !strings.Contains(body, `"finish_reason":"stop"`) || len(g.up.bodies) != 1 {
		t.Fatalf("the same request whole after its stream: %d X-Cache=%q %s (%d upstream calls)", code, xc, body, len(g.up.bodies))
	}
}

// TestCacheSkipsWhatItCannotKeepWhole: an answer that ended in an error
// (finish_reason "error", which a Responses stream reports as failed), a
// stream of several choices, and one with reasoning the rebuilt message
// would lose are not kept: the same request goes upstream again.
func TestCacheSkipsWhatItCannotKeepWhole(t *testing.T) {
	two := func(idx int, delta, finish string) string {
		f := "null"
		if finish != "" {
			f = `"` + finish + `"`
		}
		return `{"id":"c","object":"chat.completion.chunk","choices":[{"index":` + string(rune('0'+idx)) + `,"delta":` + delta + `,"finish_reason":` + f + `}]}`
	}
	for name, c := range map[string]struct {
		policy gateway.CachePolicy
		events []string
		first  string // path and body of the first request
		path   string
		req    string
	}{
		"error": {gateway.CachePolicy{TTLSeconds: 600}, []string{chunk(`{"role":"assistant","content":"Half"}`, ""), chunk(`{}`, "error"), usageChunk, "[DONE]"},
			`{"model":"pub","input":"hi","stream":true}`, "/v1/responses", `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`},
		"choices": {gateway.CachePolicy{TTLSeconds: 600, Sampled: true}, []string{two(0, `{"role":"assistant","content":"first"}`, ""),
			two(1, `{"role":"assistant","content":"second"}`, ""), two(0, `{}`, "stop"), two(1, `{}`, "stop"), usageChunk, "[DONE]"},
			`{"model":"pub","n":2,"temperature":1,"messages":[{"role":"user","content":"hi"}],"stream":true}`, "/v1/chat/completions",
			`{"model":"pub","n":2,"temperature":1,"messages":[{"role":"user","content":"hi"}]}`},
		"reasoning": {gateway.CachePolicy{TTLSeconds: 600}, []string{chunk(`{"role":"assistant","reasoning_content":"Let me think hard."}`, ""),
			chunk(`{"content":"42"}`, ""), chunk(`{}`, "stop"), usageChunk, "[DONE]"},
			`{"model":"pub","messages":[{"role":"user","content":"q"}],"stream":true}`, "/v1/chat/completions", `{"model":"pub","messages":[{"role":"user","content":"q"}]}`},
	} {
		g := cacheRig(t, c.policy, stream(c.events...))
		g.doH(t, c.path, c.first)
		if code, xc, body := g.doH(t, "/v1/chat/completions", c.req); xc == "hit" || len(g.up.bodies) != 2 {
			t.Fatalf("%s: the second request = %d X-Cache=%q %s (%d upstream calls)", name, code, xc, body, len(g.up.bodies))
		}
	}
}
