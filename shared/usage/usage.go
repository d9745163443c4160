// Package usage meters the gateway: it admits requests under each key's
// limits (requests and tokens per minute, a total token quota) and records
// every request's tokens, latency and status, aggregated per day, key and
// model. All counters live in the Records role, so limits hold across every
// instance of a serverless deployment.
package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Records layout.
const (
	limitPK    = "limit#"    // + key ID; sk "rpm#<minute>" or "tpm#<minute>"
	quotaPK    = "quota"     // sk key ID; counter "tokens"
	requestPK  = "usage#"    // + day; sk "<time>#<request ID>"; one item per request
	summaryPK  = "usagesum#" // + day; sk "<key ID>#<model>"; counters
	channelPK  = "usagech#"  // + day; sk channel ID; counters
	spendPK    = "spend"     // sk key ID, or "<key ID>#<YYYY-MM>"; counter "micros"
	keepRecord = 90 * 24 * time.Hour
)

// Meter admits and records requests.
type Meter struct {
	records storage.Records
	now     func() time.Time
	// count, when set, counts a limit's changes in place of the store's
	// Incr (a Buffer: in memory, written behind).
	count func(ctx context.Context, pk, sk string, deltas map[string]int64, expires time.Time) (map[string]int64, error)
}

// incr changes a counter of a limit and returns its values.
func (m *Meter) incr(ctx context.Context, pk, sk string, deltas map[string]int64, expires time.Time) (map[string]int64, error) {
	if m.count != nil {
		return m.count(ctx, pk, sk, deltas, expires)
	}
	return m.records.Incr(ctx, pk, sk, deltas, expires)
}

// New returns a Meter on records.
func New(records storage.Records) *Meter { return &Meter{records: records, now: time.Now} }

func minute(t time.Time) (string, time.Time) {
	start := t.Truncate(time.Minute)
	return start.UTC().Format("200601021504"), start.Add(time.Minute)
}

func retryAfter(now, next time.Time) int {
	return max(1, int(next.Sub(now).Seconds()+0.999))
}

// MaxTokens bounds the tokens one request may be recorded with: more than
// any model's context, so that only an upstream's nonsense is cut.
const MaxTokens = 10_000_000

// Admit counts a request of key against its limits, and reserves tokens
// (an estimate of what it will use) of its token quota and tokens per
// minute, so that concurrent requests cannot all pass on the same room:
// past a limit, at most about one request's tokens go over. It returns
// ELimited with RetryAfter when the key is over its requests or tokens per
// minute, and ELimited with the code insufficient_quota (no Retry-After:
// waiting does not help) when its token quota is used up. The request's
// gateway.UsageRecord settles the reservation with the tokens really used; a request
// that never gets that far gives it back with Release.
func (m *Meter) Admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask) (gateway.Reservation, error) {
	return m.admit(ctx, key, ask, func(string, string) int64 { return 0 })
}

