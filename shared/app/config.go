// Package app wires the gateway together: it is the one package that reads
// the environment and sees concrete storage types. Targets call it: the
// local server serves All, each Lambda serves its own function's handler.
package app

import (
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/upstream"
)

// Config is the process configuration, read from the environment.
type Config struct {
	// Addr is where the local server listens (GATEWAY_ADDR).
	Addr string
	// DataDir holds the local store and the master key (GATEWAY_DATA_DIR).
	DataDir string
	// MasterKey, when set, is the master key (GATEWAY_MASTER_KEY, base64 or
	// hex); otherwise the local target keeps one in DataDir/master.key.
	MasterKey string
	// MaxBody bounds request bodies (GATEWAY_MAX_BODY_BYTES; 32 MiB, or
	// LambdaMaxBody on Lambda).
	MaxBody int64
	// CacheTTL bounds how long an instance trusts its cached keys and
	// settings (GATEWAY_CACHE_TTL).
	CacheTTL time.Duration
	// ImageMaxBytes bounds one generated image the gateway fetches and
	// keeps (GATEWAY_IMAGE_MAX_BYTES).
	ImageMaxBytes int64
	// DrainTimeout bounds how long an upstream answer is read on after its
	// client left, to learn its usage (GATEWAY_DRAIN_TIMEOUT).
	DrainTimeout time.Duration
	// BodyTimeout is how long the local server waits for a request body,
	// plus a second per 100 KB it announces (GATEWAY_BODY_TIMEOUT).
	BodyTimeout time.Duration
	// Upstream holds the upstream timeouts (GATEWAY_UPSTREAM_CONNECT_TIMEOUT,
	// GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT, GATEWAY_UPSTREAM_IDLE_TIMEOUT).
	Upstream upstream.Config
	// ChannelCooldown is a failing channel's first cool-down, doubling up
	// to ChannelMaxCooldown; ChannelDisableAfter failures in a row mark it
	// disabled, 0 never (GATEWAY_CHANNEL_COOLDOWN,
	// GATEWAY_CHANNEL_MAX_COOLDOWN, GATEWAY_CHANNEL_DISABLE_AFTER).
	ChannelCooldown, ChannelMaxCooldown time.Duration
	ChannelDisableAfter                 int64
	// MaxAnswer, when not zero, bounds what one answer of the admin API
	// may hold: on Lambda, where the admin function's answers are buffered
	// into a response of at most 6 MB.
	MaxAnswer int64
	// AdminIgnoreAllowlist lets the admin panel answer every address
	// whatever admin_allowed_ips say: the way back in for an admin whose
	// address changed (GATEWAY_ADMIN_IGNORE_ALLOWLIST=true).
	AdminIgnoreAllowlist bool
	// LogLevel is debug, info, warn or error (GATEWAY_LOG_LEVEL).
	LogLevel slog.Level
	// Table and Bucket are the DynamoDB table and S3 bucket of the AWS
	// target (GATEWAY_TABLE, GATEWAY_BUCKET).
	Table, Bucket string
	// MasterKeySecret names the Secrets Manager secret that holds the master
	// key on AWS (GATEWAY_MASTER_KEY_SECRET); GATEWAY_MASTER_KEY wins when
	// both are set.
	MasterKeySecret string
	// DynamoDBEndpoint and S3Endpoint point the AWS clients elsewhere, at
	// local stand-ins or S3-compatible stores (GATEWAY_DYNAMODB_ENDPOINT,
	// GATEWAY_S3_ENDPOINT; S3 then uses path-style addressing).
	DynamoDBEndpoint, S3Endpoint string
	// SAMLocal is true under `sam local` (AWS_SAM_LOCAL=true), where the
	// chat function answers buffered because the emulator cannot stream.
	SAMLocal bool
	// CORSOrigins are the browser origins allowed to call /v1/
	// (GATEWAY_CORS_ORIGINS, comma-separated; "*" for any; empty for none).
	CORSOrigins []string
}

// LambdaMaxBody is the default body limit on Lambda. A synchronous
// invocation takes at most 6 MB (6,291,456 bytes) of event, and API Gateway
// hands binary bodies (file uploads) over base64-encoded, a third larger;
// 4 MiB is 5.6 MB encoded, with room left for the headers, and 1.45 times
// its size for JSON escaping of text bodies. Larger files take the direct
// upload.
const LambdaMaxBody = 4 << 20

// LambdaMaxAnswer bounds a buffered answer on Lambda: its payload holds at
// most 6 MB, the body JSON-escaped in it.
const LambdaMaxAnswer = 5 << 20

