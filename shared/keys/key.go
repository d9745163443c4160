// Package keys issues, authenticates, lists and revokes the gateway's client
// API keys on the Records storage role.
//
// A key's secret is "sk-" and 43 base62 characters (256 random bits), or,
// for a key imported from the JavaScript gateway, whatever it had. Only
// its SHA-256 hash is stored; the key's ID is derived from the hash, so
// authentication is a single Get. Lookups are cached for a few seconds per
// instance; a revocation empties this instance's cache at once and reaches
// other instances within the cache's lifetime.
package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/cache"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// partition holds every key record, sorted by ID.
const partition = "apikey"

// Service manages API keys.
type Service struct {
	records storage.Records
	now     func() time.Time

	// cache holds authenticated keys by hash. A lookup caches what it read
	// only if no write came after it began, so that a revocation is never
	// undone by a lookup that read the key just before it.
	cache cache.Map[string, gateway.APIKey]
}

// maxCached bounds the cache; expired entries go when it is full.
const maxCached = 10000

// New returns a Service that caches authenticated keys for ttl (zero
// disables the cache).
func New(records storage.Records, ttl time.Duration) *Service {
	return &Service{records: records, now: time.Now, cache: cache.Map[string, gateway.APIKey]{TTL: ttl, Max: maxCached}}
}

// record is the stored form of a key: the key and its hash, which the
// domain type keeps out of JSON so that no API can show it.
type record struct {
	gateway.APIKey
	Hash string `json:"hash"`
}

func (r record) key() gateway.APIKey {
	k := r.APIKey
	k.Hash = r.Hash
	return k
}

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// newSecret returns "sk-" and 43 base62 characters: 256 bits.
func newSecret() string {
	var b [32]byte
	rand.Read(b[:])
	n := new(big.Int).SetBytes(b[:])
	out := make([]byte, 43)
	base := big.NewInt(62)
	mod := new(big.Int)
	for i := range out {
		n.DivMod(n, base, mod)
		out[i] = alphabet[mod.Int64()]
	}
	return "sk-" + string(out)
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// idOf derives the key ID from the hash: 80 bits are enough to tell keys
// apart and reveal nothing usable about the secret.
func idOf(hash string) string { return "key_" + hash[:20] }

// CheckName returns EInvalid unless name is a usable key name.
func CheckName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > gateway.MaxNameLen || strings.ContainsAny(name, "\x00\r\n") {
		e := gateway.Errorf(gateway.EInvalid, "The key name must be 1 to %d characters on one line.", gateway.MaxNameLen)
		e.Param = "name"
		return e
	}
	return nil
}

// Create issues a new key with limits and returns it with its secret, which
// is not stored and cannot be shown again.
func (s *Service) Create(ctx context.Context, name string, limits gateway.KeyLimits) (gateway.APIKey, string, error) {
	if err := CheckName(name); err != nil {
		return gateway.APIKey{}, "", err
	}
	if err := limits.Validate(); err != nil {
		return gateway.APIKey{}, "", err
	}
	secret := newSecret()
	hash := hashOf(secret)
	r := record{APIKey: gateway.APIKey{ID: idOf(hash), Name: name, Hint: HintOf(secret), CreatedAt: s.now().UTC(), KeyLimits: limits}, Hash: hash}
	value, err := json.Marshal(r)
	if err != nil {
		return gateway.APIKey{}, "", fmt.Errorf("encode key: %w", err)
	}
	if _, err := s.records.Put(ctx, storage.Item{PK: partition, SK: r.ID, Value: value}, storage.Cond{IfAbsent: true}); err != nil {
		return gateway.APIKey{}, "", fmt.Errorf("create key: %w", err)
	}
	return r.key(), secret, nil
}

