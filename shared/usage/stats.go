package usage

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// hourPK holds an hour's usage per key, model and channel: + day; sk
// "<HH>#<key ID>#<channel>#<model>"; counters, with a latency histogram.
const hourPK = "usagehr#"

// latencyBounds are the upper bounds of the latency histogram's buckets,
// in milliseconds; a last bucket holds what is slower.
var latencyBounds = []int64{5, 10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000, 20000, 30000, 60000}

// latencyBucket returns the counter a latency counts in.
func latencyBucket(ms int64) string {
	i, _ := slices.BinarySearch(latencyBounds, ms)
	return "lat" + strconv.Itoa(i)
}

// hourIncrs are the hour's counter changes of r: the request, on the
// channel that answered (or none), and a failure on each channel that
// failed before.
func hourIncrs(r gateway.UsageRecord, cost gateway.Micros) []incr {
	pk, hour := hourPK+r.Time.Format(time.DateOnly), r.Time.Format("15")
	sk := func(channel string) string { return hour + "#" + r.KeyID + "#" + channel + "#" + r.Model }
	out := []incr{{pk: pk, sk: sk(r.Channel), expires: r.Time.Add(keepRecord), deltas: map[string]int64{
		"requests": 1, "errors": flag(r.Status >= 400 && r.Status != 499), "prompt_tokens": r.PromptTokens,
		"completion_tokens": r.CompletionTokens, "images": r.Images, "cost_micros": cost,
		"cache_hits": flag(r.Cache == "hit"), "latency_ms": r.LatencyMS, latencyBucket(r.LatencyMS): 1,
	}}}
	failed := map[string]int64{}
	for _, ch := range r.FailedChannels {
		failed[ch]++
	}
	for ch, n := range failed {
		if ch == r.Channel {
			out[0].deltas["failures"] = n
			continue
		}
		out = append(out, incr{pk: pk, sk: sk(ch), expires: r.Time.Add(keepRecord), deltas: map[string]int64{"failures": n}})
	}
	return out
}

