package chat

import (
	"bytes"
	"encoding/json"

	"github.com/aigateway/aigateway/shared/jsonobj"
)

// tokens is the token count an upstream reported.
type tokens struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// clampOr clamps t, and reports whether it or earlier was out of bounds.
func (t tokens) clampOr(was bool) (tokens, bool) {
	c, clamped := t.clamp()
	return c, was || clamped
}

// defaultCompletion is the answer a request without max_tokens is
// expected to be, for reserving tokens.
const defaultCompletion = 1024

// reserveFor estimates the tokens a chat request will use: its prompt (a
// token is about four bytes) and its answers (n of them, each max_tokens or
// max_completion_tokens, the larger, or a default).
func reserveFor(req jsonobj.Object, size int) int64 {
	answer, n := int64(0), int64(1)
	for _, k := range []string{"max_completion_tokens", "max_tokens"} {
		// As a number of any form: 32000.0 and 3.2e4 are 32000 to upstreams.
		var v float64
		if raw := req.Get(k); raw != nil && json.Unmarshal(raw, &v) == nil && v > 0 {
			answer = max(answer, int64(min(v, maxReportedTokens)))
		}
	}
	if answer == 0 {
		answer = defaultCompletion
	}
	if raw := req.Get("n"); raw != nil && json.Unmarshal(raw, &n) == nil {
		n = min(max(n, 1), 128)
	}
	return int64(size/4) + n*answer
}

// clamp returns t within [0, maxReportedTokens], and whether it was not:
// an upstream's negative or absurd usage must not move a key's counters.
func (t tokens) clamp() (tokens, bool) {
	c := tokens{PromptTokens: min(max(t.PromptTokens, 0), maxReportedTokens),
		CompletionTokens: min(max(t.CompletionTokens, 0), maxReportedTokens)}
	return c, c != t
}

// usageOf returns the usage member of a completion or a stream chunk; the
// cheap check first, since most chunks have none. Usage comes last in the
// answers of every upstream seen, so the object after the last "usage" key
// is decoded alone; anything unusual falls back to decoding the whole.
func usageOf(data []byte) (tokens, bool) {
	i := lastUsage(data)
	if i < 0 {
		return tokens{}, false
	}
	rest := bytes.TrimLeft(data[i+len(`"usage"`):], " \t\r\n")
	if len(rest) > 0 && rest[0] == ':' {
		// "usage": null on every chunk but the last (what a stream that
		// asked for usage carries): nothing to decode.
		if v := bytes.TrimLeft(rest[1:], " \t\r\n"); bytes.HasPrefix(v, []byte("null")) {
			return tokens{}, false
		}
		var u *tokens
		if json.NewDecoder(bytes.NewReader(rest[1:])).Decode(&u) == nil {
			if u == nil {
				return tokens{}, false
			}
			return *u, true
		}
	}
	var v struct {
		Usage *tokens `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil || v.Usage == nil {
		return tokens{}, false
	}
	return *v.Usage, true
}

// lastUsage returns where the last "usage" key of a chunk starts, or -1:
// the chunk's own usage follows any a choice holds. (bytes.Index, which
// is vectorised, finds each; bytes.LastIndex is not, and was a tenth of a
// stream's relay.)
func lastUsage(data []byte) int {
	key := []byte(`"usage"`)
	last := -1
	for i := 0; ; {
		j := bytes.Index(data[i:], key)
		if j < 0 {
			return last
		}
		last = i + j
		i = last + len(key)
	}
}
