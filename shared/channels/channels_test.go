package channels

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/storage"
)

func newStore(t *testing.T) (*Store, storage.Records) {
	t.Helper()
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	records := sqlitetest.Open(t).Records()
	return New(records, box, 0), records
}

func channel(name string) gateway.Channel {
	return gateway.Channel{Name: name, BaseURL: "https://api.example.com", APIKeys: []gateway.Secret{"sk-one-0123456789", "sk-two-0123456789"},
		Models: []string{"qwen"}, Capabilities: []string{gateway.CapChat}, Priority: 1, Weight: 1, Enabled: true}
}

// TestStoreKeepsChannelsSealed: a channel round trips; its keys are
// stored sealed and bound to it; a stale update is a conflict.
func TestStoreKeepsChannelsSealed(t *testing.T) {
	ctx := context.Background()
	s, records := newStore(t)
	a, err := s.Create(ctx, channel("a"))
	if err != nil || !validID(a.ID) {
		t.Fatalf("create = %+v, %v", a, err)
	}
	b, _ := s.Create(ctx, channel("b"))
	got, version, err := s.Get(ctx, a.ID)
	if err != nil || got.Name != "a" || len(got.APIKeys) != 2 || got.APIKeys[1] != "sk-two-0123456789" {
		t.Fatalf("get = %+v, %v", got, err)
	}
	raw, _ := records.Get(ctx, partition, a.ID)
	if strings.Contains(string(raw.Value), "sk-one") || strings.Contains(string(raw.Value), "sk-two") {
		t.Fatalf("a key is stored in the clear: %s", raw.Value)
	}
	// A sealed key moved into another channel's record does not open.
	rawB, _ := records.Get(ctx, partition, b.ID)
	moved := strings.Replace(string(rawB.Value), `"api_keys":[`, `"api_keys":[`+sealedFirst(t, string(raw.Value))+`,`, 1)
	if !json.Valid([]byte(moved)) || moved == string(rawB.Value) {
		t.Fatalf("the moved record is not what the test means: %s", moved)
	}
	records.Put(ctx, storage.Item{PK: partition, SK: b.ID, Value: []byte(moved)}, storage.Cond{})
	if _, _, err := s.Get(ctx, b.ID); err == nil || !strings.Contains(err.Error(), "open key 0") {
		t.Fatalf("a key sealed for one channel opened in another: %v", err)
	}
	records.Put(ctx, rawB, storage.Cond{})

	got.Weight = 5
	if _, err := s.Update(ctx, got, version); err != nil {
		t.Fatal(err)
	}
	got.Weight = 7
	if _, err := s.Update(ctx, got, version); !gateway.IsConflict(err) {
		t.Fatalf("a stale update = %v, want a conflict", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 2 {
		t.Fatalf("list = %d, %v", len(list), err)
	}
	if m := Masked(got); strings.Contains(string(m.APIKeys[0]), "one-0123") {
		t.Fatalf("masked = %v", m.APIKeys)
	}
	if err := s.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a.ID, "ch_missing", "../x", ""} {
		if _, _, err := s.Get(ctx, id); !gateway.IsNotFound(err) {
			t.Fatalf("get %q = %v", id, err)
		}
	}
}

// sealedFirst returns the first sealed key of a stored channel, quoted.
func sealedFirst(t *testing.T, value string) string {
	i := strings.Index(value, `"api_keys":["`) + len(`"api_keys":[`)
	j := strings.Index(value[i+1:], `"`) + i + 2
	return value[i:j]
}

func TestValidate(t *testing.T) {
	for name, change := range map[string]func(*gateway.Channel){
		"no name":         func(c *gateway.Channel) { c.Name = " " },
		"a bad URL":       func(c *gateway.Channel) { c.BaseURL = "ftp://x" },
		"a model twice":   func(c *gateway.Channel) { c.Models = []string{"a", "a"} },
		"a capability":    func(c *gateway.Channel) { c.Capabilities = []string{"telepathy"} },
		"no capability":   func(c *gateway.Channel) { c.Capabilities = nil },
		"a heavy weight":  func(c *gateway.Channel) { c.Weight = 5000 },
		"a key with a LF": func(c *gateway.Channel) { c.APIKeys = []gateway.Secret{"a\nb"} },
	} {
		c := channel("x")
		change(&c)
		if err := c.Validate(); gateway.ErrorCode(err) != gateway.EInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestOrder: the highest priority group first, weights honoured within a
// group (over 20 000 draws with a fixed seed), what does not serve the
// model left out, a mapped name served.
func TestOrder(t *testing.T) {
	mk := func(id string, prio, weight int, enabled bool) gateway.Channel {
		c := channel(id)
		c.ID, c.Priority, c.Weight, c.Enabled = id, prio, weight, enabled
		return c
	}
	cands := []gateway.Channel{mk("ch_low", 0, 10, true), mk("ch_a", 5, 1, true), mk("ch_b", 5, 3, true),
		mk("ch_off", 9, 1, false), mk("ch_zero", 9, 0, true)}
	other := mk("ch_other", 9, 1, true)
	other.Models = []string{"deepseek"}
	mapped := mk("ch_mapped", 0, 1, true)
	mapped.Models, mapped.ModelMap = nil, map[string]string{"qwen": "Qwen/Qwen3-8B"}
	cands = append(cands, other, mapped)
	rnd := rand.New(rand.NewPCG(1, 2))
	first := map[string]int{}
	const draws = 20000
	for range draws {
		order := Order(cands, "qwen", gateway.CapChat, rnd)
		if len(order) != 4 || order[2].Priority != 0 || order[3].Priority != 0 || order[0].Priority != 5 || order[1].Priority != 5 {
			t.Fatalf("order = %v", ids(order))
		}
		first[order[0].ID]++
	}
	share := float64(first["ch_b"]) / draws
	if share < 0.73 || share > 0.77 {
		t.Fatalf("the weight-3 channel came first %.3f of the time, want about 0.75", share)
	}
	if got := mapped.UpstreamModel("qwen"); got != "Qwen/Qwen3-8B" {
		t.Fatalf("mapped = %s", got)
	}
	if len(Order(cands, "qwen", gateway.CapEmbeddings, rnd)) != 0 {
		t.Fatal("a chat channel was offered for embeddings")
	}
}

func ids(cs []gateway.Channel) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}
