package draw

import (
	"context"
	"net"
	"testing"
)

// TestAllowedPrivate allows fetching from a private image upstream's own
// host and port only, and from none of a name's addresses when the name
// also has public ones (a public name with extra private records).
func TestAllowedPrivate(t *testing.T) {
	lookup := func(ctx context.Context, host string) ([]net.IPAddr, error) {
		switch host {
		case "models.lan":
			return []net.IPAddr{{IP: net.ParseIP("10.0.0.5")}, {IP: net.ParseIP("fd00::5")}}, nil
		case "mixed.example":
			return []net.IPAddr{{IP: net.ParseIP("203.0.113.9")}, {IP: net.ParseIP("10.0.0.9")}}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	for base, want := range map[string][]string{
		"http://models.lan:8000":   {"10.0.0.5:8000", "[fd00::5]:8000"},
		"https://models.lan":       {"10.0.0.5:443", "[fd00::5]:443"},
		"http://mixed.example:80":  nil,
		"http://127.0.0.1:9000/v1": {"127.0.0.1:9000"},
		"https://api.example.com":  nil,
	} {
		got := allowedPrivateBy(context.Background(), base, lookup)
		if len(got) != len(want) {
			t.Errorf("%s allows %v, want %v", base, got, want)
			continue
		}
		for _, w := range want {
			if !got[w] {
				t.Errorf("%s allows %v, want %v", base, got, want)
			}
		}
	}
}