// admit is Admit with pending: tokens counted but not yet written, by item.
func (m *Meter) admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask, pending func(pk, sk string) int64) (gateway.Reservation, error) {
	now := m.now()
	win, next := minute(now)
	res := gateway.Reservation{KeyID: key.ID, Window: win, Expires: next.Add(time.Minute), PerToken: max(ask.PerToken, 0)}
	reserve := max(ask.Tokens, 1)
	// The budgets first: what a key has spent is held like its tokens,
	// the request's most likely cost reserved, so that a burst of
	// concurrent requests goes over by at most about one request.
	if key.Budget > 0 || key.MonthlyBudget > 0 {
		cost := max(ask.Cost, 0)
		month := now.UTC().Format("2006-01")
		for _, b := range []struct {
			limit float64
			sk    string
			held  *bool
			what  string
		}{{key.Budget, key.ID, &res.Budget, "budget"}, {key.MonthlyBudget, key.ID + "#" + month, &res.Monthly, "monthly budget"}} {
			if b.limit <= 0 {
				continue
			}
			c, err := m.incr(ctx, spendPK, b.sk, map[string]int64{"micros": cost}, spendExpiry(b.sk, now))
			if err != nil {
				m.Release(ctx, res)
				return gateway.Reservation{}, fmt.Errorf("reserve budget of %s: %w", key.ID, err)
			}
			// Tokens is the estimate the cost was reserved for: what a
			// later Extend adds to.
			*b.held, res.Cost, res.Month, res.Tokens = true, cost, month, reserve
			if c["micros"]-cost+pending(spendPK, b.sk) >= gateway.ToMicros(b.limit) {
				m.Release(ctx, res)
				return gateway.Reservation{}, gateway.Errorf(gateway.EQuota, "This API key has spent its %s of %.2f.", b.what, b.limit)
			}
		}
	}
	if key.TokenQuota > 0 {
		c, err := m.incr(ctx, quotaPK, key.ID, map[string]int64{"tokens": reserve}, time.Time{})
		if err != nil {
			m.Release(ctx, res)
			return gateway.Reservation{}, fmt.Errorf("reserve quota of %s: %w", key.ID, err)
		}
		res.Tokens, res.Quota = reserve, true
		if c["tokens"]-reserve+pending(quotaPK, key.ID) >= key.TokenQuota {
			m.Release(ctx, res)
			return gateway.Reservation{}, gateway.Errorf(gateway.EQuota, "This API key has used its token quota of %d tokens.", key.TokenQuota)
		}
	}
	if key.TPM > 0 {
		c, err := m.incr(ctx, limitPK+key.ID, "tpm#"+win, map[string]int64{"tokens": reserve}, res.Expires)
		if err != nil {
			m.Release(ctx, res)
			return gateway.Reservation{}, fmt.Errorf("reserve tokens per minute of %s: %w", key.ID, err)
		}
		res.Tokens, res.PerMinute = reserve, true
		if c["tokens"]-reserve+pending(limitPK+key.ID, "tpm#"+win) >= key.TPM {
			m.Release(ctx, res)
			e := gateway.Errorf(gateway.ELimited, "Rate limit reached: this key may use %d tokens per minute.", key.TPM)
			e.RetryAfter = retryAfter(now, next)
			return gateway.Reservation{}, e
		}
	}
	if key.RPM > 0 {
		c, err := m.incr(ctx, limitPK+key.ID, "rpm#"+win, map[string]int64{"requests": 1}, next.Add(time.Minute))
		if err != nil {
			m.Release(ctx, res)
			return gateway.Reservation{}, fmt.Errorf("count request of %s: %w", key.ID, err)
		}
		if c["requests"] > key.RPM {
			m.Release(ctx, res)
			e := gateway.Errorf(gateway.ELimited, "Rate limit reached: this key may make %d requests per minute.", key.RPM)
			e.RetryAfter = retryAfter(now, next)
			return gateway.Reservation{}, e
		}
	}
	return res, nil
}

// Release gives back the tokens of a reservation whose request ended
// before its usage could be recorded.
func (m *Meter) Release(ctx context.Context, res gateway.Reservation) {
	ctx = context.WithoutCancel(ctx)
	for _, in := range settle(res, 0, 0) {
		if _, err := m.incr(ctx, in.pk, in.sk, in.deltas, in.expires); err != nil {
			slog.ErrorContext(ctx, "give back reserved tokens", "key", res.KeyID, "err", err)
		}
	}
}

// Extend adds more tokens to a reservation, counted at once: a request
// found larger after its admission (its history, its sources) holds what
// it will use. Like Admit, it refuses (ELimited or insufficient_quota, the
// extension given back) when the key's other requests already hold its
// limit; the reservation is then as it was.
func (m *Meter) Extend(ctx context.Context, res *gateway.Reservation, key gateway.APIKey, more int64) error {
	return m.extend(ctx, res, key, more, func(string, string) int64 { return 0 })
}

