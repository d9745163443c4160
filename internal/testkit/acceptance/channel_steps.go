package acceptance

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// The keys of the channels step: three accounts behind one public model.
const (
	teamKeyA  = "sk-team-account-a-0123456789"
	teamKeyA2 = "sk-team-revoked-a2-0123456789"
	teamKeyB  = "sk-team-account-b-0123456789"
	teamKeyC  = "sk-team-account-c-0123456789"
)

type channelHealth struct {
	Status   string `json:"status"`
	Failures int64  `json:"failures"`
	Reason   string `json:"reason"`
}

type channelView struct {
	ID      string          `json:"id"`
	Name    string          `json:"name"`
	APIKeys []string        `json:"api_keys"`
	Version int64           `json:"version"`
	Health  channelHealth   `json:"health"`
	Keys    []keyHealthView `json:"keys"`
}

type keyHealthView struct {
	Key string `json:"key"`
	channelHealth
}

// authKey returns the upstream key a request the fake received carried.
func authKey(h http.Header) string { return strings.TrimPrefix(h.Get("Authorization"), "Bearer ") }

// channels puts three provider accounts (two on the primary fake, one on
// the other) behind one public model from the admin API, and checks: the
// weights split the requests; a key the provider refuses is set aside with
// the reason after one try; with the plug pulled on one account no client
// sees an error, the failures are counted, and the account is back in
// rotation once it recovers (through the probe); the test endpoint; the
// model list; a model mapping; and a total failure that names no channel
// or key.
func (s *suite) channels(t *testing.T) {
	if s.Fallback == nil {
		t.Skip("the target was given no second upstream")
	}
	if resp, body := s.admin.call(t, s, "PUT", "/admin/api/models/team-model", map[string]any{"upstream_model": "fake/team"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT model = %d %s", resp.StatusCode, body)
	}
	defer s.admin.call(t, s, "DELETE", "/admin/api/models/team-model", nil)
	create := func(body map[string]any) channelView {
		t.Helper()
		resp, data := s.admin.call(t, s, "POST", "/admin/api/channels", body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST channel %v = %d %s", body["name"], resp.StatusCode, data)
		}
		for _, k := range []string{teamKeyA, teamKeyA2, teamKeyB, teamKeyC} {
			if strings.Contains(string(data), k) {
				t.Fatalf("a channel's key came back in the clear: %s", data)
			}
		}
		c := decode[channelView](t, data)
		t.Cleanup(func() { s.admin.call(t, s, "DELETE", "/admin/api/channels/"+c.ID, nil) })
		return c
	}
	// Bad input first: nothing is made.
	for _, bad := range []map[string]any{
		{"name": "x", "base_url": "ftp://nowhere", "models": []string{"fake/team"}},
		{"name": "", "base_url": s.Upstream.URL},
		{"name": "x", "base_url": s.Upstream.URL, "capabilities": []string{"telepathy"}},
		{"name": "x", "base_url": s.Upstream.URL, "weight": -1},
		{"name": "x", "base_url": s.Upstream.URL, "surprise": true},
	} {
		if resp, body := s.admin.call(t, s, "POST", "/admin/api/channels", bad); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST channel %v = %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	s.Upstream.Refuse(teamKeyA2, http.StatusUnauthorized, "invalid_api_key")
	a := create(map[string]any{"name": "Account A", "base_url": s.Upstream.URL, "api_keys": []string{teamKeyA, teamKeyA2},
		"models": []string{"fake/team"}, "priority": 10, "weight": 2})
	b := create(map[string]any{"name": "Account B", "base_url": s.Fallback.URL, "api_keys": []string{teamKeyB},
		"models": []string{"fake/team"}, "priority": 10, "weight": 1})
	create(map[string]any{"name": "Account C", "base_url": s.Upstream.URL, "api_keys": []string{teamKeyC},
		"model_map": map[string]string{"fake/team": "fake/team-c"}, "priority": 5, "weight": 1, "note": "the backup"})
	s.settle()

	ask := func(n int, what string) {
		t.Helper()
		for i := range n {
			tag := nonce()
			got, err := s.chatAs(t, s.key, "team-model", tag)
			if err != nil {
				t.Fatalf("%s, request %d: %v", what, i, err)
			}
			if !strings.Contains(got.Choices[0].Message.Content, tag) {
				t.Fatalf("%s: answer %q", what, got.Choices[0].Message.Content)
			}
		}
	}
	byKey := func() map[string]int {
		n := map[string]int{}
		for _, r := range append(s.Upstream.Find(`"fake/team`), s.Fallback.Find(`"fake/team`)...) {
			n[authKey(r.Header)]++
		}
		return n
	}
	ask(30, "three accounts")
	used := byKey()
	if used[teamKeyA] == 0 || used[teamKeyB] == 0 || used[teamKeyA]+used[teamKeyB] != 30 || used[teamKeyC] != 0 {
		t.Fatalf("30 requests over A (weight 2) and B (weight 1), none to the backup: %v", used)
	}
	if used[teamKeyA2] != 1 {
		t.Fatalf("the refused key was tried %d times, want once and then set aside", used[teamKeyA2])
	}
	got := s.channel(t, a.ID)
	if len(got.Keys) != 2 || got.Keys[1].Status != "disabled" || !strings.Contains(got.Keys[1].Reason, "credentials") || got.Health.Status != "ok" {
		t.Fatalf("channel A after its second key was refused: %+v", got)
	}

	// Pull the plug on account B.
	s.Fallback.Fail("down")
	before := byKey()
	ask(30, "with account B unplugged")
	after := byKey()
	if after[teamKeyA]-before[teamKeyA] != 30 {
		t.Fatalf("with B unplugged, A answered %d of 30", after[teamKeyA]-before[teamKeyA])
	}
	got = s.channel(t, b.ID)
	if got.Health.Status != "cooling" || got.Health.Failures < 1 || got.Health.Reason == "" {
		t.Fatalf("channel B unplugged: %+v", got.Health)
	}
	if f := s.channelUsage(t)[b.ID]; f.Failures < 1 {
		t.Fatalf("channel B's failures were not counted: %+v", f)
	}
	// Plug it back in: within its cool-down a request probes it, and it
	// is back in rotation.
	s.Fallback.Fail("")
	waitFor(t, "account B back in rotation", 60*time.Second, func() bool {
		ask(1, "while B recovers")
		time.Sleep(200 * time.Millisecond)
		return byKey()[teamKeyB] > after[teamKeyB]
	})
	if got := s.channel(t, b.ID); got.Health.Status != "ok" {
		t.Fatalf("channel B answered again but its breaker is %+v", got.Health)
	}
	// Each request A answered is in its usage, and the refused key's
	// try is its failure (recording may end just after the answer).
	answered := int64(byKey()[teamKeyA])
	waitFor(t, "channel A's usage to count what it answered", 10*time.Second, func() bool {
		u := s.channelUsage(t)[a.ID]
		return u.Requests == answered && u.Failures == 1
	})

	// The test endpoint: each key, with latency and answer or error.
	resp, body := s.admin.call(t, s, "POST", "/admin/api/channels/"+a.ID+"/test", map[string]any{})
	test := decode[struct {
		OK      bool `json:"ok"`
		Results []struct {
			Key       string `json:"key"`
			OK        bool   `json:"ok"`
			LatencyMS int64  `json:"latency_ms"`
			Answer    string `json:"answer"`
			Error     string `json:"error"`
		} `json:"results"`
	}](t, body)
	if resp.StatusCode != http.StatusOK || test.OK || len(test.Results) != 2 || !test.Results[0].OK || test.Results[0].Answer == "" ||
		test.Results[1].OK || !strings.Contains(test.Results[1].Error, "credentials") || strings.Contains(string(body), teamKeyA2) {
		t.Fatalf("test channel A = %d %s", resp.StatusCode, body)
	}
	resp, body = s.admin.call(t, s, "GET", "/admin/api/channels/"+a.ID+"/models", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"fake/upstream-model"`) {
		t.Fatalf("channel A's models = %d %s", resp.StatusCode, body)
	}

	// A and B off: the backup answers, with its own name for the model.
	for _, id := range []string{a.ID, b.ID} {
		if resp, body := s.admin.call(t, s, "PUT", "/admin/api/channels/"+id, map[string]any{"enabled": false}); resp.StatusCode != http.StatusOK {
			t.Fatalf("disable %s = %d %s", id, resp.StatusCode, body)
		}
	}
	s.settle()
	tag := nonce()
	if _, err := s.chatAs(t, s.key, "team-model", tag); err != nil {
		t.Fatal(err)
	}
	if reqs := s.Upstream.Find(tag); len(reqs) != 1 || reqs[0].JSON()["model"] != "fake/team-c" || authKey(reqs[0].Header) != teamKeyC {
		t.Fatalf("with A and B off the backup saw %+v, want fake/team-c with its key", reqs)
	}

	// Every account failing: one error, naming no channel and no key.
	s.Upstream.Fail("503")
	s.Fallback.Fail("503")
	_, err := s.chatAs(t, s.key, "team-model", nonce())
	s.Upstream.Fail("")
	s.Fallback.Fail("")
	if err == nil {
		t.Fatal("every account failing, the request succeeded")
	}
	for _, leak := range []string{"ch_", "Account", teamKeyC[:12], "team-c"} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("the client's error names %q: %v", leak, err)
		}
	}
}

func (s *suite) channel(t *testing.T, id string) channelView {
	t.Helper()
	resp, body := s.admin.call(t, s, "GET", "/admin/api/channels/"+id, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET channel %s = %d %s", id, resp.StatusCode, body)
	}
	return decode[channelView](t, body)
}

type channelUsage struct {
	Requests, Errors, Failures int64
}

// channelUsage sums the usage report's channel rows by channel.
func (s *suite) channelUsage(t *testing.T) map[string]channelUsage {
	t.Helper()
	resp, body := s.admin.call(t, s, "GET", "/admin/api/usage", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET usage = %d %s", resp.StatusCode, body)
	}
	rows := decode[struct {
		Channels []struct {
			Channel                    string `json:"channel"`
			Requests, Errors, Failures int64
		} `json:"channels"`
	}](t, body).Channels
	out := map[string]channelUsage{}
	for _, r := range rows {
		u := out[r.Channel]
		u.Requests += r.Requests
		u.Errors += r.Errors
		u.Failures += r.Failures
		out[r.Channel] = u
	}
	return out
}
