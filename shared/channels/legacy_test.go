package channels_test

import (
	"context"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/channels"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
)

// TestLegacyBaseURLChangeLeavesThePool: a settings PUT that moves ai to a
// new address (with a new key, or none) takes only that key there; the
// pool's other saved keys stay behind, never sent to the new address.
func TestLegacyBaseURLChangeLeavesThePool(t *testing.T) {
	ctx := context.Background()
	db := sqlitetest.Open(t)
	box, _ := seal.New(make([]byte, 32))
	cs := channels.New(db.Records(), box, 0)
	ss := settings.New(db.KV(), box, 0)
	ss.Channels(cs)
	st := gateway.DefaultSettings()
	st.PublicModel = "bot"
	st.AI = gateway.Upstream{BaseURL: "https://main.example.com/v1", APIKey: "sk-main-0000000000000000", Model: "m"}
	if err := ss.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	// The admin adds two more keys to ch_main through the channel API.
	c, v, err := cs.Get(ctx, channels.MainID)
	if err != nil {
		t.Fatal(err)
	}
	c.APIKeys = append(c.APIKeys, "sk-pool-1111111111111111", "sk-pool-2222222222222222")
	if _, err := cs.Update(ctx, c, v); err != nil {
		t.Fatal(err)
	}
	for _, patch := range []string{
		`{"ai":{"base_url":"https://attacker.example.net/v1","api_key":"sk-new-3333333333333333"}}`,
		`{"ai":{"base_url":"https://other.example.org/v1","api_key":""}}`,
	} {
		cur, err := ss.Get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		next, err := settings.Merge(cur, []byte(patch))
		if err != nil {
			t.Fatalf("merge %s: %v", patch, err)
		}
		if err := ss.Save(ctx, next); err != nil {
			t.Fatalf("save %s: %v", patch, err)
		}
		c, _, _ = cs.Get(ctx, channels.MainID)
		if c.BaseURL == "https://main.example.com/v1" || len(c.APIKeys) > 1 {
			t.Fatalf("after %s: base_url=%s keys=%v", patch, c.BaseURL, c.APIKeys)
		}
		for _, k := range c.APIKeys {
			if k == "sk-pool-1111111111111111" || k == "sk-pool-2222222222222222" {
				t.Errorf("saved key %s now goes to %s", k, c.BaseURL)
			}
		}
	}
}

// TestLegacyStaleViewConflicts: instance A's channel list is cached; B
// moves ch_main to a new address through the channel API; a settings PUT
// on A that rotates only ai.api_key neither puts the old address back nor
// sends the key meant for it to the new one: 409, nothing changed.
func TestLegacyStaleViewConflicts(t *testing.T) {
	ctx := context.Background()
	db := sqlitetest.Open(t)
	box, _ := seal.New(make([]byte, 32))
	csA := channels.New(db.Records(), box, time.Minute)
	ssA := settings.New(db.KV(), box, 0)
	ssA.Channels(csA)
	csB := channels.New(db.Records(), box, time.Minute)
	st := gateway.DefaultSettings()
	st.PublicModel = "bot"
	st.AI = gateway.Upstream{BaseURL: "https://old.example.com/v1", APIKey: "sk-main-0000000000000000", Model: "m"}
	if err := ssA.Save(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := ssA.Get(ctx); err != nil { // A caches the list
		t.Fatal(err)
	}
	c, v, _ := csB.Get(ctx, channels.MainID)
	c.BaseURL = "https://new.example.com/v1"
	c.APIKeys = []gateway.Secret{"sk-newprov-111111111111", "sk-newprov-222222222222"}
	if _, err := csB.Update(ctx, c, v); err != nil {
		t.Fatal(err)
	}
	cur, _ := ssA.Get(ctx)
	next, err := settings.Merge(cur, []byte(`{"ai":{"api_key":"sk-rotated-99999999999999"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := ssA.Save(ctx, next); !gateway.IsConflict(err) {
		t.Fatalf("a key rotated on a stale view = %v, want a conflict", err)
	}
	c, _, _ = csB.Get(ctx, channels.MainID)
	if c.BaseURL != "https://new.example.com/v1" || len(c.APIKeys) != 2 || c.APIKeys[0] != "sk-newprov-111111111111" {
		t.Fatalf("ch_main now: %s %v", c.BaseURL, c.APIKeys)
	}
}
