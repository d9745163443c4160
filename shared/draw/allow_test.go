package draw

import (
	"context"
	"net"
	"net/url"
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

func TestNamesPrivate(t *testing.T) {
	allowed := map[string]bool{"127.0.0.1:8000": true}
	for link, want := range map[string]bool{
		"http://127.0.0.1:8000/a.png":      false, // the upstream's own
		"http://127.0.0.1:8001/a.png":      true,
		"http://localhost:8000/a.png":      false,
		"http://LOCALHOST.:9/a.png":        true,
		"http://a.localhost/a.png":         true,
		"http://169.254.169.254/latest":    true,
		"http://[::1]/a.png":               true,
		"http://[fd00::1]/a.png":           true,
		"http://2130706433/a.png":          true,
		"http://0x7f.1/a.png":              true,
		"http://127.1/a.png":               true,
		"http://10.1.2.3/a.png":            true,
		"https://images.example.com/a.png": false,
		"https://8.8.8.8/a.png":            false,
		"https://cafe.be/a.png":            false,
		"https://a1.example/a.png":         false,
		"http://１２７.０.０.１/a.png":           true,
		"http://127。0。0。1/a.png":           true,
		"http://ｌｏｃａｌｈｏｓｔ/a.png":           true,
		"http://evil@127.0.0.1/a.png":      true,
		"http://0177.0.0.1/a.png":          true,
		"http://[::ffff:127.0.0.1]/a.png":  true,
	} {
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		if got := namesPrivate(u, allowed); got != want {
			t.Errorf("namesPrivate(%s) = %v, want %v", link, got, want)
		}
	}
}
