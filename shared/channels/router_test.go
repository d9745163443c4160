package channels

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/upstream"
)

// instance is one gateway instance's routing: its own store, breakers,
// router and client over the shared records, with a clock the test moves.
type instance struct {
	store  *Store
	health *Health
	router *Router
	client *upstream.Client
}

type rig struct {
	records storage.Records
	box     *seal.Box
	mu      sync.Mutex
	clock   time.Time
}

func newRig(t *testing.T) *rig {
	box, err := seal.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return &rig{records: sqlitetest.Open(t).Records(), box: box, clock: time.Unix(1_800_000_000, 0)}
}

func (g *rig) now() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.clock
}

func (g *rig) advance(d time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.clock = g.clock.Add(d)
}

// instance returns a new instance: TTL 0 (every breaker read afresh), no
// real waits, the given first-byte timeout.
func (g *rig) instance(firstByte time.Duration) *instance {
	in := &instance{store: New(g.records, g.box, 0), health: NewHealth(g.records)}
	in.health.now = g.now
	in.router = NewRouter(in.store, in.health, 0)
	in.router.now = g.now
	in.router.sleep = func(context.Context, time.Duration) error { return nil }
	in.router.seed(7)
	cfg := upstream.DefaultConfig()
	cfg.FirstByteTimeout = firstByte
	in.client = upstream.New(cfg, nil)
	in.client.Route(in.router)
	return in
}

