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
