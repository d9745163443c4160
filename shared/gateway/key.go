package gateway

import (
	"slices"
	"time"
)

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
	KeyLimits
}

// KeyLimits are what a key may do; zero values mean no limit.
type KeyLimits struct {
	// ExpiresAt ends the key's validity.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// RPM caps requests per minute; TPM caps tokens per minute.
	RPM int64 `json:"rpm"`
	TPM int64 `json:"tpm"`
	// TokenQuota caps the tokens the key may use in all.
	TokenQuota int64 `json:"token_quota"`
	// Budget caps what the key may spend in all, MonthlyBudget in a
	// calendar month (UTC), in the settings' currency, at the settings'
	// prices.
	Budget        float64 `json:"budget,omitempty"`
	MonthlyBudget float64 `json:"monthly_budget,omitempty"`
	// Models are the public models the key may see and use; empty means all.
	Models []string `json:"models"`
	// AllowedIPs are the client addresses (IPs or CIDR ranges) the key
	// may be used from; empty means any.
	AllowedIPs []string `json:"allowed_ips,omitempty"`
}

// Active reports whether the key may be used at now: not revoked, not
// expired.
func (k APIKey) Active(now time.Time) bool {
	return k.RevokedAt.IsZero() && (k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt))
}

// Allows reports whether the key may use the public model name.
func (k APIKey) Allows(model string) bool {
	return len(k.Models) == 0 || slices.Contains(k.Models, model)
}

// Validate returns an EInvalid error naming the first bad limit.
func (l KeyLimits) Validate() error {
	switch {
	case l.RPM < 0:
		return invalidParam("rpm", "rpm must not be negative")
	case l.TPM < 0:
		return invalidParam("tpm", "tpm must not be negative")
	case l.TokenQuota < 0:
		return invalidParam("token_quota", "token_quota must not be negative")
	case !(l.Budget >= 0 && l.Budget <= 1e9):
		return invalidParam("budget", "budget must be between 0 (none) and 1e9")
	case !(l.MonthlyBudget >= 0 && l.MonthlyBudget <= 1e9):
		return invalidParam("monthly_budget", "monthly_budget must be between 0 (none) and 1e9")
	case len(l.Models) > 100:
		return invalidParam("models", "a key can be limited to at most 100 models")
	}
	if err := checkAllowlist("allowed_ips", l.AllowedIPs); err != nil {
		return err
	}
	for _, m := range l.Models {
		if err := CheckModelName(m); err != nil {
			e := err.(*Error)
			e.Param = "models"
			return e
		}
	}
	return nil
}
