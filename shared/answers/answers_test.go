package answers

import (
	"context"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/gateway"
)

// TestKeyIsCanonical: the same request however written (member order,
// spacing, how it is delivered, who asks) has one key; a change to what
// the answer depends on, another model or another key, a different one.
func TestKeyIsCanonical(t *testing.T) {
	base := `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":50}`
	key := func(model, keyID, req string) string {
		t.Helper()
		k, err := Key(model, keyID, []byte(req))
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	want := key("bot", "key_1", base)
	for _, same := range []string{
		`{ "max_tokens":50, "temperature":0, "messages":[{"content":"hi","role":"user"}], "model":"m" }`,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":50,"stream":true,"stream_options":{"include_usage":true},"user":"u-9"}`,
	} {
		if got := key("bot", "key_1", same); got != want {
			t.Fatalf("%s has another key than %s", same, base)
		}
	}
	for name, other := range map[string]string{
		"another message":     `{"model":"m","messages":[{"role":"user","content":"hi!"}],"temperature":0,"max_tokens":50}`,
		"another temperature": `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.0001,"max_tokens":50}`,
		"another limit":       `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":51}`,
		"tools":               `{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":50,"tools":[]}`,
		"another upstream":    `{"model":"m2","messages":[{"role":"user","content":"hi"}],"temperature":0,"max_tokens":50}`,
	} {
		if key("bot", "key_1", other) == want {
			t.Fatalf("%s: same key", name)
		}
	}
	if key("bot2", "key_1", base) == want || key("bot", "key_2", base) == want || key("bot", "", base) == want {
		t.Fatal("another public model or key has the same key")
	}
	// What decoding would make one character stays apart: lone
	// surrogates, bytes that are not UTF-8.
	for _, pair := range [][2]string{
		{`{"messages":[{"content":"\ud800"}]}`, `{"messages":[{"content":"\udfff"}]}`},
		{`{"messages":[{"content":"\ufffd"}]}`, `{"messages":[{"content":"\ud83d"}]}`},
		{"{\"messages\":[{\"content\":\"a\xff\"}]}", "{\"messages\":[{\"content\":\"a\xfe\"}]}"},
	} {
		if key("bot", "", pair[0]) == key("bot", "", pair[1]) {
			t.Fatalf("%q and %q have one key", pair[0], pair[1])
		}
	}
	if _, err := Key("bot", "", []byte(`not json`)); err == nil {
		t.Fatal("a request that is no JSON has a key")
	}
}

// TestCacheable: the policy on, one answer, no sampling, unless the
// policy caches sampled requests.
func TestCacheable(t *testing.T) {
	on := gateway.CachePolicy{TTLSeconds: 60}
	sampled := gateway.CachePolicy{TTLSeconds: 60, Sampled: true}
	for _, c := range []struct {
		policy gateway.CachePolicy
		req    string
		want   bool
	}{
		{on, `{"messages":[]}`, true},
		{on, `{"messages":[],"temperature":0,"n":1}`, true},
		{on, `{"messages":[],"temperature":0.7}`, false},
		{on, `{"messages":[],"n":2}`, false},
		{sampled, `{"messages":[],"temperature":0.7,"n":2}`, true},
		{gateway.CachePolicy{}, `{"messages":[]}`, false},
		{on, `{"messages":[],"temperature":"hot"}`, false},
	} {
		if got := Cacheable(c.policy, []byte(c.req)); got != c.want {
			t.Fatalf("Cacheable(%+v, %s) = %v", c.policy, c.req, got)
		}
	}
}

// TestStoreExpires: an answer is there for its TTL, then gone; one too
// large is not kept.
func TestStoreExpires(t *testing.T) {
	ctx := context.Background()
	s := New(sqlitetest.Open(t).Records())
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	if err := s.Put(ctx, "k", []byte(`{"a":1}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := s.Get(ctx, "k"); err != nil || !ok || string(got) != `{"a":1}` {
		t.Fatalf("Get = %s %v %v", got, ok, err)
	}
	now = now.Add(time.Minute)
	if _, ok, err := s.Get(ctx, "k"); err != nil || ok {
		t.Fatalf("after its TTL: %v %v", ok, err)
	}
	big := make([]byte, MaxAnswer+1)
	if err := s.Put(ctx, "big", big, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "big"); ok {
		t.Fatal("an answer over the limit was kept")
	}
}
