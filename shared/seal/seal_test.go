package seal_test

import (
	"bytes"
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
