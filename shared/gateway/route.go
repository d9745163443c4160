package gateway

import (
	"context"
	"errors"
	"sync"
)

// Fault says what an upstream's failure means for the routing of a
// request: whether another channel, or another key of the same channel,
// may succeed where this one failed.
type Fault uint8

// Faults of an upstream attempt.
const (
	// FaultNone: not an upstream's failure (the client left, a bug).
	FaultNone Fault = iota
	// FaultRequest: the upstream refused the request itself (400, 413,
	// 422); another upstream would refuse it too.
	FaultRequest
	// FaultChannel: the channel is failing (no connection, a timeout, a
	// 5xx, an unknown model).
	FaultChannel
	// FaultRate: the upstream is rate limiting this key (429).
	FaultRate
	// FaultKey: the upstream refused this key (401, 403).
	FaultKey
	// FaultQuota: this key's quota or balance is spent (402, or a 429
	// saying so).
	FaultQuota
)

// FaultOf returns the fault of err: the Fault of its Error, FaultNone for
// anything else.
func FaultOf(err error) Fault {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Fault
	}
	return FaultNone
}

// Route is what the routing of one request found, for its usage record
// and to keep the answering key out of what the client sees. The router
// fills it in; the handler reads it once the answer came.
type Route struct {
	mu      sync.Mutex
	channel string
	secret  Secret
	failed  []string
}

// Answered notes the channel that answered with the key it was sent.
func (r *Route) Answered(channel string, secret Secret) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.channel, r.secret = channel, secret
}

// Failed notes a channel that failed before another was tried.
func (r *Route) Failed(channel string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.failed) < 16 {
		r.failed = append(r.failed, channel)
	}
}

// Channel returns the channel that answered ("" when none did, or no
// channel was involved).
func (r *Route) Channel() string {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.channel
}

// Secret returns the key the answering channel was sent.
func (r *Route) Secret() Secret {
	if r == nil {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.secret
}

// FailedChannels returns the channels that failed, in order (one per
// failed attempt, at most 16).
func (r *Route) FailedChannels() []string {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.failed...)
}

type routeKey struct{}

// WithRoute returns ctx carrying a new Route for the router to fill.
func WithRoute(ctx context.Context) (context.Context, *Route) {
	r := &Route{}
	return context.WithValue(ctx, routeKey{}, r), r
}

// RouteOf returns the Route ctx carries, or nil.
func RouteOf(ctx context.Context) *Route {
	r, _ := ctx.Value(routeKey{}).(*Route)
	return r
}
