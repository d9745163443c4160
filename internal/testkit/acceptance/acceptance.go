// Package acceptance is the black-box acceptance suite of the HTTP contract
// (API.md). It takes the base URL of a freshly started, uninitialized
// gateway on any target (the local process, the Lambda functions under the
// runtime emulator, the Worker under wrangler) and drives it only over HTTP,
// with the official OpenAI Go SDK as the client and a fake upstream that
// speaks the real wire format.
package acceptance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// Target is a gateway under test.
type Target struct {
	// BaseURL is the gateway's root, without a trailing slash.
	BaseURL string
	// Upstream is the fake the suite sets the gateway up against; the
	// gateway must be able to reach its URL.
	Upstream *fakeupstream.Server
	// Fallback, if set, is a second fake (named "fallback", the first one
	// "primary") the suite configures as the fallback upstream.
	Fallback *fakeupstream.Server
	// FirstByteTimeout is the gateway's configured upstream first-byte
	// timeout (keep it short, a second or two).
	FirstByteTimeout time.Duration
	// MaxBody is the gateway's configured request body limit.
	MaxBody int64
	// KeyCacheTTL is how long the gateway may keep serving from its caches
	// after an admin change: a revoked key, settings, public models (zero
	// when the admin and chat handlers share one cache).
	KeyCacheTTL time.Duration
	// IdleTimeout is the gateway's configured upstream idle timeout (keep
	// it short, a second or two).
	IdleTimeout time.Duration
	// DrainTimeout is the gateway's configured GATEWAY_DRAIN_TIMEOUT: how
	// long it reads an answer on after its client left (keep it short).
	DrainTimeout time.Duration
	// ObjectCreated, when set, tells the target that a direct upload
	// arrived at key in its blob store, as its platform would (on AWS, the
	// bucket's event through EventBridge); nil where the gateway learns it
	// itself.
	ObjectCreated func(t *testing.T, key string)
	// StreamsBuffered says the target delivers a stream whole at its end
	// (the Lambda runtime emulator does): the steps that need events to
	// arrive one by one, or a client to leave mid-stream, check only what
	// such a target can show.
	StreamsBuffered bool
	// ChunkedFetch says the target reads upstream answers through the Fetch
	// API, a promise per chunk the runtime hands over (a Worker): an event
	// of 20 MB sent in short lines costs more CPU time there than a request
	// has, so that one fault is not sent to it.
	ChunkedFetch bool
	// DevProxy says the target is served through wrangler dev's proxy,
	// which now and then loses a connection to the Worker under a burst
	// (workers-sdk #14641): such a request is sent again, once.
	DevProxy bool
	// TextBodiesReencoded says the platform hands text bodies to the
	// gateway re-encoded (API Gateway puts them in a JSON string, with
	// bytes that are not UTF-8 replaced): such bytes never reach it.
	TextBodiesReencoded bool
}

const (
	adminPassword = "correct horse battery"
	upstreamKey   = "sk-upstream-secret-0123456789"
	ragKey        = "sk-rag-secret-9876543210"
	fallbackKey   = "sk-fallback-key-123456"
	upstreamModel = "fake/upstream-model"
)

// Secrets are the secrets the suite hands the gateway (the admin password
// and the upstream keys): none may appear in a log line, or in the store
// in plaintext.
var Secrets = []string{adminPassword, upstreamKey, ragKey, fallbackKey, teamKeyA, teamKeyA2, teamKeyB, teamKeyC}

// suite carries state between the ordered steps of Run.
type suite struct {
	Target
	key   string // the first API key, from setup
	admin *adminClient
}

