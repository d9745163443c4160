package chat

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/responses"
	"github.com/aigateway/aigateway/shared/usage"
)

type budgetKeys struct{ k gateway.APIKey }

func (b budgetKeys) AuthenticateFrom(context.Context, string, string) (gateway.APIKey, error) {
	return b.k, nil
}

type spyMeter struct {
	*usage.Meter
	mu   sync.Mutex
	held []gateway.Reservation
}

func (m *spyMeter) Record(ctx context.Context, r gateway.UsageRecord) error {
	m.mu.Lock()
	if r.Reservation != nil {
		m.held = append(m.held, *r.Reservation)
	}
	m.mu.Unlock()
	return m.Meter.Record(ctx, r)
}

// TestBudgetHoldsTheHistory: a follow-up whose history (a previous
// response's, read after admission) is large holds its cost of the budget
// once it is known, whether or not the key has token limits as well.
func TestBudgetHoldsTheHistory(t *testing.T) {
	for _, limits := range []gateway.KeyLimits{{Budget: 100}, {Budget: 100, TokenQuota: 1 << 40}} {
		st := gateway.DefaultSettings()
		st.AI = gateway.Upstream{BaseURL: "http://up.invalid", APIKey: gateway.Secret(upKey), Model: "up-model"}
		st.PublicModel = "pub"
		st.Prices = []gateway.Price{{Model: "*", Input: 1, Output: 1}} // 1 millionth per token
		ms := memstore.New(nil)
		meter := &spyMeter{Meter: usage.New(ms.Records())}
		up := &rvPoster{next: func() *rvAnswer {
			return &rvAnswer{body: `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100000,"completion_tokens":2,"total_tokens":100002}}`}
		}}
		key := gateway.APIKey{ID: "key_b", KeyLimits: limits}
		h := New(Deps{Keys: budgetKeys{key}, Settings: rvSettings{st}, Catalog: rvCatalog{}, Meter: meter, Upstream: up,
			Metrics: rvMetrics{}, ResponseStore: responses.NewStore(ms.Records())}, Options{MaxBody: 32 << 20, DrainTimeout: time.Second})
		g := &rig{ms: ms, h: h, up: up}
		big := strings.Repeat("lorem ipsum ", 40000) // ~480 KB: ~120 000 tokens of history
		code, body := g.do(t, "POST", "/v1/responses", "x", `{"model":"pub","input":"`+big+`"}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body[:200])
		}
		id := respID(t, body)
		code, body = g.do(t, "POST", "/v1/responses", "x", `{"model":"pub","input":"and?","previous_response_id":"`+id+`"}`)
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		res := meter.held[len(meter.held)-1]
		if res.Tokens < 100_000 || res.Cost < 100_000 {
			t.Fatalf("limits %+v: a follow-up with ~120k tokens of history held %d tokens, %d millionths of the budget", limits, res.Tokens, res.Cost)
		}
	}
}

// TestBudgetUnderABurstOfFollowUps: ten follow-ups at once on a key with
// a budget of 0.50, each costing about 0.12 (its history): at most one
// request over.
func TestBudgetUnderABurstOfFollowUps(t *testing.T) {
	for _, limits := range []gateway.KeyLimits{{Budget: 0.5}, {Budget: 0.5, TokenQuota: 1 << 40}} {
		st := gateway.DefaultSettings()
		st.AI = gateway.Upstream{BaseURL: "http://up.invalid", APIKey: gateway.Secret(upKey), Model: "up-model"}
		st.PublicModel = "pub"
		st.Prices = []gateway.Price{{Model: "*", Input: 1, Output: 1}}
		ms := memstore.New(nil)
		meter := &spyMeter{Meter: usage.New(ms.Records())}
		var mu sync.Mutex
		arrived, gate := 0, make(chan struct{})
		first := true
		up := &rvPoster{next: func() *rvAnswer {
			mu.Lock()
			if first {
				first = false
				mu.Unlock()
			} else {
				arrived++
				if arrived == 10 {
					close(gate)
				}
				mu.Unlock()
				select {
				case <-gate:
				case <-time.After(2 * time.Second):
				}
			}
			return &rvAnswer{body: `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":120000,"completion_tokens":2,"total_tokens":120002}}`}
		}}
		key := gateway.APIKey{ID: "key_b", KeyLimits: limits}
		h := New(Deps{Keys: budgetKeys{key}, Settings: rvSettings{st}, Catalog: rvCatalog{}, Meter: meter, Upstream: up,
			Metrics: rvMetrics{}, ResponseStore: responses.NewStore(ms.Records())}, Options{MaxBody: 32 << 20, DrainTimeout: time.Second})
		g := &rig{ms: ms, h: h, up: up}
		big := strings.Repeat("lorem ipsum ", 40000)
		_, body := g.do(t, "POST", "/v1/responses", "x", `{"model":"pub","input":"`+big+`","store":true}`)
		id := respID(t, body)
		var wg sync.WaitGroup
		codes := make([]int, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				codes[i], _ = g.do(t, "POST", "/v1/responses", "x", `{"model":"pub","input":"and?","previous_response_id":"`+id+`"}`)
			}()
		}
		wg.Wait()
		ok := 0
		for _, c := range codes {
			if c == 200 {
				ok++
			}
		}
		it, _ := ms.Records().Get(context.Background(), "spend", "key_b")
		if spent := gateway.FromMicros(it.Counters["micros"]); ok == 0 || spent > 0.5+0.125 {
			t.Fatalf("limits %+v: %d of 10 answered, %.3f spent on a budget of 0.50 (the first request's 0.12 included)", limits, ok, spent)
		}
	}
}
