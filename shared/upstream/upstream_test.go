package upstream_test

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/upstream"
)

func TestEndpoint(t *testing.T) {
	tests := []struct{ base, want string }{
		{"https://api.siliconflow.cn", "https://api.siliconflow.cn/v1/chat/completions"},
		{"https://api.siliconflow.cn/", "https://api.siliconflow.cn/v1/chat/completions"},
		{"https://api.openai.com/v1", "https://api.openai.com/v1/chat/completions"},
		{"http://localhost:11434/v1/", "http://localhost:11434/v1/chat/completions"},
		{"https://proxy.example/openai", "https://proxy.example/openai/v1/chat/completions"},
	}
	for _, tc := range tests {
		if got := upstream.Endpoint(tc.base, "/chat/completions"); got != tc.want {
			t.Errorf("Endpoint(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
}

func serve(t *testing.T, h http.HandlerFunc) gateway.Upstream {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return gateway.Upstream{BaseURL: srv.URL, APIKey: "sk-up", Model: "m"}
}

func client(first, idle time.Duration) *upstream.Client {
	return upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: first, IdleTimeout: idle}, nil)
}

func TestEventsParsing(t *testing.T) {
	// CRLF line ends, comments, multi-line data, an event without a final
	// blank line, and a line longer than the reader's buffer.
	long := strings.Repeat("x", 200<<10)
	body := ": keep-alive\r\n\r\ndata: {\"a\":1}\r\n\r\nevent: note\ndata: line1\ndata:line2\n\n\n\ndata: " + long + "\n\ndata: [DONE]"
	up := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-up" {
			t.Errorf("Authorization = %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, body)
	})
	resp, err := client(time.Second, time.Second).Post(context.Background(), up, "/chat/completions", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	if !resp.Stream() {
		t.Fatal("Stream = false")
	}
	var data, raws []string
	for ev, err := range events(resp) {
		if err != nil {
			t.Fatal(err)
		}
		data = append(data, string(ev.Data))
		raws = append(raws, string(ev.Raw))
	}
	want := []string{"", `{"a":1}`, "line1\nline2", long, "[DONE]"}
	if len(data) != len(want) {
		t.Fatalf("got %d events, want %d", len(data), len(want))
	}
	for i := range want {
		if data[i] != want[i] {
			t.Errorf("event %d data = %.40q, want %.40q", i, data[i], want[i])
		}
	}
	if raws[0] != ": keep-alive\n\n" || raws[2] != "event: note\ndata: line1\ndata:line2\n\n" || raws[4] != "data: [DONE]\n\n" {
		t.Errorf("raw events = %q, %q, %q", raws[0], raws[2], raws[4])
	}
}

func TestStatusErrors(t *testing.T) {
	tests := []struct {
		status     int
		body       string
		code       string
		retryAfter int
		shows      string
		hides      string
	}{
		{400, `{"error":{"message":"temperature must be <= 2"}}`, gateway.EInvalid, 0, "temperature must be <= 2", ""},
		{401, `{"error":{"message":"Incorrect API key provided: sk-up***"}}`, gateway.EUpstream, 0, "credentials", "sk-up"},
		{404, `{"error":{"message":"model not found"}}`, gateway.EUpstream, 0, "404", ""},
		{413, ``, gateway.ETooLarge, 0, "", ""},
		{429, `{}`, gateway.EUnavailable, 7, "rate limiting", ""},
		{500, `{"error":{"message":"stack trace at db.go:12"}}`, gateway.EUpstream, 0, "500", "db.go"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			up := serve(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			_, err := client(time.Second, time.Second).Post(context.Background(), up, "/chat/completions", []byte(`{}`))
			if got := gateway.ErrorCode(err); got != tc.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tc.code)
			}
			e := err.(*gateway.Error)
			if e.RetryAfter != tc.retryAfter {
				t.Errorf("RetryAfter = %d, want %d", e.RetryAfter, tc.retryAfter)
			}
			if !strings.Contains(e.Message, tc.shows) || (tc.hides != "" && strings.Contains(e.Message, tc.hides)) {
				t.Errorf("message %q: want it to show %q and hide %q", e.Message, tc.shows, tc.hides)
			}
		})
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("FirstByte", func(t *testing.T) {
		up := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		_, err := client(200*time.Millisecond, time.Minute).Post(context.Background(), up, "/chat/completions", nil)
		if got := gateway.ErrorCode(err); got != gateway.ETimeout {
			t.Fatalf("code = %q (%v), want timeout", got, err)
		}
	})
	t.Run("IdleBetweenEvents", func(t *testing.T) {
		up := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
		resp, err := client(time.Minute, 200*time.Millisecond).Post(context.Background(), up, "/chat/completions", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Close()
		var got []string
		var last error
		for ev, err := range events(resp) {
			if err != nil {
				last = err
				break
			}
			got = append(got, string(ev.Data))
		}
		if len(got) != 1 || got[0] != "one" || gateway.ErrorCode(last) != gateway.ETimeout {
			t.Fatalf("events %q, error %v; want one event then a timeout", got, last)
		}
	})
	t.Run("Unreachable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		_, err := client(time.Second, time.Second).Post(context.Background(), gateway.Upstream{BaseURL: srv.URL}, "/chat/completions", nil)
		if got := gateway.ErrorCode(err); got != gateway.EUpstream {
			t.Fatalf("code = %q (%v), want upstream_error", got, err)
		}
	})
	t.Run("CallerCancels", func(t *testing.T) {
		up := serve(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := client(time.Minute, time.Minute).Post(ctx, up, "/chat/completions", nil)
		if err == nil || gateway.ErrorCode(err) == gateway.ETimeout {
			t.Fatalf("err = %v, want the caller's cancellation, not an upstream timeout", err)
		}
	})
}

func TestReadAll(t *testing.T) {
	big := strings.Repeat("0123456789", 10_000)
	tests := []struct {
		name    string
		chunked bool
		limit   int64
		want    string
		code    string
	}{
		{"known length", false, 1 << 20, big, ""},
		{"chunked", true, 1 << 20, big, ""},
		{"over the limit", true, 50_000, "", gateway.EUpstream},
		{"known length over the limit", false, 50_000, "", gateway.EUpstream},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if !tc.chunked {
					w.Header().Set("Content-Length", fmt.Sprint(len(big)))
				}
				for i := 0; i < len(big); i += 7_000 {
					w.Write([]byte(big[i:min(i+7_000, len(big))]))
					w.(http.Flusher).Flush()
				}
			})
			resp, err := client(time.Second, time.Second).Post(context.Background(), up, "/chat/completions", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Close()
			got, err := resp.ReadAll(tc.limit)
			if gateway.ErrorCode(err) != tc.code || string(got) != tc.want {
				t.Fatalf("ReadAll = %d bytes, %v; want %d bytes, code %q", len(got), err, len(tc.want), tc.code)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int
		retries  int
		calls    int
		code     string
	}{
		{"503 then success", []int{503, 200}, 2, 2, ""},
		{"429 then success", []int{429, 200}, 2, 2, ""},
		{"always 500", []int{500, 500, 500, 500}, 2, 3, gateway.EUpstream},
		{"400 is not retried", []int{400, 200}, 2, 1, gateway.EInvalid},
		{"no retries", []int{503, 200}, 0, 1, gateway.EUpstream},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			up := serve(t, func(w http.ResponseWriter, r *http.Request) {
				status := tc.statuses[min(calls, len(tc.statuses)-1)]
				calls++
				if status == 429 {
					w.Header().Set("Retry-After", "0")
				}
				w.WriteHeader(status)
				fmt.Fprint(w, `{"ok":true}`)
			})
			c := upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: time.Second, IdleTimeout: time.Second,
				Retries: tc.retries, RetryBackoff: time.Millisecond}, nil)
			resp, err := c.Post(context.Background(), up, "/chat/completions", []byte(`{}`))
			if resp != nil {
				resp.Close()
			}
			if gateway.ErrorCode(err) != tc.code || calls != tc.calls {
				t.Fatalf("err %v after %d calls; want code %q after %d", err, calls, tc.code, tc.calls)
			}
		})
	}
}