// extend is Extend with pending: tokens counted but not yet written, by
// item.
func (m *Meter) extend(ctx context.Context, res *gateway.Reservation, key gateway.APIKey, more int64, pending func(pk, sk string) int64) error {
	if more <= 0 || (!res.Quota && !res.PerMinute && !res.Budget && !res.Monthly) {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var done []incr
	undo := func() {
		for _, in := range done {
			for k, v := range in.deltas {
				in.deltas[k] = -v
			}
			m.incr(ctx, in.pk, in.sk, in.deltas, in.expires)
		}
	}
	grown := *res
	grown.Tokens = -more // settle(0) adds what was reserved: here, more
	grown.Budget, grown.Monthly = false, false
	for _, in := range settle(grown, 0, 0) {
		c, err := m.incr(ctx, in.pk, in.sk, in.deltas, in.expires)
		if err != nil {
			undo()
			return fmt.Errorf("reserve tokens of %s: %w", res.KeyID, err)
		}
		done = append(done, incr{pk: in.pk, sk: in.sk, deltas: map[string]int64{"tokens": more}, expires: in.expires})
		others := c["tokens"] - res.Tokens - more + pending(in.pk, in.sk)
		switch {
		case in.pk == quotaPK && key.TokenQuota > 0 && others >= key.TokenQuota:
			undo()
			return gateway.Errorf(gateway.EQuota, "This API key has used its token quota of %d tokens.", key.TokenQuota)
		case in.pk != quotaPK && key.TPM > 0 && others >= key.TPM:
			undo()
			e := gateway.Errorf(gateway.ELimited, "Rate limit reached: this key may use %d tokens per minute.", key.TPM)
			e.RetryAfter = 60
			return e
		}
	}
	if cost := more * res.PerToken; cost > 0 && (res.Budget || res.Monthly) {
		for _, b := range []struct {
			held  bool
			limit float64
			sk    string
		}{{res.Budget, key.Budget, res.KeyID}, {res.Monthly, key.MonthlyBudget, res.KeyID + "#" + res.Month}} {
			if !b.held {
				continue
			}
			c, err := m.incr(ctx, spendPK, b.sk, map[string]int64{"micros": cost}, spendExpiry(b.sk, m.now()))
			if err != nil {
				undo()
				return fmt.Errorf("reserve budget of %s: %w", res.KeyID, err)
			}
			done = append(done, incr{pk: spendPK, sk: b.sk, deltas: map[string]int64{"micros": cost}, expires: spendExpiry(b.sk, m.now())})
			if c["micros"]-res.Cost-cost+pending(spendPK, b.sk) >= gateway.ToMicros(b.limit) {
				undo()
				return gateway.Errorf(gateway.EQuota, "This API key has spent its budget of %.2f.", b.limit)
			}
		}
		res.Cost += cost
	}
	res.Tokens += more
	return nil
}

// spendExpiry is when a spend counter may go: a month's some weeks after
// the month, the total never.
func spendExpiry(sk string, now time.Time) time.Time {
	if !strings.Contains(sk, "#") {
		return time.Time{}
	}
	return now.AddDate(0, 2, 0)
}

// settle returns the counter changes that turn the reservation into used
// tokens, and what it held of the budgets into the cost.
func settle(res gateway.Reservation, used int64, cost gateway.Micros) []incr {
	var out []incr
	if res.Budget {
		out = append(out, incr{pk: spendPK, sk: res.KeyID, deltas: map[string]int64{"micros": cost - res.Cost}})
	}
	if res.Monthly {
		sk := res.KeyID + "#" + res.Month
		out = append(out, incr{pk: spendPK, sk: sk, deltas: map[string]int64{"micros": cost - res.Cost}, expires: spendExpiry(sk, time.Now())})
	}
	if res.Quota {
		out = append(out, incr{pk: quotaPK, sk: res.KeyID, deltas: map[string]int64{"tokens": used - res.Tokens}})
	}
	if res.PerMinute {
		out = append(out, incr{pk: limitPK + res.KeyID, sk: "tpm#" + res.Window, deltas: map[string]int64{"tokens": used - res.Tokens}, expires: res.Expires})
	}
	return out
}

// gateway.UsageRecord stores r, adds it to its day's summary and counts its tokens
// against the key's limits, before it returns.
func (m *Meter) Record(ctx context.Context, r gateway.UsageRecord) error {
	item, incrs, err := m.writes(r)
	if err != nil {
		return err
	}
	// The writes are independent: all at once (a request's recording
	// takes one round trip to the store, not six), and one failed write
	// does not keep the others from being made.
	errs := make([]error, len(incrs)+1)
	var wg sync.WaitGroup
	for i, in := range incrs {
		wg.Go(func() {
			if _, err := m.records.Incr(ctx, in.pk, in.sk, in.deltas, in.expires); err != nil {
				errs[i] = fmt.Errorf("count usage: %w", err)
			}
		})
	}
	wg.Go(func() {
		if _, err := m.records.Put(ctx, item, storage.Cond{}); err != nil {
			errs[len(incrs)] = fmt.Errorf("record usage: %w", err)
		}
	})
	wg.Wait()
	return errors.Join(errs...)
}

// incr is one counter change.
type incr struct {
	pk, sk  string
	deltas  map[string]int64
	expires time.Time
}

// writes returns what recording r writes: the request's item and the
// counter changes (day summary, tokens per minute, quota).
func (m *Meter) writes(r gateway.UsageRecord) (storage.Item, []incr, error) {
	// Whatever path the tokens came by, nonsense never moves a counter.
	cost := max(r.CostMicros, 0)
	for _, n := range []*int64{&r.PromptTokens, &r.CompletionTokens, &r.Images} {
		if c := min(max(*n, 0), MaxTokens); c != *n {
			*n, r.Clamped = c, true
		}
	}
	if r.Time.IsZero() {
		r.Time = m.now()
	}
	r.Time = r.Time.UTC()
	day := r.Time.Format(time.DateOnly)
	value, err := json.Marshal(r)
	if err != nil {
		return storage.Item{}, nil, fmt.Errorf("encode usage: %w", err)
	}
	item := storage.Item{PK: requestPK + day, SK: r.Time.Format("15:04:05.000000000") + "#" + r.RequestID,
		Value: value, ExpiresAt: r.Time.Add(keepRecord)}
	incrs := []incr{{pk: summaryPK + day, sk: r.KeyID + "#" + r.Model, deltas: map[string]int64{
		"requests": 1, "prompt_tokens": r.PromptTokens, "completion_tokens": r.CompletionTokens,
		"errors": flag(r.Status >= 400 && r.Status != 499), "partial": flag(r.Partial), "latency_ms": r.LatencyMS,
		"images": r.Images, "cache_hits": flag(r.Cache == "hit"), "cache_misses": flag(r.Cache == "miss"), "cost_micros": cost,
	}}}
	incrs = append(incrs, channelIncrs(r, day)...)
	incrs = append(incrs, hourIncrs(r, cost)...)
	tokens := r.PromptTokens + r.CompletionTokens + r.Images*gateway.ImageTokens
	// What a key spent is counted whether or not it has a budget yet: a
	// budget set later holds what came before.
	spend := func(budget, monthly bool) {
		if cost == 0 {
			return
		}
		if !budget {
			incrs = append(incrs, incr{pk: spendPK, sk: r.KeyID, deltas: map[string]int64{"micros": cost}})
		}
		if sk := r.KeyID + "#" + r.Time.Format("2006-01"); !monthly {
			incrs = append(incrs, incr{pk: spendPK, sk: sk, deltas: map[string]int64{"micros": cost}, expires: spendExpiry(sk, r.Time)})
		}
	}
	if res := r.Reservation; res != nil && (res.Tokens > 0 && (res.Quota || res.PerMinute) || res.Budget || res.Monthly) {
		incrs = append(incrs, settle(*res, tokens, cost)...)
		if !res.Quota && tokens > 0 {
			incrs = append(incrs, incr{pk: quotaPK, sk: r.KeyID, deltas: map[string]int64{"tokens": tokens}})
		}
		spend(res.Budget, res.Monthly)
		return item, incrs, nil
	}
	spend(false, false)
	if tokens == 0 {
		return item, incrs, nil
	}
	if r.PerMinute {
		win, next := minute(r.Time)
		incrs = append(incrs, incr{pk: limitPK + r.KeyID, sk: "tpm#" + win, deltas: map[string]int64{"tokens": tokens}, expires: next.Add(time.Minute)})
	}
	incrs = append(incrs, incr{pk: quotaPK, sk: r.KeyID, deltas: map[string]int64{"tokens": tokens}})
	return item, incrs, nil
}

// channelIncrs count r against the channels it went to: a request, its
// tokens and latency for the one that answered, a failure for each failed
// attempt.
func channelIncrs(r gateway.UsageRecord, day string) []incr {
	per := map[string]map[string]int64{}
	if r.Channel != "" {
		per[r.Channel] = map[string]int64{"requests": 1, "errors": flag(r.Status >= 400 && r.Status != 499),
			"prompt_tokens": r.PromptTokens, "completion_tokens": r.CompletionTokens, "latency_ms": r.LatencyMS, "images": r.Images}
	}
	for _, ch := range r.FailedChannels {
		if per[ch] == nil {
			per[ch] = map[string]int64{}
		}
		per[ch]["failures"]++
	}
	out := make([]incr, 0, len(per))
	for ch, d := range per {
		out = append(out, incr{pk: channelPK + day, sk: ch, deltas: d})
	}
	return out
}

// ChannelSummary returns each channel's usage of each day from from to to
// (inclusive), oldest day first: the requests it answered (and which of
// them failed afterwards), their tokens and mean latency, and the
// attempts that failed on it before another channel took the request.
func (m *Meter) ChannelSummary(ctx context.Context, from, to time.Time) ([]gateway.ChannelUsageRow, error) {
	rows := []gateway.ChannelUsageRow{}
	err := m.eachDay(ctx, from, to, channelPK, "", func(day string, it storage.Item) {
		c := it.Counters
		row := gateway.ChannelUsageRow{Day: day, Channel: it.SK, Requests: c["requests"], Errors: c["errors"], Failures: c["failures"],
			PromptTokens: c["prompt_tokens"], CompletionTokens: c["completion_tokens"], Images: c["images"]}
		if row.Requests > 0 {
			row.AvgLatencyMS = c["latency_ms"] / row.Requests
		}
		rows = append(rows, row)
	})
	return rows, err
}

// eachDay calls fn with each item of the day partitions pk+day, from from
// to to (inclusive, at most MaxDays), whose sort key starts with prefix.
func (m *Meter) eachDay(ctx context.Context, from, to time.Time, pk, prefix string, fn func(day string, it storage.Item)) error {
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	if to.Before(from) {
		return gateway.Errorf(gateway.EInvalid, "The range ends before it starts.")
	}
	if to.Sub(from) > MaxDays*24*time.Hour {
		return gateway.Errorf(gateway.EInvalid, "A report covers at most %d days.", MaxDays)
	}
	for d := from; !d.After(to); d = d.Add(24 * time.Hour) {
		day := d.Format(time.DateOnly)
		q := storage.Query{Limit: storage.MaxLimit, Prefix: prefix}
		for {
			page, err := m.records.Query(ctx, pk+day, q)
			if err != nil {
				return fmt.Errorf("read usage of %s: %w", day, err)
			}
			for _, it := range page.Items {
				fn(day, it)
			}
			if page.Cursor == "" {
				break
			}
			q.Cursor = page.Cursor
		}
	}
	return nil
}

func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// MaxDays bounds one report.
const MaxDays = 366

// Summary returns the rows of f's days, oldest day first.
func (m *Meter) Summary(ctx context.Context, f gateway.UsageFilter) ([]gateway.UsageRow, error) {
	rows := []gateway.UsageRow{}
	prefix := ""
	if f.KeyID != "" {
		prefix = f.KeyID + "#"
	}
	err := m.eachDay(ctx, f.From, f.To, summaryPK, prefix, func(day string, it storage.Item) {
		key, model, _ := strings.Cut(it.SK, "#")
		if f.Model != "" && model != f.Model {
			return
		}
		c := it.Counters
		row := gateway.UsageRow{Day: day, KeyID: key, Model: model, Requests: c["requests"], Errors: c["errors"], Partial: c["partial"],
			PromptTokens: c["prompt_tokens"], CompletionTokens: c["completion_tokens"], Images: c["images"],
			CacheHits: c["cache_hits"], CacheMisses: c["cache_misses"], Cost: gateway.FromMicros(c["cost_micros"])}
		row.TotalTokens = row.PromptTokens + row.CompletionTokens
		if row.Requests > 0 {
			row.AvgLatencyMS = c["latency_ms"] / row.Requests
		}
		rows = append(rows, row)
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// EachRecord calls fn with each request record of f's days, oldest first,
// of f's key and model when set; an error from fn stops it and is
// returned.
func (m *Meter) EachRecord(ctx context.Context, f gateway.UsageFilter, fn func(gateway.UsageRecord) error) error {
	var stop error
	err := m.eachDay(ctx, f.From, f.To, requestPK, "", func(_ string, it storage.Item) {
		if stop != nil {
			return
		}
		var r gateway.UsageRecord
		if err := json.Unmarshal(it.Value, &r); err != nil {
			stop = fmt.Errorf("decode usage %s: %w", it.SK, err)
			return
		}
		if (f.KeyID == "" || r.KeyID == f.KeyID) && (f.Model == "" || r.Model == f.Model) {
			stop = fn(r)
		}
	})
	if stop != nil {
		return stop
	}
	return err
}
