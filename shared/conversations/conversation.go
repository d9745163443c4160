// Package conversations stores each key's conversations on the Records role
// (large messages, such as ones with inline images, in the Blobs role), so
// that stateless clients get server-side memory and the admin can read what
// was said.
//
// Layout: a conversation's summary is the item ("conv#"+key, id); its
// messages are the items ("msgs#"+key+"#"+id, <10-digit sequence>), each
// one message as the client or the upstream sent it.
package conversations

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Limits.
const (
	// MaxMessages bounds the messages kept per conversation, and MaxBytes
	// their bytes; older ones are dropped as new ones arrive. A key keeps
	// at most its max_conversations conversations, so at most that many
	// times MaxBytes.
	MaxMessages = 500
	MaxBytes    = 16 << 20
	// MaxMessageBytes bounds one message kept: a larger one is kept as a
	// note of its size.
	MaxMessageBytes = 4 << 20
	// inlineLimit is the largest message kept in its record; larger ones
	// go to a blob.
	inlineLimit = 64 << 10
	maxIDLen    = 128
)

// kept returns m as it is kept: itself, or, past MaxMessageBytes, a note of
// its role and size (a tool result keeps its call's ID, so that the
// exchange stays whole).
func kept(m json.RawMessage) json.RawMessage {
	if len(m) <= MaxMessageBytes {
		return m
	}
	var head struct {
		Role       string `json:"role"`
		ToolCallID string `json:"tool_call_id,omitempty"`
	}
	json.Unmarshal(m, &head)
	note, _ := json.Marshal(map[string]any{"role": head.Role, "tool_call_id": head.ToolCallID,
		"content": fmt.Sprintf("[A message of %d bytes was too large to keep.]", len(m))})
	if head.ToolCallID == "" {
		note, _ = json.Marshal(map[string]any{"role": head.Role,
			"content": fmt.Sprintf("[A message of %d bytes was too large to keep.]", len(m))})
	}
	return note
}

// Store keeps conversations.
type Store struct {
	records storage.Records
	blobs   storage.Blobs
	now     func() time.Time
}

// New returns a Store on records and blobs.
func New(records storage.Records, blobs storage.Blobs) *Store {
	return &Store{records: records, blobs: blobs, now: time.Now}
}

// CheckID returns EInvalid unless id can name a conversation: 1 to 128
// letters, digits, '-', '_', '.' or ':'.
func CheckID(id string) error {
	ok := id != "" && len(id) <= maxIDLen
	for _, c := range id {
		ok = ok && (c == '-' || c == '_' || c == '.' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
	}
	if !ok {
		e := gateway.Errorf(gateway.EInvalid, "A conversation ID is 1 to %d letters, digits, '-', '_', '.' or ':'.", maxIDLen)
		e.Param = "conversation_id"
		return e
	}
	return nil
}

func metaPK(keyID string) string    { return "conv#" + keyID }
func msgPK(keyID, id string) string { return "msgs#" + keyID + "#" + id }
func seqSK(n int) string            { return fmt.Sprintf("%010d", n) }
func blobKey(keyID, id, sk string) string {
	return "conversations/" + keyID + "/" + id + "/" + sk + ".json"
}

func notFound(id string) error {
	return gateway.Errorf(gateway.ENotFound, "No conversation with ID %q exists.", id)
}

// stored is the record value of a message: inline, or a pointer to a blob.
type stored struct {
	Message json.RawMessage `json:"m,omitempty"`
	Blob    string          `json:"b,omitempty"`
	// End marks the last message of an exchange (one Append): a history is
	// replayed in whole exchanges, so that one an append killed midway
	// left half written is never sent.
	End bool `json:"e,omitempty"`
}

func (s *Store) meta(ctx context.Context, keyID, id string) (gateway.Conversation, int64, error) {
	it, err := s.records.Get(ctx, metaPK(keyID), id)
	if err != nil {
		return gateway.Conversation{}, 0, err
	}
	var c gateway.Conversation
	if err := json.Unmarshal(it.Value, &c); err != nil {
		return gateway.Conversation{}, 0, fmt.Errorf("decode conversation %s: %w", id, err)
	}
	return c, it.Version, nil
}

// History returns the stored messages of a conversation, oldest first; none
// for a conversation that does not exist yet. Only its live range is read:
// messages a crashed append left past it, or a trim before it, are not
// part of it.
func (s *Store) History(ctx context.Context, keyID, id string) ([]json.RawMessage, error) {
	c, _, err := s.meta(ctx, keyID, id)
	if gateway.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read conversation %s: %w", id, err)
	}
	var out, group []json.RawMessage
	expect := c.First
	q := storage.Query{Start: seqSK(c.First), End: seqSK(c.Next)}
	for it, err := range storage.QueryAll(ctx, s.records, msgPK(keyID, id), q) {
		if err != nil {
			return nil, fmt.Errorf("read conversation %s: %w", id, err)
		}
		n, _ := strconv.Atoi(it.SK)
		var st stored
		if err := json.Unmarshal(it.Value, &st); err != nil {
			return nil, fmt.Errorf("decode message: %w", err)
		}
		m, err := s.message(ctx, it.Value)
		if err != nil {
			return nil, err
		}
		if !c.Marked || n < c.Whole {
			out = append(out, m) // written before exchanges were marked
			expect = n + 1
			continue
		}
		if n != expect {
			group = group[:0] // a message missing: that exchange is not whole
		}
		expect = n + 1
		group = append(group, m)
		if st.End {
			out = append(out, group...)
			group = group[:0]
		}
	}
	return out, nil
}

