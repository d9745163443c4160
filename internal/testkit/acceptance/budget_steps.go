package acceptance

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// pricesAndBudgets prices an upstream model and checks: each request's
// cost in the usage report, in the settings' currency; a key's budget
// refuses requests once spent (429 insufficient_quota), one at a time
// and in a burst of concurrent requests (at most one request over); bad
// prices and budgets are refused.
func (s *suite) pricesAndBudgets(t *testing.T) {
	for _, bad := range []map[string]any{
		{"currency": "usd"},
		{"prices": []map[string]any{{"model": "fake/priced", "input": -1, "output": 1}}},
		{"prices": []map[string]any{{"model": "", "input": 1, "output": 1}}},
	} {
		if resp, body := s.admin.call(t, s, "PUT", "/admin/api/settings", bad); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("PUT settings %v = %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	if resp, body := s.admin.call(t, s, "POST", "/admin/api/keys", map[string]any{"name": "x", "budget": -1}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a negative budget = %d %s, want 400", resp.StatusCode, body)
	}
	// 1 000 per million input tokens, 2 000 per million output: the
	// fake's 11 + 7 tokens cost 0.025.
	s.putSettings(t, map[string]any{"currency": "CNY", "prices": []map[string]any{{"model": "fake/priced*", "input": 1000, "output": 2000}}})
	defer s.putSettings(t, map[string]any{"currency": "USD", "prices": []any{}})
	if resp, body := s.admin.call(t, s, "PUT", "/admin/api/models/priced-bot", map[string]any{"upstream_model": "fake/priced"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT model = %d %s", resp.StatusCode, body)
	}
	defer s.admin.call(t, s, "DELETE", "/admin/api/models/priced-bot", nil)
	s.settle()
	const each = 11*1000e-6 + 7*2000e-6
	if math.Abs(each-0.025) > 1e-9 || fakeupstream.PromptTokens != 11 || fakeupstream.CompletionTokens != 7 {
		t.Fatalf("the fake's usage changed: %d/%d", fakeupstream.PromptTokens, fakeupstream.CompletionTokens)
	}

	key, keyID := s.newKey(t, "budget", map[string]any{"budget": 0.1})
	for i := range 4 {
		if _, err := s.chatAs(t, key, "priced-bot", "spend "+nonce()); err != nil {
			t.Fatalf("request %d within the budget: %v", i, err)
		}
	}
	s.waitUsage(t, keyID, 4, 10*time.Second)
	resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"),
		map[string]any{"model": "priced-bot", "messages": []map[string]string{{"role": "user", "content": "one more"}}},
		http.Header{"Authorization": {"Bearer " + key}})
	if resp.StatusCode != http.StatusTooManyRequests || decode[errorBody](t, body).Error.Code != "insufficient_quota" {
		t.Fatalf("past the budget = %d %s, want 429 insufficient_quota", resp.StatusCode, body)
	}
	report := func(id string) (float64, string) {
		t.Helper()
		resp, body := s.admin.call(t, s, "GET", "/admin/api/usage?key_id="+id, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET usage = %d %s", resp.StatusCode, body)
		}
		u := decode[struct {
			Currency string `json:"currency"`
			Totals   struct {
				Cost float64 `json:"cost"`
			} `json:"totals"`
		}](t, body)
		return u.Totals.Cost, u.Currency
	}
	if cost, currency := report(keyID); math.Abs(cost-4*each) > 1e-9 || currency != "CNY" {
		t.Fatalf("usage cost = %v %s, want %v CNY", cost, currency, 4*each)
	}
	// The key list shows what the key used and spent.
	resp, body = s.admin.call(t, s, "GET", "/admin/api/keys", nil)
	type keyUsage struct {
		Usage struct {
			Tokens     int64   `json:"tokens"`
			Spent      float64 `json:"spent"`
			SpentMonth float64 `json:"spent_month"`
		} `json:"usage"`
	}
	var listed keyUsage
	for _, k := range decode[struct {
		Data []json.RawMessage `json:"data"`
	}](t, body).Data {
		if strings.Contains(string(k), `"id":"`+keyID+`"`) {
			listed = decode[keyUsage](t, k)
		}
	}
	if u := listed.Usage; resp.StatusCode != http.StatusOK || u.Tokens != 4*18 || math.Abs(u.Spent-4*each) > 1e-9 || math.Abs(u.SpentMonth-4*each) > 1e-9 {
		t.Fatalf("the key list shows %+v for the key, want 72 tokens and %v spent", listed.Usage, 4*each)
	}

	// A burst: 20 at once on a budget of 0.1.
	key, keyID = s.newKey(t, "budget burst", map[string]any{"budget": 0.1})
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	for range 20 {
		wg.Go(func() {
			resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"),
				map[string]any{"model": "priced-bot", "messages": []map[string]string{{"role": "user", "content": "burst " + nonce()}}},
				http.Header{"Authorization": {"Bearer " + key}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case resp.StatusCode == http.StatusOK:
				ok++
			case resp.StatusCode == http.StatusTooManyRequests && decode[errorBody](t, body).Error.Code == "insufficient_quota":
				refused++
			default:
				t.Errorf("burst request = %d %s", resp.StatusCode, body)
			}
		})
	}
	wg.Wait()
	if ok == 0 || ok+refused != 20 {
		t.Fatalf("burst: %d answered, %d refused", ok, refused)
	}
	s.waitUsage(t, keyID, int64(ok), 10*time.Second)
	if cost, _ := report(keyID); cost > 0.1+each+1e-9 {
		t.Fatalf("a burst spent %.3f on a budget of 0.1: more than one request over", cost)
	}
}
