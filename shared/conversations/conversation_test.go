package conversations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// TestPage reads a long conversation in pages, bounded by count and by
// bytes, every message once and in order.
func TestPage(t *testing.T) {
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := conversations.New(sqlitetest.Open(t).Records(), blobs)
	ctx := context.Background()
	var msgs []json.RawMessage
	for i := range 250 {
		msgs = append(msgs, json.RawMessage(fmt.Sprintf(`{"role":"user","content":"m%03d %s"}`, i, strings.Repeat("x", 1000))))
	}
	if err := s.Append(ctx, "k1", "long", msgs, 10); err != nil {
		t.Fatal(err)
	}
	read := func(limit, maxBytes int) (pages []int) {
		t.Helper()
		cursor, n := "", 0
		for {
			_, page, next, err := s.Page(ctx, "k1", "long", cursor, limit, maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page {
				if want := fmt.Sprintf(`"m%03d `, n); !strings.Contains(string(m), want) {
					t.Fatalf("message %d = %.30s, want %s…", n, m, want)
				}
				n++
			}
			pages = append(pages, len(page))
			if next == "" {
				break
			}
			cursor = next
		}
		if n != len(msgs) {
			t.Fatalf("read %d messages in pages %v, want %d", n, pages, len(msgs))
		}
		return pages
	}
	if got := read(100, 1<<20); fmt.Sprint(got) != "[100 100 50]" {
		t.Errorf("pages by count = %v, want [100 100 50]", got)
	}
	if got := read(100, 3100); len(got) != 84 || got[0] != 3 {
		t.Errorf("pages by bytes = %d pages starting %v, want 84 of 3", len(got), got[:1])
	}
	if got := read(100, 10); len(got) != 250 {
		t.Errorf("a page holds at least one message: %d pages, want 250", len(got))
	}
	if _, _, _, err := s.Page(ctx, "k1", "long", "x'; drop", 10, 1<<20); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Errorf("bad cursor: err = %v, want EInvalid", err)
	}
	if _, _, _, err := s.Page(ctx, "k2", "long", "", 10, 1<<20); !gateway.IsNotFound(err) {
		t.Errorf("another key's conversation: err = %v, want ENotFound", err)
	}
}

// TestHistoryLiveRangeOnly leaves a message past the conversation's end, as
// an append killed between its message writes and its count leaves it:
// History and Last read only the live range.
func TestHistoryLiveRangeOnly(t *testing.T) {
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	records := sqlitetest.Open(t).Records()
	s := conversations.New(records, blobs)
	ctx := context.Background()
	msgs := []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`), json.RawMessage(`{"role":"assistant","content":"hello"}`)}
	if err := s.Append(ctx, "k1", "c", msgs, 10); err != nil {
		t.Fatal(err)
	}
	orphan := storage.Item{PK: "msgs#k1#c", SK: "0000000007", Value: []byte(`{"m":{"role":"user","content":"orphan"}}`)}
	if _, err := records.Put(ctx, orphan, storage.Cond{}); err != nil {
		t.Fatal(err)
	}
	got, err := s.History(ctx, "k1", "c")
	if err != nil || len(got) != 2 {
		t.Fatalf("History = %d messages, %v; want the 2 appended", len(got), err)
	}
	n, last, err := s.Last(ctx, "k1", "c")
	if err != nil || n != 2 || !strings.Contains(string(last), "hello") {
		t.Fatalf("Last = %d %s, %v", n, last, err)
	}
	if n, last, err := s.Last(ctx, "k1", "none"); err != nil || n != 0 || last != nil {
		t.Fatalf("Last of no conversation = %d %s, %v", n, last, err)
	}
}

// TestByteCaps keeps a conversation within its byte bound: a message past
// MaxMessageBytes is kept as a note of its size, and the oldest messages
// go when the conversation would pass MaxBytes.
func TestByteCaps(t *testing.T) {
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := conversations.New(sqlitetest.Open(t).Records(), blobs)
	ctx := context.Background()
	big := func(role string, n int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"role":%q,"content":%q}`, role, strings.Repeat("x", n)))
	}
	if err := s.Append(ctx, "k", "huge", []json.RawMessage{big("user", conversations.MaxMessageBytes+1)}, 10); err != nil {
		t.Fatal(err)
	}
	got, _ := s.History(ctx, "k", "huge")
	if len(got) != 1 || len(got[0]) > 1000 || !strings.Contains(string(got[0]), "too large to keep") {
		t.Fatalf("an oversized message was kept as %d bytes", len(got[0]))
	}
	for i := range 8 {
		if err := s.Append(ctx, "k", "long", []json.RawMessage{big("user", 3<<20), big("assistant", 10)}, 10); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	got, _ = s.History(ctx, "k", "long")
	total := 0
	for _, m := range got {
		total += len(m)
	}
	if total > conversations.MaxBytes || len(got) == 16 {
		t.Fatalf("the conversation holds %d messages, %d bytes; want at most %d bytes, oldest dropped", len(got), total, conversations.MaxBytes)
	}
}