// Run runs the suite against t, in order (setup first, login throttling
// last). Any step also runs alone (go test -run 'TestAcceptance/KeyTokensPerMinute$'):
// the steps after Setup set the gateway up first when no step did, and each
// step makes the keys, models and settings it needs.
func Run(t *testing.T, target Target) {
	s := &suite{Target: target}
	devProxy = target.DevProxy
	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Health", s.health},
		{"SetupRefusesBadInput", s.setupRefusesBadInput},
		{"Setup", s.setup},
		{"SetupTwiceConflicts", s.setupTwiceConflicts},
		{"RootRedirects", s.rootRedirects},
		{"Pages", s.pages},
		{"Models", s.models},
		{"Embeddings", s.embeddings},
		{"ChatNonStream", s.chatNonStream},
		{"ChatStreamEventsArriveOneByOne", s.chatStreamOneByOne},
		{"ResponsesCreate", s.responsesCreate},
		{"ResponsesStream", s.responsesStream},
		{"ResponsesTools", s.responsesTools},
		{"ResponsesErrors", s.responsesErrors},
		{"ResponsesState", s.responsesState},
		{"MessagesCreate", s.messagesCreate},
		{"MessagesStream", s.messagesStream},
		{"MessagesTools", s.messagesTools},
		{"MessagesErrorsAndAliases", s.messagesErrorsAndAliases},
		{"SmallerDoors", s.smallerDoors},
		{"OutputCap", s.outputCap},
		{"NodeSDKs", s.nodeSDKs},
		{"UnknownModel", s.unknownModel},
		{"KeyAuth", s.keyAuth},
		{"MalformedRequests", s.malformedRequests},
		{"BodyTooLarge", s.bodyTooLarge},
		{"UnknownRouteAndMethod", s.unknownRouteAndMethod},
		{"ToolsAndTemperaturePassThrough", s.passThrough},
		{"UpstreamErrorIsBadGateway", s.upstream500},
		{"UpstreamSilenceIsGatewayTimeout", s.upstreamHang},
		{"ClientCancelClosesUpstream", s.clientCancel},
		{"AdminNeedsSession", s.adminNeedsSession},
		{"AdminNeedsCSRF", s.adminNeedsCSRF},
		{"SettingsMaskedRoundTrip", s.maskedRoundTrip},
		{"SettingsPartialUpdateAndValidation", s.settingsPartial},
		{"SettingsChangeWhatChatSends", s.settingsChangeChat},
		{"KeysCreateListRevoke", s.keysLifecycle},
		{"PublicModels", s.publicModels},
		{"KeyModelAllowlist", s.keyModelAllowlist},
		{"KeyExpiry", s.keyExpiry},
		{"KeyAddressAllowlist", s.keyAddressAllowlist},
		{"KeyRequestsPerMinute", s.keyRPM},
		{"KeyTokensPerMinute", s.keyTPM},
		{"KeyTokenQuota", s.keyQuota},
		{"LimitsUnderBurst", s.limitsUnderBurst},
		{"UsageOfAStream", s.usageStream},
		{"UsageExport", s.usageExport},
		{"Stats", s.stats},
		{"UsageAfterClientCancel", s.usageClientCancel},
		{"UsageAfterUpstreamReset", s.usageUpstreamReset},
		{"StalledStreamEndsWithError", s.stalledStream},
		{"UpstreamFaults", s.upstreamFaults},
		{"RetryBeforeFirstByte", s.retryBeforeFirstByte},
		{"FallbackUpstream", s.fallback},
		{"Channels", s.channels},
		{"ResponseCache", s.responseCache},
		{"PricesAndBudgets", s.pricesAndBudgets},
		{"VisionAndToolPayloadsIntact", s.payloadsIntact},
		{"MemoryOff", s.memoryOff},
		{"MemoryOn", s.memoryOn},
		{"ConversationIsolation", s.conversationIsolation},
		{"ConversationEviction", s.conversationEviction},
		{"ConversationsStoredFirst", s.conversationsStoredFirst},
		{"KnowledgeBases", s.knowledgeBases},
		{"DirectUploads", s.directUploads},
		{"DrawingOff", s.drawingOff},
		{"Drawing", s.drawing},
		{"ImagesEndpoint", s.imagesEndpoint},
		{"Logout", s.logout},
		{"LoginWrongPasswordAndThrottle", s.loginThrottle},
	}
	// What later steps rely on, made directly when its step did not run
	// (a step run alone): each idempotent.
	fixtures := map[string]func(*testing.T){
		"Setup":                       s.setup,
		"SettingsChangeWhatChatSends": s.namedModel,
		"PublicModels":                s.extraModels,
	}
	done := map[string]bool{}
	for i, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			for _, before := range steps[:i] {
				if f := fixtures[before.name]; f != nil && !done[before.name] {
					f(t)
					done[before.name] = true
					s.settle()
				}
			}
			st.fn(t)
			if !t.Failed() {
				done[st.name] = true
			}
		})
		if st.name == "Setup" && !ok {
			t.Fatal("setup failed; the remaining steps need it")
		}
	}
}

// nonce returns a string unique to this call, to find a request upstream.
func nonce() string { return "n" + rand.Text()[:12] }

