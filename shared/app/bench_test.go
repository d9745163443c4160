package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/local"
)

// The benchmarks compare the gateway with a plain reverse proxy
// (httputil.ReverseProxy) in front of the same upstream, in the same run:
//
//	go test ./shared/app -run '^$' -bench . -benchmem -count 6 | tee bench.txt
//	benchstat -col /target bench.txt
//
// The upstream answers from memory, so the numbers are the cost of the
// hop itself: authentication, settings, the request rewrite and the relay.

const streamEvents = 32

func upstreamServer(b *testing.B) *httptest.Server {
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}`)
	var stream bytes.Buffer
	for i := range streamEvents {
		fmt.Fprintf(&stream, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"token%d "},"finish_reason":null}]}`+"\n\n", i)
	}
	stream.WriteString("data: [DONE]\n\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write(stream.Bytes())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// gatewayServer starts the assembled gateway on a fresh data folder, set up
// against upstream, and returns its URL and first API key.
func gatewayServer(b *testing.B, upstream string) (string, string) {
	slog.SetDefault(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	cfg, err := app.Load()
	if err != nil {
		b.Fatal(err)
	}
	cfg.DataDir = b.TempDir()
	g, err := local.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	srv := httptest.NewServer(g.Handler())
	b.Cleanup(srv.Close)
	setup := `{"admin_password":"benchmark password","ai":{"base_url":"` + upstream + `","api_key":"sk-up","model":"m"}}`
	resp, err := http.Post(srv.URL+"/admin/api/setup", "application/json", strings.NewReader(setup))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		APIKey string `json:"api_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.APIKey == "" {
		b.Fatalf("setup: %d %v", resp.StatusCode, err)
	}
	return srv.URL, out.APIKey
}

func proxyServer(b *testing.B, upstream string) string {
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1 // flush every write, as an SSE relay must
	srv := httptest.NewServer(rp)
	b.Cleanup(srv.Close)
	return srv.URL
}

func BenchmarkChat(b *testing.B) {
	up := upstreamServer(b)
	gw, key := gatewayServer(b, up.URL)
	targets := []struct{ name, url, key string }{
		{"proxy", proxyServer(b, up.URL), "sk-up"},
		{"gateway", gw, key},
	}
	for _, mode := range []string{"nonstream", "stream"} {
		body := []byte(`{"model":"m","messages":[{"role":"system","content":"You are helpful."},{"role":"user","content":"Hello, who are you?"}],"temperature":0.7,"stream":` +
			fmt.Sprint(mode == "stream") + `}`)
		for _, tg := range targets {
			b.Run(fmt.Sprintf("mode=%s/target=%s", mode, tg.name), func(b *testing.B) {
				client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("POST", tg.url+"/v1/chat/completions", bytes.NewReader(body))
						req.Header.Set("Authorization", "Bearer "+tg.key)
						req.Header.Set("Content-Type", "application/json")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || n == 0 {
							b.Errorf("status %d, %d bytes", resp.StatusCode, n)
							return
						}
					}
				})
			})
		}
	}
}
