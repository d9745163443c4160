package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Records layout.
const (
	systemPK    = "system"
	adminSK     = "admin"
	sessionPK   = "session"
	throttlePK  = "throttle"
	sessionLife = 12 * time.Hour
)

// Login limits. At most maxAttempts passwords are checked per client
// address (an IPv6 address per /64) in any throttleWindow, sliding, counted
// in throttleBucket buckets. An attempt is counted before its password is
// checked, so that a burst checks no more than the others; a refused
// attempt and a successful login give theirs back. At most maxChecking passwords are checked
// at once per process (argon2id takes about 19 MiB each): more are refused
// at once.
const (
	maxAttempts    = 5
	throttleWindow = 15 * time.Minute
	throttleBucket = time.Minute
	maxChecking    = 4
)

// Guard holds the admin credential and sessions.
type Guard struct {
	records             storage.Records
	sessionKey, csrfKey []byte
	now                 func() time.Time
	checking            chan struct{}
}

// New returns a Guard that signs cookies with sessionKey and derives CSRF
// tokens with csrfKey (each at least 32 bytes, derived from the master key).
func New(records storage.Records, sessionKey, csrfKey []byte) *Guard {
	return &Guard{records: records, sessionKey: sessionKey, csrfKey: csrfKey, now: time.Now, checking: make(chan struct{}, maxChecking)}
}

type admin struct {
	PasswordHash string    `json:"password_hash"`
	CreatedAt    time.Time `json:"created_at"`
}

// Initialized reports whether setup has claimed the gateway.
func (g *Guard) Initialized(ctx context.Context) (bool, error) {
	_, err := g.records.Get(ctx, systemPK, adminSK)
	switch {
	case gateway.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read setup state: %w", err)
	}
	return true, nil
}

// CheckPassword returns EInvalid unless password is acceptable as the admin
// password.
func CheckPassword(password string) error {
	if len([]rune(password)) < MinPasswordLen || len(password) > 1024 {
		e := gateway.Errorf(gateway.EInvalid, "The admin password must be %d to 1024 characters long.", MinPasswordLen)
		e.Param = "admin_password"
		return e
	}
	return nil
}

// Claim sets the admin password if no admin exists yet. Of concurrent
// claims exactly one succeeds; the others, and any later one, get EConflict.
func (g *Guard) Claim(ctx context.Context, password string) error {
	if err := CheckPassword(password); err != nil {
		return err
	}
	value, err := json.Marshal(admin{PasswordHash: HashPassword(password), CreatedAt: g.now().UTC()})
	if err != nil {
		return fmt.Errorf("encode admin: %w", err)
	}
	_, err = g.records.Put(ctx, storage.Item{PK: systemPK, SK: adminSK, Value: value}, storage.Cond{IfAbsent: true})
	if gateway.IsConflict(err) {
		return gateway.Errorf(gateway.EConflict, "The gateway is already initialized.")
	}
	if err != nil {
		return fmt.Errorf("claim setup: %w", err)
	}
	return nil
}

// Unclaim undoes a Claim whose setup could not be completed, so that setup
// can be tried again.
func (g *Guard) Unclaim(ctx context.Context) error {
	return g.records.Delete(ctx, systemPK, adminSK)
}

// Session is a signed-in admin session.
type Session struct {
	// Cookie is the value of the session cookie.
	Cookie string
	// CSRF is the token state-changing calls must send as X-CSRF-Token.
	CSRF    string
	Expires time.Time
}

// Login checks password and opens a session. client identifies the caller
// (its address) for throttling: past maxAttempts attempts in the sliding
// window, or while maxChecking passwords are being checked, it gets
// ELimited with RetryAfter, its password unchecked. A wrong password is
// EUnauthorized; before setup, login is EConflict.
func (g *Guard) Login(ctx context.Context, password, client string) (Session, error) {
	now := g.now().UTC()
	giveBack, err := g.attempt(ctx, "login", client, now)
	if err != nil {
		return Session{}, err
	}
	select {
	case g.checking <- struct{}{}:
		defer func() { <-g.checking }()
	default:
		giveBack()
		return Session{}, tooMany(time.Second)
	}
	it, err := g.records.Get(ctx, systemPK, adminSK)
	if gateway.IsNotFound(err) {
		giveBack()
		return Session{}, gateway.Errorf(gateway.EConflict, "The gateway is not initialized yet; run setup first.")
	}
	if err != nil {
		return Session{}, fmt.Errorf("read admin: %w", err)
	}
	var a admin
	if err := json.Unmarshal(it.Value, &a); err != nil {
		return Session{}, fmt.Errorf("decode admin: %w", err)
	}
	if !VerifyPassword(a.PasswordHash, password) {
		return Session{}, gateway.Errorf(gateway.EUnauthorized, "The password is wrong.")
	}
	giveBack()
	return g.open(ctx, now)
}

