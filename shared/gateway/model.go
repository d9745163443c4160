package gateway

import (
	"strings"
)

// Model is an extra public model: a name clients use over an upstream model,
// with its own system prompt, knowledge bases and drawing switch.
type Model struct {
	Name           string   `json:"name"`
	UpstreamModel  string   `json:"upstream_model"`
	SystemPrompt   string   `json:"system_prompt"`
	KnowledgeBases []string `json:"knowledge_bases"`
	Drawing        bool     `json:"drawing"`
	// Cache, when its TTL is set, answers repeated requests from the exact
	// response cache.
	Cache CachePolicy `json:"cache"`
}

// CachePolicy is a public model's exact response cache: a request the
// model was asked exactly before (the same messages, knowledge and every
// parameter that changes the answer) is answered from the cache for
// TTLSeconds. Zero TTL: no cache.
type CachePolicy struct {
	TTLSeconds int `json:"ttl_seconds"`
	// Shared answers a key from what another key was answered (the same
	// request, the same model); by default each key has its own.
	Shared bool `json:"shared,omitempty"`
	// Sampled caches requests that ask for sampling (a temperature above
	// 0, or n above 1) too; by default they always go upstream.
	Sampled bool `json:"sampled,omitempty"`
}

// MaxCacheTTL bounds a cache policy's TTL: 30 days.
const MaxCacheTTL = 30 * 24 * 3600

func (p CachePolicy) validate(field string) error {
	if p.TTLSeconds < 0 || p.TTLSeconds > MaxCacheTTL {
		return invalidParam(field+".ttl_seconds", "%s.ttl_seconds must be between 0 (no cache) and %d (30 days)", field, MaxCacheTTL)
	}
	return nil
}

// CheckModelName returns EInvalid unless name can name a public model: 1 to
// MaxNameLen characters on one line, no slash-only or control characters.
func CheckModelName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > MaxNameLen || strings.ContainsAny(name, "\x00\r\n\t") {
		return invalidParam("name", "a model name must be 1 to %d characters on one line", MaxNameLen)
	}
	return nil
}

// Validate returns an EInvalid error naming the first bad field.
func (m Model) Validate() error {
	if err := CheckModelName(m.Name); err != nil {
		return err
	}
	if m.UpstreamModel == "" || len(m.UpstreamModel) > MaxNameLen {
		return invalidParam("upstream_model", "upstream_model must be a model name of 1 to %d characters", MaxNameLen)
	}
	if len(m.SystemPrompt) > MaxSystemPromptLen {
		return invalidParam("system_prompt", "system_prompt must be at most %d bytes", MaxSystemPromptLen)
	}
	if err := m.Cache.validate("cache"); err != nil {
		return err
	}
	if len(m.KnowledgeBases) > 32 {
		return invalidParam("knowledge_bases", "a model can search at most 32 knowledge bases")
	}
	for _, kb := range m.KnowledgeBases {
		if err := CheckKnowledgeBase(kb); err != nil {
			return err
		}
	}
	return nil
}

// CheckKnowledgeBase returns EInvalid unless name can name a knowledge base:
// 1 to 64 letters, digits, '-', '_' or '.'.
func CheckKnowledgeBase(name string) error {
	ok := name != "" && len(name) <= 64
	for _, c := range name {
		ok = ok && (c == '-' || c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9')
	}
	if !ok {
		return invalidParam("knowledge_bases", "knowledge base names are 1 to 64 letters, digits, '-', '_' or '.'; %q is not", name)
	}
	return nil
}
