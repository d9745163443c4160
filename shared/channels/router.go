package channels

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/upstream"
)

// Router sends each upstream request to the channels serving its model
// (the upstream.Router of the gateway's client): the highest priority
// group first, weighted at random within it, the keys of a channel's pool
// in turn. Before an answer comes, a failure moves the request on: to the
// next key when the upstream refused this one (set aside with the reason)
// or rate limits it, to the next channel when the channel fails. Each
// failure feeds the channel's, or the key's, circuit breaker, which every
// instance shares; an instance trusts a breaker's state it read for TTL.
// When every candidate is cooling down, the one back soonest is tried all
// the same: a gateway with one upstream behaves as it did without channels.
type Router struct {
	store  *Store
	health *Health
	// TTL bounds how long a breaker's state read by this instance is
	// trusted.
	TTL time.Duration
	// MaxAttempts bounds the attempts of one request, over every channel
	// and key; Backoff is the first wait before a target the request
	// already tried is tried again.
	MaxAttempts int
	Backoff     time.Duration

	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	rnd   *rand.Rand
	seen  map[string]seen // breaker states read, by target
	turns sync.Map        // channel ID → *atomic.Uint64, whose key is next
}

// seen is a breaker's state as this instance last read or wrote it.
type seen struct {
	st State
	at time.Time
}

// NewRouter returns a Router over store's channels and health's breakers.
func NewRouter(store *Store, health *Health, ttl time.Duration) *Router {
	return &Router{store: store, health: health, TTL: ttl, MaxAttempts: 4, Backoff: 250 * time.Millisecond,
		now: time.Now, sleep: sleepCtx, rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), seen: map[string]seen{}}
}

// seed makes the router's random draws follow seed (tests).
func (r *Router) seed(seed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rnd = rand.New(rand.NewPCG(seed, seed))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// KeyID names a key of a pool for its breaker and for display, without
// revealing it: the start of its SHA-256.
func KeyID(secret gateway.Secret) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}

// target is one channel with one key of its pool ("" for a channel
// without keys).
type target struct {
	ch     gateway.Channel
	key    gateway.Secret
	keyRef string // the key's breaker, or the channel's when it has no keys
}

var _ upstream.Router = (*Router)(nil)

// Route implements upstream.Router.
func (r *Router) Route(ctx context.Context, model, capability string, try func(ctx context.Context, up gateway.Upstream) error) error {
	all, err := r.store.Cached(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	order := Order(all, model, capability, r.rnd)
	r.mu.Unlock()
	if len(order) == 0 {
		return gateway.Errorf(gateway.EUnavailable, "No upstream serves the model %q (%s) yet; add it to a channel in the admin panel.", model, capability)
	}
	route := gateway.RouteOf(ctx)
	var (
		last     error
		attempts int
		again    []target            // failed in a way a retry may mend
		tried    = map[string]bool{} // keys (or keyless channels) tried
	)
	attempt := func(t target) (done bool) {
		attempts++
		err := try(ctx, gateway.Upstream{BaseURL: t.ch.BaseURL, APIKey: t.key, Model: t.ch.UpstreamModel(model)})
		tried[t.keyRef] = true
		if err == nil {
			last = nil
			if route != nil {
				route.Answered(t.ch.ID, t.key)
			}
			r.succeeded(ctx, t)
			return true
		}
		last = err
		fault := gateway.FaultOf(err)
		if ctx.Err() != nil || fault == gateway.FaultNone || fault == gateway.FaultRequest {
			// The client left, or the request itself is at fault: the
			// channel answered, and no other would do better.
			if route != nil && fault == gateway.FaultRequest {
				route.Answered(t.ch.ID, t.key)
			}
			return true
		}
		if route != nil {
			route.Failed(t.ch.ID)
		}
		r.failed(ctx, t, fault, err)
		// Tried again after a backoff: what a moment may mend; not a
		// timeout, which would only double the wait.
		if (fault == gateway.FaultChannel || fault == gateway.FaultRate) && gateway.ErrorCode(err) != gateway.ETimeout {
			again = append(again, t)
		}
		return false
	}

	// First each candidate in order, as its breakers allow, each key of
	// a channel's pool in turn while the upstream refuses keys; a pool
	// takes no more attempts than leave one for each channel after it.
	for i, ch := range order {
		if !r.admit(ctx, ch.ID) {
			continue
		}
		share := max(1, r.MaxAttempts-attempts-(len(order)-1-i))
		for tries := 0; tries < share && attempts < r.MaxAttempts; tries++ {
			t, ok := r.pick(ctx, ch, tried, false)
			if !ok {
				break
			}
			if attempt(t) {
				return last
			}
			if f := gateway.FaultOf(last); f == gateway.FaultChannel {
				break // the next channel
			}
		}
		if attempts >= r.MaxAttempts {
			return last
		}
	}
	if attempts == 0 {
		// Every candidate is cooling down: the one back soonest.
		if t, ok := r.soonest(ctx, order); ok && attempt(t) {
			return last
		}
	}
	// Then what failed in a way a retry may mend, after a backoff.
	for i := 0; len(again) > 0 && attempts < r.MaxAttempts; i++ {
		t := again[0]
		again = again[1:]
		if err := r.sleep(ctx, upstream.RetryWait(last, r.Backoff, i)); err != nil {
			return last
		}
		if attempt(t) {
			return last
		}
	}
	if last == nil {
		// No candidate has a key left to try (every one set aside).
		return gateway.Errorf(gateway.EUnavailable, "Every upstream API key for the model %q is set aside (refused, or its quota spent); see the channels in the admin panel.", model)
	}
	return last
}

// pick returns the next key of ch's pool to try: in turn, skipping keys
// tried already by this request and, unless force, keys whose breaker is
// open.
func (r *Router) pick(ctx context.Context, ch gateway.Channel, tried map[string]bool, force bool) (target, bool) {
	if len(ch.APIKeys) == 0 {
		if tried[ch.ID] {
			return target{}, false
		}
		return target{ch: ch, keyRef: ch.ID}, true
	}
	v, _ := r.turns.LoadOrStore(ch.ID, new(atomic.Uint64))
	start := v.(*atomic.Uint64).Add(1)
	n := uint64(len(ch.APIKeys))
	for i := range n {
		k := ch.APIKeys[(start+i)%n]
		ref := Target(ch.ID, KeyID(k))
		if tried[ref] {
			continue
		}
		if force || r.admit(ctx, ref) {
			return target{ch: ch, key: k, keyRef: ref}, true
		}
	}
	return target{}, false
}

// soonest returns, among candidates whose breakers are all open, the key
// whose cool-down (its own, or its channel's) ends first. A key set aside
// (refused, or its quota spent) is not one: trying it again would only
// fail again until its probe.
func (r *Router) soonest(ctx context.Context, order []gateway.Channel) (target, bool) {
	var best target
	var bestAt time.Time
	found := false
	for _, ch := range order {
		chAt := r.state(ctx, ch.ID).OpenUntil
		refs := []string{ch.ID}
		if len(ch.APIKeys) > 0 {
			refs = refs[:0]
			for _, k := range ch.APIKeys {
				refs = append(refs, Target(ch.ID, KeyID(k)))
			}
		}
		for i, ref := range refs {
			at := chAt
			if ref != ch.ID {
				k := r.state(ctx, ref)
				if k.Disabled {
					continue
				}
				if k.OpenUntil.After(at) {
					at = k.OpenUntil
				}
			}
			if !found || at.Before(bestAt) {
				found, bestAt = true, at
				best = target{ch: ch, keyRef: ref}
				if ref != ch.ID {
					best.key = ch.APIKeys[i]
				}
			}
		}
	}
	return best, found
}

// state returns target's breaker as this instance knows it, read again
// once older than TTL. A store that cannot be read counts as closed:
// routing goes on without breakers rather than not at all.
func (r *Router) state(ctx context.Context, ref string) State {
	now := r.now()
	r.mu.Lock()
	s, ok := r.seen[ref]
	r.mu.Unlock()
	if ok && now.Sub(s.at) < r.TTL {
		return s.st
	}
	st, _, err := r.health.read(ctx, ref)
	if err != nil {
		slog.WarnContext(ctx, "read a channel's health", "target", ref, "err", err)
		return State{}
	}
	r.remember(ref, st)
	return st
}

func (r *Router) remember(ref string, st State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.seen) > 10_000 {
		clear(r.seen) // keys come and go; forget them all now and then
	}
	r.seen[ref] = seen{st: st, at: r.now()}
}

