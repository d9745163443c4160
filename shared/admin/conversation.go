package admin

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/usage"
)

// Conversations reads the keys' conversations.
type Conversations interface {
	List(ctx context.Context, keyID string) ([]gateway.Conversation, error)
	Page(ctx context.Context, keyID, id, cursor string, limit, maxBytes int) (gateway.Conversation, []json.RawMessage, string, error)
	Delete(ctx context.Context, keyID, id string) error
}

// Usage reads the usage summaries.
type Usage interface {
	Summary(ctx context.Context, f gateway.UsageFilter) ([]gateway.UsageRow, error)
	ChannelSummary(ctx context.Context, from, to time.Time) ([]gateway.ChannelUsageRow, error)
	EachRecord(ctx context.Context, f gateway.UsageFilter, fn func(gateway.UsageRecord) error) error
}

// adminConversation is a conversation as the admin sees it: AdminID
// ("<key ID>:<conversation ID>") names it across keys.
type adminConversation struct {
	AdminID string `json:"admin_id"`
	KeyName string `json:"key_name"`
	gateway.Conversation
}

func (h *Handler) ListConversations(w http.ResponseWriter, r *http.Request) error {
	ks, err := h.Keys.List(r.Context())
	if err != nil {
		return err
	}
	want := r.URL.Query().Get("key_id")
	out := []adminConversation{}
	for _, k := range ks {
		if want != "" && k.ID != want {
			continue
		}
		cs, err := h.Conversations.List(r.Context(), k.ID)
		if err != nil {
			return err
		}
		for _, c := range cs {
			out = append(out, adminConversation{AdminID: k.ID + ":" + c.ID, KeyName: k.Name, Conversation: c})
		}
	}
	slices.SortFunc(out, func(a, b adminConversation) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
	return nil
}

// Conversation pages: messages per page by default and at most, and the
// bytes of one page. A Lambda response carries at most 6 MB, and the
// proxy answer holds the body as a JSON string, where every quote is
// escaped: 2 MiB of messages stays within it even when half their bytes
// are quotes. A single message larger than that is shown cut.
const (
	conversationPage    = 100
	conversationPageMax = 1000
	conversationBytes   = 2 << 20
)

// GetConversation answers one page of a conversation's messages:
// ?cursor= (next_cursor of the previous page) and ?limit= (1 to 1000,
// default 100); a page also stops at 4 MiB of messages. next_cursor is
// null on the last page.
func (h *Handler) GetConversation(w http.ResponseWriter, r *http.Request) error {
	keyID, id, ok := strings.Cut(r.PathValue("id"), ":")
	if !ok {
		return gateway.Errorf(gateway.ENotFound, "Name the conversation as <key ID>:<conversation ID>, its admin_id.")
	}
	limit := conversationPage
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > conversationPageMax {
			e := gateway.Errorf(gateway.EInvalid, "limit must be a number from 1 to %d.", conversationPageMax)
			e.Param = "limit"
			return e
		}
		limit = n
	}
	c, msgs, next, err := h.Conversations.Page(r.Context(), keyID, id, r.URL.Query().Get("cursor"), limit, conversationBytes)
	if err != nil {
		return err
	}
	for i, m := range msgs {
		if len(m) > conversationBytes {
			msgs[i] = cut(m)
		}
	}
	var cursor *string
	if next != "" {
		cursor = &next
	}
	respond.JSON(w, http.StatusOK, struct {
		AdminID string `json:"admin_id"`
		gateway.Conversation
		Messages   []json.RawMessage `json:"messages"`
		NextCursor *string           `json:"next_cursor"`
	}{keyID + ":" + c.ID, c, msgs, cursor})
	return nil
}

// DeleteConversation serves DELETE /admin/api/conversations/{id}: the
// conversation (named by its admin_id) and its messages are removed; the
// key's next request under that conversation ID starts afresh. It answers
// 404 for a conversation that does not exist.
func (h *Handler) DeleteConversation(w http.ResponseWriter, r *http.Request) error {
	keyID, id, ok := strings.Cut(r.PathValue("id"), ":")
	if !ok {
		return gateway.Errorf(gateway.ENotFound, "Name the conversation as <key ID>:<conversation ID>, its admin_id.")
	}
	if err := h.Conversations.Delete(r.Context(), keyID, id); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, map[string]any{"id": keyID + ":" + id, "object": "conversation.deleted", "deleted": true})
	return nil
}

// cut shows a message too large for a page: its role, the start of its
// text, and that it was cut.
func cut(m json.RawMessage) json.RawMessage {
	var msg struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	json.Unmarshal(m, &msg)
	text := []rune(conversations.Text(msg.Content))
	text = text[:min(len(text), 100000)]
	out, _ := json.Marshal(map[string]any{"role": msg.Role, "content": string(text), "truncated": true, "bytes": len(m)})
	return out
}

