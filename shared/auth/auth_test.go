package auth_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/sqlstore"
)

func guard(t *testing.T, key byte) (*auth.Guard, *sqlstore.Records) {
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

// nextHour is the start of the next hour of the wall clock. The guard's
// clock is moved by hand, but the store expires its window counters by the
// wall clock: a fixed date would have them expire once it is past.
func nextHour() time.Time { return time.Now().UTC().Truncate(time.Hour).Add(time.Hour) }

// TestLoginThrottle checks at most five passwords per address in any
// 15 minutes, sliding: a right password is refused too once they are
// spent, other addresses are not, an IPv6 /64 counts as one address, and a
// successful login does not spend an attempt.
func TestLoginThrottle(t *testing.T) {
	g, _ := guard(t, 1)
	clock := nextHour().Add(7*time.Minute + 30*time.Second)
	auth.SetClock(g, func() time.Time { return clock })
	ctx := context.Background()
	if err := g.Claim(ctx, "the admin password"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := g.Login(ctx, "the admin password", "10.0.0.1"); err != nil {
			t.Fatalf("right password: %v", err)
		}
	}
	for i := range 5 {
		clock = clock.Add(time.Minute)
		if _, err := g.Login(ctx, "wrong", "10.0.0.1"); gateway.ErrorCode(err) != gateway.EUnauthorized {
			t.Fatalf("failure %d: %v, want unauthorized", i+1, err)
		}
	}
	first := clock.Add(-4 * time.Minute) // the minute of the first failure
	for _, pw := range []string{"wrong", "the admin password"} {
		_, err := g.Login(ctx, pw, "10.0.0.1")
		e, ok := err.(*gateway.Error)
		if !ok || e.Code != gateway.ELimited || e.RetryAfter <= 0 {
			t.Fatalf("%q after five failures: %v, want rate_limit_exceeded with Retry-After", pw, err)
		}
	}
	if _, err := g.Login(ctx, "the admin password", "10.0.0.2"); err != nil {
		t.Fatalf("another address is throttled too: %v", err)
	}
	// The window slides: the first failure leaves it 15 minutes after its
	// minute, and then one attempt is free again.
	clock = first.Truncate(time.Minute).Add(15*time.Minute - time.Second)
	if _, err := g.Login(ctx, "the admin password", "10.0.0.1"); gateway.ErrorCode(err) != gateway.ELimited {
		t.Fatalf("just before the first failure leaves the window: %v, want still limited", err)
	}
	clock = clock.Add(2 * time.Second)
	if _, err := g.Login(ctx, "the admin password", "10.0.0.1"); err != nil {
		t.Fatalf("after the first failure left the window: %v", err)
	}

	// IPv6: the addresses of one /64 share their attempts.
	for i := range 5 {
		if _, err := g.Login(ctx, "wrong", fmt.Sprintf("2001:db8:1:2::%x", i+1)); gateway.ErrorCode(err) != gateway.EUnauthorized {
			t.Fatalf("IPv6 failure %d: %v", i+1, err)
		}
	}
	if _, err := g.Login(ctx, "the admin password", "2001:db8:1:2:ffff::9"); gateway.ErrorCode(err) != gateway.ELimited {
		t.Fatalf("another address of the /64: %v, want limited", err)
	}
	if _, err := g.Login(ctx, "the admin password", "2001:db8:1:3::1"); err != nil {
		t.Fatalf("another /64: %v", err)
	}
}

// TestLoginBurst sends 40 guesses at once from one address, the right
// password among them: at most five wrong passwords are checked, whichever
// they are (the right one, if it is among the first, gives its attempt
// back); the rest are refused unchecked.
func TestLoginBurst(t *testing.T) {
	g, _ := guard(t, 1)
	ctx := context.Background()
	if err := g.Claim(ctx, "the admin password"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			pw := "wrong"
			if i == 33 {
				pw = "the admin password"
			}
			_, err := g.Login(ctx, pw, "198.51.100.7")
			mu.Lock()
			defer mu.Unlock()
			switch code := gateway.ErrorCode(err); {
			case err == nil:
				counts["signed in"]++
			case code == gateway.ELimited:
				counts["refused"]++
			default:
				counts[code]++
			}
		})
	}
	wg.Wait()
	if counts[gateway.EUnauthorized] > 5 || counts["refused"] < 34 || counts["signed in"]+counts[gateway.EUnauthorized]+counts["refused"] != 40 {
		t.Fatalf("outcomes %v: want at most 5 wrong passwords checked and the rest refused", counts)
	}
}

// TestLoginConcurrencyCap sends 60 logins at once from 60 addresses: no
// more than a few passwords are checked at a time (each takes ~19 MiB);
// the others are refused at once with a short Retry-After.
func TestLoginConcurrencyCap(t *testing.T) {
	g, _ := guard(t, 1)
	ctx := context.Background()
	if err := g.Claim(ctx, "the admin password"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	checked, busy := 0, 0
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 60 {
		wg.Go(func() {
			<-start
			_, err := g.Login(ctx, "wrong", fmt.Sprintf("203.0.113.%d", i))
			mu.Lock()
			defer mu.Unlock()
			if e, ok := err.(*gateway.Error); ok && e.Code == gateway.ELimited && e.RetryAfter <= 2 {
				busy++
			} else if gateway.ErrorCode(err) == gateway.EUnauthorized {
				checked++
			}
		})
	}
	close(start)
	wg.Wait()
	if busy == 0 || checked+busy != 60 {
		t.Fatalf("%d checked, %d refused as busy; want some refused and none lost", checked, busy)
	}
}

// TestLoginThrottleClockEdges counts attempts across a minute boundary
// whatever order they reach the store in: one that read the clock just
// before the minute (or on an instance whose clock is a little behind)
// sees those already counted in the next one.
func TestLoginThrottleClockEdges(t *testing.T) {
	g, _ := guard(t, 1)
	ctx := context.Background()
	if err := g.Claim(ctx, "the admin password"); err != nil {
		t.Fatal(err)
	}
	boundary := nextHour().Add(8 * time.Minute)
	clock := boundary.Add(100 * time.Millisecond)
	auth.SetClock(g, func() time.Time { return clock })
	checked := 0
	for range 5 {
		if _, err := g.Login(ctx, "wrong", "198.51.100.7"); gateway.ErrorCode(err) == gateway.EUnauthorized {
			checked++
		}
	}
	clock = boundary.Add(-100 * time.Millisecond) // read before the boundary, counted after
	for range 5 {
		if _, err := g.Login(ctx, "wrong", "198.51.100.7"); gateway.ErrorCode(err) == gateway.EUnauthorized {
			checked++
		}
	}
	if checked > 5 {
		t.Fatalf("%d passwords checked in 200 ms from one address, want at most 5", checked)
	}
}
