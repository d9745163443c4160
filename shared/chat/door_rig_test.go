package chat

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/responses"
)

const upKey = "sk-UPSTREAM-abcdefghijklmnopqrstuvwxyz0123"

type rvKeys struct{}

func (rvKeys) AuthenticateFrom(ctx context.Context, secret, _ string) (gateway.APIKey, error) {
	switch secret {
	case "sk-client-a":
		return gateway.APIKey{ID: "key_a"}, nil
	case "sk-client-b":
		return gateway.APIKey{ID: "key_b"}, nil
	}
	return gateway.APIKey{}, gateway.Errorf(gateway.EUnauthorized, "no")
}

type rvSettings struct{ st gateway.Settings }

func (s rvSettings) Get(context.Context) (gateway.Settings, error) { return s.st, nil }

type rvCatalog struct{}

func (rvCatalog) List(context.Context) ([]gateway.Model, error) { return nil, nil }

type rvMeter struct {
	mu   sync.Mutex
	recs []gateway.UsageRecord
}

func (m *rvMeter) Admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask) (gateway.Reservation, error) {
	reserve := ask.Tokens
	return gateway.Reservation{KeyID: key.ID, Tokens: reserve}, nil
}
func (m *rvMeter) Release(context.Context, gateway.Reservation) {}
func (m *rvMeter) Extend(context.Context, *gateway.Reservation, gateway.APIKey, int64) error {
	return nil
}
func (m *rvMeter) Record(_ context.Context, r gateway.UsageRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return nil
}

type rvMetrics struct{}

func (rvMetrics) Chat(string, int, time.Duration, int64, int64) {}
func (rvMetrics) CacheLookup(string, bool)                      {}

// rvAnswer is a scripted upstream answer: events (each a data payload), or
// a whole body.
type rvAnswer struct {
	events []string
	body   string
	i      int
	err    error // returned after the events, instead of EOF
}

func (a *rvAnswer) Stream() bool        { return a.events != nil }
func (a *rvAnswer) ContentType() string { return "application/json" }
func (a *rvAnswer) ReadAll(int64) ([]byte, error) {
	return []byte(a.body), nil
}
func (a *rvAnswer) Next() (gateway.Event, error) {
	if a.i >= len(a.events) {
		if a.err != nil {
			return gateway.Event{}, a.err
		}
		return gateway.Event{}, io.EOF
	}
	d := a.events[a.i]
	a.i++
	return gateway.Event{Data: []byte(d), Raw: []byte("data: " + d + "\n\n")}, nil
}
func (a *rvAnswer) Ready() bool { return false }
func (a *rvAnswer) Close()      {}

type rvPoster struct {
	mu     sync.Mutex
	bodies []string
	next   func() *rvAnswer
}

func (p *rvPoster) Post(ctx context.Context, up gateway.Upstream, path string, body []byte) (gateway.Answer, error) {
	p.mu.Lock()
	p.bodies = append(p.bodies, string(body))
	p.mu.Unlock()
	return p.next(), nil
}

type rig struct {
	ms    *memstore.Store
	h     *Handler
	up    *rvPoster
	meter *rvMeter
}

func newRig(t *testing.T, next func() *rvAnswer) *rig {
	st := gateway.DefaultSettings()
	st.AI = gateway.Upstream{BaseURL: "http://up.invalid", APIKey: gateway.Secret(upKey), Model: "up-model"}
	st.PublicModel = "pub"
	up := &rvPoster{next: next}
	meter := &rvMeter{}
	ms := memstore.New(nil)
	h := New(Deps{Keys: rvKeys{}, Settings: rvSettings{st}, Catalog: rvCatalog{}, Meter: meter, Upstream: up,
		Metrics: rvMetrics{}, ResponseStore: responses.NewStore(ms.Records())}, Options{MaxBody: 32 << 20, DrainTimeout: time.Second})
	return &rig{ms: ms, h: h, up: up, meter: meter}
}

func (g *rig) do(t *testing.T, method, path, key, body string) (int, string) {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.Header.Set("Authorization", "Bearer "+key)
	w := httptest.NewRecorder()
	mux := http.NewServeMux()
	wrap := func(f func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				respond.Error(w, r, err) // as the routing table's handlers do
			}
		}
	}
	mux.HandleFunc("POST /v1/responses", wrap(g.h.Responses))
	mux.HandleFunc("POST /v1/chat/completions", wrap(g.h.Completions))
	mux.HandleFunc("GET /v1/responses/{id}", wrap(g.h.GetResponse))
	mux.HandleFunc("DELETE /v1/responses/{id}", wrap(g.h.DeleteResponse))
	mux.HandleFunc("GET /v1/responses/{id}/input_items", wrap(g.h.ResponseInputItems))
	mux.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// sseEvents returns the events' types and data of a Responses stream.
func sseEvents(body string) (types []string, data []map[string]any) {
	for _, block := range strings.Split(body, "\n\n") {
		for _, line := range strings.Split(block, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				var m map[string]any
				json.Unmarshal([]byte(d), &m)
				t, _ := m["type"].(string)
				types = append(types, t)
				data = append(data, m)
			}
		}
	}
	return
}

func chunk(delta string, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":` + delta + `,"finish_reason":` + f + `}]}`
}

const usageChunk = `{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`
