package gateway

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"
)

// Channel is one upstream endpoint behind the public models: a base URL,
// a pool of API keys used in turn, the upstream models it serves (with a
// mapping of names), what it can do, and where it stands in the routing
// (the highest priority group first, weighted at random within it).
type Channel struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	BaseURL string   `json:"base_url"`
	APIKeys []Secret `json:"api_keys"`
	// Models are the upstream models served: names, or globs ("*" serves
	// every name).
	Models []string `json:"models"`
	// ModelMap maps a model name asked for to the name sent; the entry
	// "*" maps every name not mapped otherwise.
	ModelMap     map[string]string `json:"model_map,omitempty"`
	Capabilities []string          `json:"capabilities"`
	Priority     int               `json:"priority"`
	Weight       int               `json:"weight"`
	Enabled      bool              `json:"enabled"`
	Note         string            `json:"note,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
}

// Channel capabilities.
const (
	CapChat       = "chat"
	CapEmbeddings = "embeddings"
	CapImages     = "images"
	CapRerank     = "rerank"
)

// Capabilities lists every channel capability.
var Capabilities = []string{CapChat, CapEmbeddings, CapImages, CapRerank}

// Limits of channels.
const (
	MaxChannelKeys   = 100
	MaxChannelModels = 500
	MaxChannelWeight = 1000
	MaxChannelKeyLen = 1024
)

// Validate returns an EInvalid error naming the first bad field.
func (c Channel) Validate() error {
	switch {
	case strings.TrimSpace(c.Name) == "" || len(c.Name) > MaxNameLen || strings.ContainsAny(c.Name, "\x00\r\n"):
		return invalidParam("name", "a channel's name is 1 to %d characters on one line", MaxNameLen)
	case len(c.APIKeys) > MaxChannelKeys:
		return invalidParam("api_keys", "a channel has at most %d API keys", MaxChannelKeys)
	case len(c.Models) > MaxChannelModels:
		return invalidParam("models", "a channel serves at most %d models", MaxChannelModels)
	case c.Weight < 0 || c.Weight > MaxChannelWeight:
		return invalidParam("weight", "weight must be between 0 and %d", MaxChannelWeight)
	case c.Priority < -1000 || c.Priority > 1000:
		return invalidParam("priority", "priority must be between -1000 and 1000")
	case len(c.Note) > 1000:
		return invalidParam("note", "a note is at most 1000 bytes")
	case len(c.Capabilities) == 0:
		return invalidParam("capabilities", "a channel can do at least one of %s", strings.Join(Capabilities, ", "))
	}
	if err := CheckBaseURL(c.BaseURL); err != nil {
		return invalidParam("base_url", "base_url %s", err.(*Error).Message)
	}
	for i, k := range c.APIKeys {
		if k == "" || len(k) > MaxChannelKeyLen || strings.ContainsAny(string(k), "\x00\r\n") {
			return invalidParam(fmt.Sprintf("api_keys[%d]", i), "an API key is 1 to %d characters on one line", MaxChannelKeyLen)
		}
		if slices.Index(c.APIKeys, k) != i {
			return invalidParam(fmt.Sprintf("api_keys[%d]", i), "api_keys[%d] is listed twice", i)
		}
	}
	if len(c.ModelMap) > MaxChannelModels {
		return invalidParam("model_map", "model_map maps at most %d names", MaxChannelModels)
	}
	seen := map[string]bool{}
	for i, m := range c.Models {
		if _, err := path.Match(m, ""); err != nil || m == "" || len(m) > MaxNameLen || seen[m] || strings.ContainsAny(m, "\x00\r\n") {
			return invalidParam(fmt.Sprintf("models[%d]", i), "each model is a name or a glob (*, ?, [...]) of 1 to %d characters, listed once", MaxNameLen)
		}
		seen[m] = true
	}
	for from, to := range c.ModelMap {
		if from == "" || to == "" || len(from) > MaxNameLen || len(to) > MaxNameLen {
			return invalidParam("model_map", "model_map maps names of 1 to %d characters", MaxNameLen)
		}
	}
	for i, cp := range c.Capabilities {
		if !slices.Contains(Capabilities, cp) || slices.Index(c.Capabilities, cp) != i {
			return invalidParam(fmt.Sprintf("capabilities[%d]", i), "capabilities are %s, each once", strings.Join(Capabilities, ", "))
		}
	}
	return nil
}

// Serves reports whether the channel, enabled, serves model for
// capability: the model is listed (a name, or a glob such as "gpt-*" or
// "*"), or mapped.
func (c Channel) Serves(model, capability string) bool {
	if !c.Enabled || c.Weight <= 0 || !slices.Contains(c.Capabilities, capability) {
		return false
	}
	if _, mapped := c.ModelMap[model]; mapped {
		return true
	}
	return slices.ContainsFunc(c.Models, func(m string) bool { return MatchName(m, model) })
}

// UpstreamModel is the name the channel's upstream knows model by: its
// entry in ModelMap, or the entry "*" (every name), or model itself.
func (c Channel) UpstreamModel(model string) string {
	if to, ok := c.ModelMap[model]; ok {
		return to
	}
	if to, ok := c.ModelMap["*"]; ok {
		return to
	}
	return model
}

// MatchName reports whether a model name matches pattern: a name, or a
// glob of path.Match's syntax whose * and ? also match "/" (model names
// such as Qwen/Qwen2.5-7B-Instruct are not paths).
func MatchName(pattern, name string) bool {
	if pattern == "*" || pattern == name {
		return true
	}
	const slash = "\x01"
	ok, _ := path.Match(strings.ReplaceAll(pattern, "/", slash), strings.ReplaceAll(name, "/", slash))
	return ok
}
