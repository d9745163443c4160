package channels

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
)

// TestHealthIsSharedAndHalfOpens: failures open a breaker for cool-downs
// that double (up to the cap); another instance over the same store sees
// it; once cooled down, one request of a burst probes; success closes it;
// failures in a row past the limit mark it disabled, with the reason.
func TestHealthIsSharedAndHalfOpens(t *testing.T) {
	ctx := context.Background()
	records := sqlitetest.Open(t).Records()
	clock := time.Unix(1_800_000_000, 0)
	now := func() time.Time { return clock }
	a, b := NewHealth(records), NewHealth(records)
	a.now, b.now = now, now
	a.DisableAfter, b.DisableAfter = 6, 6
	target := Target("ch_one", "")
	for i, want := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second} {
		st, err := a.Failure(ctx, target, "upstream 503")
		if err != nil {
			t.Fatal(err)
		}
		if st.Failures != int64(i+1) || !st.OpenUntil.Equal(clock.Add(want)) || st.Disabled {
			t.Fatalf("failure %d: %+v, want open %v", i+1, st, want)
		}
	}
	if ok, st, err := b.Admit(ctx, target); ok || err != nil || st.Reason != "upstream 503" {
		t.Fatalf("another instance admits an open channel: %v %+v %v", ok, st, err)
	}
	// Cooled down: a burst of 16 on two instances, one probe.
	clock = clock.Add(41 * time.Second)
	var probes atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		h := a
		if i%2 == 1 {
			h = b
		}
		wg.Go(func() {
			if ok, _, err := h.Admit(ctx, target); err != nil {
				t.Error(err)
			} else if ok {
				probes.Add(1)
			}
		})
	}
	wg.Wait()
	if probes.Load() != 1 {
		t.Fatalf("%d probes of a half-open channel, want 1", probes.Load())
	}
	if err := b.Success(ctx, target); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := a.Admit(ctx, target); !ok {
		t.Fatal("a channel whose probe succeeded is still out")
	}
	// Past the limit, disabled; the cool-down stops growing at the cap.
	a.MaxCooldown = 30 * time.Second
	var st State
	for range 6 {
		st, _ = a.Failure(ctx, target, "invalid API key")
	}
	if !st.Disabled || st.Reason != "invalid API key" || !st.OpenUntil.Equal(clock.Add(30*time.Second)) {
		t.Fatalf("after 6 failures: %+v", st)
	}
	// A key of the channel has its own breaker.
	if ok, _, _ := a.Admit(ctx, Target("ch_one", "k1")); !ok {
		t.Fatal("a key's breaker shares the channel's")
	}
}
