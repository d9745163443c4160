package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/seal"
)

func box(t *testing.T, b byte) *seal.Box {
	t.Helper()
	bx, err := seal.New(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return bx
}

func TestSealOpen(t *testing.T) {
	a, other := box(t, 1), box(t, 2)
	s := a.Seal("sk-upstream-secret", "ai.api_key")
	if strings.Contains(s, "sk-upstream-secret") {
		t.Fatalf("sealed value %q shows the plaintext", s)
	}
	if s2 := a.Seal("sk-upstream-secret", "ai.api_key"); s2 == s {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	got, err := a.Open(s, "ai.api_key")
	if err != nil || got != "sk-upstream-secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	tests := []struct {
		name    string
		box     *seal.Box
		sealed  string
		context string
	}{
		{"other master key", other, s, "ai.api_key"},
		{"other context", a, s, "rag.api_key"},
		{"tampered", a, s[:len(s)-2] + "AA", "ai.api_key"},
		{"not sealed", a, "plain", "ai.api_key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.box.Open(tc.sealed, tc.context); err != seal.ErrOpen {
				t.Fatalf("Open err = %v, want ErrOpen", err)
			}
		})
	}
	if a.Seal("", "x") != "" {
		t.Fatal("empty plaintext must stay empty")
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "master.key")
	k1, err := seal.LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Fatalf("mode = %v, want %v", got, want)
	}
	k2, err := seal.LoadOrCreateKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load = %x, %v; want the same key", k2, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := seal.LoadOrCreateKeyFile(path); err == nil {
		t.Fatal("a world-readable key file was accepted")
	}
}

func TestKeyFromSecret(t *testing.T) {
	raw := bytes.Repeat([]byte{9}, seal.KeySize)
	b64 := "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk="
	if k, err := seal.KeyFromSecret(b64 + "\n"); err != nil || !bytes.Equal(k, raw) {
		t.Fatalf("base64 key = %x, %v", k, err)
	}
	pw := strings.Repeat("Ab3", 22)
	k1, err := seal.KeyFromSecret(pw)
	if err != nil || len(k1) != seal.KeySize {
		t.Fatalf("derived key = %x, %v", k1, err)
	}
	if k2, _ := seal.KeyFromSecret(pw); !bytes.Equal(k1, k2) {
		t.Fatal("derivation is not deterministic")
	}
	if k3, _ := seal.KeyFromSecret(pw + "x"); bytes.Equal(k1, k3) {
		t.Fatal("different secrets give one key")
	}
	if _, err := seal.KeyFromSecret("too-short"); err == nil {
		t.Fatal("a short secret was accepted")
	}
}

// TestKeyForms reads a master key written as base64 or hex the same from
// the environment (ParseKey) and from a deployment secret (KeyFromSecret);
// anything else in the environment is a clear error.
func TestKeyForms(t *testing.T) {
	raw := []byte("0123456789abcdef0123456789ABCDEF")
	forms := map[string]string{
		"base64":     base64.StdEncoding.EncodeToString(raw),
		"raw base64": base64.RawStdEncoding.EncodeToString(raw),
		"url base64": base64.URLEncoding.EncodeToString(raw),
		"hex":        hex.EncodeToString(raw),
		"HEX":        strings.ToUpper(hex.EncodeToString(raw)),
		"hex, space": " " + hex.EncodeToString(raw) + "\n",
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			k, err := seal.ParseKey(form)
			if err != nil || !bytes.Equal(k, raw) {
				t.Fatalf("ParseKey = %x, %v; want %x", k, err, raw)
			}
			k, err = seal.KeyFromSecret(form)
			if err != nil || !bytes.Equal(k, raw) {
				t.Fatalf("KeyFromSecret = %x, %v; want the same key %x", k, err, raw)
			}
		})
	}
	for _, bad := range []string{"", "short", hex.EncodeToString(raw)[:63], hex.EncodeToString(raw) + "00", "zz" + hex.EncodeToString(raw)[2:]} {
		if _, err := seal.ParseKey(bad); err == nil || !strings.Contains(err.Error(), "hex") {
			t.Errorf("ParseKey(%q) = %v, want an error naming the forms", bad, err)
		}
	}
}
