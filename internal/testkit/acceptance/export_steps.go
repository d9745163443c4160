package acceptance

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// usageExport makes requests with a new key and exports its usage: the
// CSV parses, has the header and one row per request with what each was;
// the JSON lines decode to the same records; a bad format is 400 and no
// session 401.
func (s *suite) usageExport(t *testing.T) {
	key, keyID := s.newKey(t, "export", nil)
	tags := []string{nonce(), nonce(), nonce()}
	for _, tag := range tags {
		if _, err := s.chatAs(t, key, "my-bot", tag); err != nil {
			t.Fatal(err)
		}
	}
	s.chatAs(t, key, "my-bot", "#status:500 "+nonce()) // one failed request
	s.waitUsage(t, keyID, 4, 10*time.Second)
	today := time.Now().UTC().Format(time.DateOnly)
	query := "/admin/api/usage/export?key_id=" + keyID + "&from=" + today + "&to=" + today

	resp, body := s.admin.call(t, s, "GET", query, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("CSV export = %d %v %s", resp.StatusCode, resp.Header, body)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(rows) != 5 {
		t.Fatalf("the CSV (%v): %d rows, want a header and 4\n%s", err, len(rows), body)
	}
	col := func(name string) int { return slices.Index(rows[0], name) }
	for _, name := range []string{"time", "request_id", "key_id", "model", "status", "prompt_tokens", "cost", "channel"} {
		if col(name) < 0 {
			t.Fatalf("the CSV has no column %q: %v", name, rows[0])
		}
	}
	statuses := map[string]int{}
	for _, row := range rows[1:] {
		if row[col("key_id")] != keyID || row[col("model")] != "my-bot" || row[col("request_id")] == "" {
			t.Fatalf("a row: %v", row)
		}
		statuses[row[col("status")]]++
		if row[col("status")] == "200" && (row[col("prompt_tokens")] != "11" || row[col("channel")] != "ch_main") {
			t.Fatalf("an answered request's row: %v", row)
		}
	}
	if statuses["200"] != 3 || statuses["502"] != 1 {
		t.Fatalf("statuses in the export: %v", statuses)
	}

	resp, body = s.admin.call(t, s, "GET", query+"&format=jsonl", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/jsonl") {
		t.Fatalf("JSONL export = %d %s", resp.StatusCode, body)
	}
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if len(lines) != 4 {
		t.Fatalf("JSONL: %d lines, want 4\n%s", len(lines), body)
	}
	for i, line := range lines {
		var rec struct {
			KeyID     string `json:"key_id"`
			RequestID string `json:"request_id"`
			Status    int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.KeyID != keyID || rec.RequestID != rows[i+1][col("request_id")] {
			t.Fatalf("JSONL line %d (%v): %s, want the CSV's row %v", i, err, line, rows[i+1])
		}
	}
	if resp, body := s.admin.call(t, s, "GET", query+"&format=xml", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("format=xml = %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, nil, "GET", s.url(query), nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an export without a session = %d", resp.StatusCode)
	}
}

// keyAddressAllowlist limits a key to an address the suite does not send
// from: refused (403) however X-Forwarded-For names that address; the
// refusal names the address the platform gave (the TCP peer, API
// Gateway's sourceIp, Cloudflare's CF-Connecting-IP), and limited to that
// address the key works.
func (s *suite) keyAddressAllowlist(t *testing.T) {
	key, id := s.newKey(t, "address", map[string]any{"allowed_ips": []string{"203.0.113.7"}})
	chat := map[string]any{"model": "my-bot", "messages": []map[string]string{{"role": "user", "content": "hi"}}}
	resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), chat,
		http.Header{"Authorization": {"Bearer " + key}, "X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.7"}})
	e := decode[errorBody](t, body)
	addr, ok := strings.CutPrefix(e.Error.Message, "This API key may not be used from ")
	addr, _, _ = strings.Cut(addr, ": it is")
	if resp.StatusCode != http.StatusForbidden || !ok || addr == "" || addr == "203.0.113.7" {
		t.Fatalf("a key limited to another address = %d %s", resp.StatusCode, body)
	}
	if resp, body := s.admin.call(t, s, "PUT", "/admin/api/keys/"+id, map[string]any{"allowed_ips": []string{addr}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT key = %d %s", resp.StatusCode, body)
	}
	s.settle()
	if resp, body := do(t, nil, "POST", s.url("/v1/chat/completions"), chat, http.Header{"Authorization": {"Bearer " + key}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("limited to %s, the address the platform gives = %d %s", addr, resp.StatusCode, body)
	}
}

// stats checks the dashboard's figures: requests just made show in the
// current hour, for their key; the series has every bucket of the range.
func (s *suite) stats(t *testing.T) {
	key, keyID := s.newKey(t, "stats", nil)
	for range 3 {
		if _, err := s.chatAs(t, key, "my-bot", nonce()); err != nil {
			t.Fatal(err)
		}
	}
	s.waitUsage(t, keyID, 3, 10*time.Second)
	type point struct {
		Time     time.Time `json:"time"`
		Requests int64     `json:"requests"`
		P50MS    int64     `json:"p50_ms"`
	}
	resp, body := s.admin.call(t, s, "GET", "/admin/api/stats?by=key&key_id="+keyID, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stats = %d %s", resp.StatusCode, body)
	}
	got := decode[struct {
		Series []point `json:"series"`
		Split  []struct {
			Name   string  `json:"name"`
			Series []point `json:"series"`
		} `json:"split"`
		Totals point `json:"totals"`
		Keys   []struct {
			Name     string `json:"name"`
			Requests int64  `json:"requests"`
		} `json:"top_keys"`
	}](t, body)
	last := got.Series[len(got.Series)-1]
	var inSeries int64
	for _, p := range got.Series[max(len(got.Series)-2, 0):] { // the hour may have turned meanwhile
		inSeries += p.Requests
	}
	if len(got.Series) != 24 || got.Totals.Requests != 3 || inSeries != 3 || len(got.Split) != 1 || got.Split[0].Name != keyID || len(got.Split[0].Series) != 24 ||
		len(got.Keys) != 1 || got.Keys[0].Name != keyID || time.Since(last.Time) > time.Hour {
		t.Fatalf("stats for the key: %s", body)
	}
	resp, body = s.admin.call(t, s, "GET", "/admin/api/stats?range=7d", nil)
	if days := decode[struct{ Series []point }](t, body).Series; resp.StatusCode != http.StatusOK || len(days) != 7 || days[6].Requests < 3 {
		t.Fatalf("stats over 7 days = %d %s", resp.StatusCode, body)
	}
	for _, bad := range []string{"range=1y", "bucket=minute", "by=colour"} {
		if resp, body := s.admin.call(t, s, "GET", "/admin/api/stats?"+bad, nil); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("stats?%s = %d %s", bad, resp.StatusCode, body)
		}
	}
}
