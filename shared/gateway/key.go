package gateway

import "time"

// APIKey is a client key the gateway issued. The secret itself ("sk-…") is
// shown once at creation and stored only as its SHA-256 hash.
type APIKey struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Hint is the start of the secret, to tell keys apart ("sk-AbC…").
	Hint       string    `json:"hint"`
	Hash       string    `json:"-"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether the key may be used.
func (k APIKey) Active() bool { return k.RevokedAt.IsZero() }
