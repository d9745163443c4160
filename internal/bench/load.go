package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// request is one kind of request the load sends.
type request struct {
	path   string
	body   string
	header map[string]string
}

// The requests: a chat of a typical size (a system prompt and a
// question), streamed or not, and the same through the Responses and
// Messages front doors.
const (
	system   = "You are a helpful assistant for a small online shop. Answer briefly and politely, in the customer's language, and never invent prices."
	question = "Hello! Could you tell me, in one short sentence, when parcels handed in today will be delivered?"
)

func chatRequest(key string, stream bool, model string) request {
	s := ""
	if stream {
		s = `,"stream":true`
	}
	return request{path: "/v1/chat/completions", header: map[string]string{"Authorization": "Bearer " + key},
		body: fmt.Sprintf(`{"model":%q,"messages":[{"role":"system","content":%q},{"role":"user","content":%q}]%s}`, model, system, question, s)}
}

// responsesRequest is a Responses API request; stored, the gateway keeps
// the response for previous_response_id (the API's default), or not
// (store: false, as Codex sends).
func responsesRequest(key string, stored bool) request {
	store := ""
	if !stored {
		store = `,"store":false`
	}
	return request{path: "/v1/responses", header: map[string]string{"Authorization": "Bearer " + key},
		body: fmt.Sprintf(`{"model":"bench-model","instructions":%q,"input":%q%s}`, system, question, store)}
}

func messagesRequest(key string) request {
	return request{path: "/v1/messages", header: map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"},
		body: fmt.Sprintf(`{"model":"bench-model","max_tokens":256,"system":%q,"messages":[{"role":"user","content":%q}]}`, system, question)}
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	requests int64
	errors   int64
	rps      float64
	p50, p99 time.Duration
}

// runWrk loads base+req.path from conns connections for d with wrk (one
// thread: the machine has two cores, and the process measured needs one).
func runWrk(dir, base string, req request, conns int, d time.Duration) (wrkResult, error) {
	var lua strings.Builder
	lua.WriteString("wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n")
	for k, v := range req.header {
		fmt.Fprintf(&lua, "wrk.headers[%q] = %q\n", k, v)
	}
	fmt.Fprintf(&lua, "wrk.body = [==[%s]==]\n", req.body)
	script := filepath.Join(dir, "request.lua")
	if err := os.WriteFile(script, []byte(lua.String()), 0o600); err != nil {
		return wrkResult{}, err
	}
	out, err := exec.Command("wrk", "-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(d.Seconds())),
		"--latency", "-s", script, base+req.path).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	return parseWrk(string(out))
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in`)
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	m := wrkTotal.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("wrk said:\n%s", out)
	}
	r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	if m := wrkRPS.FindStringSubmatch(out); m != nil {
		r.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.errors, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	for _, m := range wrkPercent.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	return r, nil
}

// client is a keep-alive client for the one-at-a-time measurements.
var client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}}

// once sends req and returns how long until the first byte of the
// answer's body and until its end.
func once(ctx context.Context, base string, req request) (first, total time.Duration, err error) {
	r, err := http.NewRequestWithContext(ctx, "POST", base+req.path, strings.NewReader(req.body))
	if err != nil {
		return 0, 0, err
	}
	r.Header.Set("Content-Type", "application/json")
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := client.Do(r)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.Peek(1); err != nil {
		return 0, 0, fmt.Errorf("%s: %d, no body: %w", req.path, resp.StatusCode, err)
	}
	first = time.Since(start)
	rest, _ := io.ReadAll(br)
	total = time.Since(start)
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("%s: %d %s", req.path, resp.StatusCode, bytes.TrimSpace(rest))
	}
	return first, total, nil
}

// percentile returns the p-th percentile (0 to 100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p/100))]
}

// serial sends n requests one at a time and returns their times to the
// first byte and to the end.
func serial(base string, req request, n int) (first, total []time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range n {
		f, t, err := once(ctx, base, req)
		if err != nil {
			return nil, nil, err
		}
		first, total = append(first, f), append(total, t)
	}
	return first, total, nil
}
