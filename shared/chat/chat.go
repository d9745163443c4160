// Package chat serves the public OpenAI-compatible API: chat completions
// (streamed and not), the model list, embeddings and the caller's
// conversations. It authenticates the client's key, holds it to its limits,
// resolves the public model to its upstream, merges the system prompt and
// the conversation's memory, forwards every other field untouched, and
// meters what the upstream reports.
package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/aigateway/aigateway/shared/answers"
	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/responses"
)

// Keys authenticates client API keys.
type Keys interface {
	// AuthenticateFrom returns the active key with this secret, or
	// EUnauthorized; EForbidden when addr may not use it.
	AuthenticateFrom(ctx context.Context, secret, addr string) (gateway.APIKey, error)
}

// Settings supplies the current settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Catalog supplies the extra public models.
type Catalog interface {
	List(ctx context.Context) ([]gateway.Model, error)
}

// Meter holds keys to their limits and records usage.
type Meter interface {
	Admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask) (gateway.Reservation, error)
	Release(ctx context.Context, res gateway.Reservation)
	Extend(ctx context.Context, res *gateway.Reservation, key gateway.APIKey, more int64) error
	Record(ctx context.Context, r gateway.UsageRecord) error
}

// Conversations stores the keys' conversations.
type Conversations interface {
	History(ctx context.Context, keyID, id string) ([]json.RawMessage, error)
	Last(ctx context.Context, keyID, id string) (int, json.RawMessage, error)
	Append(ctx context.Context, keyID, id string, msgs []json.RawMessage, keep int) error
	List(ctx context.Context, keyID string) ([]gateway.Conversation, error)
	Get(ctx context.Context, keyID, id string) (gateway.Conversation, []json.RawMessage, error)
	Delete(ctx context.Context, keyID, id string) error
}

// Knowledge retrieves from the knowledge bases.
type Knowledge interface {
	Retrieve(ctx context.Context, kbs []string, query string, rag gateway.RAGSettings) ([]gateway.Hit, error)
}

// Metrics records chat metrics.
type Metrics interface {
	Chat(model string, status int, latency time.Duration, promptTokens, completionTokens int64)
	CacheLookup(model string, hit bool)
}

// Deps are what the chat handler works with.
type Deps struct {
	Keys          Keys
	Settings      Settings
	Catalog       Catalog
	Meter         Meter
	Conversations Conversations
	Knowledge     Knowledge
	Draw          Drawer
	Upstream      gateway.Poster
	Metrics       Metrics
	// ResponseStore keeps the Responses API's responses.
	ResponseStore *responses.Store
	// Answers, when set, is the exact response cache of the models whose
	// policy asks for one.
	Answers *answers.Store
}

// Options tune the chat handler.
type Options struct {
	// MaxBody bounds request bodies.
	MaxBody int64
	// DrainTimeout bounds how long an upstream answer is read on after its
	// client left, to learn its usage.
	DrainTimeout time.Duration
}

// Handler serves /v1/chat/completions, /v1/models, /v1/embeddings and
// /v1/conversations.
type Handler struct {
	Deps
	opt Options
}

// maxAnswer bounds a non-streamed upstream answer held in memory.
const maxAnswer = 64 << 20

// New returns the chat handler.
func New(d Deps, opt Options) *Handler { return &Handler{Deps: d, opt: opt} }

// authenticate returns the key of the request's bearer token.
func (h *Handler) authenticate(r *http.Request) (gateway.APIKey, error) {
	return auth.KeyOf(r, h.Keys)
}

// model is a public model resolved to its upstream.
type model struct {
	public         string
	upstream       gateway.Upstream
	systemPrompt   string
	knowledgeBases []string
	drawing        bool
	cache          gateway.CachePolicy
}

// catalogue returns the public models of st and extras that key may use.
func catalogue(st gateway.Settings, extras []gateway.Model, key gateway.APIKey) []model {
	var out []model
	if name := st.PublicModelName(); name != "" && key.Allows(name) {
		out = append(out, model{public: name, upstream: st.AI,
			systemPrompt: st.SystemPrompt, drawing: st.DrawingEnabled, knowledgeBases: []string{"default"}, cache: st.Cache})
	}
	for _, m := range extras {
		if !key.Allows(m.Name) {
			continue
		}
		up := st.AI
		up.Model = m.UpstreamModel
		out = append(out, model{public: m.Name, upstream: up,
			systemPrompt: m.SystemPrompt, knowledgeBases: m.KnowledgeBases, drawing: m.Drawing && st.DrawingEnabled, cache: m.Cache})
	}
	return out
}

