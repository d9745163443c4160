package auth

import (
	"context"
	"net/http"
	"strings"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// CookieName is the admin session cookie.
const CookieName = "gw_session"

// Verifier checks admin session cookies.
type Verifier interface {
	Verify(ctx context.Context, cookie string) (Session, error)
}

// Current returns the session of the request's cookie, or EUnauthorized.
func Current(v Verifier, r *http.Request) (Session, error) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return Session{}, gateway.Errorf(gateway.EUnauthorized, "Sign in as the admin first.")
	}
	return v.Verify(r.Context(), c.Value)
}

// Require wraps an admin API handler: it needs a valid session
// (EUnauthorized), and a state-changing method needs the session's CSRF
// token in X-CSRF-Token too (EForbidden).
func Require(v Verifier, next func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return respond.Handle(func(w http.ResponseWriter, r *http.Request) error {
		s, err := Current(v, r)
		if err != nil {
			return err
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if err := CheckCSRF(s, r.Header.Get("X-CSRF-Token")); err != nil {
				return err
			}
		}
		return next(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, s)))
	})
}

type sessionKey struct{}

// SessionOf returns the session Require checked for the request of ctx.
func SessionOf(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(Session)
	return s, ok
}

// Keys authenticates client API keys for a request from an address.
type Keys interface {
	AuthenticateFrom(ctx context.Context, secret, addr string) (gateway.APIKey, error)
}

// KeyOf returns the active key of the request's API key (see Bearer), or
// EUnauthorized; EForbidden when the key may not be used from the
// request's address (its allowed_ips).
func KeyOf(r *http.Request, keys Keys) (gateway.APIKey, error) {
	secret, err := Bearer(r)
	if err != nil {
		return gateway.APIKey{}, err
	}
	return keys.AuthenticateFrom(r.Context(), secret, respond.ClientAddr(r))
}

// Bearer returns the API key a client sent as "Authorization: Bearer
// sk-…" (or, without an Authorization header, as x-api-key), or
// EUnauthorized.
func Bearer(r *http.Request) (string, error) {
	// Anthropic's clients send the key as x-api-key.
	if r.Header.Get("Authorization") == "" {
		if k := strings.TrimSpace(r.Header.Get("X-Api-Key")); k != "" {
			return k, nil
		}
	}
	secret, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if secret = strings.TrimSpace(secret); !ok || secret == "" {
		return "", gateway.Errorf(gateway.EUnauthorized, "No API key provided. Send it as \"Authorization: Bearer sk-…\" (or x-api-key).")
	}
	return secret, nil
}
