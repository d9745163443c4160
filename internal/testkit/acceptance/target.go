package acceptance

import (
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// Env is the configuration a target runs with for the suite: short
// timeouts and small limits, so that every step is quick. NewTarget
// describes the same values.
var Env = []string{
	"GATEWAY_MAX_BODY_BYTES=1048576",
	"GATEWAY_IMAGE_MAX_BYTES=1048576",
	"GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT=1s",
	"GATEWAY_UPSTREAM_IDLE_TIMEOUT=1500ms",
	"GATEWAY_UPSTREAM_RETRY_BACKOFF=10ms",
	"GATEWAY_DRAIN_TIMEOUT=2s",
}

// NewTarget returns the Target of a gateway at baseURL that runs with Env,
// with fresh fake upstreams (a primary and a fallback) the gateway can
// reach; the caller sets what else its target needs.
func NewTarget(t *testing.T, baseURL string) Target {
	return Target{
		BaseURL:          baseURL,
		Upstream:         fakeupstream.Named(t, "primary"),
		Fallback:         fakeupstream.Named(t, "fallback"),
		MaxBody:          1 << 20,
		FirstByteTimeout: time.Second,
		IdleTimeout:      1500 * time.Millisecond,
		DrainTimeout:     2 * time.Second,
	}
}
