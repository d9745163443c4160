package responses

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Stored is a response the gateway keeps (store, the default): the
// Response itself, the input items of its request (each with an id), and
// the conversation as chat messages: History is what this response added
// (its input and its output) after the conversation of Previous.
type Stored struct {
	Response json.RawMessage   `json:"response"`
	Input    []json.RawMessage `json:"input"`
	Previous string            `json:"previous,omitempty"`
	History  []json.RawMessage `json:"history"`
}

// Store keeps responses on the Records role, per key: another key's
// response is not found.
//
// A response records only the messages it added to its conversation, and
// the ID of the response before it; every checkpointEvery-th response of
// a conversation records the whole conversation instead, so that reading
// one walks back at most that many responses, and what is stored grows
// about linearly with the conversation rather than with its square. A
// response's record is split over as many records as its bytes need,
// written parts first and the head last, so it is never seen half there.
type Store struct {
	records storage.Records
	now     func() time.Time
}

// NewStore returns a Store on records.
func NewStore(records storage.Records) *Store { return &Store{records: records, now: time.Now} }

// Records layout: partition responsePK, sort key "<key id>#<response id>"
// for the head, and that and "#<n>" for its parts.
const responsePK = "response"

// Keep is how long a stored response is kept (OpenAI keeps them 30 days).
const Keep = 30 * 24 * time.Hour

// partSize bounds the bytes of one part.
const partSize = 180 << 10 // 240 KB in base64, under storage.MaxValueSize

// checkpointEvery is how often a response records its whole conversation.
const checkpointEvery = 16

// maxWalk bounds the responses read to rebuild a conversation.
const maxWalk = 2 * checkpointEvery

// record is what a response's parts hold, joined.
type record struct {
	Response json.RawMessage   `json:"response"`
	Input    []json.RawMessage `json:"input"`
	Previous string            `json:"previous,omitempty"`
	Depth    int               `json:"depth"`
	Whole    bool              `json:"whole"` // History is the whole conversation
	History  []json.RawMessage `json:"history"`
}

// head is the record that names a response's parts.
type head struct {
	Parts int `json:"parts"`
}

func sk(keyID, id string) string { return keyID + "#" + id }

func partSK(keyID, id string, i int) string { return fmt.Sprintf("%s#%05d", sk(keyID, id), i) }

func notFound(id string) error {
	e := gateway.Errorf(gateway.ENotFound, "No response with ID %q was found.", id)
	e.Param = "response_id"
	return e
}

// Put keeps a response of key keyID. st.History holds what the response
// added; whole, when set, is the whole conversation up to and with it,
// which every checkpointEvery-th response keeps instead.
func (s *Store) Put(ctx context.Context, keyID, id string, st Stored, whole []json.RawMessage) error {
	rec := record{Response: st.Response, Input: st.Input, Previous: st.Previous, History: st.History}
	if st.Previous != "" {
		prev, err := s.read(ctx, keyID, st.Previous)
		if err != nil && !gateway.IsNotFound(err) {
			return err
		}
		rec.Depth = prev.Depth + 1
		if gateway.IsNotFound(err) || rec.Depth%checkpointEvery == 0 {
			// The conversation starts over here: the previous response is
			// gone (expired, deleted), or this is a checkpoint.
			rec.Previous, rec.Whole, rec.History = "", true, whole
		}
	} else {
		rec.Whole = true
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	expires := s.now().Add(Keep)
	n := 0
	for off := 0; off < len(data); off += partSize {
		part := data[off:min(off+partSize, len(data))]
		v, _ := json.Marshal(part) // base64: any bytes, cut anywhere
		if _, err := s.records.Put(ctx, storage.Item{PK: responsePK, SK: partSK(keyID, id, n), Value: v, ExpiresAt: expires}, storage.Cond{}); err != nil {
			return fmt.Errorf("store response: %w", err)
		}
		n++
	}
	h, _ := json.Marshal(head{Parts: n})
	if _, err := s.records.Put(ctx, storage.Item{PK: responsePK, SK: sk(keyID, id), Value: h, ExpiresAt: expires}, storage.Cond{}); err != nil {
		return fmt.Errorf("store response: %w", err)
	}
	return nil
}

// read reads one response's record.
func (s *Store) read(ctx context.Context, keyID, id string) (record, error) {
	if !validID(id) {
		return record{}, notFound(id)
	}
	it, err := s.records.Get(ctx, responsePK, sk(keyID, id))
	if gateway.IsNotFound(err) {
		return record{}, notFound(id)
	}
	if err != nil {
		return record{}, err
	}
	var h head
	if err := json.Unmarshal(it.Value, &h); err != nil {
		return record{}, fmt.Errorf("decode response %s: %w", id, err)
	}
	var data bytes.Buffer
	q := storage.Query{Prefix: sk(keyID, id) + "#", Limit: storage.MaxLimit}
	got := 0
	for {
		page, err := s.records.Query(ctx, responsePK, q)
		if err != nil {
			return record{}, err
		}
		for _, p := range page.Items {
			var part []byte
			if err := json.Unmarshal(p.Value, &part); err != nil {
				return record{}, fmt.Errorf("decode response %s: %w", id, err)
			}
			data.Write(part)
			got++
		}
		if page.Cursor == "" {
			break
		}
		q.Cursor = page.Cursor
	}
	var rec record
	if got != h.Parts || json.Unmarshal(data.Bytes(), &rec) != nil {
		// Expired or deleted under us: no response is better than a wrong one.
		return record{}, notFound(id)
	}
	return rec, nil
}

// Get returns a response of key keyID; with history, History is its whole
// conversation, up to and with it.
func (s *Store) Get(ctx context.Context, keyID, id string, history bool) (Stored, error) {
	rec, err := s.read(ctx, keyID, id)
	if err != nil {
		return Stored{}, err
	}
	st := Stored{Response: rec.Response, Input: rec.Input, Previous: rec.Previous}
	if !history {
		return st, nil
	}
	segments := [][]json.RawMessage{rec.History}
	for walked := 0; !rec.Whole; walked++ {
		prev := rec.Previous
		if walked == maxWalk {
			return Stored{}, gateway.Errorf(gateway.EInternal, "The conversation of response %s is too long to read back.", id)
		}
		if rec, err = s.read(ctx, keyID, prev); err != nil {
			if gateway.IsNotFound(err) {
				// A response the conversation went through is gone: what
				// remains is its history.
				break
			}
			return Stored{}, err
		}
		segments = append(segments, rec.History)
	}
	slices.Reverse(segments)
	for _, seg := range segments {
		st.History = append(st.History, seg...)
	}
	return st, nil
}

// Delete removes a response of key keyID: ENotFound when there is none.
// A later response of its conversation keeps the messages it recorded,
// not those of the deleted one.
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
		if err := s.records.Delete(ctx, responsePK, partSK(keyID, id, i)); err != nil {
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
