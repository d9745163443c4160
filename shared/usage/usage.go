// Package usage meters the gateway: it admits requests under each key's
// limits (requests and tokens per minute, a total token quota) and records
// every request's tokens, latency and status, aggregated per day, key and
// model. All counters live in the Records role, so limits hold across every
// instance of a serverless deployment.
package usage

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
	keepRecord = 90 * 24 * time.Hour
)

// Meter admits and records requests.
type Meter struct {
	records storage.Records
	now     func() time.Time
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

// Admit counts a request of key against its limits. It returns ELimited
// with RetryAfter when the key is over its requests or tokens per minute,
// and ELimited with the code insufficient_quota (no Retry-After: waiting
// does not help) when its token quota is used up.
func (m *Meter) Admit(ctx context.Context, key gateway.APIKey) error {
	return m.admit(ctx, key, func(string, string) int64 { return 0 })
}

// admit is Admit with pending: tokens counted but not yet written, by item.
func (m *Meter) admit(ctx context.Context, key gateway.APIKey, pending func(pk, sk string) int64) error {
	now := m.now()
	win, next := minute(now)
	if key.TokenQuota > 0 {
		it, err := m.records.Get(ctx, quotaPK, key.ID)
		if err != nil && !gateway.IsNotFound(err) {
			return fmt.Errorf("read quota of %s: %w", key.ID, err)
		}
		if it.Counters["tokens"]+pending(quotaPK, key.ID) >= key.TokenQuota {
			return gateway.Errorf(gateway.EQuota, "This API key has used its token quota of %d tokens.", key.TokenQuota)
		}
	}
	if key.TPM > 0 {
		it, err := m.records.Get(ctx, limitPK+key.ID, "tpm#"+win)
		if err != nil && !gateway.IsNotFound(err) {
			return fmt.Errorf("read tokens per minute of %s: %w", key.ID, err)
		}
		if it.Counters["tokens"]+pending(limitPK+key.ID, "tpm#"+win) >= key.TPM {
			e := gateway.Errorf(gateway.ELimited, "Rate limit reached: this key may use %d tokens per minute.", key.TPM)
			e.RetryAfter = retryAfter(now, next)
			return e
		}
	}
	if key.RPM > 0 {
		c, err := m.records.Incr(ctx, limitPK+key.ID, "rpm#"+win, map[string]int64{"requests": 1}, next.Add(time.Minute))
		if err != nil {
			return fmt.Errorf("count request of %s: %w", key.ID, err)
		}
		if c["requests"] > key.RPM {
			e := gateway.Errorf(gateway.ELimited, "Rate limit reached: this key may make %d requests per minute.", key.RPM)
			e.RetryAfter = retryAfter(now, next)
			return e
		}
	}
	return nil
}

// Record is one metered request.
type Record struct {
	RequestID        string `json:"request_id"`
	KeyID            string `json:"key_id"`
	Model            string `json:"model"`
	Kind             string `json:"kind"` // "chat", "embeddings", "image"
	Stream           bool   `json:"stream"`
	Status           int    `json:"status"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	LatencyMS        int64  `json:"latency_ms"`
	// Partial marks a request whose answer broke off (the upstream failed
	// or the client left); its tokens are what was received.
	Partial bool `json:"partial,omitempty"`
	// Estimated marks tokens the gateway estimated because the upstream
	// reported none.
	Estimated bool `json:"estimated,omitempty"`
	// Clamped marks usage the upstream reported out of bounds (negative,
	// or absurdly large), recorded clamped.
	Clamped bool `json:"clamped,omitempty"`
	// PerMinute asks for the tokens to count against the key's tokens per
	// minute (only keys with such a limit need the extra write).
	PerMinute bool      `json:"-"`
	Time      time.Time `json:"time"`
}

// Record stores r, adds it to its day's summary and counts its tokens
// against the key's limits, before it returns.
func (m *Meter) Record(ctx context.Context, r Record) error {
	item, incrs, err := m.writes(r)
	if err != nil {
		return err
	}
	if _, err := m.records.Put(ctx, item, storage.Cond{}); err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	for _, in := range incrs {
		if _, err := m.records.Incr(ctx, in.pk, in.sk, in.deltas, in.expires); err != nil {
			return fmt.Errorf("count usage: %w", err)
		}
	}
	return nil
}

// incr is one counter change.
type incr struct {
	pk, sk  string
	deltas  map[string]int64
	expires time.Time
}

// writes returns what recording r writes: the request's item and the
// counter changes (day summary, tokens per minute, quota).
func (m *Meter) writes(r Record) (storage.Item, []incr, error) {
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
	}}}
	tokens := r.PromptTokens + r.CompletionTokens
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

func flag(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Row is one day's usage of one key and model.
type Row struct {
	Day              string `json:"day"`
	KeyID            string `json:"key_id"`
	Model            string `json:"model"`
	Requests         int64  `json:"requests"`
	Errors           int64  `json:"errors"`
	Partial          int64  `json:"partial"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
	AvgLatencyMS     int64  `json:"avg_latency_ms"`
}

// Filter selects summary rows.
type Filter struct {
	From, To time.Time // days, inclusive
	KeyID    string
	Model    string
}

// MaxDays bounds one report.
const MaxDays = 366

// Summary returns the rows of f's days, oldest day first.
func (m *Meter) Summary(ctx context.Context, f Filter) ([]Row, error) {
	from, to := f.From.UTC().Truncate(24*time.Hour), f.To.UTC().Truncate(24*time.Hour)
	if to.Before(from) {
		return nil, gateway.Errorf(gateway.EInvalid, "The range ends before it starts.")
	}
	if to.Sub(from) > MaxDays*24*time.Hour {
		return nil, gateway.Errorf(gateway.EInvalid, "A report covers at most %d days.", MaxDays)
	}
	rows := []Row{}
	for d := from; !d.After(to); d = d.Add(24 * time.Hour) {
		day := d.Format(time.DateOnly)
		q := storage.Query{Limit: storage.MaxLimit}
		if f.KeyID != "" {
			q.Prefix = f.KeyID + "#"
		}
		for {
			page, err := m.records.Query(ctx, summaryPK+day, q)
			if err != nil {
				return nil, fmt.Errorf("read usage of %s: %w", day, err)
			}
			for _, it := range page.Items {
				key, model, _ := strings.Cut(it.SK, "#")
				if f.Model != "" && model != f.Model {
					continue
				}
				c := it.Counters
				row := Row{Day: day, KeyID: key, Model: model, Requests: c["requests"], Errors: c["errors"], Partial: c["partial"],
					PromptTokens: c["prompt_tokens"], CompletionTokens: c["completion_tokens"]}
				row.TotalTokens = row.PromptTokens + row.CompletionTokens
				if row.Requests > 0 {
					row.AvgLatencyMS = c["latency_ms"] / row.Requests
				}
				rows = append(rows, row)
			}
			if page.Cursor == "" {
				break
			}
			q.Cursor = page.Cursor
		}
	}
	return rows, nil
}

// Requests returns the request records of one day, newest first, at most
// limit, after cursor.
func (m *Meter) Requests(ctx context.Context, day time.Time, cursor string, limit int) ([]Record, string, error) {
	page, err := m.records.Query(ctx, requestPK+day.UTC().Format(time.DateOnly), storage.Query{Desc: true, Limit: limit, Cursor: cursor})
	if err != nil {
		return nil, "", fmt.Errorf("read requests: %w", err)
	}
	out := make([]Record, 0, len(page.Items))
	for _, it := range page.Items {
		var r Record
		if err := json.Unmarshal(it.Value, &r); err != nil {
			return nil, "", fmt.Errorf("decode usage %s: %w", it.SK, err)
		}
		out = append(out, r)
	}
	return out, page.Cursor, nil
}

// Used returns the tokens key has used in all.
func (m *Meter) Used(ctx context.Context, keyID string) (int64, error) {
	it, err := m.records.Get(ctx, quotaPK, keyID)
	if gateway.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read quota of %s: %w", keyID, err)
	}
	return it.Counters["tokens"], nil
}
