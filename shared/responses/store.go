package responses

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Stored is a response the gateway keeps (store, the default): the
// Response itself, the input items of its request (each with an id), and
// the conversation up to and including it as chat messages, which a
// request naming it as previous_response_id continues.
type Stored struct {
	Response json.RawMessage   `json:"response"`
	Input    []json.RawMessage `json:"input"`
	History  []json.RawMessage `json:"history"`
}

// Store keeps responses on the Records role, per key: another key's
// response is not found. A response is one record, and its history, which
// grows with the conversation, is split over as many records as it needs,
// written before it and deleted after it, so that a response is never seen
// half there.
type Store struct {
	records storage.Records
	now     func() time.Time
}

// NewStore returns a Store on records.
func NewStore(records storage.Records) *Store { return &Store{records: records, now: time.Now} }

// Records layout: partition responsePK, sort key "<key id>#<response id>"
// for the head, and that and "#<n>" for the parts of its history.
const responsePK = "response"

// Keep is how long a stored response is kept (OpenAI keeps them 30 days).
const Keep = 30 * 24 * time.Hour

// partSize bounds the bytes of history in one record.
const partSize = 192 << 10

// head is the record of a response.
type head struct {
	Response json.RawMessage   `json:"response"`
	Input    []json.RawMessage `json:"input"`
	Parts    int               `json:"parts"`
}

func sk(keyID, id string) string { return keyID + "#" + id }

func notFound(id string) error {
	e := gateway.Errorf(gateway.ENotFound, "No response with ID %q was found.", id)
	e.Param = "response_id"
	return e
}

// Put keeps a response of key keyID.
func (s *Store) Put(ctx context.Context, keyID, id string, st Stored) error {
	expires := s.now().Add(Keep)
	var parts [][]json.RawMessage
	size := 0
	for _, m := range st.History {
		if len(parts) == 0 || size+len(m) > partSize && len(parts[len(parts)-1]) > 0 {
			parts = append(parts, nil)
			size = 0
		}
		parts[len(parts)-1] = append(parts[len(parts)-1], m)
		size += len(m)
	}
	for i, p := range parts {
		v, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if len(v) > storage.MaxValueSize {
			return gateway.Errorf(gateway.ETooLarge, "A message of the conversation is too large to keep (%d KB).", len(v)>>10)
		}
		if _, err := s.records.Put(ctx, storage.Item{PK: responsePK, SK: fmt.Sprintf("%s#%05d", sk(keyID, id), i), Value: v, ExpiresAt: expires}, storage.Cond{}); err != nil {
			return fmt.Errorf("store response history: %w", err)
		}
	}
	v, err := json.Marshal(head{Response: st.Response, Input: st.Input, Parts: len(parts)})
	if err != nil {
		return err
	}
	if len(v) > storage.MaxValueSize {
		return gateway.Errorf(gateway.ETooLarge, "The response is too large to keep (%d KB).", len(v)>>10)
	}
	if _, err := s.records.Put(ctx, storage.Item{PK: responsePK, SK: sk(keyID, id), Value: v, ExpiresAt: expires}, storage.Cond{}); err != nil {
		return fmt.Errorf("store response: %w", err)
	}
	return nil
}

// Get returns a response of key keyID, its history included when history
// is set.
func (s *Store) Get(ctx context.Context, keyID, id string, history bool) (Stored, error) {
	if !validID(id) {
		return Stored{}, notFound(id)
	}
	it, err := s.records.Get(ctx, responsePK, sk(keyID, id))
	if gateway.IsNotFound(err) {
		return Stored{}, notFound(id)
	}
	if err != nil {
		return Stored{}, err
	}
	var h head
	if err := json.Unmarshal(it.Value, &h); err != nil {
		return Stored{}, fmt.Errorf("decode response %s: %w", id, err)
	}
	st := Stored{Response: h.Response, Input: h.Input}
	if !history || h.Parts == 0 {
		return st, nil
	}
	q := storage.Query{Prefix: sk(keyID, id) + "#", Limit: storage.MaxLimit}
	got := 0
	for {
		page, err := s.records.Query(ctx, responsePK, q)
		if err != nil {
			return Stored{}, err
		}
		for _, p := range page.Items {
			var msgs []json.RawMessage
			if err := json.Unmarshal(p.Value, &msgs); err != nil {
				return Stored{}, fmt.Errorf("decode response %s history: %w", id, err)
			}
			st.History = append(st.History, msgs...)
			got++
		}
		if page.Cursor == "" {
			break
		}
		q.Cursor = page.Cursor
	}
	if got != h.Parts {
		// Expired or deleted under us: no history is better than a wrong one.
		return Stored{}, notFound(id)
	}
	return st, nil
}

// Delete removes a response of key keyID: ENotFound when there is none.
func (s *Store) Delete(ctx context.Context, keyID, id string) error {
	if !validID(id) {
		return notFound(id)
	}
	it, err := s.records.Get(ctx, responsePK, sk(keyID, id))
	if gateway.IsNotFound(err) {
		return notFound(id)
	}
	if err != nil {
		return err
	}
	var h head
	json.Unmarshal(it.Value, &h)
	if err := s.records.Delete(ctx, responsePK, sk(keyID, id)); err != nil {
		return err
	}
	for i := range h.Parts {
		if err := s.records.Delete(ctx, responsePK, fmt.Sprintf("%s#%05d", sk(keyID, id), i)); err != nil {
			return err
		}
	}
	return nil
}

// validID reports whether id can be a response's: "resp_" and up to 100
// letters and digits, so that no ID reaches into another's records.
func validID(id string) bool {
	body, ok := cutPrefix(id, "resp_")
	if !ok || body == "" || len(body) > 100 {
		return false
	}
	for _, r := range body {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return s, false
}

// WithIDs returns the input items each with an id, as input_items lists
// them: a message without one gets "msg_…".
func WithIDs(items []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(items))
	for i, raw := range items {
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			out[i] = raw
			continue
		}
		if _, ok := m["id"]; !ok {
			kind, _ := m["type"].(string)
			if kind == "" {
				kind, m["type"] = "message", "message"
			}
			m["id"] = NewID(prefixOf(kind))
			if kind == "message" {
				m["status"] = "completed"
			}
		}
		out[i] = mustJSON(m)
	}
	return out
}