// Last returns how many messages a conversation holds and the last of
// them (0 and nil for a conversation that does not exist yet; nil when an
// append was killed before writing it), reading no more: what a client that sends its whole history needs to know which of
// its messages are new.
func (s *Store) Last(ctx context.Context, keyID, id string) (int, json.RawMessage, error) {
	c, _, err := s.meta(ctx, keyID, id)
	if gateway.IsNotFound(err) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read conversation %s: %w", id, err)
	}
	if c.Next <= c.First {
		return 0, nil, nil
	}
	it, err := s.records.Get(ctx, msgPK(keyID, id), seqSK(c.Next-1))
	if gateway.IsNotFound(err) {
		return c.Next - c.First, nil, nil // an append killed midway: no last message
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read conversation %s: %w", id, err)
	}
	var st stored
	json.Unmarshal(it.Value, &st)
	if c.Marked && c.Next-1 >= c.Whole && !st.End {
		return c.Next - c.First, nil, nil // the last exchange is not whole
	}
	m, err := s.message(ctx, it.Value)
	if err != nil {
		return 0, nil, err
	}
	return c.Next - c.First, m, nil
}

func (s *Store) message(ctx context.Context, value []byte) (json.RawMessage, error) {
	var st stored
	if err := json.Unmarshal(value, &st); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	if st.Blob == "" {
		return st.Message, nil
	}
	rc, _, err := s.blobs.Get(ctx, st.Blob)
	if err != nil {
		return nil, fmt.Errorf("read message %s: %w", st.Blob, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read message %s: %w", st.Blob, err)
	}
	return data, nil
}

// Append adds messages to a conversation of keyID, creating it when new;
// a key keeps at most keep conversations, the least recently used going
// first.
func (s *Store) Append(ctx context.Context, keyID, id string, msgs []json.RawMessage, keep int) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if len(msgs) == 0 {
		return nil
	}
	// Reserve the sequence numbers with a conditional write, so that two
	// exchanges on one conversation never write the same slot.
	var c gateway.Conversation
	created := false
	for {
		now := s.now().UTC()
		cur, version, err := s.meta(ctx, keyID, id)
		switch {
		case gateway.IsNotFound(err):
			c = gateway.Conversation{ID: id, KeyID: keyID, Title: title(msgs), CreatedAt: now}
		case err != nil:
			return fmt.Errorf("append to conversation %s: %w", id, err)
		default:
			c = cur
		}
		start := c.Next
		if !c.Marked {
			c.Marked, c.Whole = true, start
		}
		c.Next += len(msgs)
		c.UpdatedAt = now
		// Sizes of the live messages (older records have none: zero).
		sizes := append(make([]int, max(0, start-c.First-len(c.Sizes))), c.Sizes...)
		for i := range msgs {
			msgs[i] = kept(msgs[i])
			sizes = append(sizes, len(msgs[i]))
		}
		c.Bytes = 0
		for _, n := range sizes {
			c.Bytes += n
		}
		// The oldest go first, new ones too when they alone pass a bound,
		// so that it holds whatever one append brings; the last stays.
		for c.Next-c.First > 1 && (c.Next-c.First > MaxMessages || c.Bytes > MaxBytes) {
			c.Bytes -= sizes[0]
			sizes = sizes[1:]
			c.First++
		}
		c.Sizes = sizes
		c.Messages = c.Next - c.First
		value, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("encode conversation: %w", err)
		}
		cond := storage.Cond{IfVersion: version}
		if version == 0 {
			cond = storage.Cond{IfAbsent: true}
		}
		_, err = s.records.Put(ctx, storage.Item{PK: metaPK(keyID), SK: id, Value: value}, cond)
		if gateway.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("append to conversation %s: %w", id, err)
		}
		created = version == 0
		for i, m := range msgs {
			if start+i < c.First {
				continue // dropped already
			}
			if err := s.putMessage(ctx, keyID, id, start+i, m, i == len(msgs)-1); err != nil {
				return err
			}
		}
		for n := cur.First; n < min(c.First, start); n++ {
			s.deleteMessage(ctx, keyID, id, n)
		}
		break
	}
	if created {
		return s.evict(ctx, keyID, id, keep)
	}
	return nil
}

