package usage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/sqlite"
	"github.com/aigateway/aigateway/shared/sqlite/sqlitetest"
	"github.com/aigateway/aigateway/shared/usage"
)

func records(t *testing.T) *sqlite.Records { return sqlitetest.Open(t).Records() }

type meter interface {
	Admit(context.Context, gateway.APIKey) error
	Record(context.Context, usage.Record) error
	Summary(context.Context, usage.Filter) ([]usage.Row, error)
}

// TestMeterAndBuffer runs the same checks on the meter that writes at once
// and on the buffer that writes behind: limits see every recorded token,
// and the summary adds up.
func TestMeterAndBuffer(t *testing.T) {
	ctx := context.Background()
	for name, open := range map[string]func(*testing.T) (meter, func()){
		"Meter": func(t *testing.T) (meter, func()) { return usage.New(records(t)), func() {} },
		"Buffer": func(t *testing.T) (meter, func()) {
			b := usage.NewBuffer(usage.New(records(t)), time.Hour) // writes only on Close or Flush
			return b, func() { b.Close() }
		},
	} {
		t.Run(name, func(t *testing.T) {
			m, closeIt := open(t)
			key := gateway.APIKey{ID: "key_1", KeyLimits: gateway.KeyLimits{TokenQuota: 50, TPM: 1000}}
			for i := range 3 {
				if err := m.Admit(ctx, key); err != nil {
					t.Fatalf("request %d refused: %v", i+1, err)
				}
				if err := m.Record(ctx, usage.Record{RequestID: fmt.Sprint(i), KeyID: key.ID, Model: "m", Status: 200,
					PromptTokens: 11, CompletionTokens: 7, LatencyMS: 10, PerMinute: true}); err != nil {
					t.Fatal(err)
				}
			}
			// 54 tokens ≥ 50: the quota is used up, written or not.
			if err := m.Admit(ctx, key); gateway.ErrorCode(err) != gateway.EQuota {
				t.Fatalf("after 54 tokens: %v, want insufficient_quota", err)
			}
			key.TokenQuota, key.TPM = 0, 40
			if err := m.Admit(ctx, key); gateway.ErrorCode(err) != gateway.ELimited {
				t.Fatalf("after 54 tokens this minute: %v, want a rate limit", err)
			}
			closeIt()
			now := time.Now()
			rows, err := m.Summary(ctx, usage.Filter{From: now, To: now})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 1 || rows[0].Requests != 3 || rows[0].TotalTokens != 54 || rows[0].AvgLatencyMS != 10 {
				t.Fatalf("summary = %+v, want 3 requests and 54 tokens", rows)
			}
		})
	}
}

func TestRequestsPerMinute(t *testing.T) {
	ctx := context.Background()
	m := usage.New(records(t))
	key := gateway.APIKey{ID: "key_2", KeyLimits: gateway.KeyLimits{RPM: 3}}
	refused := 0
	for range 7 {
		if err := m.Admit(ctx, key); err != nil {
			e, ok := err.(*gateway.Error)
			if !ok || e.Code != gateway.ELimited || e.RetryAfter < 1 || e.RetryAfter > 60 {
				t.Fatalf("refusal = %v, want rate limit with Retry-After", err)
			}
			refused++
		}
	}
	// Seven requests fall in at most two minute windows, one of which
	// then holds four or more: at least one is refused, at most four.
	if refused < 1 || refused > 4 {
		t.Fatalf("%d of 7 refused under 3 per minute", refused)
	}
}
