//go:build !js

package main_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"strings"
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
	if !strings.Contains(w.Logs(), "--- PASS: TestBlobs") || !strings.Contains(w.Logs(), "--- PASS: TestRecords") {
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
