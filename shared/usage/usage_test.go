package usage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/sqlstore"
	"github.com/aigateway/aigateway/shared/usage"
)

func records(t *testing.T) *sqlstore.Records { return sqlitetest.Open(t).Records() }

type meter interface {
	Admit(context.Context, gateway.APIKey, gateway.Ask) (gateway.Reservation, error)
	Release(context.Context, gateway.Reservation)
	Record(context.Context, gateway.UsageRecord) error
	Summary(context.Context, gateway.UsageFilter) ([]gateway.UsageRow, error)
}

func admit(m meter, key gateway.APIKey) error {
	_, err := m.Admit(context.Background(), key, gateway.Ask{Tokens: 1})
	return err
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
				res, err := m.Admit(ctx, key, gateway.Ask{Tokens: 30})
				if err != nil {
					t.Fatalf("request %d refused: %v", i+1, err)
				}
				if err := m.Record(ctx, gateway.UsageRecord{RequestID: fmt.Sprint(i), KeyID: key.ID, Model: "m", Status: 200,
					PromptTokens: 11, CompletionTokens: 7, LatencyMS: 10, PerMinute: true, Reservation: &res}); err != nil {
					t.Fatal(err)
				}
			}
			// 54 tokens ≥ 50: the quota is used up, written or not.
			if err := admit(m, key); gateway.ErrorCode(err) != gateway.EQuota {
				t.Fatalf("after 54 tokens: %v, want insufficient_quota", err)
			}
			key.TokenQuota, key.TPM = 0, 40
			if err := admit(m, key); gateway.ErrorCode(err) != gateway.ELimited {
				t.Fatalf("after 54 tokens this minute: %v, want a rate limit", err)
			}
			closeIt()
			now := time.Now()
			rows, err := m.Summary(ctx, gateway.UsageFilter{From: now, To: now})
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
	m := usage.New(records(t))
	key := gateway.APIKey{ID: "key_2", KeyLimits: gateway.KeyLimits{RPM: 3}}
	refused := 0
	for range 7 {
		if err := admit(m, key); err != nil {
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

// meters open the meter and the buffer over it (flushing every
// millisecond), with what closes them.
var meters = map[string]func(*testing.T) (meter, func()){
	"Meter": func(t *testing.T) (meter, func()) { return usage.New(records(t)), func() {} },
	"Buffer": func(t *testing.T) (meter, func()) {
		b := usage.NewBuffer(usage.New(records(t)), time.Millisecond)
		return b, func() { b.Close() }
	},
}

// TestQuotaUnderConcurrency admits 30 concurrent requests of 100 tokens
// each on a 100-token quota and 30 on 150 tokens per minute, as streams
// do: each reserves its estimate at admission and settles at the end.
// What is used goes over a limit by about one request at most, on the
// meter and on the buffer (flushing all the while).
func TestQuotaUnderConcurrency(t *testing.T) {
	for name, open := range meters {
		t.Run(name, func(t *testing.T) {
			m, closeIt := open(t)
			defer closeIt()
			for _, key := range []gateway.APIKey{
				{ID: "key_q", KeyLimits: gateway.KeyLimits{TokenQuota: 100}},
				{ID: "key_t", KeyLimits: gateway.KeyLimits{TPM: 150}},
			} {
				var mu sync.Mutex
				used := int64(0)
				var wg sync.WaitGroup
				for i := range 30 {
					wg.Go(func() {
						res, err := m.Admit(context.Background(), key, gateway.Ask{Tokens: 100})
						if err != nil {
							return
						}
						time.Sleep(20 * time.Millisecond) // the stream
						m.Record(context.Background(), gateway.UsageRecord{RequestID: fmt.Sprint(key.ID, i), KeyID: key.ID, Model: "m",
							Status: 200, PromptTokens: 60, CompletionTokens: 40, PerMinute: key.TPM > 0, Reservation: &res})
						mu.Lock()
						used += 100
						mu.Unlock()
					})
				}
				wg.Wait()
				limit := max(key.TokenQuota, key.TPM)
				if used > limit+100 {
					t.Fatalf("%s: %d tokens used on a limit of %d: more than one request over", key.ID, used, limit)
				}
				if used == 0 {
					t.Fatalf("%s: nothing admitted", key.ID)
				}
			}
		})
	}
}

// TestNonsenseUsageClamped records usage an upstream reported negative or
// absurd, by any path (embeddings included): the counters never go below
// zero or past the bound, and the record says it was clamped.
func TestNonsenseUsageClamped(t *testing.T) {
	ctx := context.Background()
	m := usage.New(records(t))
	key := gateway.APIKey{ID: "k", KeyLimits: gateway.KeyLimits{TokenQuota: 1000}}
	res, err := m.Admit(ctx, key, gateway.Ask{Tokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Record(ctx, gateway.UsageRecord{RequestID: "1", KeyID: "k", Model: "emb", Kind: "embeddings", Status: 200,
		PromptTokens: -1000000, Reservation: &res}); err != nil {
		t.Fatal(err)
	}
	if used, _ := m.Used(ctx, "k"); used < 0 {
		t.Fatalf("quota counter went negative: %d", used)
	}
	if err := m.Record(ctx, gateway.UsageRecord{RequestID: "2", KeyID: "k", Model: "emb", Status: 200, PromptTokens: 1 << 50}); err != nil {
		t.Fatal(err)
	}
	if used, _ := m.Used(ctx, "k"); used > usage.MaxTokens {
		t.Fatalf("quota counter past the bound: %d", used)
	}
	recs, _, err := m.Requests(ctx, time.Now(), "", 10)
	if err != nil || len(recs) != 2 || !recs[0].Clamped || !recs[1].Clamped || recs[0].PromptTokens < 0 {
		t.Fatalf("records = %+v, %v; want both clamped", recs, err)
	}
}

// TestExtendReservation grows a reservation after admission (a request
// found larger once its history and sources were added): the counters
// hold the grown reservation at once, and the record settles all of it.
func TestExtendReservation(t *testing.T) {
	ctx := context.Background()
	m := usage.New(records(t))
	key := gateway.APIKey{ID: "k", KeyLimits: gateway.KeyLimits{TokenQuota: 1000}}
	res, err := m.Admit(ctx, key, gateway.Ask{Tokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Extend(ctx, &res, key, 90); err != nil {
		t.Fatal(err)
	}
	if used, _ := m.Used(ctx, "k"); used != 100 {
		t.Fatalf("counter after extending = %d, want 100", used)
	}
	if err := m.Record(ctx, gateway.UsageRecord{RequestID: "1", KeyID: "k", Model: "m", Status: 200, PromptTokens: 40, CompletionTokens: 10, Reservation: &res}); err != nil {
		t.Fatal(err)
	}
	if used, _ := m.Used(ctx, "k"); used != 50 {
		t.Fatalf("counter after settling = %d, want the 50 used", used)
	}
}

// TestExtendUnderBurst admits a burst on small bodies, then grows each by
// a large history: the extensions that would go past the quota are
// refused, so the burst stays within about one request of it.
func TestExtendUnderBurst(t *testing.T) {
	ctx := context.Background()
	m := usage.New(records(t))
	key := gateway.APIKey{ID: "k", KeyLimits: gateway.KeyLimits{TokenQuota: 5000}}
	var held []gateway.Reservation
	for range 30 {
		res, err := m.Admit(ctx, key, gateway.Ask{Tokens: 1030})
		if err != nil {
			continue
		}
		if err := m.Extend(ctx, &res, key, 40000); err != nil {
			if gateway.ErrorCode(err) != gateway.EQuota {
				t.Fatalf("extension refused with %v, want insufficient_quota", err)
			}
			m.Release(ctx, res)
			continue
		}
		held = append(held, res)
	}
	if used, _ := m.Used(ctx, "k"); len(held) != 1 || used != 41030 {
		t.Fatalf("%d requests hold %d tokens of a 5,000-token quota; want the first one only", len(held), used)
	}
}

// TestBudgetUnderConcurrency: a burst of 60 requests on a key with a
// budget of 1.00, each costing 0.05: what is spent goes over the budget
// by at most one request; the month's budget holds the same way and a
// new month starts afresh while the total budget allows; the day's
// summary and the spend count the cost.
func TestBudgetUnderConcurrency(t *testing.T) {
	for name, open := range meters {
		t.Run(name, func(t *testing.T) {
			m, closeIt := open(t)
			defer closeIt()
			price := gateway.Price{Input: 1000, Output: 1000} // 0.001 a token
			for _, key := range []gateway.APIKey{
				{ID: "key_total", KeyLimits: gateway.KeyLimits{Budget: 1}},
				{ID: "key_month", KeyLimits: gateway.KeyLimits{MonthlyBudget: 1}},
			} {
				var mu sync.Mutex
				spent := gateway.Micros(0)
				var wg sync.WaitGroup
				for i := range 60 {
					wg.Go(func() {
						ask := gateway.Ask{Tokens: 50, Cost: 50 * price.PerToken(), PerToken: price.PerToken()}
						res, err := m.Admit(context.Background(), key, ask)
						if err != nil {
							if gateway.ErrorCode(err) != gateway.EQuota {
								t.Errorf("refused with %v, want insufficient_quota", err)
							}
							return
						}
						time.Sleep(10 * time.Millisecond) // the answer
						cost := price.Cost(30, 20, 0, false)
						m.Record(context.Background(), gateway.UsageRecord{RequestID: fmt.Sprint(key.ID, i), KeyID: key.ID, Model: "m",
							Status: 200, PromptTokens: 30, CompletionTokens: 20, CostMicros: cost, Reservation: &res})
						mu.Lock()
						spent += cost
						mu.Unlock()
					})
				}
				wg.Wait()
				if spent > gateway.ToMicros(1)+gateway.ToMicros(0.05) || spent < gateway.ToMicros(0.5) {
					t.Fatalf("%s: %.2f spent on a budget of 1.00: want at most one request over, and most of it used", key.ID, gateway.FromMicros(spent))
				}
				// Sequentially now: refused once the budget is spent.
				if _, err := m.Admit(context.Background(), key, gateway.Ask{Tokens: 1, Cost: 1}); gateway.ErrorCode(err) != gateway.EQuota {
					t.Fatalf("%s: a request past the budget = %v", key.ID, err)
				}
			}
			if f, ok := m.(interface{ Flush(context.Context) }); ok {
				f.Flush(context.Background())
			}
			rows, err := m.(interface {
				Summary(context.Context, gateway.UsageFilter) ([]gateway.UsageRow, error)
			}).Summary(context.Background(), gateway.UsageFilter{From: time.Now(), To: time.Now(), KeyID: "key_total"})
			if err != nil || len(rows) != 1 || gateway.ToMicros(rows[0].Cost) != rows[0].Requests*gateway.ToMicros(0.05) || rows[0].Requests < 10 {
				t.Fatalf("the summary's cost: %+v %v", rows, err)
			}
		})
	}
}

// TestMonthlyBudgetStartsAfresh: a key whose month's budget is spent is
// admitted again the next month, until its total budget is spent.
func TestMonthlyBudgetStartsAfresh(t *testing.T) {
	ctx := context.Background()
	m := usage.New(records(t))
	now := time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC)
	m.SetNow(func() time.Time { return now })
	key := gateway.APIKey{ID: "key_m", KeyLimits: gateway.KeyLimits{MonthlyBudget: 0.10, Budget: 0.15}}
	spend := func() error {
		res, err := m.Admit(ctx, key, gateway.Ask{Tokens: 1, Cost: gateway.ToMicros(0.05)})
		if err != nil {
			return err
		}
		return m.Record(ctx, gateway.UsageRecord{RequestID: "r", KeyID: key.ID, Model: "m", Status: 200, CostMicros: gateway.ToMicros(0.05),
			Reservation: &res, Time: now})
	}
	for i := range 2 {
		if err := spend(); err != nil {
			t.Fatalf("request %d of November: %v", i, err)
		}
	}
	if err := spend(); gateway.ErrorCode(err) != gateway.EQuota || !strings.Contains(gateway.ErrorMessage(err), "monthly") {
		t.Fatalf("past November's budget: %v", err)
	}
	now = now.Add(2 * time.Hour) // December
	if err := spend(); err != nil {
		t.Fatalf("the first request of December: %v", err)
	}
	if err := spend(); gateway.ErrorCode(err) != gateway.EQuota || strings.Contains(gateway.ErrorMessage(err), "monthly") {
		t.Fatalf("past the total budget: %v", err)
	}
}

// TestStats: the hours of a range summed by bucket (empty ones there too),
// split by model with the least used as "other", latency percentiles from
// the histogram, the most used keys and models, every channel.
func TestStats(t *testing.T) {
	ctx := context.Background()
	m := usage.New(records(t))
	start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	// 100 requests at 10:xx of key_a, model m1, latencies 10 to 1000 ms;
	// 3 at 13:xx of key_b over m2, m3, m4 through ch_b, one failed.
	for i := range 100 {
		m.Record(ctx, gateway.UsageRecord{RequestID: fmt.Sprint("a", i), KeyID: "key_a", Model: "m1", Channel: "ch_a", Status: 200,
			PromptTokens: 10, CompletionTokens: 5, LatencyMS: int64(10 * (i + 1)), CostMicros: 1000, Time: start.Add(10*time.Hour + time.Duration(i)*time.Second)})
	}
	for i, model := range []string{"m2", "m3", "m4"} {
		status := 200
		if i == 2 {
			status = 502
		}
		m.Record(ctx, gateway.UsageRecord{RequestID: fmt.Sprint("b", i), KeyID: "key_b", Model: model, Channel: "ch_b", Status: status,
			LatencyMS: 60_000 + int64(i), Cache: map[bool]string{true: "hit"}[i == 0], Time: start.Add(13*time.Hour + time.Minute)})
	}
	st, err := m.Stats(ctx, usage.StatsQuery{From: start, To: start.Add(24 * time.Hour), Bucket: time.Hour, By: "model", Top: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Series) != 24 || st.Series[10].Requests != 100 || st.Series[13].Requests != 3 || st.Series[12].Requests != 0 ||
		!st.Series[0].Time.Equal(start) || !st.Series[23].Time.Equal(start.Add(23*time.Hour)) {
		t.Fatalf("series: %d points, 10h %+v, 13h %+v", len(st.Series), st.Series[10], st.Series[13])
	}
	if p := st.Series[10]; p.P50MS != 500 || p.P95MS != 950 || p.PromptTokens != 1000 || p.Cost != 0.1 || p.Failures != 0 {
		t.Fatalf("10h: %+v, want p50 500 ms, p95 950 ms, 1000 prompt tokens, cost 0.1", p)
	}
	if tot := st.Totals; tot.Requests != 103 || tot.Errors != 1 || tot.CacheHits != 1 || tot.P95MS < 950 {
		t.Fatalf("totals: %+v", tot)
	}
	if len(st.Split) != 3 || st.Split[0].Name != "m1" || st.Split[0].Series[10].Requests != 100 || !st.Split[2].Other ||
		st.Split[2].Series[13].Requests != 2 || len(st.Split[2].Series) != 24 {
		t.Fatalf("split by model, top 2: %+v", st.Split)
	}
	if len(st.Keys) != 2 || st.Keys[0].Name != "key_a" || st.Keys[0].Requests != 100 || len(st.Channels) != 2 || st.Channels[1].Name != "ch_b" {
		t.Fatalf("ranked: keys %+v channels %+v", st.Keys, st.Channels)
	}
	// A request every channel failed: the failed channel shows its
	// failures, the request sits under "none".
	m.Record(ctx, gateway.UsageRecord{RequestID: "c", KeyID: "key_c", Model: "m1", Status: 502, FailedChannels: []string{"ch_dead", "ch_dead"},
		Time: start.Add(15 * time.Hour)})
	st, err = m.Stats(ctx, usage.StatsQuery{From: start, To: start.Add(24 * time.Hour), Bucket: time.Hour, By: "channel", Top: 8})
	byName := map[string]usage.Ranked{}
	for _, r := range st.Channels {
		byName[r.Name] = r
	}
	var splitSum int64
	for _, s := range st.Split {
		for _, p := range s.Series {
			splitSum += p.Requests
		}
	}
	if err != nil || byName["ch_dead"].Failures != 2 || byName["none"].Requests != 1 || byName["none"].Errors != 1 || splitSum != st.Totals.Requests {
		t.Fatalf("a request no channel answered: channels %+v, split sums to %d of %d (%v)", st.Channels, splitSum, st.Totals.Requests, err)
	}
	days, err := m.Stats(ctx, usage.StatsQuery{From: start.Add(-48 * time.Hour), To: start.Add(24 * time.Hour), Bucket: 24 * time.Hour, KeyID: "key_b"})
	if err != nil || len(days.Series) != 3 || days.Series[2].Requests != 3 || days.Totals.Requests != 3 {
		t.Fatalf("by day for key_b: %+v %v", days.Series, err)
	}
	if _, err := m.Stats(ctx, usage.StatsQuery{From: start, To: start, Bucket: time.Hour}); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("an empty range = %v", err)
	}
}

// TestBufferCountsInMemory: a buffer's limits count in memory, exactly
// under a burst (a key of 50 requests a minute gets 50 of 200 concurrent
// requests, with flushes all the while); what it counted reaches the
// store, where a second process's buffer on the same store starts from
// it; the store holds every request counted, no more.
func TestBufferCountsInMemory(t *testing.T) {
	rec := records(t)
	a := usage.NewBuffer(usage.New(rec), time.Millisecond)
	defer a.Close()
	key := gateway.APIKey{ID: "key_mem", KeyLimits: gateway.KeyLimits{RPM: 50, TPM: 1 << 40}}
	// A minute that does not turn over during the test.
	if s := time.Now().Second(); s > 55 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := 0
	for range 200 {
		wg.Go(func() {
			if admit(a, key) == nil {
				mu.Lock()
				passed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if passed != 50 {
		t.Fatalf("%d of 200 passed under 50 a minute", passed)
	}
	a.Flush(context.Background())
	b := usage.NewBuffer(usage.New(rec), time.Hour)
	defer b.Close()
	if err := admit(b, key); err == nil {
		t.Fatal("another process's buffer admitted a request past the 50 counted in the store")
	}
	// The store's counter: every request counted (the refused ones too, as
	// the meter counts them), each once.
	win := time.Now().UTC().Truncate(time.Minute).Format("200601021504")
	values, err := rec.Incr(context.Background(), "limit#key_mem", "rpm#"+win, map[string]int64{"requests": 0}, time.Now().Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	b.Flush(context.Background())
	if got := values["requests"]; got != 200 {
		t.Fatalf("the store counts %d requests of the 200 made", got)
	}
}

// flakyRecords fails every counter change that is not zero while failing
// is set: a store that is down for writes.
type flakyRecords struct {
	*sqlstore.Records
	failing atomic.Bool
}

func (f *flakyRecords) Incr(ctx context.Context, pk, sk string, d map[string]int64, e time.Time) (map[string]int64, error) {
	for _, v := range d {
		if v != 0 && f.failing.Load() {
			return nil, errors.New("store down")
		}
	}
	return f.Records.Incr(ctx, pk, sk, d, e)
}

// TestBufferWhileTheStoreFails: with every flush failing, a limit still
// holds exactly (the changes a flush could not write count all the while).
func TestBufferWhileTheStoreFails(t *testing.T) {
	rec := &flakyRecords{Records: records(t)}
	b := usage.NewBuffer(usage.New(rec), 50*time.Microsecond)
	defer b.Close()
	rec.failing.Store(true)
	if s := time.Now().Second(); s > 55 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	key := gateway.APIKey{ID: "key_flaky", KeyLimits: gateway.KeyLimits{RPM: 50}}
	var passed, calls atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for range 16 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				calls.Add(1)
				if admit(b, key) == nil {
					passed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if passed.Load() != 50 {
		t.Fatalf("%d of %d passed under 50 a minute with the store failing", passed.Load(), calls.Load())
	}
}

// TestBufferCloseLosesNothing: requests admitted while the buffer closes
// are all in the store after.
func TestBufferCloseLosesNothing(t *testing.T) {
	for round := range 20 {
		rec := records(t)
		b := usage.NewBuffer(usage.New(rec), time.Hour)
		key := gateway.APIKey{ID: "key_close", KeyLimits: gateway.KeyLimits{RPM: 1 << 40}}
		var admitted atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Go(func() {
				<-start
				for range 100 {
					if admit(b, key) == nil {
						admitted.Add(1)
					}
				}
			})
		}
		close(start)
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		var stored int64
		for _, at := range []time.Time{time.Now().Add(-time.Minute), time.Now()} {
			win := at.UTC().Truncate(time.Minute).Format("200601021504")
			v, _ := rec.Incr(context.Background(), "limit#key_close", "rpm#"+win, map[string]int64{"requests": 0}, time.Now().Add(time.Hour))
			stored += v["requests"]
		}
		if stored != admitted.Load() {
			t.Fatalf("round %d: the store counts %d requests of %d admitted", round, stored, admitted.Load())
		}
	}
}

// TestBufferReleaseOfAnExpiredWindow: giving back a reservation whose
// window is long past, while flushes let such counters go, is safe.
func TestBufferReleaseOfAnExpiredWindow(t *testing.T) {
	b := usage.NewBuffer(usage.New(records(t)), 20*time.Microsecond)
	defer b.Close()
	res := gateway.Reservation{KeyID: "key_old", Window: "200001010000", Expires: time.Now().Add(-time.Hour), PerMinute: true, Tokens: 5}
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Second)
	for range 8 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				b.Release(context.Background(), res)
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(deadline) {
			b.Flush(context.Background())
		}
	})
	wg.Wait()
}