func (in *instance) add(t *testing.T, name, url string, priority, weight int, keys ...gateway.Secret) gateway.Channel {
	t.Helper()
	c, err := in.store.Create(context.Background(), gateway.Channel{Name: name, BaseURL: url, APIKeys: keys,
		Models: []string{"fake/*"}, Capabilities: []string{gateway.CapChat}, Priority: priority, Weight: weight, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// chat sends one chat completion through the router and returns its whole
// answer and the route it took.
func (in *instance) chat(text string, stream bool) (string, *gateway.Route, error) {
	ctx, route := gateway.WithRoute(context.Background())
	body := `{"model":"fake/m","messages":[{"role":"user","content":"` + text + `"}]`
	if stream {
		body += `,"stream":true`
	}
	resp, err := in.client.Post(ctx, gateway.Upstream{Model: "fake/m"}, "/chat/completions", []byte(body+"}"))
	if err != nil {
		return "", route, err
	}
	defer resp.Close()
	if !stream {
		b, err := resp.ReadAll(1 << 20)
		return string(b), route, err
	}
	var out strings.Builder
	for {
		ev, err := resp.Next()
		if errors.Is(err, io.EOF) {
			return out.String(), route, nil
		}
		if err != nil {
			return out.String(), route, err
		}
		out.Write(ev.Data)
	}
}

// TestRoutingByPriorityAndWeight: the highest priority group takes every
// request while it is healthy, split by weight (3:1 over 2 000 requests
// with a fixed seed, within 3 points); the lower group only when the
// higher one fails.
func TestRoutingByPriorityAndWeight(t *testing.T) {
	g := newRig(t)
	in := g.instance(5 * time.Second)
	heavy, light, low := fakeupstream.New(t), fakeupstream.New(t), fakeupstream.New(t)
	in.add(t, "heavy", heavy.URL, 10, 3, "sk-heavy-0123456789")
	in.add(t, "light", light.URL, 10, 1, "sk-light-0123456789")
	in.add(t, "low", low.URL, 0, 1000, "sk-low-0123456789")
	const n = 2000
	for i := range n {
		if _, _, err := in.chat("hello", false); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	h, l, o := len(heavy.Requests()), len(light.Requests()), len(low.Requests())
	if h+l != n || o != 0 {
		t.Fatalf("heavy %d + light %d of %d, low %d: the lower priority was used while the higher one was healthy", h, l, n, o)
	}
	if share := float64(h) / n; math.Abs(share-0.75) > 0.03 {
		t.Fatalf("weight 3 of 4 took %.3f of the requests, want 0.75±0.03", share)
	}
	heavy.Fail("503")
	light.Fail("down")
	for range 20 {
		if answer, route, err := in.chat("hello", false); err != nil || !strings.Contains(answer, "echo: hello") || route.Channel() == "" {
			t.Fatalf("with the higher group failing: %q %v", answer, err)
		}
	}
	if len(low.Requests()) != 20 {
		t.Fatalf("the lower priority answered %d of 20 with the higher group down", len(low.Requests()))
	}
}

// TestFailoverBeforeTheFirstByte: each kind of failure before an answer
// (no connection, a first-byte timeout, 429, 500, 503) moves the request
// to the next channel, unseen by the caller, and is recorded as that
// channel's failure; a request the upstream refuses as bad (400) does
// not move on.
func TestFailoverBeforeTheFirstByte(t *testing.T) {
	for _, mode := range []string{"down", "hang", "429", "500", "503"} {
		t.Run(mode, func(t *testing.T) {
			g := newRig(t)
			in := g.instance(300 * time.Millisecond)
			bad, good := fakeupstream.New(t), fakeupstream.New(t)
			badCh := in.add(t, "bad", bad.URL, 10, 1, "sk-bad-0123456789")
			goodCh := in.add(t, "good", good.URL, 0, 1, "sk-good-0123456789")
			bad.Fail(mode)
			answer, route, err := in.chat("hello there", true)
			if err != nil || !strings.Contains(answer, "hello") {
				t.Fatalf("failover on %s: %q %v", mode, answer, err)
			}
			if route.Channel() != goodCh.ID || strings.Join(route.FailedChannels(), ",") != badCh.ID {
				t.Fatalf("route: answered by %s after %v", route.Channel(), route.FailedChannels())
			}
			if route.Secret() != "sk-good-0123456789" {
				t.Fatalf("the answering key is %q", route.Secret())
			}
			ref := badCh.ID
			if mode == "429" {
				ref = Target(badCh.ID, KeyID("sk-bad-0123456789")) // a rate limit is the key's
			}
			st, _, err := in.health.read(context.Background(), ref)
			if err != nil || st.Failures != 1 || st.Reason == "" {
				t.Fatalf("the failure was not recorded on %s: %+v %v", ref, st, err)
			}
			if strings.Contains(st.Reason, "sk-bad-0123456789") {
				t.Fatalf("the reason shows the key: %s", st.Reason)
			}
		})
	}
	t.Run("400", func(t *testing.T) {
		g := newRig(t)
		in := g.instance(time.Second)
		bad, good := fakeupstream.New(t), fakeupstream.New(t)
		in.add(t, "bad", bad.URL, 10, 1)
		in.add(t, "good", good.URL, 0, 1)
		bad.Fail("400")
		if _, _, err := in.chat("hello", false); gateway.ErrorCode(err) != gateway.EInvalid {
			t.Fatalf("a 400 = %v, want the upstream's refusal", err)
		}
		if len(good.Requests()) != 0 {
			t.Fatal("a request the upstream refused as bad was sent to another channel")
		}
	})
}

// TestNoSwitchAfterTheFirstByte: a stream that breaks off after it began
// reaches the caller as an error; no other channel is asked.
func TestNoSwitchAfterTheFirstByte(t *testing.T) {
	g := newRig(t)
	in := g.instance(time.Second)
	first, second := fakeupstream.New(t), fakeupstream.New(t)
	in.add(t, "first", first.URL, 10, 1)
	in.add(t, "second", second.URL, 0, 1)
	answer, _, err := in.chat("#reset", true)
	if err == nil || answer == "" {
		t.Fatalf("a stream broken off = %q, %v; want what came, then an error", answer, err)
	}
	if len(second.Requests()) != 0 {
		t.Fatal("the request was sent again to another channel after the stream began")
	}
}

// TestBreakerSharedAcrossInstances: a channel that failed on one instance
// is skipped by another instance over the same store, without a request.
func TestBreakerSharedAcrossInstances(t *testing.T) {
	g := newRig(t)
	a, b := g.instance(time.Second), g.instance(time.Second)
	dead, alive := fakeupstream.New(t), fakeupstream.New(t)
	a.add(t, "dead", dead.URL, 10, 1)
	a.add(t, "alive", alive.URL, 0, 1)
	dead.Fail("503")
	if _, _, err := a.chat("hello", false); err != nil {
		t.Fatal(err)
	}
	if len(dead.Requests()) != 1 {
		t.Fatalf("instance A tried the failing channel %d times, want 1 then the next channel", len(dead.Requests()))
	}
	for range 10 {
		if _, _, err := b.chat("hello", false); err != nil {
			t.Fatal(err)
		}
	}
	if len(dead.Requests()) != 1 || len(alive.Requests()) != 11 {
		t.Fatalf("instance B sent %d requests to the channel A saw fail", len(dead.Requests())-1)
	}
}

// TestKeyPoolSetsKeysAside: keys are used in turn; a key the upstream
// refuses (401) or whose quota is spent (429 insufficient_quota) is set
// aside with the reason after one failure, and the request goes on with
// the next key of the same channel; a key merely rate limited cools down
// and comes back.
func TestKeyPoolSetsKeysAside(t *testing.T) {
	g := newRig(t)
	in := g.instance(time.Second)
	up := fakeupstream.New(t)
	keys := []gateway.Secret{"sk-revoked-0123456789", "sk-spent-0123456789", "sk-good-0123456789", "sk-busy-0123456789"}
	ch := in.add(t, "pool", up.URL, 0, 1, keys...)
	up.Refuse(string(keys[0]), http.StatusUnauthorized, "invalid_api_key")
	up.Refuse(string(keys[1]), http.StatusTooManyRequests, "insufficient_quota")
	up.Refuse(string(keys[3]), http.StatusTooManyRequests, "rate_limit_exceeded")
	for i := range 30 {
		if _, route, err := in.chat("hello", false); err != nil || route.Channel() != ch.ID {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	used := map[string]int{}
	for _, r := range up.Requests() {
		used[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]++
	}
	if used[string(keys[0])] != 1 || used[string(keys[1])] != 1 || used[string(keys[3])] != 1 || used[string(keys[2])] != 30 {
		t.Fatalf("keys used %v: want each failing key tried once, the good one for all 30", used)
	}
	states, err := in.health.States(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int]string{0: "credentials", 1: "quota"} {
		st := states[Target(ch.ID, KeyID(keys[i]))]
		if !st.Disabled || !strings.Contains(st.Reason, want) {
			t.Fatalf("key %d: %+v, want set aside for %q", i, st, want)
		}
	}
	if st := states[Target(ch.ID, KeyID(keys[3]))]; st.Disabled || st.Failures != 1 {
		t.Fatalf("a rate-limited key: %+v, want cooling, not set aside", st)
	}
	if _, ok := states[ch.ID]; ok {
		t.Fatal("the channel itself was marked: its keys failed, not it")
	}
	// The rate limit cools down; the set-aside keys stay out.
	g.advance(6 * time.Second)
	up.Refuse(string(keys[3]), http.StatusOK, "")
	for range 8 {
		in.chat("hello", false)
	}
	used = map[string]int{}
	for _, r := range up.Requests()[33:] {
		used[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]++
	}
	if used[string(keys[0])] != 0 || used[string(keys[1])] != 0 || used[string(keys[3])] == 0 {
		t.Fatalf("after the cool-down: %v", used)
	}
}

// TestRecoveryThroughTheProbe: a channel that failed is skipped while it
// cools down; afterwards one request probes it, and its success puts it
// back in rotation (its breaker's record gone).
func TestRecoveryThroughTheProbe(t *testing.T) {
	g := newRig(t)
	in := g.instance(time.Second)
	flaky, steady := fakeupstream.New(t), fakeupstream.New(t)
	ch := in.add(t, "flaky", flaky.URL, 10, 1)
	in.add(t, "steady", steady.URL, 0, 1)
	flaky.Fail("down")
	for range 5 {
		if _, _, err := in.chat("hello", false); err != nil {
			t.Fatal(err)
		}
	}
	flaky.Fail("")
	g.advance(3 * time.Second) // within the first cool-down (5 s)
	in.chat("hello", false)
	if n := len(flaky.Requests()); n != 0 {
		t.Fatalf("the channel got %d requests while cooling down", n)
	}
	g.advance(3 * time.Second)
	if _, route, err := in.chat("hello", false); err != nil || route.Channel() != ch.ID {
		t.Fatalf("the probe after the cool-down went to %s: %v", route.Channel(), err)
	}
	if _, _, err := in.health.read(context.Background(), ch.ID); err != nil {
		t.Fatal(err)
	}
	if st, version, _ := in.health.read(context.Background(), ch.ID); version != 0 || st.Failures != 0 {
		t.Fatalf("after a successful probe the breaker holds %+v", st)
	}
	for range 5 {
		in.chat("hello", false)
	}
	if n := len(flaky.Requests()); n != 6 {
		t.Fatalf("back in rotation, the channel took %d of 6 requests", n)
	}
}

// TestOneUpstreamCoolingDownIsStillTried: with every candidate cooling
// down, the one back soonest is tried anyway, so that a gateway with one
// upstream answers as soon as the upstream does.
func TestOneUpstreamCoolingDownIsStillTried(t *testing.T) {
	g := newRig(t)
	in := g.instance(time.Second)
	only := fakeupstream.New(t)
	in.add(t, "only", only.URL, 0, 1)
	only.Fail("503")
	if _, _, err := in.chat("hello", false); gateway.ErrorCode(err) != gateway.EUpstream {
		t.Fatalf("every attempt failing = %v, want the upstream's error", err)
	}
	if n := len(only.Requests()); n != in.router.MaxAttempts {
		t.Fatalf("the only upstream was tried %d times, want %d", n, in.router.MaxAttempts)
	}
	only.Fail("")
	if _, _, err := in.chat("hello", false); err != nil {
		t.Fatalf("the only upstream, back but cooling down: %v", err)
	}
}

// TestNoChannelServesTheModel: a clear 503 that names the model, not a
// channel.
func TestNoChannelServesTheModel(t *testing.T) {
	g := newRig(t)
	in := g.instance(time.Second)
	_, _, err := in.chat("hello", false)
	if gateway.ErrorCode(err) != gateway.EUnavailable || !strings.Contains(gateway.ErrorMessage(err), "fake/m") {
		t.Fatalf("no channel = %v", err)
	}
}

// TestTimeoutIsNotRetriedOnTheSameChannel: a first-byte timeout moves the
// request to another channel, but the same channel is not waited on again.
func TestTimeoutIsNotRetriedOnTheSameChannel(t *testing.T) {
	g := newRig(t)
	in := g.instance(200 * time.Millisecond)
	slow := fakeupstream.New(t)
	in.add(t, "slow", slow.URL, 0, 1)
	slow.Fail("hang")
	if _, _, err := in.chat("hello", false); gateway.ErrorCode(err) != gateway.ETimeout {
		t.Fatalf("a silent upstream = %v, want a timeout", err)
	}
	if n := len(slow.Requests()); n != 1 {
		t.Fatalf("the silent upstream was waited on %d times", n)
	}
}

// TestPoolLeavesAttemptsForTheNextChannel: a pool whose keys all fail
// (one account's rate limit, or revoked keys) does not use up the
// request's attempts: the next channel answers the same request.
func TestPoolLeavesAttemptsForTheNextChannel(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusUnauthorized} {
		g := newRig(t)
		in := g.instance(time.Second)
		pool, backup := fakeupstream.New(t), fakeupstream.New(t)
		keys := []gateway.Secret{"sk-pool-1-0123456789", "sk-pool-2-0123456789", "sk-pool-3-0123456789", "sk-pool-4-0123456789", "sk-pool-5-0123456789"}
		in.add(t, "pool", pool.URL, 10, 1, keys...)
		b := in.add(t, "backup", backup.URL, 0, 1)
		for _, k := range keys {
			pool.Refuse(string(k), status, "refused")
		}
		_, route, err := in.chat("hello", false)
		if err != nil || route.Channel() != b.ID {
			t.Fatalf("status %d: %v, answered by %q after %v", status, err, route.Channel(), route.FailedChannels())
		}
	}
}

// TestKeysSetAsideAreNotTriedAgain: once every key of the only channel
// is set aside, requests get a clear 503 without another upstream call.
func TestKeysSetAsideAreNotTriedAgain(t *testing.T) {
	g := newRig(t)
	in := g.instance(time.Second)
	up := fakeupstream.New(t)
	keys := []gateway.Secret{"sk-revoked-1-0123456789", "sk-revoked-2-0123456789"}
	in.add(t, "revoked", up.URL, 0, 1, keys...)
	for _, k := range keys {
		up.Refuse(string(k), http.StatusUnauthorized, "invalid_api_key")
	}
	in.chat("hello", false)
	calls := len(up.Requests())
	for range 3 {
		_, _, err := in.chat("hello", false)
		if gateway.ErrorCode(err) != gateway.EUnavailable || !strings.Contains(gateway.ErrorMessage(err), "set aside") {
			t.Fatalf("every key set aside = %v", err)
		}
	}
	if n := len(up.Requests()); n != calls {
		t.Fatalf("keys set aside were sent again: %d more calls", n-calls)
	}
}