// usageFilter reads the usage filters of a request: ?from= and ?to=
// (YYYY-MM-DD, default the last 7 days), ?key_id= and ?model=; and has
// batched records written first, so that what is read is whole.
func (h *Handler) usageFilter(r *http.Request) (gateway.UsageFilter, error) {
	q := r.URL.Query()
	to := time.Now().UTC()
	from := to.Add(-6 * 24 * time.Hour)
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := q.Get(name); v != "" {
			d, err := time.Parse(time.DateOnly, v)
			if err != nil {
				e := gateway.Errorf(gateway.EInvalid, "%s must be a day as YYYY-MM-DD.", name)
				e.Param = name
				return gateway.UsageFilter{}, e
			}
			*dst = d
		}
	}
	if f, ok := h.Usage.(interface{ Flush(context.Context) }); ok {
		f.Flush(r.Context())
	}
	return gateway.UsageFilter{From: from, To: to, KeyID: q.Get("key_id"), Model: q.Get("model")}, nil
}

// exportColumns are the CSV export's columns, in order.
var exportColumns = []string{"time", "request_id", "key_id", "model", "kind", "stream", "status", "prompt_tokens",
	"completion_tokens", "images", "latency_ms", "cost", "cache", "channel", "failed_channels", "partial", "estimated"}

