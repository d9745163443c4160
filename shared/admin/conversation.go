package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// Conversations reads the keys' conversations.
type Conversations interface {
	List(ctx context.Context, keyID string) ([]gateway.Conversation, error)
	Page(ctx context.Context, keyID, id, cursor string, limit, maxBytes int) (gateway.Conversation, []json.RawMessage, string, error)
}

// Usage reads the usage summaries.
type Usage interface {
	Summary(ctx context.Context, f gateway.UsageFilter) ([]gateway.UsageRow, error)
	ChannelSummary(ctx context.Context, from, to time.Time) ([]gateway.ChannelUsageRow, error)
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

// UsageSummary reports usage per day, key and model: ?from= and ?to= (YYYY-MM-DD,
// default the last 7 days), ?key_id= and ?model= to narrow it.
func (h *Handler) UsageSummary(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	to := time.Now().UTC()
	from := to.Add(-6 * 24 * time.Hour)
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := q.Get(name); v != "" {
			d, err := time.Parse(time.DateOnly, v)
			if err != nil {
				e := gateway.Errorf(gateway.EInvalid, "%s must be a day as YYYY-MM-DD.", name)
				e.Param = name
				return e
			}
			*dst = d
		}
	}
	if f, ok := h.Usage.(interface{ Flush(context.Context) }); ok {
		f.Flush(r.Context()) // batched records first, so the report is whole
	}
	rows, err := h.Usage.Summary(r.Context(), gateway.UsageFilter{From: from, To: to, KeyID: q.Get("key_id"), Model: q.Get("model")})
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
