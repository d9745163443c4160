//go:build !js

package main_test

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/acceptance"
	"github.com/aigateway/aigateway/internal/testkit/cflocal"
	"github.com/aigateway/aigateway/shared/sqlstore"
)

// vars is the Worker's configuration for the suite: its secret and the
// suite's short timeouts.
func vars() map[string]string {
	key := make([]byte, 32)
	rand.Read(key)
	v := map[string]string{"GATEWAY_MASTER_KEY": base64.StdEncoding.EncodeToString(key), "GATEWAY_LOG_LEVEL": "debug"}
	for _, kv := range acceptance.Env {
		k, val, _ := strings.Cut(kv, "=")
		v[k] = val
	}
	// A burst of 30 requests starts 30 Go instances on one isolate's
	// thread: the first upstream byte may wait for that longer than 1 s.
	v["GATEWAY_UPSTREAM_FIRST_BYTE_TIMEOUT"] = firstByte.String()
	return v
}

const firstByte = 4 * time.Second

// TestAcceptance runs the acceptance suite against the Worker under
// wrangler dev --local.
func TestAcceptance(t *testing.T) {
	dir := cflocal.Dir(t)
	w := cflocal.Start(t, dir, cflocal.Build(t, dir, "build"), vars())
	target := acceptance.NewTarget(t, w.URL)
	target.ChunkedFetch = true
	target.DevProxy = true
	target.FirstByteTimeout = firstByte
	acceptance.Run(t, target)
}

// TestConformance runs the storage conformance suite inside the Worker (a
// test build), on Workers KV, D1 and R2 as wrangler dev --local has them.
func TestConformance(t *testing.T) {
	dir := cflocal.Dir(t)
	w := cflocal.Start(t, dir, cflocal.Build(t, dir, "build-conformance", "conformance"), vars())
	c := &http.Client{Timeout: 5 * time.Minute}
	resp, err := c.Post(w.URL+"/__conformance", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ OK bool }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /__conformance = %d, %v", resp.StatusCode, err)
	}
	if !out.OK {
		t.Fatalf("the conformance suite failed inside the Worker:\n%s", w.Logs())
	}
	// wrangler passes the Worker's output on after the answer, at times a
	// moment later.
	reported := func() bool {
		return strings.Contains(w.Logs(), "--- PASS: TestBlobs") && strings.Contains(w.Logs(), "--- PASS: TestRecords")
	}
	for deadline := time.Now().Add(10 * time.Second); !reported() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if !reported() {
		t.Fatalf("the Worker did not report the suite passing:\n%s", w.Logs())
	}
}

// TestMigrationIsTheSchema: the D1 migration holds the local store's
// schema, statement for statement.
func TestMigrationIsTheSchema(t *testing.T) {
	b, err := os.ReadFile("migrations/0001_schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != sqlstore.Schema {
		t.Fatal("migrations/0001_schema.sql differs from shared/sqlstore/schema.sql; copy it over (a schema change is a new migration)")
	}
}

// TestScheduledSweep: the Cron Trigger deletes expired records and keeps
// live ones.
func TestScheduledSweep(t *testing.T) {
	dir := cflocal.Dir(t)
	w := cflocal.Start(t, dir, cflocal.Build(t, dir, "build"), vars())
	w.D1(t, `INSERT INTO records (pk, sk, value, counters, version, expires_at) VALUES
		('sweep', 'expired', x'', '{}', 1, 1), ('sweep', 'live', x'', '{}', 1, 0)`)
	resp, err := http.Get(w.URL + "/cdn-cgi/handler/scheduled?cron=*/10+*+*+*+*")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scheduled event = %d", resp.StatusCode)
	}
	out := w.D1(t, `SELECT sk FROM records WHERE pk = 'sweep' ORDER BY sk`)
	if !strings.Contains(out, `"live"`) || strings.Contains(out, `"expired"`) {
		t.Fatalf("records after the sweep: %s", out)
	}
}

// TestFirstToken: under wrangler dev, a streamed answer's first event
// reaches the client while the upstream still holds back the rest, and the
// time from the upstream sending it to the client reading it is logged.
func TestFirstToken(t *testing.T) {
	release := make(chan struct{})
	var sentAt atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(content string) {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q},\"finish_reason\":null}]}\n\n", content)
			w.(http.Flusher).Flush()
		}
		sentAt.Store(time.Now().UnixNano())
		chunk("first")
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		chunk(" last")
		fmt.Fprint(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(up.Close)
	dir := cflocal.Dir(t)
	w := cflocal.Start(t, dir, cflocal.Build(t, dir, "build"), vars())

	body := `{"admin_password":"correct horse battery","ai":{"base_url":"` + up.URL + `","api_key":"sk-up-123456789012","model":"m"}}`
	resp, err := http.Post(w.URL+"/admin/api/setup", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var setup struct {
		APIKey string `json:"api_key"`
	}
	json.NewDecoder(resp.Body).Decode(&setup)
	resp.Body.Close()
	if setup.APIKey == "" {
		t.Fatalf("setup = %d", resp.StatusCode)
	}

	req, _ := http.NewRequest("POST", w.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+setup.APIKey)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err = (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var got strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, `"first"`) {
			latency := time.Since(time.Unix(0, sentAt.Load()))
			t.Logf("first token: %v after the upstream sent it, %v after the request", latency.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
			close(release) // only now may the rest come
		}
		got.WriteString(line + "\n")
	}
	select {
	case <-release:
	default:
		t.Fatalf("the first event never arrived on its own: %q", got.String())
	}
	if !strings.Contains(got.String(), `" last"`) || !strings.HasSuffix(strings.TrimSpace(got.String()), "data: [DONE]") {
		t.Fatalf("stream = %q", got.String())
	}
}