// resolve maps a public model name to its upstream, or EModelNotFound (also
// for a model the key may not use: to the key, it does not exist).
func (h *Handler) resolve(ctx context.Context, key gateway.APIKey, name string) (gateway.Settings, model, error) {
	st, err := h.Settings.Get(ctx)
	if err != nil {
		return st, model{}, err
	}
	extras, err := h.Catalog.List(ctx)
	if err != nil {
		return st, model{}, err
	}
	models := catalogue(st, extras, key)
	for _, m := range models {
		if m.public == name {
			return st, m, nil
		}
	}
	if to, ok := st.Alias(name); ok {
		for _, m := range models {
			if m.public == to {
				return st, m, nil
			}
		}
	}
	e := gateway.Errorf(gateway.EModelNotFound, "The model %q does not exist or you do not have access to it.", name)
	e.Param = "model"
	return st, model{}, e
}

// Models serves GET /v1/models: the public models the key may use, in
// OpenAI's list shape.
func (h *Handler) Models(w http.ResponseWriter, r *http.Request) error {
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	extras, err := h.Catalog.List(r.Context())
	if err != nil {
		return err
	}
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []entry `json:"data"`
	}{Object: "list", Data: []entry{}}
	for _, m := range catalogue(st, extras, key) {
		list.Data = append(list.Data, entry{ID: m.public, Object: "model", OwnedBy: "ai-gateway"})
	}
	if st.DrawingEnabled && st.ImageModel != "" && key.Allows(st.ImageModel) {
		list.Data = append(list.Data, entry{ID: st.ImageModel, Object: "model", OwnedBy: "ai-gateway"})
	}
	if r.Header.Get("Anthropic-Version") != "" {
		// An Anthropic client: its list shape.
		type model struct {
			Type        string `json:"type"`
			ID          string `json:"id"`
			DisplayName string `json:"display_name"`
			CreatedAt   string `json:"created_at"`
		}
		out := struct {
			Data    []model `json:"data"`
			HasMore bool    `json:"has_more"`
			FirstID *string `json:"first_id"`
			LastID  *string `json:"last_id"`
		}{Data: []model{}}
		for _, e := range list.Data {
			out.Data = append(out.Data, model{Type: "model", ID: e.ID, DisplayName: e.ID, CreatedAt: "1970-01-01T00:00:00Z"})
		}
		if n := len(out.Data); n > 0 {
			out.FirstID, out.LastID = &out.Data[0].ID, &out.Data[n-1].ID
		}
		respond.JSON(w, http.StatusOK, out)
		return nil
	}
	respond.JSON(w, http.StatusOK, list)
	return nil
}

// maxEmbeddingInputs bounds the inputs of one embeddings request (OpenAI's
// own limit).
const maxEmbeddingInputs = 2048

// checkEmbeddingInput checks an embeddings request's input: a text, or an
// array of 1 to 2048 texts, or token arrays, none empty.
func checkEmbeddingInput(raw json.RawMessage) error {
	bad := jsonobj.Invalid("input", fmt.Sprintf("a non-empty text, or an array of 1 to %d non-empty texts or token arrays", maxEmbeddingInputs))
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return bad
		}
		return nil
	}
	var many []json.RawMessage
	if raw == nil || json.Unmarshal(raw, &many) != nil || len(many) == 0 || len(many) > maxEmbeddingInputs {
		return bad
	}
	var tokens []int64
	if json.Unmarshal(raw, &tokens) == nil {
		return nil // one token array
	}
	for _, item := range many {
		var text string
		var toks []int64
		switch {
		case json.Unmarshal(item, &text) == nil && text != "":
		case json.Unmarshal(item, &toks) == nil && len(toks) > 0:
		default:
			return bad
		}
	}
	return nil
}

// answer reads a whole upstream answer and writes it to the client as it
// came, without the upstream's key should it quote it, and returns it. It
// writes nothing when reading fails, so the caller can still answer with
// an error.
func answer(w http.ResponseWriter, resp gateway.Answer, key gateway.Secret) ([]byte, error) {
	body, err := resp.ReadAll(maxAnswer)
	if err != nil {
		return nil, err
	}
	writeWhole(w, contentType(resp), scrub(body, key))
	return body, nil
}

func contentType(resp gateway.Answer) string {
	if ct := resp.ContentType(); ct != "" {
		return ct
	}
	return "application/json"
}

// requestID returns the request ID the middleware put on the response.
func requestID(w http.ResponseWriter) string { return w.Header().Get("X-Request-ID") }

// mustJSON encodes values that always encode (strings, string maps, raw
// messages).
func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic("chat: encode " + err.Error())
	}
	return b
}
