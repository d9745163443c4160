package gateway

import (
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Settings are the gateway's runtime settings, edited in the admin panel.
// Upstream API keys are held here in plaintext; stores seal them at rest and
// the admin API shows them masked.
type Settings struct {
	// PublicModel is the model name clients use; empty means AI.Model.
	PublicModel string `json:"public_model"`
	// SystemPrompt, when set, is put before the client's messages.
	SystemPrompt string `json:"system_prompt"`
	// MaxMessages caps the messages sent upstream (system messages kept,
	// the cut at a user turn); zero, the default, means no cap.
	MaxMessages int `json:"max_messages"`
	// MaxOutputTokens, when not zero, caps the tokens a request may ask the
	// upstream to write (max_tokens, max_completion_tokens): clients such
	// as Claude Code ask for more than many upstreams take (32000 against
	// DeepSeek's 8192), which the upstream would refuse.
	MaxOutputTokens int `json:"max_output_tokens"`
	// Currency is what prices and budgets are in (ISO 4217); Prices are
	// what upstream models cost in it.
	Currency string  `json:"currency"`
	Prices   []Price `json:"prices"`
	// AdminAllowedIPs are the client addresses (IPs or CIDR ranges) the
	// admin panel and its API answer; empty means any.
	AdminAllowedIPs []string `json:"admin_allowed_ips"`
	// Cache is the default public model's exact response cache.
	Cache          CachePolicy `json:"cache"`
	DrawingEnabled bool        `json:"drawing_enabled"`
	ImageModel     string      `json:"image_model"`
	// ImageSize is the size images are drawn at ("1024x1024").
	ImageSize string `json:"image_size"`
	// DrawTriggers start a message that asks for a drawing (default 画).
	DrawTriggers []string `json:"draw_triggers"`
	// Image is the upstream that draws; empty fields take AI's.
	Image        Upstream `json:"image"`
	ServerMemory bool     `json:"server_memory"`
	// MaxConversations bounds the conversations each key keeps; the least
	// recently used ones are evicted.
	MaxConversations int      `json:"max_conversations"`
	AI               Upstream `json:"ai"`
	// Fallback, when its base URL is set, answers when AI keeps failing.
	Fallback Upstream    `json:"fallback"`
	RAG      RAGSettings `json:"rag"`
	// ModelAliases map the model names clients send on their own (coding
	// agents send their vendor's, like claude-sonnet-4-5) to public models,
	// instead of 404: the first whose pattern matches the name. A name that
	// is a public model is never aliased.
	ModelAliases []ModelAlias `json:"model_aliases"`
}

// ModelAlias maps client model names to a public model: From is a name or
// a glob (path.Match syntax: *, ?, [...]), To a public model.
type ModelAlias struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Alias returns the public model a client's model name is an alias of.
func (s Settings) Alias(name string) (string, bool) {
	for _, a := range s.ModelAliases {
		if MatchName(a.From, name) {
			return a.To, true
		}
	}
	return "", false
}

// Upstream is an OpenAI-compatible API the gateway calls.
type Upstream struct {
	BaseURL string `json:"base_url"`
	APIKey  Secret `json:"api_key"`
	Model   string `json:"model"`
}

// RAGSettings configure embeddings and retrieval.
type RAGSettings struct {
	BaseURL     string  `json:"base_url"`
	APIKey      Secret  `json:"api_key"`
	Model       string  `json:"model"`
	TopK        int     `json:"top_k"`
	MinScore    float64 `json:"min_score"`
	RerankModel string  `json:"rerank_model"`
	// ChunkSize and ChunkOverlap size the chunks of new documents, in
	// tokens.
	ChunkSize    int `json:"chunk_size"`
	ChunkOverlap int `json:"chunk_overlap"`
}

// DefaultSettings are the settings of a gateway before setup.
func DefaultSettings() Settings {
	return Settings{
		MaxConversations: 50,
		Currency:         "USD",
		ImageModel:       "Kwai-Kolors/Kolors",
		ImageSize:        "1024x1024",
		DrawTriggers:     []string{"画"},
		RAG:              RAGSettings{TopK: 5, MinScore: 0, ChunkSize: 400, ChunkOverlap: 60},
	}
}

// WithoutUpstreams returns s without the upstream addresses and keys (of
// ai, fallback, image and rag), which channels hold: what the settings
// store keeps. The models stay: ai.model is the default public model's
// upstream model, rag.model the embedding model.
func (s Settings) WithoutUpstreams() Settings {
	s.AI.BaseURL, s.AI.APIKey = "", ""
	s.Fallback = Upstream{}
	s.Image = Upstream{}
	s.RAG.BaseURL, s.RAG.APIKey = "", ""
	return s
}

// HasUpstreams reports whether s holds an upstream address or key (settings
// of a release before channels).
func (s Settings) HasUpstreams() bool {
	return s.AI.BaseURL != "" || s.AI.APIKey != "" || s.Fallback != (Upstream{}) || s.Image != (Upstream{}) ||
		s.RAG.BaseURL != "" || s.RAG.APIKey != ""
}

// ImageUpstream returns the upstream that draws: Image, with AI's base URL
// and key where Image has none, and ImageModel as its model.
func (s Settings) ImageUpstream() Upstream {
	u := s.Image
	if u.BaseURL == "" {
		u.BaseURL, u.APIKey = s.AI.BaseURL, s.AI.APIKey
	}
	u.Model = s.ImageModel
	return u
}

func validSize(size string) bool {
	var w, h int
	if n, err := fmt.Sscanf(size, "%dx%d", &w, &h); err != nil || n != 2 || fmt.Sprintf("%dx%d", w, h) != size {
		return false
	}
	return w >= 64 && w <= 4096 && h >= 64 && h <= 4096
}

// PublicModelName returns the model name clients use: PublicModel, or the
// upstream model while no public name is set.
func (s Settings) PublicModelName() string {
	if s.PublicModel != "" {
		return s.PublicModel
	}
	return s.AI.Model
}

// Limits of settings values.
const (
	MaxNameLen          = 128
	MaxSystemPromptLen  = 64 << 10
	MaxMessagesCap      = 1000
	MaxTopK             = 50
	MaxConversationsCap = 1000
)

// Validate returns an EInvalid error naming the first bad field.
func (s Settings) Validate() error {
	switch {
	case len(s.PublicModel) > MaxNameLen || strings.ContainsAny(s.PublicModel, "\x00\r\n"):
		return invalidParam("public_model", "public_model must be at most %d characters on one line", MaxNameLen)
	case len(s.SystemPrompt) > MaxSystemPromptLen:
		return invalidParam("system_prompt", "system_prompt must be at most %d bytes", MaxSystemPromptLen)
	case s.MaxMessages < 0 || s.MaxMessages > MaxMessagesCap:
		return invalidParam("max_messages", "max_messages must be between 0 (no limit) and %d", MaxMessagesCap)
	case s.MaxOutputTokens < 0 || s.MaxOutputTokens > 10_000_000:
		return invalidParam("max_output_tokens", "max_output_tokens must be between 0 (no cap) and 10000000")
	case s.MaxConversations < 1 || s.MaxConversations > MaxConversationsCap:
		return invalidParam("max_conversations", "max_conversations must be between 1 and %d", MaxConversationsCap)
	case len(s.ImageModel) > MaxNameLen:
		return invalidParam("image_model", "image_model must be at most %d characters", MaxNameLen)
	case !validSize(s.ImageSize):
		return invalidParam("image_size", "image_size must be WIDTHxHEIGHT, each 64 to 4096, like 1024x1024")
	case len(s.DrawTriggers) > 10:
		return invalidParam("draw_triggers", "at most 10 draw triggers")
	case s.RAG.TopK < 1 || s.RAG.TopK > MaxTopK:
		return invalidParam("rag.top_k", "rag.top_k must be between 1 and %d", MaxTopK)
	case s.RAG.MinScore < 0 || s.RAG.MinScore > 1:
		return invalidParam("rag.min_score", "rag.min_score must be between 0 and 1")
	case s.RAG.ChunkSize < 50 || s.RAG.ChunkSize > 8000:
		return invalidParam("rag.chunk_size", "rag.chunk_size must be between 50 and 8000 tokens")
	case s.RAG.ChunkOverlap < 0 || s.RAG.ChunkOverlap >= s.RAG.ChunkSize/2:
		return invalidParam("rag.chunk_overlap", "rag.chunk_overlap must be at least 0 and under half of rag.chunk_size")
	}
	if err := s.Cache.validate("cache"); err != nil {
		return err
	}
	if err := validatePrices(s.Currency, s.Prices); err != nil {
		return err
	}
	if err := checkAllowlist("admin_allowed_ips", s.AdminAllowedIPs); err != nil {
		return err
	}
	if err := s.AI.validate("ai", true); err != nil {
		return err
	}
	if err := s.Fallback.validate("fallback", false); err != nil {
		return err
	}
	if len(s.ModelAliases) > 100 {
		return invalidParam("model_aliases", "at most 100 model aliases")
	}
	for i, a := range s.ModelAliases {
		if _, err := path.Match(a.From, ""); err != nil || a.From == "" || len(a.From) > MaxNameLen || strings.ContainsAny(a.From, "\x00\r\n") {
			return invalidParam(fmt.Sprintf("model_aliases[%d].from", i), "a model alias's from is a name or a glob (*, ?, [...]) of at most %d characters", MaxNameLen)
		}
		if a.To == "" || len(a.To) > MaxNameLen || strings.ContainsAny(a.To, "\x00\r\n") {
			return invalidParam(fmt.Sprintf("model_aliases[%d].to", i), "a model alias's to is a public model's name")
		}
	}
	for _, t := range s.DrawTriggers {
		if strings.TrimSpace(t) == "" || len(t) > 32 || strings.ContainsAny(t, "\n\r") {
			return invalidParam("draw_triggers", "a draw trigger is 1 to 32 characters on one line")
		}
	}
	if s.Image.BaseURL != "" {
		if err := CheckBaseURL(s.Image.BaseURL); err != nil {
			return invalidParam("image.base_url", "image.base_url %s", err.(*Error).Message)
		}
	}
	return Upstream{BaseURL: s.RAG.BaseURL, APIKey: s.RAG.APIKey, Model: s.RAG.Model}.validate("rag", false)
}

// validate checks an upstream; a required one needs a model (its base URL
// may be left to the channels).
func (u Upstream) validate(field string, required bool) error {
	if u.BaseURL == "" && (!required || u.Model != "" && len(u.Model) <= MaxNameLen) {
		return nil
	}
	if err := CheckBaseURL(u.BaseURL); err != nil {
		return invalidParam(field+".base_url", "%s.base_url %s", field, err.(*Error).Message)
	}
	if u.Model == "" || len(u.Model) > MaxNameLen {
		return invalidParam(field+".model", "%s.model must be a model name of 1 to %d characters", field, MaxNameLen)
	}
	if len(u.APIKey) > 4096 || strings.ContainsAny(string(u.APIKey), "\x00\r\n") {
		return invalidParam(field+".api_key", "%s.api_key must be one line of at most 4096 characters", field)
	}
	return nil
}

// CheckBaseURL returns an EInvalid error unless s is an absolute http(s) URL
// without credentials, query or fragment.
func CheckBaseURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return Errorf(EInvalid, "must be set")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return Errorf(EInvalid, "must be an http:// or https:// URL")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return Errorf(EInvalid, "must not carry credentials, a query or a fragment")
	}
	return nil
}

func invalidParam(param, format string, args ...any) *Error {
	e := Errorf(EInvalid, format, args...)
	e.Param = param
	return e
}

// Mask hides a secret for display: its first three and last four characters
// around "****", or only "****" when it is short. The empty string stays empty.
func Mask(secret string) string {
	switch {
	case secret == "":
		return ""
	case len(secret) < 12:
		return "****"
	}
	return secret[:3] + "****" + secret[len(secret)-4:]
}
