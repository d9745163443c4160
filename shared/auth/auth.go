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

// Throttle limits: at most maxFailures failed logins per client address in
// each throttleWindow.
const (
	maxFailures    = 5
	throttleWindow = 15 * time.Minute
)

// Guard holds the admin credential and sessions.
type Guard struct {
	records             storage.Records
	sessionKey, csrfKey []byte
	now                 func() time.Time
}

// New returns a Guard that signs cookies with sessionKey and derives CSRF
// tokens with csrfKey (each at least 32 bytes, derived from the master key).
func New(records storage.Records, sessionKey, csrfKey []byte) *Guard {
	return &Guard{records: records, sessionKey: sessionKey, csrfKey: csrfKey, now: time.Now}
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
// (its address) for throttling: after maxFailures failures in a window it
// gets ELimited with RetryAfter until the window ends. A wrong password is
// EUnauthorized; before setup, login is EConflict.
func (g *Guard) Login(ctx context.Context, password, client string) (Session, error) {
	now := g.now()
	window := now.Truncate(throttleWindow)
	throttleSK := "login#" + client + "#" + window.Format(time.RFC3339)
	if it, err := g.records.Get(ctx, throttlePK, throttleSK); err == nil && it.Counters["failures"] >= maxFailures {
		return Session{}, tooMany(window, now)
	} else if err != nil && !gateway.IsNotFound(err) {
		return Session{}, fmt.Errorf("read login throttle: %w", err)
	}
	it, err := g.records.Get(ctx, systemPK, adminSK)
	if gateway.IsNotFound(err) {
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
		c, err := g.records.Incr(ctx, throttlePK, throttleSK, map[string]int64{"failures": 1}, window.Add(throttleWindow))
		if err != nil {
			return Session{}, fmt.Errorf("count failed login: %w", err)
		}
		if c["failures"] >= maxFailures {
			return Session{}, tooMany(window, now)
		}
		return Session{}, gateway.Errorf(gateway.EUnauthorized, "The password is wrong.")
	}
	return g.open(ctx, now)
}

func tooMany(window, now time.Time) error {
	e := gateway.Errorf(gateway.ELimited, "Too many failed logins; try again later.")
	e.RetryAfter = int(window.Add(throttleWindow).Sub(now).Seconds()) + 1
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