func (s *suite) url(path string) string { return s.BaseURL + path }

// do sends a request with an optional JSON body and returns the response
// and its body.
func do(t *testing.T, c *http.Client, method, url string, body any, header http.Header) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c == nil {
		c = noRedirect
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, data
}

var noRedirect = &http.Client{
	Timeout:       30 * time.Second,
	Transport:     devProxyRetry{},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// devProxyMessage is what wrangler dev's proxy answers (503) when its
// connection to the Worker breaks before the request reached it: a known
// fault of the local dev server (a kept-alive connection timing out under
// it), not of the gateway, which never saw the request.
const devProxyMessage = "Your worker restarted mid-request."

// devProxy is the Target's DevProxy, for the suite's clients.
var devProxy bool

// devProxyRetry sends a request again, once, that wrangler dev's proxy
// lost that way (its 503, or, behind a DevProxy target, a connection cut
// before any answer); every other answer passes as it came.
type devProxyRetry struct{}

func (devProxyRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if req.Body != nil && req.GetBody == nil {
		return resp, err
	}
	if err != nil {
		if !devProxy || req.Context().Err() != nil {
			return resp, err
		}
		again := req.Clone(req.Context())
		if req.GetBody != nil {
			if again.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		return http.DefaultTransport.RoundTrip(again)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		return resp, err
	}
	head := make([]byte, len(devProxyMessage))
	n, _ := io.ReadFull(resp.Body, head)
	if string(head[:n]) != devProxyMessage {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(head[:n]), resp.Body), resp.Body}
		return resp, nil
	}
	resp.Body.Close()
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		if again.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return http.DefaultTransport.RoundTrip(again)
}

// errorBody is the OpenAI error envelope.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Code    string  `json:"code"`
		Param   *string `json:"param"`
	} `json:"error"`
}

// wantError asserts an OpenAI-shaped error with the given status and code.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, code string) errorBody {
	t.Helper()
	if got := resp.StatusCode; got != status {
		t.Fatalf("status = %d, want %d; body %s", got, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("error Content-Type = %q, want JSON", ct)
	}
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Message == "" || e.Error.Type == "" {
		t.Fatalf("error body %s is not OpenAI-shaped (%v)", body, err)
	}
	if code != "" && e.Error.Code != code {
		t.Fatalf("error code = %q, want %q; body %s", e.Error.Code, code, body)
	}
	return e
}

func (s *suite) client(key string, opts ...option.RequestOption) *openai.Client {
	base := []option.RequestOption{
		option.WithBaseURL(s.url("/v1/")),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(30 * time.Second),
		option.WithHTTPClient(&http.Client{Transport: devProxyRetry{}}),
	}
	c := openai.NewClient(append(base, opts...)...)
	return &c
}

// apiError asserts that err is an API error with this status (and code).
func apiError(t *testing.T, err error, status int, code string) *openai.Error {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want an API error with status %d", err, status)
	}
	if apiErr.StatusCode != status || (code != "" && apiErr.Code != code) {
		t.Fatalf("API error = %d %q (%s), want %d %q", apiErr.StatusCode, apiErr.Code, apiErr.Message, status, code)
	}
	return apiErr
}

// adminClient is a signed-in admin session.
type adminClient struct {
	http *http.Client
	csrf string
}

func (s *suite) login(t *testing.T) *adminClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: devProxyRetry{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, body := do(t, c, "POST", s.url("/admin/api/login"), map[string]string{"password": adminPassword}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: status %d, body %s", resp.StatusCode, body)
	}
	var out struct {
		CSRF string `json:"csrf_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.CSRF == "" {
		t.Fatalf("login body %s has no csrf_token", body)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "gw_session" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie = %+v, want HttpOnly and SameSite=Strict", session)
	}
	return &adminClient{http: c, csrf: out.CSRF}
}

// call sends an admin API request with the session and CSRF token.
func (a *adminClient) call(t *testing.T, s *suite, method, path string, body any) (*http.Response, []byte) {
	t.Helper()
	return do(t, a.http, method, s.url(path), body, http.Header{"X-Csrf-Token": {a.csrf}})
}

func decode[T any](t *testing.T, body []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return v
}

// settle waits until every cache of the target has seen an admin change.
func (s *suite) settle() {
	if s.KeyCacheTTL > 0 {
		time.Sleep(s.KeyCacheTTL + 100*time.Millisecond)
	}
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not happen within %s", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}
