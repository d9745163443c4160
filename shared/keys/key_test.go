package keys_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/sqlstore"
)

func open(t *testing.T) *sqlstore.Records { return sqlitetest.Open(t).Records() }

func TestLifecycle(t *testing.T) {
	records := open(t)
	ctx := context.Background()
	admin := keys.New(records, time.Hour) // the instance that revokes
	chat := keys.New(records, 0)          // another instance, no cache
	k, secret, err := admin.Create(ctx, "bot", gateway.KeyLimits{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "sk-") || len(secret) != 46 || !strings.HasPrefix(secret, strings.TrimSuffix(k.Hint, "…")) {
		t.Fatalf("secret %q, hint %q", secret, k.Hint)
	}
	got, err := chat.Authenticate(ctx, secret)
	if err != nil || got.ID != k.ID {
		t.Fatalf("Authenticate = %+v, %v", got, err)
	}
	if _, err := admin.Authenticate(ctx, secret); err != nil { // fills admin's cache
		t.Fatal(err)
	}
	list, err := admin.List(ctx)
	if err != nil || len(list) != 1 || list[0].LastUsedAt.IsZero() {
		t.Fatalf("List = %+v, %v; want one key with a last-used time", list, err)
	}
	for _, bad := range []string{"", "sk-", secret[:45] + "!", "Bearer " + secret, strings.ToUpper(secret)} {
		if _, err := chat.Authenticate(ctx, bad); gateway.ErrorCode(err) != gateway.EUnauthorized {
			t.Errorf("Authenticate(%q) err = %v, want unauthorized", bad, err)
		}
	}
	if _, err := admin.Revoke(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*keys.Service{"revoking instance (cached)": admin, "other instance": chat} {
		if _, err := s.Authenticate(ctx, secret); gateway.ErrorCode(err) != gateway.EUnauthorized {
			t.Errorf("%s: revoked key err = %v, want unauthorized", name, err)
		}
	}
	if _, err := admin.Revoke(ctx, "key_unknown"); gateway.ErrorCode(err) != gateway.ENotFound {
		t.Fatalf("revoke unknown: %v", err)
	}
	if _, _, err := admin.Create(ctx, "  ", gateway.KeyLimits{}); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("blank name: %v", err)
	}
}

// TestRevocationUnderLoad revokes keys while lookups of them run: once
// Revoke returns, the instance that revoked refuses the key, always (a
// lookup that read the key just before the revocation must not cache it
// after).
func TestRevocationUnderLoad(t *testing.T) {
	records := open(t)
	ctx := context.Background()
	s := keys.New(records, time.Hour)
	for round := range 30 {
		k, secret, err := s.Create(ctx, "bot", gateway.KeyLimits{})
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
						s.Authenticate(ctx, secret)
					}
				}
			})
		}
		time.Sleep(time.Millisecond)
		if _, err := s.Revoke(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		for range 50 {
			if _, err := s.Authenticate(ctx, secret); gateway.ErrorCode(err) != gateway.EUnauthorized {
				close(stop)
				wg.Wait()
				t.Fatalf("round %d: a revoked key was accepted by the instance that revoked it", round)
			}
		}
		close(stop)
		wg.Wait()
	}
}
