package gateway

import "testing"

// TestPrices: the first matching price applies; tokens at their prices
// per million, images each, a cache hit its own price alone; PerToken
// rounds the dearer of input and output up.
func TestPrices(t *testing.T) {
	st := DefaultSettings()
	st.Prices = []Price{{Model: "gpt-4o-mini", Input: 0.15, Output: 0.6}, {Model: "gpt-4o*", Input: 2.5, Output: 10, CachedHit: 0.0001},
		{Model: "Kwai-Kolors/*", Image: 0.02}}
	p, ok := st.PriceOf("gpt-4o-2024-08-06")
	if !ok || p.Input != 2.5 {
		t.Fatalf("PriceOf(gpt-4o-2024-08-06) = %+v %v", p, ok)
	}
	if got := p.Cost(1_000_000, 100_000, 0, false); got != ToMicros(2.5+1) {
		t.Fatalf("1M in + 100k out = %d micros, want %d", got, ToMicros(3.5))
	}
	if got := p.Cost(1_000_000, 100_000, 0, true); got != 100 {
		t.Fatalf("a cache hit = %d micros, want 100", got)
	}
	if p.PerToken() != 10 {
		t.Fatalf("PerToken = %d", p.PerToken())
	}
	if mini, _ := st.PriceOf("gpt-4o-mini"); mini.PerToken() != 1 || mini.Cost(1000, 1000, 0, false) != 750 {
		t.Fatalf("gpt-4o-mini: %+v", mini)
	}
	if img, ok := st.PriceOf("Kwai-Kolors/Kolors"); !ok || img.Cost(0, 0, 3, false) != ToMicros(0.06) {
		t.Fatalf("images: %+v %v", img, ok)
	}
	if _, ok := st.PriceOf("qwen"); ok {
		t.Fatal("a model without a price has one")
	}
	for _, bad := range []Settings{{Currency: "usd"}, {Currency: "US"}, {Currency: "USD", Prices: []Price{{Model: "m", Input: -1}}}} {
		if validatePrices(bad.Currency, bad.Prices) == nil {
			t.Fatalf("%+v was accepted", bad)
		}
	}
}

// TestAddrAllowed: addresses and ranges of both families; an IPv4 address
// written as IPv6 is the IPv4 one; an empty list allows all; what is not
// an address is never allowed, and a bad entry never matches.
func TestAddrAllowed(t *testing.T) {
	list := []string{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7", " 192.0.2.9 "}
	for addr, want := range map[string]bool{
		"203.0.113.200": true, "203.0.114.1": false, "2001:db8:1::1": true, "2001:db9::1": false,
		"198.51.100.7": true, "198.51.100.8": false, "::ffff:203.0.113.5": true, "192.0.2.9": true,
		"fe80::1%eth0": false, "not-an-ip": false, "": false,
	} {
		if got := AddrAllowed(list, addr); got != want {
			t.Errorf("AddrAllowed(%q) = %v", addr, got)
		}
	}
	if !AddrAllowed(nil, "anything") {
		t.Error("an empty list refused an address")
	}
	mapped := []string{"::ffff:198.51.100.0/120"}
	if !AddrAllowed(mapped, "198.51.100.7") || !AddrAllowed(mapped, "::ffff:198.51.100.9") || AddrAllowed(mapped, "198.51.101.1") {
		t.Error("a mapped IPv4 range does not read as the IPv4 one")
	}
	if ShowAddr("::ffff:198.51.100.7") != "198.51.100.7" {
		t.Errorf("ShowAddr = %s", ShowAddr("::ffff:198.51.100.7"))
	}
	for _, bad := range [][]string{{"203.0.113.0/33"}, {"x"}, {""}, {"fe80::1%eth0"}, {"::ffff:0:0/64"}, make([]string, MaxAllowedIPs+1)} {
		if checkAllowlist("allowed_ips", bad) == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}
