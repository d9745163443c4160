// Package seal encrypts secrets at rest (upstream API keys) with AES-256-GCM
// under a master key that lives outside the store, and derives the other
// keys the gateway signs with from that master key.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of a master key in bytes.
const KeySize = 32

// prefix marks sealed values and their format version.
const prefix = "sealed:v1:"

// Box seals and opens values under one master key. It is safe for
// concurrent use.
type Box struct {
	aead   cipher.AEAD
	master []byte
}

// New returns a Box for a master key of KeySize bytes.
func New(master []byte) (*Box, error) {
	if len(master) != KeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(master), KeySize)
	}
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return &Box{aead: aead, master: append([]byte(nil), master...)}, nil
}

// Seal encrypts plaintext bound to context (for example the setting's name),
// so that a sealed value cannot be moved to another field. The empty string
// stays empty.
func (b *Box) Seal(plaintext, context string) string {
	if plaintext == "" {
		return ""
	}
	nonce := make([]byte, b.aead.NonceSize())
	rand.Read(nonce)
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return prefix + base64.RawStdEncoding.EncodeToString(out)
}

// ErrOpen is returned when a sealed value is malformed, was sealed under
// another master key or for another context.
var ErrOpen = errors.New("sealed value cannot be opened: wrong master key or corrupt value")

// IsSealed reports whether v looks like a value made by Seal.
func IsSealed(v string) bool { return strings.HasPrefix(v, prefix) }

// Open decrypts a value made by Seal with the same context.
func (b *Box) Open(sealed, context string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	raw, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", ErrOpen
	}
	data, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil || len(data) < b.aead.NonceSize() {
		return "", ErrOpen
	}
	n := b.aead.NonceSize()
	plain, err := b.aead.Open(nil, data[:n], data[n:], []byte(context))
	if err != nil {
		return "", ErrOpen
	}
	return string(plain), nil
}

// Derive returns a 32-byte key for one purpose ("session", "csrf"), so that
// each use has its own key and none of them is the master key itself.
func (b *Box) Derive(purpose string) []byte {
	m := hmac.New(sha256.New, b.master)
	m.Write([]byte("ai-gateway derive " + purpose))
	return m.Sum(nil)
}

// ParseKey decodes a master key given as base64 (standard or URL alphabet,
// padded or not) or 64 hex digits.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	if len(s) == 2*KeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	return nil, fmt.Errorf("master key must be %d bytes as base64 (44 characters) or hex (64 digits)", KeySize)
}

// KeyFromSecret returns the master key held in a deployment secret: a key
// in ParseKey's form, or else any string of at least 32 characters (such as
// the random password a CloudFormation secret generates), from which the key
// is derived with SHA-256.
func KeyFromSecret(secret string) ([]byte, error) {
	secret = strings.TrimSpace(secret)
	if k, err := ParseKey(secret); err == nil {
		return k, nil
	}
	if len(secret) < 32 {
		return nil, fmt.Errorf("the master key secret is %d characters; it needs at least 32", len(secret))
	}
	sum := sha256.Sum256([]byte("ai-gateway master key\x00" + secret))
	return sum[:], nil
}

// LoadOrCreateKeyFile reads the master key from path, or, when the file does
// not exist, creates it (mode 0600) with a fresh random key. An existing file
// readable by others is refused.
func LoadOrCreateKeyFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key := make([]byte, KeySize)
		rand.Read(key)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("create master key folder: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKeyFile(path) // another process made it first
		}
		if err != nil {
			return nil, fmt.Errorf("create master key file: %w", err)
		}
		_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("write master key file: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat master key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	return ParseKey(string(data))
}