// Point is the usage of one time bucket (an hour or a day), or of a
// whole range: counts, tokens, cost and latency percentiles.
type Point struct {
	Time     time.Time `json:"time,omitzero"`
	Requests int64     `json:"requests"`
	Errors   int64     `json:"errors"`
	// Failures are attempts that failed on a channel before another took
	// the request (or it gave up).
	Failures         int64   `json:"failures"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	Images           int64   `json:"images"`
	CacheHits        int64   `json:"cache_hits"`
	Cost             float64 `json:"cost"`
	P50MS            int64   `json:"p50_ms"`
	P95MS            int64   `json:"p95_ms"`

	costMicros gateway.Micros
	hist       []int64
}

func (p *Point) add(c map[string]int64) {
	p.Requests += c["requests"]
	p.Errors += c["errors"]
	p.Failures += c["failures"]
	p.PromptTokens += c["prompt_tokens"]
	p.CompletionTokens += c["completion_tokens"]
	p.Images += c["images"]
	p.CacheHits += c["cache_hits"]
	p.costMicros += c["cost_micros"]
	if p.hist == nil {
		p.hist = make([]int64, len(latencyBounds)+1)
	}
	for i := range p.hist {
		p.hist[i] += c["lat"+strconv.Itoa(i)]
	}
}

// finish sets the cost and the percentiles from what was added.
func (p *Point) finish() {
	p.Cost = gateway.FromMicros(p.costMicros)
	p.P50MS, p.P95MS = percentile(p.hist, 0.50), percentile(p.hist, 0.95)
}

// percentile reads the q-th quantile off the histogram, interpolated
// within its bucket (the last, open bucket reports its lower bound).
func percentile(hist []int64, q float64) int64 {
	var n int64
	for _, c := range hist {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := q * float64(n)
	var seen float64
	for i, c := range hist {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo := int64(0)
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			if i == len(latencyBounds) {
				return lo
			}
			frac := (rank - seen) / float64(c)
			return lo + int64(math.Round(frac*float64(latencyBounds[i]-lo)))
		}
		seen += float64(c)
	}
	return latencyBounds[len(latencyBounds)-1]
}

// Ranked is one key, model or channel with its usage over the range.
type Ranked struct {
	Name string `json:"name"`
	Point
}

// Stats is usage over a range: its series by bucket, the same split by
// key, model or channel (the most used, the rest together), the totals,
// and the most used keys, models and channels (requests no channel
// answered under "none").
type Stats struct {
	Series   []Point  `json:"series"`
	Split    []Split  `json:"split,omitempty"`
	Totals   Point    `json:"totals"`
	Keys     []Ranked `json:"top_keys"`
	Models   []Ranked `json:"top_models"`
	Channels []Ranked `json:"channels"`
}

// Split is the series of one key, model or channel, or of the rest of
// them (Other).
type Split struct {
	Name   string  `json:"name,omitempty"`
	Other  bool    `json:"other,omitempty"`
	Series []Point `json:"series"`
}

// StatsQuery selects and shapes Stats.
type StatsQuery struct {
	From, To time.Time // hours, inclusive of From, exclusive of To
	// Bucket is time.Hour or 24 hours.
	Bucket time.Duration
	// By splits the series: "key", "model", "channel" or "".
	By string
	// KeyID and Model narrow it.
	KeyID, Model string
	// Top is how many splits and ranked names are kept.
	Top int
}

// Stats sums the hours of q's range.
func (m *Meter) Stats(ctx context.Context, q StatsQuery) (Stats, error) {
	from, to := q.From.UTC().Truncate(time.Hour), q.To.UTC()
	if !to.After(from) || to.Sub(from) > MaxDays*24*time.Hour {
		return Stats{}, gateway.Errorf(gateway.EInvalid, "A range covers an hour to %d days.", MaxDays)
	}
	if q.Bucket != time.Hour && q.Bucket != 24*time.Hour {
		return Stats{}, gateway.Errorf(gateway.EInvalid, "The bucket is an hour or a day.")
	}
	bucketOf := func(t time.Time) time.Time { return t.Truncate(q.Bucket) }
	series := map[time.Time]*Point{}
	split := map[string]map[time.Time]*Point{}
	ranked := map[string]map[string]*Point{"key": {}, "model": {}, "channel": {}}
	var totals Point
	err := m.eachDay(ctx, from, to.Add(-time.Nanosecond), hourPK, "", func(day string, it storage.Item) {
		hh, rest, _ := strings.Cut(it.SK, "#")
		key, rest, _ := strings.Cut(rest, "#")
		channel, model, _ := strings.Cut(rest, "#")
		h, err := strconv.Atoi(hh)
		d, derr := time.Parse(time.DateOnly, day)
		if err != nil || derr != nil {
			return
		}
		at := d.Add(time.Duration(h) * time.Hour)
		if at.Before(from) || !at.Before(to) || q.KeyID != "" && key != q.KeyID || q.Model != "" && model != q.Model {
			return
		}
		b := bucketOf(at)
		if series[b] == nil {
			series[b] = &Point{Time: b}
		}
		series[b].add(it.Counters)
		totals.add(it.Counters)
		if channel == "" {
			channel = "none"
		}
		for dim, name := range map[string]string{"key": key, "model": model, "channel": channel} {
			if ranked[dim][name] == nil {
				ranked[dim][name] = &Point{}
			}
			ranked[dim][name].add(it.Counters)
			if dim == q.By {
				if split[name] == nil {
					split[name] = map[time.Time]*Point{}
				}
				if split[name][b] == nil {
					split[name][b] = &Point{Time: b}
				}
				split[name][b].add(it.Counters)
			}
		}
	})
	if err != nil {
		return Stats{}, err
	}
	top := max(q.Top, 1)
	out := Stats{Series: fill(series, from, to, q.Bucket), Keys: rank(ranked["key"], top), Models: rank(ranked["model"], top),
		Channels: rank(ranked["channel"], 1000)}
	totals.finish()
	out.Totals = totals
	if q.By != "" {
		out.Split = []Split{}
		var other map[time.Time]*Point
		for i, r := range rank(ranked[q.By], len(ranked[q.By])) {
			if i < top {
				out.Split = append(out.Split, Split{Name: r.Name, Series: fill(split[r.Name], from, to, q.Bucket)})
				continue
			}
			if other == nil {
				other = map[time.Time]*Point{}
			}
			for b, p := range split[r.Name] {
				if other[b] == nil {
					other[b] = &Point{Time: b}
				}
				other[b].merge(p)
			}
		}
		if other != nil {
			out.Split = append(out.Split, Split{Other: true, Series: fill(other, from, to, q.Bucket)})
		}
	}
	return out, nil
}

// merge adds what another point holds.
func (p *Point) merge(o *Point) {
	c := map[string]int64{"requests": o.Requests, "errors": o.Errors, "failures": o.Failures, "prompt_tokens": o.PromptTokens, "completion_tokens": o.CompletionTokens,
		"images": o.Images, "cache_hits": o.CacheHits, "cost_micros": o.costMicros}
	for i, n := range o.hist {
		c["lat"+strconv.Itoa(i)] = n
	}
	p.add(c)
}

// fill returns the points of every bucket of the range, in order, empty
// ones included (a chart's time axis has no holes).
func fill(points map[time.Time]*Point, from, to time.Time, bucket time.Duration) []Point {
	out := []Point{}
	for b := from.Truncate(bucket); b.Before(to); b = b.Add(bucket) {
		p := points[b]
		if p == nil {
			p = &Point{Time: b}
		}
		p.finish()
		out = append(out, *p)
	}
	return out
}

// rank returns the names by requests, most first, at most n.
func rank(points map[string]*Point, n int) []Ranked {
	out := make([]Ranked, 0, len(points))
	for name, p := range points {
		p.finish()
		out = append(out, Ranked{Name: name, Point: *p})
	}
	slices.SortFunc(out, func(a, b Ranked) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), strings.Compare(a.Name, b.Name))
	})
	return out[:min(n, len(out))]
}

// KeyTotal is what a key has used in all: its tokens (those its token
// quota counts), and what it spent in all and this month.
type KeyTotal struct {
	Tokens     int64   `json:"tokens"`
	Spent      float64 `json:"spent"`
	SpentMonth float64 `json:"spent_month"`
}

// KeyTotals returns every key's totals, by key ID, from two reads of the
// counters (however many keys there are).
func (m *Meter) KeyTotals(ctx context.Context) (map[string]KeyTotal, error) {
	out := map[string]KeyTotal{}
	month := "#" + m.now().UTC().Format("2006-01")
	for _, pk := range []string{quotaPK, spendPK} {
		q := storage.Query{Limit: storage.MaxLimit}
		for {
			page, err := m.records.Query(ctx, pk, q)
			if err != nil {
				return nil, err
			}
			for _, it := range page.Items {
				id, rest, monthly := strings.Cut(it.SK, "#")
				t := out[id]
				switch {
				case pk == quotaPK:
					t.Tokens = it.Counters["tokens"]
				case !monthly:
					t.Spent = gateway.FromMicros(it.Counters["micros"])
				case "#"+rest == month:
					t.SpentMonth = gateway.FromMicros(it.Counters["micros"])
				default:
					continue
				}
				out[id] = t
			}
			if page.Cursor == "" {
				break
			}
			q.Cursor = page.Cursor
		}
	}
	return out, nil
}