// admit reports whether ref's breaker lets a request through: closed, or
// cooled down and this request wins the probe.
func (r *Router) admit(ctx context.Context, ref string) bool {
	st := r.state(ctx, ref)
	if st.Failures == 0 {
		return true
	}
	if r.now().Before(st.OpenUntil) {
		return false
	}
	won, cur, err := r.health.Admit(ctx, ref)
	if err != nil {
		slog.WarnContext(ctx, "probe a channel", "target", ref, "err", err)
		return false
	}
	if won {
		cur.OpenUntil = r.now().Add(r.health.ProbeFor)
	}
	r.remember(ref, cur)
	return won
}

// succeeded closes the breakers of t that were not closed.
func (r *Router) succeeded(ctx context.Context, t target) {
	for _, ref := range []string{t.ch.ID, t.keyRef} {
		if r.state(ctx, ref).Failures == 0 {
			continue
		}
		if err := r.health.Success(context.WithoutCancel(ctx), ref); err != nil {
			slog.WarnContext(ctx, "close a channel's breaker", "target", ref, "err", err)
			continue
		}
		slog.InfoContext(ctx, "channel back in rotation", "target", ref)
		r.remember(ref, State{})
		if t.ch.ID == t.keyRef {
			break
		}
	}
}

// failed feeds the failure to the breaker it concerns: the channel's for
// a failing channel, the key's for a key rate limited, refused or spent.
func (r *Router) failed(ctx context.Context, t target, fault gateway.Fault, err error) {
	ctx = context.WithoutCancel(ctx)
	reason := Reason(err)
	var st State
	var herr error
	switch fault {
	case gateway.FaultChannel:
		st, herr = r.health.Failure(ctx, t.ch.ID, reason)
		r.remember(t.ch.ID, st)
	case gateway.FaultRate:
		st, herr = r.health.Failure(ctx, t.keyRef, reason)
		r.remember(t.keyRef, st)
	default: // FaultKey, FaultQuota
		st, herr = r.health.SetAside(ctx, t.keyRef, reason)
		r.remember(t.keyRef, st)
	}
	if herr != nil {
		slog.WarnContext(ctx, "record a channel's failure", "channel", t.ch.ID, "err", herr)
	}
	slog.WarnContext(ctx, "channel failed; trying the next", "channel", t.ch.ID, "key", KeyID(t.key),
		"failures", st.Failures, "disabled", st.Disabled, "err", err)
}

// Reason is what an admin is shown of a failure: the user-facing
// message, and what lies behind it (the upstream's status and words,
// already scrubbed of its key, or the network's error), cut short.
func Reason(err error) string {
	msg := gateway.ErrorMessage(err)
	if e, ok := err.(*gateway.Error); ok && e.Cause != nil {
		msg += " (" + e.Cause.Error() + ")"
	}
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return msg
}
