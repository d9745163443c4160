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

// TestStoreKeepsLongConversations keeps a response whose history is many
// times a record's size, reads it back whole, per key, and deletes it
// with every part.
func TestStoreKeepsLongConversations(t *testing.T) {
	ctx := context.Background()
	records := sqlitetest.Open(t).Records()
	s := NewStore(records)
	var history []json.RawMessage
	for i := range 40 {
		history = append(history, mustJSON(map[string]string{"role": "user", "content": fmt.Sprintf("%03d %s", i, strings.Repeat("x", 30<<10))}))
	}
	st := Stored{Response: json.RawMessage(`{"id":"resp_a1"}`), Input: []json.RawMessage{json.RawMessage(`{"id":"msg_1"}`)}, History: history}
	if err := s.Put(ctx, "key_a", "resp_a1", st); err != nil {
		t.Fatal(err)
	}
	page, _ := records.Query(ctx, responsePK, storage.Query{Prefix: "key_a#resp_a1#", Limit: 1000})
	if len(page.Items) < 6 {
		t.Fatalf("a 1.2 MB history in %d records", len(page.Items))
	}
	got, err := s.Get(ctx, "key_a", "resp_a1", true)
	if err != nil || len(got.History) != 40 || !strings.HasPrefix(string(got.History[39]), `{"content":"039 `) || string(got.Response) != `{"id":"resp_a1"}` {
		t.Fatalf("get = %d messages, %v", len(got.History), err)
	}
	for _, c := range []struct{ key, id string }{{"key_b", "resp_a1"}, {"key_a", "resp_a2"}, {"key_a", "resp_a1#00000"}, {"key_a", "../resp"}, {"key_a", ""}} {
		if _, err := s.Get(ctx, c.key, c.id, true); !gateway.IsNotFound(err) {
			t.Fatalf("get %s of %s = %v, want not found", c.id, c.key, err)
		}
		if err := s.Delete(ctx, c.key, c.id); !gateway.IsNotFound(err) {
			t.Fatalf("delete %s of %s = %v, want not found", c.id, c.key, err)
		}
	}
	if err := s.Delete(ctx, "key_a", "resp_a1"); err != nil {
		t.Fatal(err)
	}
	page, _ = records.Query(ctx, responsePK, storage.Query{Limit: 1000})
	if len(page.Items) != 0 {
		t.Fatalf("%d records left after delete", len(page.Items))
	}
	// Kept 30 days, then gone.
	s.now = func() time.Time { return time.Now().Add(-Keep - time.Hour) }
	if err := s.Put(ctx, "key_a", "resp_old", st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "key_a", "resp_old", false); !gateway.IsNotFound(err) {
		t.Fatalf("an expired response = %v", err)
	}
}