// TestOneAppendWithinBounds appends more than a conversation may hold in
// one go: the bounds hold all the same.
func TestOneAppendWithinBounds(t *testing.T) {
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := conversations.New(sqlitetest.Open(t).Records(), blobs)
	ctx := context.Background()
	var many []json.RawMessage
	for i := range conversations.MaxMessages + 200 {
		many = append(many, json.RawMessage(fmt.Sprintf(`{"role":"user","content":"m%d"}`, i)))
	}
	if err := s.Append(ctx, "k", "many", many, 10); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.History(ctx, "k", "many"); len(got) != conversations.MaxMessages || !strings.Contains(string(got[len(got)-1]), fmt.Sprintf("m%d", len(many)-1)) {
		t.Fatalf("one append of %d kept %d messages, want the last %d", len(many), len(got), conversations.MaxMessages)
	}
	var heavy []json.RawMessage
	for range 7 {
		heavy = append(heavy, json.RawMessage(fmt.Sprintf(`{"role":"user","content":%q}`, strings.Repeat("y", conversations.MaxMessageBytes-100))))
	}
	if err := s.Append(ctx, "k", "heavy", heavy, 10); err != nil {
		t.Fatal(err)
	}
	got, _ := s.History(ctx, "k", "heavy")
	total := 0
	for _, m := range got {
		total += len(m)
	}
	if total > conversations.MaxBytes || len(got) == 0 {
		t.Fatalf("one append of %d bytes kept %d bytes in %d messages, want at most %d", 7*conversations.MaxMessageBytes, total, len(got), conversations.MaxBytes)
	}
}

// TestHalfWrittenExchange leaves an exchange as an append killed between
// its messages does (the count moved, one message written): the history
// replays whole exchanges only, before and after it.
func TestHalfWrittenExchange(t *testing.T) {
	blobs, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	records := sqlitetest.Open(t).Records()
	s := conversations.New(records, blobs)
	ctx := context.Background()
	exchange := func(q, a string) []json.RawMessage {
		return []json.RawMessage{json.RawMessage(`{"role":"user","content":"` + q + `"}`), json.RawMessage(`{"role":"assistant","content":"` + a + `"}`)}
	}
	if err := s.Append(ctx, "k", "c", exchange("q1", "a1"), 10); err != nil {
		t.Fatal(err)
	}
	// The killed append: the count moves by two, one message is written.
	it, err := records.Get(ctx, "conv#k", "c")
	if err != nil {
		t.Fatal(err)
	}
	var meta gateway.Conversation
	json.Unmarshal(it.Value, &meta)
	meta.Next += 2
	meta.Sizes = append(meta.Sizes, 10, 10)
	value, _ := json.Marshal(meta)
	if _, err := records.Put(ctx, storage.Item{PK: "conv#k", SK: "c", Value: value}, storage.Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := records.Put(ctx, storage.Item{PK: "msgs#k#c", SK: "0000000002", Value: []byte(`{"m":{"role":"user","content":"q2"}}`)}, storage.Cond{}); err != nil {
		t.Fatal(err)
	}
	show := func() string {
		got, err := s.History(ctx, "k", "c")
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for _, m := range got {
			var v struct{ Content string }
			json.Unmarshal(m, &v)
			parts = append(parts, v.Content)
		}
		return strings.Join(parts, " ")
	}
	if got := show(); got != "q1 a1" {
		t.Fatalf("history after a half-written exchange = %q, want only the whole one", got)
	}
	if n, last, _ := s.Last(ctx, "k", "c"); last != nil {
		t.Fatalf("Last = %d %s, want no last message of a broken exchange", n, last)
	}
	if err := s.Append(ctx, "k", "c", exchange("q3", "a3"), 10); err != nil {
		t.Fatal(err)
	}
	if got := show(); got != "q1 a1 q3 a3" {
		t.Fatalf("history = %q, want the whole exchanges around the broken one", got)
	}
}