// UsageExport serves GET /admin/api/usage/export: the usage records the
// usage filters select, oldest first, as CSV (?format=csv, the default;
// a header row, cost in the settings' currency) or JSON lines
// (?format=jsonl, each record as the API shows it), streamed as read.
func (h *Handler) UsageExport(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "csv"
	}
	if format != "csv" && format != "jsonl" {
		e := gateway.Errorf(gateway.EInvalid, "format must be csv or jsonl.")
		e.Param = "format"
		return e
	}
	f, err := h.usageFilter(r)
	if err != nil {
		return err
	}
	if f.To.Before(f.From) || f.To.Sub(f.From) > 366*24*time.Hour {
		return gateway.Errorf(gateway.EInvalid, "An export covers 1 to 367 days.")
	}
	// Records are kept 90 days: no day before is read.
	if oldest := time.Now().UTC().Add(-91 * 24 * time.Hour); f.From.Before(oldest) {
		f.From = oldest
	}
	// Where answers are buffered (Lambda), the export is made whole first
	// and refused when it would not fit.
	var buf *capped
	out := io.Writer(w)
	if h.MaxAnswer > 0 {
		buf = &capped{limit: h.MaxAnswer}
		out = buf
	}
	name := "usage-" + f.From.Format(time.DateOnly) + "-" + f.To.Format(time.DateOnly) + "." + format
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Cache-Control", "no-store")
	var cw *csv.Writer
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		cw = csv.NewWriter(out)
		cw.Write(exportColumns) // buffered: sent with the first records
	} else {
		w.Header().Set("Content-Type", "application/jsonl; charset=utf-8")
	}
	enc := json.NewEncoder(out)
	started := false
	err = h.Usage.EachRecord(r.Context(), f, func(rec gateway.UsageRecord) error {
		started = true
		if cw == nil {
			return enc.Encode(rec)
		}
		cw.Write([]string{rec.Time.UTC().Format(time.RFC3339Nano), rec.RequestID, rec.KeyID, cell(rec.Model), rec.Kind,
			strconv.FormatBool(rec.Stream), strconv.Itoa(rec.Status), strconv.FormatInt(rec.PromptTokens, 10),
			strconv.FormatInt(rec.CompletionTokens, 10), strconv.FormatInt(rec.Images, 10), strconv.FormatInt(rec.LatencyMS, 10),
			strconv.FormatFloat(gateway.FromMicros(rec.CostMicros), 'f', -1, 64), rec.Cache, rec.Channel,
			strings.Join(rec.FailedChannels, " "), strconv.FormatBool(rec.Partial), strconv.FormatBool(rec.Estimated)})
		return cw.Error()
	})
	if cw != nil && (err == nil || started) {
		cw.Flush()
	}
	if buf != nil && err == nil && buf.over {
		err = gateway.Errorf(gateway.ETooLarge, "The export is larger than this deployment answers at once (%d MB): export fewer days, or one key or model at a time.", h.MaxAnswer>>20)
	}
	if err != nil && (!started || buf != nil) {
		// Nothing went out: an error the client can read.
		w.Header().Del("Content-Disposition")
		w.Header().Del("Content-Type")
		return err
	}
	if buf != nil {
		w.Write(buf.Bytes())
	}
	if err != nil {
		// Part of the export went out: the connection is cut, so that a
		// reader does not take what came for all of it.
		slog.ErrorContext(r.Context(), "usage export broke off", "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// capped is a buffer that keeps at most limit bytes and says whether more
// were written.
type capped struct {
	bytes.Buffer
	limit int64
	over  bool
}

func (c *capped) Write(p []byte) (int, error) {
	if int64(c.Len()+len(p)) > c.limit {
		c.over = true
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

// cell returns text as a CSV cell a spreadsheet will not run: one that
// starts like a formula (=, +, -, @, a tab or a carriage return) gets a
// leading apostrophe.
func cell(text string) string {
	if text != "" && strings.ContainsRune("=+-@\t\r", rune(text[0])) {
		return "'" + text
	}
	return text
}

// UsageSummary reports usage per day, key and model: ?from= and ?to= (YYYY-MM-DD,
// default the last 7 days), ?key_id= and ?model= to narrow it.
func (h *Handler) UsageSummary(w http.ResponseWriter, r *http.Request) error {
	f, err := h.usageFilter(r)
	if err != nil {
		return err
	}
	from, to := f.From, f.To
	rows, err := h.Usage.Summary(r.Context(), f)
	if err != nil {
		return err
	}
	chans, err := h.Usage.ChannelSummary(r.Context(), from, to)
	if err != nil {
		return err
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	var total gateway.UsageRow
	var cost gateway.Micros
	for _, row := range rows {
		cost += gateway.ToMicros(row.Cost)
		total.Requests += row.Requests
		total.Errors += row.Errors
		total.Partial += row.Partial
		total.PromptTokens += row.PromptTokens
		total.CompletionTokens += row.CompletionTokens
		total.TotalTokens += row.TotalTokens
		total.Images += row.Images
		total.CacheHits += row.CacheHits
		total.CacheMisses += row.CacheMisses
	}
	respond.JSON(w, http.StatusOK, map[string]any{
		"from": from.Format(time.DateOnly), "to": to.Format(time.DateOnly), "data": rows, "channels": chans,
		"currency": st.Currency,
		"totals": map[string]any{"requests": total.Requests, "errors": total.Errors, "partial": total.Partial,
			"prompt_tokens": total.PromptTokens, "completion_tokens": total.CompletionTokens, "total_tokens": total.TotalTokens,
			"images": total.Images, "cache_hits": total.CacheHits, "cache_misses": total.CacheMisses, "cost": gateway.FromMicros(cost)},
	})
	return nil
}

// Stats serves GET /admin/api/stats: the dashboard's usage over the last
// ?range= (24h, the default, 7d or 30d) in ?bucket=s (hour, the default
// for 24h, or day), totals with p50 and p95 latency, the most used keys
// and models and every channel, and with ?by= (key, model or channel) the
// series split by it (the 8 most used, the rest as "other"); ?key_id= and
// ?model= narrow it.
func (h *Handler) Stats(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	spans := map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}
	rng := cmp.Or(q.Get("range"), "24h")
	span, ok := spans[rng]
	if !ok {
		e := gateway.Errorf(gateway.EInvalid, "range is 24h, 7d or 30d.")
		e.Param = "range"
		return e
	}
	bucket := map[bool]string{true: "hour", false: "day"}[span == 24*time.Hour]
	bucket = cmp.Or(q.Get("bucket"), bucket)
	step := map[string]time.Duration{"hour": time.Hour, "day": 24 * time.Hour}[bucket]
	if step == 0 {
		e := gateway.Errorf(gateway.EInvalid, "bucket is hour or day.")
		e.Param = "bucket"
		return e
	}
	by := q.Get("by")
	if by != "" && by != "key" && by != "model" && by != "channel" {
		e := gateway.Errorf(gateway.EInvalid, "by is key, model or channel.")
		e.Param = "by"
		return e
	}
	stats, ok := h.Usage.(interface {
		Stats(ctx context.Context, q usage.StatsQuery) (usage.Stats, error)
	})
	if !ok {
		return gateway.Errorf(gateway.EUnavailable, "Usage statistics are not available here.")
	}
	if f, ok := h.Usage.(interface{ Flush(context.Context) }); ok {
		f.Flush(r.Context())
	}
	// The range ends with the current hour (or day), whole, and starts
	// with the bucket span ago falls in.
	now := time.Now().UTC()
	to := now.Truncate(step).Add(step)
	from := to.Add(-span)
	if span == step {
		from = now.Add(-span).Truncate(step) // the last 24 h by day: yesterday and today
	}
	out, err := stats.Stats(r.Context(), usage.StatsQuery{From: from, To: to, Bucket: step, By: by, KeyID: q.Get("key_id"), Model: q.Get("model"), Top: 8})
	if err != nil {
		return err
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, struct {
		Range    string    `json:"range"`
		Bucket   string    `json:"bucket"`
		From     time.Time `json:"from"`
		To       time.Time `json:"to"`
		Currency string    `json:"currency"`
		usage.Stats
	}{rng, bucket, from, to, st.Currency, out})
	return nil
}
