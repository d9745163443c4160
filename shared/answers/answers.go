// Package answers is the exact response cache: chat completions kept on
// the Records role under the digest of the request that got them, for the
// public models whose cache policy asks for it.
package answers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// partition holds the cached answers, by digest.
const partition = "answer"

// MaxAnswer bounds an answer kept: larger ones are not cached (a record
// holds at most 400 KB on DynamoDB).
const MaxAnswer = 256 << 10

// Store keeps the cached answers.
type Store struct {
	records storage.Records
	now     func() time.Time
}

// New returns a Store on records.
func New(records storage.Records) *Store { return &Store{records: records, now: time.Now} }

// ignored are the request members that do not change the answer: how it
// is delivered, who asks, what the gateway itself reads.
var ignored = map[string]bool{"stream": true, "stream_options": true, "user": true, "metadata": true,
	"store": true, "conversation_id": true, "service_tier": true, "safety_identifier": true, "prompt_cache_key": true}

// Key returns the digest a request is cached under: the public model, the
// key (unless shared, "") and the request as the upstream gets it, in
// canonical form (members sorted, numbers as written, the members that do
// not change the answer left out).
func Key(publicModel, keyID string, request []byte) (string, error) {
	if surrogate.Match(request) || !utf8.Valid(request) {
		// Decoding would turn what is not a character into U+FFFD, and
		// two requests the upstream tells apart into one: such a request
		// is keyed by its bytes as they came.
		h := sha256.New()
		fmt.Fprintf(h, "answers/v1/raw\x00%s\x00%s\x00", publicModel, keyID)
		h.Write(request)
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	dec := json.NewDecoder(bytes.NewReader(request))
	dec.UseNumber()
	var req map[string]any
	if err := dec.Decode(&req); err != nil {
		return "", fmt.Errorf("cache key: %w", err)
	}
	for k := range ignored {
		delete(req, k)
	}
	canon, err := json.Marshal(req) // maps encode with sorted keys
	if err != nil {
		return "", fmt.Errorf("cache key: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "answers/v1\x00%s\x00%s\x00", publicModel, keyID)
	h.Write(canon)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// surrogate finds a JSON escape of a UTF-16 surrogate (\uD800 to
// \uDFFF), which a lone one makes no character.
var surrogate = regexp.MustCompile(`\\[uU][dD][89a-fA-F]`)

// Cacheable reports whether a request may be answered from the cache
// under policy: the policy is on, and the request asks for one answer
// without sampling (temperature absent or 0, n absent or 1), unless the
// policy caches sampled requests too.
func Cacheable(policy gateway.CachePolicy, request []byte) bool {
	if policy.TTLSeconds <= 0 {
		return false
	}
	if policy.Sampled {
		return true
	}
	var v struct {
		Temperature *float64 `json:"temperature"`
		N           *int     `json:"n"`
	}
	if json.Unmarshal(request, &v) != nil {
		return false
	}
	return (v.Temperature == nil || *v.Temperature == 0) && (v.N == nil || *v.N <= 1)
}

// Get returns the answer cached under key, if any and not expired.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	it, err := s.records.Get(ctx, partition, key)
	if gateway.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if !it.ExpiresAt.IsZero() && !s.now().Before(it.ExpiresAt) {
		return nil, false, nil
	}
	return it.Value, true, nil
}

// Put caches answer under key for ttl; an answer over MaxAnswer is not
// kept.
func (s *Store) Put(ctx context.Context, key string, answer []byte, ttl time.Duration) error {
	if len(answer) > MaxAnswer || ttl <= 0 {
		return nil
	}
	_, err := s.records.Put(ctx, storage.Item{PK: partition, SK: key, Value: answer, ExpiresAt: s.now().Add(ttl)}, storage.Cond{})
	return err
}
