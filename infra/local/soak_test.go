package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/soak"
)

// streamingUpstream answers every chat request with a stream of 20 events
// and, when asked, the usage chunk.
func streamingUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 20 {
			fmt.Fprintf(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"t%d "},"finish_reason":null}]}`+"\n\n", i)
		}
		if strings.Contains(string(body), `"include_usage":true`) {
			io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":20,"total_tokens":29}}`+"\n\n")
		}
		io.WriteString(w, "data: [DONE]\n\n")
	})
}

// TestSoak holds 500 streams against the gateway (a process) for five
// seconds: none fails, the usage it records counts exactly the requests
// made, and afterwards its goroutines come back to where they started
// (but for the upstream connections its pool keeps idle) and its heap
// too. make bench runs the same for a minute.
func TestSoak(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pprofAddr := ln.Addr().String()
	ln.Close()
	base, key := agentGateway(t, streamingUpstream(), "GATEWAY_PPROF_ADDR="+pprofAddr)
	ctx := context.Background()
	// Warm: the runtime's own goroutines and the caches in place.
	warm := soak.Streams(ctx, base, key, "fake/agent-model", 4, 200*time.Millisecond)
	if warm.Errors > 0 || warm.Requests == 0 {
		t.Fatalf("warm-up: %+v", warm)
	}
	before, err := soak.Settled(pprofAddr, 0, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	res := soak.Streams(ctx, base, key, "fake/agent-model", 500, 5*time.Second)
	if res.Errors > 0 || res.Requests < 500 {
		t.Fatalf("soak: %d answered, %d failed (%s)", res.Requests, res.Errors, res.FirstError)
	}
	// The upstream pool keeps up to 64 idle connections, two goroutines
	// each; everything else must be gone.
	after, err := soak.Settled(pprofAddr, before.Goroutines+2*64, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if after.Goroutines > before.Goroutines+2*64 {
		t.Fatalf("goroutines: %d before, %d after the soak", before.Goroutines, after.Goroutines)
	}
	if after.HeapInuse > 2*before.HeapInuse+8<<20 {
		t.Fatalf("heap in use: %d before, %d after the soak", before.HeapInuse, after.HeapInuse)
	}
	c := login(t, base)
	code, body := c.call("GET", "/admin/api/usage", nil)
	var report struct {
		Data []struct {
			Requests int64 `json:"requests"`
			Errors   int64 `json:"errors"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &report); err != nil || code != http.StatusOK {
		t.Fatalf("usage = %d %s", code, body)
	}
	var counted, errs int64
	for _, r := range report.Data {
		counted += r.Requests
		errs += r.Errors
	}
	if made := warm.Requests + res.Requests; counted != made || errs != 0 {
		t.Fatalf("usage counts %d requests (%d errors); %d were made", counted, errs, made)
	}
	t.Logf("%d streams answered in 5 s at 500 connections; goroutines %d → %d, heap %d → %d KB",
		res.Requests, before.Goroutines, after.Goroutines, before.HeapInuse>>10, after.HeapInuse>>10)
}