// TestUpstreamErrorsHideTheKey passes on an upstream's 400 message (it
// describes the client's input) but never the gateway's upstream key in
// it, whole or in part.
func TestUpstreamErrorsHideTheKey(t *testing.T) {
	fake := fakeupstream.New(t)
	c := upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second}, nil)
	key := "sk-live-0123456789abcdefghij"
	_, err := c.Post(context.Background(), gateway.Upstream{BaseURL: fake.URL, APIKey: gateway.Secret(key)}, "/chat/completions",
		[]byte(`{"model":"m","messages":[{"role":"user","content":"#echokey"}]}`))
	if gateway.ErrorCode(err) != gateway.EInvalid || !strings.Contains(err.Error(), "Invalid request for key") {
		t.Fatalf("err = %v, want the upstream's 400 message", err)
	}
	for i := 0; i+8 <= len(key); i++ {
		if strings.Contains(err.Error(), key[i:i+8]) {
			t.Fatalf("the error holds %q of the key: %v", key[i:i+8], err)
		}
	}
	if got := upstream.Scrub("no secret here, just sk-live words", key); got != "no secret here, just sk-live words" {
		t.Fatalf("Scrub changed ordinary text: %q", got)
	}
}

// TestFailuresKeepTheirCause fails to reach an upstream: the client's
// message stays plain, and the error (what is logged) says why.
func TestFailuresKeepTheirCause(t *testing.T) {
	ln := httptest.NewServer(http.NotFoundHandler())
	addr := ln.URL
	ln.Close() // nothing listens there now
	c := upstream.New(upstream.Config{ConnectTimeout: time.Second, FirstByteTimeout: time.Second, IdleTimeout: time.Second}, nil)
	_, err := c.Post(context.Background(), gateway.Upstream{BaseURL: addr}, "/chat/completions", []byte(`{}`))
	if gateway.ErrorMessage(err) != "The upstream could not be reached." {
		t.Fatalf("client message = %q", gateway.ErrorMessage(err))
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("the logged error %q does not say why", err)
	}
}

