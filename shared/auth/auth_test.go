package auth_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/sqlite"
	"github.com/aigateway/aigateway/shared/sqlite/sqlitetest"
)

func guard(t *testing.T, key byte) (*auth.Guard, *sqlite.Records) {
	t.Helper()
	db := sqlitetest.Open(t)
	return auth.New(db.Records(), bytes.Repeat([]byte{key}, 32), bytes.Repeat([]byte{key + 1}, 32)), db.Records()
}

func TestPasswordHash(t *testing.T) {
	h := auth.HashPassword("hunter2hunter2")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash = %q, want PHC argon2id", h)
	}
	if h == auth.HashPassword("hunter2hunter2") {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !auth.VerifyPassword(h, "hunter2hunter2") || auth.VerifyPassword(h, "hunter2hunter3") {
		t.Fatal("VerifyPassword accepts the wrong password or refuses the right one")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", h[:len(h)-10], "plain"} {
		if auth.VerifyPassword(bad, "hunter2hunter2") {
			t.Fatalf("VerifyPassword accepted the malformed hash %q", bad)
		}
	}
}

func TestClaimOnce(t *testing.T) {
	g, _ := guard(t, 1)
	ctx := context.Background()
	if err := g.Claim(ctx, "short"); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("short password: %v", err)
	}
	var wg sync.WaitGroup
	wins := make(chan int, 8)
	for i := range 8 {
		wg.Go(func() {
			if g.Claim(ctx, "password number "+string(rune('a'+i))) == nil {
				wins <- i
			}
		})
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d concurrent claims won, want 1", n)
	}
	if ok, err := g.Initialized(ctx); !ok || err != nil {
		t.Fatalf("Initialized = %v, %v", ok, err)
	}
}

func TestSessions(t *testing.T) {
	g, records := guard(t, 1)
	other, _ := guard(t, 9)
	ctx := context.Background()
	if _, err := g.Login(ctx, "whatever", "1.2.3.4"); gateway.ErrorCode(err) != gateway.EConflict {
		t.Fatalf("login before setup: %v, want conflict", err)
	}
	if err := g.Claim(ctx, "the admin password"); err != nil {
		t.Fatal(err)
	}
	s, err := g.Login(ctx, "the admin password", "1.2.3.4")
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Verify(ctx, s.Cookie)
	if err != nil || got.CSRF != s.CSRF {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	if err := auth.CheckCSRF(got, s.CSRF); err != nil {
		t.Fatal(err)
	}
	if err := auth.CheckCSRF(got, ""); gateway.ErrorCode(err) != gateway.EForbidden {
		t.Fatalf("empty CSRF: %v", err)
	}
	id, _, _ := strings.Cut(s.Cookie, ".")
	for name, cookie := range map[string]string{
		"empty":             "",
		"no signature":      id,
		"forged signature":  id + ".AAAA",
		"signed by another": func() string { o, _ := other.Login(ctx, "x", "y"); return o.Cookie }(),
	} {
		if _, err := g.Verify(ctx, cookie); gateway.ErrorCode(err) != gateway.EUnauthorized {
			t.Errorf("%s: Verify err = %v, want unauthorized", name, err)
		}
	}
	// A second Guard on the same store (another Lambda) accepts the session.
	twin := auth.New(records, bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32))
	if _, err := twin.Verify(ctx, s.Cookie); err != nil {
		t.Fatalf("another instance refused the session: %v", err)
	}
	if err := g.Logout(ctx, s.Cookie); err != nil {
		t.Fatal(err)
	}
	if _, err := twin.Verify(ctx, s.Cookie); gateway.ErrorCode(err) != gateway.EUnauthorized {
		t.Fatalf("after logout another instance still accepts the session: %v", err)
	}
}

func TestLoginThrottle(t *testing.T) {
	g, _ := guard(t, 1)
	ctx := context.Background()
	if err := g.Claim(ctx, "the admin password"); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := g.Login(ctx, "wrong", "10.0.0.1"); gateway.ErrorCode(err) != gateway.EUnauthorized {
			t.Fatalf("failure %d: %v, want unauthorized", i+1, err)
		}
	}
	_, err := g.Login(ctx, "wrong", "10.0.0.1")
	e, ok := err.(*gateway.Error)
	if !ok || e.Code != gateway.ELimited || e.RetryAfter <= 0 {
		t.Fatalf("fifth failure: %v, want rate_limit_exceeded with Retry-After", err)
	}
	if _, err := g.Login(ctx, "the admin password", "10.0.0.1"); gateway.ErrorCode(err) != gateway.ELimited {
		t.Fatalf("right password while throttled: %v, want rate_limit_exceeded", err)
	}
	if _, err := g.Login(ctx, "the admin password", "10.0.0.2"); err != nil {
		t.Fatalf("another address is throttled too: %v", err)
	}
}
