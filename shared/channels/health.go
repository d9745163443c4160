package channels

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Health is the circuit breaker of channels (or of one key of a channel),
// shared through the Records role so that every instance sees it: after a
// failure a target is out for a cool-down that doubles with each failure
// in a row (up to MaxCooldown); once the cool-down is over, one request,
// the probe, may try it (half-open), and its success closes the breaker;
// after DisableAfter failures in a row the target is out until a probe
// succeeds, with the reason kept to show.
type Health struct {
	records storage.Records
	now     func() time.Time
	// BaseCooldown is the first cool-down; MaxCooldown bounds the growth;
	// ProbeFor is how long a probe holds the half-open slot.
	BaseCooldown, MaxCooldown, ProbeFor time.Duration
	// DisableAfter failures in a row mark the target disabled (zero: never).
	DisableAfter int
	// SetAsideFor is how long a key set aside stays out before a probe.
	SetAsideFor time.Duration
}

// NewHealth returns the breakers on records with the default timings:
// cool-downs from 5 s to 5 min, probes held 30 s, disabled after 10
// failures in a row, keys set aside for an hour.
func NewHealth(records storage.Records) *Health {
	return &Health{records: records, now: time.Now, BaseCooldown: 5 * time.Second, MaxCooldown: 5 * time.Minute,
		ProbeFor: 30 * time.Second, DisableAfter: 10, SetAsideFor: time.Hour}
}

// healthPK holds the breakers, by target.
const healthPK = "chhealth"

// keepHealth is how long a breaker's record outlives its last failure:
// one left by a deleted channel or key goes away by itself, and one that
// has seen no traffic for a day starts closed again.
const keepHealth = 24 * time.Hour

// State is a target's breaker as stored.
type State struct {
	Failures  int64     `json:"failures"`
	OpenUntil time.Time `json:"open_until"`
	Reason    string    `json:"reason,omitempty"`
	Disabled  bool      `json:"disabled,omitempty"`
}

// Target names what a breaker guards: a channel, or one key of it (by its
// index in the pool's own stable identity, given by the caller).
func Target(channelID, key string) string {
	if key == "" {
		return channelID
	}
	return channelID + "#" + key
}

// read returns the target's state and its record's version (0: none).
func (h *Health) read(ctx context.Context, target string) (State, int64, error) {
	it, err := h.records.Get(ctx, healthPK, target)
	if gateway.IsNotFound(err) {
		return State{}, 0, nil
	}
	if err != nil {
		return State{}, 0, err
	}
	var st State
	if err := json.Unmarshal(it.Value, &st); err != nil {
		return State{}, 0, fmt.Errorf("decode health of %s: %w", target, err)
	}
	st.Failures = it.Counters["failures"]
	return st, it.Version, nil
}

// Admit reports whether a request may use target now: closed, or half-open
// and this request wins the probe. State is what the breaker holds.
func (h *Health) Admit(ctx context.Context, target string) (bool, State, error) {
	st, version, err := h.read(ctx, target)
	if err != nil || version == 0 {
		return err == nil, st, err
	}
	now := h.now()
	if st.Failures == 0 || now.Before(st.OpenUntil) {
		return st.Failures == 0, st, nil
	}
	// Half-open: the first to move OpenUntil on by ProbeFor probes; the
	// others find it open again.
	next := st
	next.OpenUntil = now.Add(h.ProbeFor)
	value, _ := json.Marshal(next)
	_, err = h.records.Put(ctx, storage.Item{PK: healthPK, SK: target, Value: value, ExpiresAt: now.Add(keepHealth)}, storage.Cond{IfVersion: version})
	if gateway.IsConflict(err) {
		return false, st, nil
	}
	if err != nil {
		return false, st, err
	}
	return true, st, nil
}

// Failure records a failure of target: the failures in a row counted, the
// breaker opened for the cool-down they call for.
func (h *Health) Failure(ctx context.Context, target, reason string) (State, error) {
	return h.fail(ctx, target, func(n int64) State {
		cool := h.BaseCooldown
		for i := int64(1); i < n && cool < h.MaxCooldown; i++ {
			cool *= 2
		}
		cool = min(cool, h.MaxCooldown)
		return State{Failures: n, OpenUntil: h.now().Add(cool), Reason: reason, Disabled: h.DisableAfter > 0 && n >= int64(h.DisableAfter)}
	})
}

// SetAside takes target out at once, disabled with the reason, for
// SetAsideFor before a probe may try it again: a key the upstream refused
// or whose quota is spent, which retrying soon would not mend.
func (h *Health) SetAside(ctx context.Context, target, reason string) (State, error) {
	return h.fail(ctx, target, func(n int64) State {
		return State{Failures: n, OpenUntil: h.now().Add(h.SetAsideFor), Reason: reason, Disabled: true}
	})
}

// fail counts a failure of target and stores the state next makes of the
// failures in a row.
func (h *Health) fail(ctx context.Context, target string, next func(n int64) State) (State, error) {
	expires := h.now().Add(keepHealth)
	c, err := h.records.Incr(ctx, healthPK, target, map[string]int64{"failures": 1}, expires)
	if err != nil {
		return State{}, err
	}
	st := next(c["failures"])
	for {
		it, err := h.records.Get(ctx, healthPK, target)
		if err != nil {
			return State{}, err
		}
		value, _ := json.Marshal(st)
		// The counters stay as Incr left them (Put keeps them when nil).
		if _, err := h.records.Put(ctx, storage.Item{PK: healthPK, SK: target, Value: value, ExpiresAt: expires}, storage.Cond{IfVersion: it.Version}); err == nil {
			return st, nil
		} else if !gateway.IsConflict(err) {
			return State{}, err
		}
		// Another failure or probe came between: write again over it,
		// with the count it left.
		st.Failures = max(st.Failures, it.Counters["failures"])
	}
}

// Success closes target's breaker.
func (h *Health) Success(ctx context.Context, target string) error {
	return h.records.Delete(ctx, healthPK, target)
}

// States returns the state of every target whose breaker is not closed,
// by target.
func (h *Health) States(ctx context.Context) (map[string]State, error) {
	out := map[string]State{}
	q := storage.Query{Limit: storage.MaxLimit}
	for {
		page, err := h.records.Query(ctx, healthPK, q)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			var st State
			if json.Unmarshal(it.Value, &st) == nil {
				st.Failures = it.Counters["failures"]
				out[it.SK] = st
			}
		}
		if page.Cursor == "" {
			return out, nil
		}
		q.Cursor = page.Cursor
	}
}