// Import stores a key issued elsewhere (the JavaScript gateway's) under
// its own secret, so that clients keep using it; secret must be "sk-" and
// 8 to 200 letters, digits, '-' or '_'. A key already there is returned
// with created false.
func (s *Service) Import(ctx context.Context, name, secret string, createdAt time.Time) (gateway.APIKey, bool, error) {
	if err := CheckImported(secret); err != nil {
		return gateway.APIKey{}, false, err
	}
	if err := CheckName(name); err != nil {
		return gateway.APIKey{}, false, err
	}
	if createdAt.IsZero() {
		createdAt = s.now()
	}
	hash := hashOf(secret)
	r := record{APIKey: gateway.APIKey{ID: idOf(hash), Name: name, Hint: HintOf(secret), CreatedAt: createdAt.UTC()}, Hash: hash}
	value, err := json.Marshal(r)
	if err != nil {
		return gateway.APIKey{}, false, fmt.Errorf("encode key: %w", err)
	}
	_, err = s.records.Put(ctx, storage.Item{PK: partition, SK: r.ID, Value: value}, storage.Cond{IfAbsent: true})
	if gateway.IsConflict(err) {
		it, err := s.records.Get(ctx, partition, r.ID)
		if err != nil {
			return gateway.APIKey{}, false, fmt.Errorf("read imported key: %w", err)
		}
		var old record
		if err := json.Unmarshal(it.Value, &old); err != nil {
			return gateway.APIKey{}, false, fmt.Errorf("decode key %s: %w", r.ID, err)
		}
		return old.key(), false, nil
	}
	if err != nil {
		return gateway.APIKey{}, false, fmt.Errorf("import key: %w", err)
	}
	return r.key(), true, nil
}

// HintOf is how a key is shown: "sk-", its first characters (four of
// the gateway's own, fewer of a short imported key) and an ellipsis.
func HintOf(secret string) string {
	body := strings.TrimPrefix(secret, "sk-")
	return "sk-" + body[:min(4, len(body)/4)] + "…"
}

// CheckImported returns EInvalid unless secret can be an imported key.
func CheckImported(secret string) error {
	body, ok := strings.CutPrefix(secret, "sk-")
	if !ok || len(body) < minImported || len(body) > maxImported {
		return gateway.Errorf(gateway.EInvalid, "An imported key must be \"sk-\" and %d to %d characters.", minImported, maxImported)
	}
	for _, r := range body {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return gateway.Errorf(gateway.EInvalid, "An imported key may hold only letters, digits, '-' and '_'.")
		}
	}
	return nil
}

// The lengths of an imported key's part after "sk-".
const (
	minImported = 8
	maxImported = 200
)

func unauthorized() error {
	return gateway.Errorf(gateway.EUnauthorized, "Incorrect API key provided. Use a key issued by this gateway as \"Authorization: Bearer sk-…\".")
}

func expired() error {
	e := gateway.Errorf(gateway.EUnauthorized, "This API key has expired.")
	return e
}

// Authenticate returns the active key whose secret this is. A missing,
// malformed, unknown, revoked or expired secret is EUnauthorized.
func (s *Service) Authenticate(ctx context.Context, secret string) (gateway.APIKey, error) {
	return s.AuthenticateFrom(ctx, secret, "")
}

// AuthenticateFrom is Authenticate for a request from addr: EForbidden
// when the key's allowed_ips leave addr out, before its use is recorded
// ("" skips the check: callers that are not a client's request).
func (s *Service) AuthenticateFrom(ctx context.Context, secret, addr string) (gateway.APIKey, error) {
	// The gateway's own keys are 46 characters; imported ones 11 to 203.
	if !strings.HasPrefix(secret, "sk-") || len(secret) < 3+minImported || len(secret) > 3+maxImported {
		return gateway.APIKey{}, unauthorized()
	}
	hash := hashOf(secret)
	now := s.now()
	gen := s.cache.Generation()
	if k, ok := s.cache.Get(hash, now); ok {
		if !k.Active(now) {
			return gateway.APIKey{}, expired()
		}
		return k, fromAllowed(k, addr)
	}
	it, err := s.records.Get(ctx, partition, idOf(hash))
	if gateway.IsNotFound(err) {
		return gateway.APIKey{}, unauthorized()
	}
	if err != nil {
		return gateway.APIKey{}, fmt.Errorf("authenticate key: %w", err)
	}
	var r record
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return gateway.APIKey{}, fmt.Errorf("decode key %s: %w", idOf(hash), err)
	}
	if subtle.ConstantTimeCompare([]byte(r.Hash), []byte(hash)) != 1 || !r.RevokedAt.IsZero() {
		return gateway.APIKey{}, unauthorized()
	}
	if !r.Active(now) {
		return gateway.APIKey{}, expired()
	}
	k := r.key()
	s.cache.SetIf(hash, k, now, gen)
	if err := fromAllowed(k, addr); err != nil {
		return gateway.APIKey{}, err
	}
	s.touch(ctx, it, r, now)
	return k, nil
}

