package responses

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

func msg(i, size int) json.RawMessage {
	return mustJSON(map[string]string{"role": "user", "content": fmt.Sprintf("%03d %s", i, strings.Repeat("x", size))})
}

// TestStoreKeepsLongConversations keeps a conversation of 40 responses,
// one of them holding a 300 KB message, reads every one back whole, keeps
// storage about linear in the conversation, and isolates keys.
func TestStoreKeepsLongConversations(t *testing.T) {
	ctx := context.Background()
	records := sqlitetest.Open(t).Records()
	s := NewStore(records)
	var whole []json.RawMessage
	prev := ""
	for i := range 40 {
		size := 8 << 10
		if i == 5 {
			size = 300 << 10 // more than a record holds
		}
		added := []json.RawMessage{msg(i, size)}
		whole = append(whole, added...)
		id := fmt.Sprintf("resp_t%02d", i)
		st := Stored{Response: json.RawMessage(`{"id":"` + id + `"}`), Previous: prev, History: added}
		if err := s.Put(ctx, "key_a", id, st, whole); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		got, err := s.Get(ctx, "key_a", id, true)
		if err != nil || len(got.History) != i+1 || !strings.HasPrefix(string(got.History[i]), fmt.Sprintf(`{"content":"%03d `, i)) ||
			!strings.HasPrefix(string(got.History[0]), `{"content":"000 `) {
			t.Fatalf("get %d = %d messages, %v", i, len(got.History), err)
		}
		prev = id
	}
	page, _ := records.Query(ctx, responsePK, storage.Query{Limit: 1000})
	total := 0
	for _, it := range page.Items {
		total += len(it.Value)
	}
	// 40 responses of 8 KB and one of 300 KB: the whole conversation is
	// about 0.6 MB; checkpoints every 16 keep a few copies of it.
	if total > 4<<20 {
		t.Fatalf("a 0.6 MB conversation took %d KB to store", total>>10)
	}
	t.Logf("a 40-turn conversation of 0.6 MB: %d records, %d KB stored", len(page.Items), total>>10)
	for _, c := range []struct{ key, id string }{{"key_b", "resp_t00"}, {"key_a", "resp_t99"}, {"key_a", "resp_t00#00000"}, {"key_a", "../resp"}, {"key_a", ""}} {
		if _, err := s.Get(ctx, c.key, c.id, true); !gateway.IsNotFound(err) {
			t.Fatalf("get %s of %s = %v, want not found", c.id, c.key, err)
		}
		if err := s.Delete(ctx, c.key, c.id); !gateway.IsNotFound(err) {
			t.Fatalf("delete %s of %s = %v, want not found", c.id, c.key, err)
		}
	}
	for i := range 40 {
		if err := s.Delete(ctx, "key_a", fmt.Sprintf("resp_t%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if page, _ = records.Query(ctx, responsePK, storage.Query{Limit: 1000}); len(page.Items) != 0 {
		t.Fatalf("%d records left after deleting every response", len(page.Items))
	}
	// Kept 30 days, then gone.
	s.now = func() time.Time { return time.Now().Add(-Keep - time.Hour) }
	if err := s.Put(ctx, "key_a", "resp_old", Stored{Response: json.RawMessage(`{}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "key_a", "resp_old", false); !gateway.IsNotFound(err) {
		t.Fatalf("an expired response = %v", err)
	}
}