// Load reads the configuration from the environment. Every variable is
// optional; a malformed one is an error that names it.
func Load() (Config, error) {
	cfg := Config{
		Addr:            env("GATEWAY_ADDR", "127.0.0.1:8080"),
		DataDir:         env("GATEWAY_DATA_DIR", "data"),
		MasterKey:       os.Getenv("GATEWAY_MASTER_KEY"),
		MaxBody:         32 << 20,
		CacheTTL:        5 * time.Second,
		DrainTimeout:    30 * time.Second,
		BodyTimeout:     30 * time.Second,
		ImageMaxBytes:   20 << 20,
		Upstream:        upstream.DefaultConfig(),
		ChannelCooldown: 5 * time.Second, ChannelMaxCooldown: 5 * time.Minute, ChannelDisableAfter: 10,

		Table:                os.Getenv("GATEWAY_TABLE"),
		Bucket:               os.Getenv("GATEWAY_BUCKET"),
		MasterKeySecret:      os.Getenv("GATEWAY_MASTER_KEY_SECRET"),
		DynamoDBEndpoint:     os.Getenv("GATEWAY_DYNAMODB_ENDPOINT"),
		S3Endpoint:           os.Getenv("GATEWAY_S3_ENDPOINT"),
		SAMLocal:             os.Getenv("AWS_SAM_LOCAL") == "true",
		AdminIgnoreAllowlist: os.Getenv("GATEWAY_ADMIN_IGNORE_ALLOWLIST") == "true",
	}
	if os.Getenv("AWS_LAMBDA_FUNCTION_NAME") != "" {
		if os.Getenv("GATEWAY_DATA_DIR") == "" {
			cfg.DataDir = "/tmp/gateway" // the only writable folder on Lambda
		}
		cfg.MaxBody = LambdaMaxBody
		cfg.MaxAnswer = LambdaMaxAnswer
	}
	var errs []string
	check := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
		}
	}
	integer := func(name string, lo, hi int64, dst *int64) {
		v := os.Getenv(name)
		if v == "" {
			return
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && (n < lo || n > hi) {
			err = fmt.Errorf("must be between %d and %d", lo, hi)
		}
		check(name, err)
		*dst = n
	}
	integer("GATEWAY_MAX_BODY_BYTES", 1024, 1<<40, &cfg.MaxBody)
	integer("GATEWAY_IMAGE_MAX_BYTES", 1024, 1<<40, &cfg.ImageMaxBytes)
	retries := int64(cfg.Upstream.Retries)
	integer("GATEWAY_UPSTREAM_RETRIES", 0, 10, &retries)
	cfg.Upstream.Retries = int(retries)
	duration := func(name string, dst *time.Duration) {
		v := os.Getenv(name)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err == nil && d < 0 {
			err = fmt.Errorf("must not be negative")
		}
		check(name, err)
		*dst = d
	}
	duration("GATEWAY_CACHE_TTL", &cfg.CacheTTL)
	duration("GATEWAY_DRAIN_TIMEOUT", &cfg.DrainTimeout)
	duration("GATEWAY_BODY_TIMEOUT", &cfg.BodyTimeout)
	duration("GATEWAY_UPSTREAM_RETRY_BACKOFF", &cfg.Upstream.RetryBackoff)
	duration("GATEWAY_UPSTREAM_CONNECT_TIMEOUT", &cfg.Upstream.ConnectTimeout)
	duration("GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT", &cfg.Upstream.FirstByteTimeout)
	duration("GATEWAY_UPSTREAM_IDLE_TIMEOUT", &cfg.Upstream.IdleTimeout)
	duration("GATEWAY_CHANNEL_COOLDOWN", &cfg.ChannelCooldown)
	duration("GATEWAY_CHANNEL_MAX_COOLDOWN", &cfg.ChannelMaxCooldown)
	integer("GATEWAY_CHANNEL_DISABLE_AFTER", 0, 1000, &cfg.ChannelDisableAfter)
	if cfg.ChannelCooldown <= 0 || cfg.ChannelMaxCooldown < cfg.ChannelCooldown {
		check("GATEWAY_CHANNEL_COOLDOWN", fmt.Errorf("must be above 0 and at most GATEWAY_CHANNEL_MAX_COOLDOWN"))
	}
	if v := os.Getenv("GATEWAY_LOG_LEVEL"); v != "" {
		check("GATEWAY_LOG_LEVEL", cfg.LogLevel.UnmarshalText([]byte(v)))
	}
	origins, err := parseOrigins(os.Getenv("GATEWAY_CORS_ORIGINS"))
	check("GATEWAY_CORS_ORIGINS", err)
	cfg.CORSOrigins = origins
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("bad configuration: %s", strings.Join(errs, "; "))
	}
	return cfg, nil
}

// MustLoad is Load for mains: it panics on a bad configuration.
func MustLoad() Config {
	cfg, err := Load()
	if err != nil {
		panic(err)
	}
	return cfg
}

// origin is what GATEWAY_CORS_ORIGINS takes for one origin; the template's
// AllowedOrigins pattern takes the same, so that a deploy refuses what the
// functions would.
var origin = regexp.MustCompile(`^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$`)

// parseOrigins reads a comma-separated list of origins, or "*" alone, or
// nothing.
func parseOrigins(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	if strings.TrimSpace(v) == "*" {
		return []string{"*"}, nil
	}
	var out []string
	for o := range strings.SplitSeq(v, ",") {
		o = strings.TrimSpace(o)
		if !origin.MatchString(o) {
			return nil, fmt.Errorf("%q is not an origin like https://chat.example.com (a list of them, or * alone)", o)
		}
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	return out, nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