func (s *Store) putMessage(ctx context.Context, keyID, id string, n int, m json.RawMessage, end bool) error {
	sk := seqSK(n)
	st := stored{Message: m, End: end}
	if len(m) > inlineLimit {
		st = stored{Blob: blobKey(keyID, id, sk), End: end}
		if err := s.blobs.Put(ctx, st.Blob, bytes.NewReader(m), "application/json"); err != nil {
			return fmt.Errorf("store message %d of %s: %w", n, id, err)
		}
	}
	value, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode message: %w", err)
	}
	if _, err := s.records.Put(ctx, storage.Item{PK: msgPK(keyID, id), SK: sk, Value: value}, storage.Cond{}); err != nil {
		return fmt.Errorf("store message %d of %s: %w", n, id, err)
	}
	return nil
}

// deleteMessage removes one message and its blob, if any. Failures leave
// an unreachable item behind, which a later delete of the conversation
// removes.
func (s *Store) deleteMessage(ctx context.Context, keyID, id string, n int) {
	sk := seqSK(n)
	if it, err := s.records.Get(ctx, msgPK(keyID, id), sk); err == nil {
		var st stored
		if json.Unmarshal(it.Value, &st) == nil && st.Blob != "" {
			s.blobs.Delete(ctx, st.Blob)
		}
	}
	s.records.Delete(ctx, msgPK(keyID, id), sk)
}

// evict deletes the least recently used conversations of keyID beyond keep,
// never the one just created.
func (s *Store) evict(ctx context.Context, keyID, current string, keep int) error {
	all, err := s.List(ctx, keyID)
	if err != nil {
		return err
	}
	for i := len(all) - 1; i >= 0 && len(all) > keep; i-- {
		if all[i].ID == current {
			continue
		}
		if err := s.Delete(ctx, keyID, all[i].ID); err != nil && !gateway.IsNotFound(err) {
			return err
		}
		all = slices.Delete(all, i, i+1)
	}
	return nil
}