// fromAllowed returns EForbidden unless k may be used from addr.
func fromAllowed(k gateway.APIKey, addr string) error {
	if addr == "" || gateway.AddrAllowed(k.AllowedIPs, addr) {
		return nil
	}
	return gateway.Errorf(gateway.EForbidden, "This API key may not be used from %s: it is limited to some addresses.", gateway.ShowAddr(addr))
}

// lastUsedEvery bounds how often a key's last-used time is written.
const lastUsedEvery = time.Minute

// touch records the key's use when the stored time is older than
// lastUsedEvery. The write is conditional on the version read, so that it
// can never undo a concurrent revocation; losing that race loses only the
// timestamp.
func (s *Service) touch(ctx context.Context, it storage.Item, r record, now time.Time) {
	if now.Sub(r.LastUsedAt) < lastUsedEvery {
		return
	}
	r.LastUsedAt = now.UTC()
	value, err := json.Marshal(r)
	if err != nil {
		return
	}
	s.records.Put(ctx, storage.Item{PK: partition, SK: r.ID, Value: value}, storage.Cond{IfVersion: it.Version})
}

// List returns every key, revoked ones included, oldest first.
func (s *Service) List(ctx context.Context) ([]gateway.APIKey, error) {
	var out []gateway.APIKey
	for it, err := range storage.QueryAll(ctx, s.records, partition, storage.Query{}) {
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		var r record
		if err := json.Unmarshal(it.Value, &r); err != nil {
			return nil, fmt.Errorf("decode key %s: %w", it.SK, err)
		}
		out = append(out, r.key())
	}
	slices.SortStableFunc(out, func(a, b gateway.APIKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Revoke revokes the key with this ID. It returns ENotFound for an unknown
// ID; revoking a revoked key changes nothing.
func (s *Service) Revoke(ctx context.Context, id string) (gateway.APIKey, error) {
	return s.update(ctx, id, func(r *record) bool {
		if !r.RevokedAt.IsZero() {
			return false
		}
		r.RevokedAt = s.now().UTC()
		return true
	})
}

// SetLimits replaces the limits of the key with this ID. It returns
// ENotFound for an unknown ID and EInvalid for bad limits.
func (s *Service) SetLimits(ctx context.Context, id string, limits gateway.KeyLimits) (gateway.APIKey, error) {
	if err := limits.Validate(); err != nil {
		return gateway.APIKey{}, err
	}
	return s.update(ctx, id, func(r *record) bool {
		r.KeyLimits = limits
		return true
	})
}

// update applies change to the stored key with a version-conditional write,
// reading again when a concurrent write (a last-used time) came between.
// change reports whether it changed anything. The key leaves this
// instance's cache at once.
func (s *Service) update(ctx context.Context, id string, change func(*record) bool) (gateway.APIKey, error) {
	for {
		it, err := s.records.Get(ctx, partition, id)
		if gateway.IsNotFound(err) {
			return gateway.APIKey{}, gateway.Errorf(gateway.ENotFound, "No API key with ID %q exists.", id)
		}
		if err != nil {
			return gateway.APIKey{}, fmt.Errorf("update key %s: %w", id, err)
		}
		var r record
		if err := json.Unmarshal(it.Value, &r); err != nil {
			return gateway.APIKey{}, fmt.Errorf("decode key %s: %w", id, err)
		}
		if !change(&r) {
			s.forget(r.Hash)
			return r.key(), nil
		}
		value, err := json.Marshal(r)
		if err != nil {
			return gateway.APIKey{}, fmt.Errorf("encode key: %w", err)
		}
		_, err = s.records.Put(ctx, storage.Item{PK: partition, SK: id, Value: value}, storage.Cond{IfVersion: it.Version})
		if gateway.IsConflict(err) {
			continue
		}
		if err != nil {
			return gateway.APIKey{}, fmt.Errorf("update key %s: %w", id, err)
		}
		// After the write: a lookup that began before it cannot cache the
		// old record any more.
		s.forget(r.Hash)
		return r.key(), nil
	}
}

// forget drops a key from this instance's cache, and keeps any lookup in
// flight from caching what it read.
func (s *Service) forget(hash string) {
	s.cache.Forget(hash)
}