// attempt counts an attempt of kind (login, proof) by client and refuses
// it past maxAttempts in the sliding window, with ELimited. giveBack
// returns the attempt: a success does, and so does an attempt refused
// before its secret was checked.
func (g *Guard) attempt(ctx context.Context, kind, client string, now time.Time) (giveBack func(), err error) {
	prefix := kind + "#" + throttleKey(client) + "#"
	bucket := now.Truncate(throttleBucket)
	sk := prefix + bucket.Format(time.RFC3339)
	c, err := g.records.Incr(ctx, throttlePK, sk, map[string]int64{"attempts": 1}, bucket.Add(throttleWindow+throttleBucket))
	if err != nil {
		return nil, fmt.Errorf("count %s attempt: %w", kind, err)
	}
	giveBack = func() {
		if _, err := g.records.Incr(context.WithoutCancel(ctx), throttlePK, sk, map[string]int64{"attempts": -1}, time.Time{}); err != nil {
			slog.WarnContext(ctx, "give back an attempt", "kind", kind, "err", err)
		}
	}
	// The earlier buckets of the window are settled; this one's count
	// comes exact from the increment.
	first := bucket.Add(-throttleWindow + throttleBucket)
	attempts, oldest := c["attempts"], bucket
	// Later buckets too: an attempt that read the clock just before the
	// minute may count after others already counted in the next one.
	page, err := g.records.Query(ctx, throttlePK, storage.Query{Start: prefix + first.Format(time.RFC3339), End: prefix + "~"})
	if err != nil {
		return nil, fmt.Errorf("read %s attempts: %w", kind, err)
	}
	for _, it := range page.Items {
		if it.SK == sk {
			continue // counted above, exactly
		}
		if n := it.Counters["attempts"]; n > 0 {
			attempts += n
			if t, err := time.Parse(time.RFC3339, strings.TrimPrefix(it.SK, prefix)); err == nil && t.Before(oldest) {
				oldest = t
			}
		}
	}
	if attempts > maxAttempts {
		// Only checked secrets count: a refused attempt is given back, so
		// that waiting out the window is enough.
		giveBack()
		return nil, tooMany(oldest.Add(throttleWindow).Sub(now))
	}
	return giveBack, nil
}

// Prove runs check, a comparison with a secret the caller claims to know
// (the JavaScript gateway's, for its import), under the same limit as
// logins, counted apart: a false check is EForbidden with message, and
// counts.
func (g *Guard) Prove(ctx context.Context, client string, check func() bool, message string) error {
	giveBack, err := g.attempt(ctx, "proof", client, g.now().UTC())
	if err != nil {
		return err
	}
	if !check() {
		return gateway.Errorf(gateway.EForbidden, "%s", message)
	}
	giveBack()
	return nil
}

// throttleKey is the address logins are counted by: an IPv4 address, or
// an IPv6 address's /64 (one host commonly holds the whole /64).
func throttleKey(client string) string {
	ip, err := netip.ParseAddr(client)
	if err != nil {
		return strings.NewReplacer("#", "_", "/", "_").Replace(client)
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return strings.ReplaceAll(p.String(), "/", "_")
	}
	return ip.String()
}

func tooMany(wait time.Duration) error {
	e := gateway.Errorf(gateway.ELimited, "Too many attempts; try again later.")
	e.RetryAfter = int(wait.Seconds()) + 1
	return e
}

func (g *Guard) open(ctx context.Context, now time.Time) (Session, error) {
	id := rand.Text()
	exp := now.Add(sessionLife)
	if _, err := g.records.Put(ctx, storage.Item{PK: sessionPK, SK: id, ExpiresAt: exp}, storage.Cond{IfAbsent: true}); err != nil {
		return Session{}, fmt.Errorf("store session: %w", err)
	}
	return Session{Cookie: id + "." + g.sign(g.sessionKey, id), CSRF: g.sign(g.csrfKey, id), Expires: exp}, nil
}

func (g *Guard) sign(key []byte, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Verify returns the session of a cookie value. A malformed, forged, expired
// or logged-out cookie is EUnauthorized.
func (g *Guard) Verify(ctx context.Context, cookie string) (Session, error) {
	id, sig, ok := strings.Cut(cookie, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(g.sign(g.sessionKey, id))) {
		return Session{}, signIn()
	}
	it, err := g.records.Get(ctx, sessionPK, id)
	if gateway.IsNotFound(err) {
		return Session{}, signIn()
	}
	if err != nil {
		return Session{}, fmt.Errorf("read session: %w", err)
	}
	return Session{Cookie: cookie, CSRF: g.sign(g.csrfKey, id), Expires: it.ExpiresAt}, nil
}

func signIn() error {
	return gateway.Errorf(gateway.EUnauthorized, "Sign in as the admin first.")
}

// CheckCSRF returns EForbidden unless token is the CSRF token of s.
func CheckCSRF(s Session, token string) error {
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.CSRF)) != 1 {
		return gateway.Errorf(gateway.EForbidden, "The X-CSRF-Token header is missing or wrong.")
	}
	return nil
}

// Logout ends the session of a cookie value everywhere. An invalid cookie
// is not an error: the caller is signed out either way.
func (g *Guard) Logout(ctx context.Context, cookie string) error {
	id, sig, ok := strings.Cut(cookie, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(g.sign(g.sessionKey, id))) {
		return nil
	}
	if err := g.records.Delete(ctx, sessionPK, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}