// List returns the conversations of keyID, most recently used first.
func (s *Store) List(ctx context.Context, keyID string) ([]gateway.Conversation, error) {
	var out []gateway.Conversation
	for it, err := range storage.QueryAll(ctx, s.records, metaPK(keyID), storage.Query{}) {
		if err != nil {
			return nil, fmt.Errorf("list conversations: %w", err)
		}
		var c gateway.Conversation
		if err := json.Unmarshal(it.Value, &c); err != nil {
			return nil, fmt.Errorf("decode conversation %s: %w", it.SK, err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b gateway.Conversation) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return out, nil
}

// Get returns a conversation of keyID with its messages, or ENotFound.
func (s *Store) Get(ctx context.Context, keyID, id string) (gateway.Conversation, []json.RawMessage, error) {
	if CheckID(id) != nil {
		return gateway.Conversation{}, nil, notFound(id)
	}
	c, _, err := s.meta(ctx, keyID, id)
	if gateway.IsNotFound(err) {
		return gateway.Conversation{}, nil, notFound(id)
	}
	if err != nil {
		return gateway.Conversation{}, nil, fmt.Errorf("read conversation %s: %w", id, err)
	}
	msgs, err := s.History(ctx, keyID, id)
	if err != nil {
		return gateway.Conversation{}, nil, err
	}
	return c, msgs, nil
}

// Page returns a conversation of keyID with one page of its messages,
// oldest first: from cursor ("" for the first message), at most limit
// messages and, past the first, at most maxBytes of them. next is the
// cursor of the following page, "" after the last. An unknown conversation
// or a cursor it did not return is ENotFound or EInvalid.
func (s *Store) Page(ctx context.Context, keyID, id, cursor string, limit, maxBytes int) (c gateway.Conversation, msgs []json.RawMessage, next string, err error) {
	if CheckID(id) != nil {
		return gateway.Conversation{}, nil, "", notFound(id)
	}
	if cursor != "" && (len(cursor) != len(seqSK(0)) || strings.Trim(cursor, "0123456789") != "") {
		e := gateway.Errorf(gateway.EInvalid, "The cursor %q is not one this conversation returned.", cursor)
		e.Param = "cursor"
		return gateway.Conversation{}, nil, "", e
	}
	c, _, err = s.meta(ctx, keyID, id)
	if gateway.IsNotFound(err) {
		return gateway.Conversation{}, nil, "", notFound(id)
	}
	if err != nil {
		return gateway.Conversation{}, nil, "", fmt.Errorf("read conversation %s: %w", id, err)
	}
	size := 0
	msgs = []json.RawMessage{}
	for it, err := range storage.QueryAll(ctx, s.records, msgPK(keyID, id), storage.Query{Start: cursor, Limit: min(limit+1, storage.MaxLimit)}) {
		if err != nil {
			return gateway.Conversation{}, nil, "", fmt.Errorf("read conversation %s: %w", id, err)
		}
		if len(msgs) == limit {
			return c, msgs, it.SK, nil
		}
		m, err := s.message(ctx, it.Value)
		if err != nil {
			return gateway.Conversation{}, nil, "", err
		}
		if len(msgs) > 0 && size+len(m) > maxBytes {
			return c, msgs, it.SK, nil
		}
		size += len(m)
		msgs = append(msgs, m)
	}
	return c, msgs, "", nil
}

// Delete removes a conversation of keyID and its messages, or returns
// ENotFound.
func (s *Store) Delete(ctx context.Context, keyID, id string) error {
	if CheckID(id) != nil {
		return notFound(id)
	}
	if _, _, err := s.meta(ctx, keyID, id); gateway.IsNotFound(err) {
		return notFound(id)
	} else if err != nil {
		return fmt.Errorf("delete conversation %s: %w", id, err)
	}
	for {
		page, err := s.records.Query(ctx, msgPK(keyID, id), storage.Query{Limit: storage.MaxLimit})
		if err != nil {
			return fmt.Errorf("delete conversation %s: %w", id, err)
		}
		for _, it := range page.Items {
			var st stored
			if json.Unmarshal(it.Value, &st) == nil && st.Blob != "" {
				if err := s.blobs.Delete(ctx, st.Blob); err != nil {
					return fmt.Errorf("delete conversation %s: %w", id, err)
				}
			}
			if err := s.records.Delete(ctx, it.PK, it.SK); err != nil {
				return fmt.Errorf("delete conversation %s: %w", id, err)
			}
		}
		if page.Cursor == "" {
			break
		}
	}
	if err := s.records.Delete(ctx, metaPK(keyID), id); err != nil {
		return fmt.Errorf("delete conversation %s: %w", id, err)
	}
	return nil
}

// title is the start of the first user message's text.
func title(msgs []json.RawMessage) string {
	for _, raw := range msgs {
		var m struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		}
		if json.Unmarshal(raw, &m) != nil || m.Role != "user" {
			continue
		}
		t := strings.Join(strings.Fields(Text(m.Content)), " ")
		if utf8.RuneCountInString(t) > 60 {
			t = string([]rune(t)[:60]) + "…"
		}
		return t
	}
	return ""
}

// Text returns the text of a message content: the string, or the text
// parts of an array.
func Text(content json.RawMessage) string {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	json.Unmarshal(content, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