// countingTransport counts the requests it carries to the real network.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// TestInjectedClientCarriesEveryCall: the client a target passes (on
// Workers, one on the Fetch API) is the one every upstream call goes
// through, retries included; the timeouts still hold on it.
func TestInjectedClientCarriesEveryCall(t *testing.T) {
	var calls atomic.Int32
	up := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		if strings.Contains(r.URL.Path, "slow") {
			select {
			case <-time.After(time.Second):
			case <-r.Context().Done():
				return
			}
		}
		w.Write([]byte(`{"ok":true}`))
	})
	tr := &countingTransport{}
	c := upstream.New(upstream.Config{FirstByteTimeout: 5 * time.Second, IdleTimeout: 5 * time.Second,
		Retries: 1, RetryBackoff: time.Millisecond}, &http.Client{Transport: tr})
	resp, err := c.Post(context.Background(), up, "/chat/completions", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Close()
	if tr.n.Load() != 2 || calls.Load() != 2 {
		t.Fatalf("injected transport carried %d requests, server saw %d; want 2 and 2 (one retry)", tr.n.Load(), calls.Load())
	}

	c = upstream.New(upstream.Config{FirstByteTimeout: 200 * time.Millisecond, IdleTimeout: time.Second}, &http.Client{Transport: tr})
	start := time.Now()
	if _, err := c.Post(context.Background(), up, "/slow/chat/completions", []byte(`{}`)); err == nil {
		t.Fatal("a first byte after 1 s passed a 200 ms first-byte timeout on the injected client")
	}
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("the first-byte timeout fired after %v on the injected client", d)
	}
}

// events ranges over an answer's events, pulled with Next, ending with a
// failure or before io.EOF.
func events(a gateway.Answer) iter.Seq2[gateway.Event, error] {
	return func(yield func(gateway.Event, error) bool) {
		for {
			ev, err := a.Next()
			if err == io.EOF || !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// TestReadyMeansAnEvent: Ready is true only when a whole event is waiting,
// not for blank lines, so that a relay flushes what it wrote.
func TestReadyMeansAnEvent(t *testing.T) {
	release := make(chan struct{})
	up := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: a\n\n\n\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "data: b\n\ndata: c\n\n")
	})
	defer close(release)
	resp, err := client(time.Second, 5*time.Second).Post(context.Background(), up, "/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	ev, err := resp.Next()
	if err != nil || string(ev.Data) != "a" {
		t.Fatalf("first event %q, %v", ev.Data, err)
	}
	if resp.Ready() {
		t.Fatal("Ready with only blank lines received")
	}
}

// TestRerankBestFirst: the reranker's answer comes back best first, each
// document once, whatever order the upstream used.
func TestRerankBestFirst(t *testing.T) {
	up := serve(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"results":[{"index":0,"relevance_score":0.1},{"index":2,"relevance_score":0.9},{"index":0,"relevance_score":0.95},{"index":7,"relevance_score":1},{"index":1,"relevance_score":0.5}]}`)
	})
	got, err := client(time.Second, time.Second).Rerank(context.Background(), up, "q", []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := []gateway.Ranked{{Index: 2, Score: 0.9}, {Index: 1, Score: 0.5}, {Index: 0, Score: 0.1}}
	if !slices.Equal(got, want) {
		t.Fatalf("Rerank = %v, want %v", got, want)
	}
}
