package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/channels"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/upstream"
)

// Channels are what the channel pages work on: the channels, their
// breakers, and the upstream client that tests them and lists their
// models.
type Channels struct {
	Store    *channels.Store
	Health   *channels.Health
	Upstream ChannelUpstream
}

// ChannelUpstream calls a channel directly, not through the router.
type ChannelUpstream interface {
	Once(ctx context.Context, up gateway.Upstream, path string, body []byte) (gateway.Answer, error)
	Models(ctx context.Context, up gateway.Upstream) ([]string, error)
}

// channelInput is a channel as the admin API takes it: every field
// optional, so that a PUT changes only what it gives. A key sent back in
// its masked form stands for the key it masks.
type channelInput struct {
	Name         *string            `json:"name"`
	BaseURL      *string            `json:"base_url"`
	APIKeys      *[]gateway.Secret  `json:"api_keys"`
	Models       *[]string          `json:"models"`
	ModelMap     *map[string]string `json:"model_map"`
	Capabilities *[]string          `json:"capabilities"`
	Priority     *int               `json:"priority"`
	Weight       *int               `json:"weight"`
	Enabled      *bool              `json:"enabled"`
	Note         *string            `json:"note"`
	// Version, when given, is the version the change was made on (from a
	// GET): a channel changed since is a 409.
	Version *int64 `json:"version"`
	// What a GET shows besides, ignored: a channel read may be sent back.
	ID        json.RawMessage `json:"id"`
	CreatedAt json.RawMessage `json:"created_at"`
	UpdatedAt json.RawMessage `json:"updated_at"`
	Health    json.RawMessage `json:"health"`
	Keys      json.RawMessage `json:"keys"`
}

// applyTo returns cur changed by in. A saved key never follows its channel
// to a new address: with a new base URL, keys must be entered anew.
func (in channelInput) applyTo(cur gateway.Channel) (gateway.Channel, error) {
	next := cur
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&next.Name, in.Name)
	set(&next.BaseURL, in.BaseURL)
	set(&next.Note, in.Note)
	if in.Models != nil {
		next.Models = *in.Models
	}
	if in.ModelMap != nil {
		next.ModelMap = *in.ModelMap
	}
	if in.Capabilities != nil {
		next.Capabilities = *in.Capabilities
	}
	if in.Priority != nil {
		next.Priority = *in.Priority
	}
	if in.Weight != nil {
		next.Weight = *in.Weight
	}
	if in.Enabled != nil {
		next.Enabled = *in.Enabled
	}
	moved := cur.BaseURL != "" && next.BaseURL != cur.BaseURL
	if in.APIKeys != nil {
		left := slices.Clone(cur.APIKeys)
		next.APIKeys = make([]gateway.Secret, 0, len(*in.APIKeys))
		for i, k := range *in.APIKeys {
			k = gateway.Secret(strings.TrimSpace(string(k)))
			if j := slices.IndexFunc(left, func(old gateway.Secret) bool { return old.Masked() == string(k) }); j >= 0 && k != "" {
				if moved {
					e := gateway.Errorf(gateway.EInvalid, "Enter the API keys again: the base URL changed, and a saved key is not sent to a new address.")
					e.Param = "api_keys[" + strconv.Itoa(i) + "]"
					return gateway.Channel{}, e
				}
				k = left[j]
				left = slices.Delete(left, j, j+1)
			} else if strings.Contains(string(k), "****") {
				e := gateway.Errorf(gateway.EInvalid, "api_keys[%d] is a masked key that is not one of this channel's: enter the key itself.", i)
				e.Param = "api_keys[" + strconv.Itoa(i) + "]"
				return gateway.Channel{}, e
			}
			next.APIKeys = append(next.APIKeys, k)
		}
	} else if moved && len(cur.APIKeys) > 0 {
		e := gateway.Errorf(gateway.EInvalid, "Enter the API keys again: the base URL changed, and a saved key is not sent to a new address.")
		e.Param = "api_keys"
		return gateway.Channel{}, e
	}
	return next, nil
}

// channelView is a channel as the admin API shows it: keys masked, with
// its version and the state of its breakers.
type channelView struct {
	gateway.Channel
	Version int64      `json:"version"`
	Health  healthView `json:"health"`
	Keys    []keyView  `json:"keys"`
}

// healthView is a breaker as shown: ok, cooling (out until open_until),
// probing (cooled down: the next request tries it) or disabled (too many
// failures in a row, or a key set aside: out until a probe succeeds).
type healthView struct {
	Status    string     `json:"status"`
	Failures  int64      `json:"failures"`
	OpenUntil *time.Time `json:"open_until,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

type keyView struct {
	Key string `json:"key"`
	ID  string `json:"id"`
	healthView
}

func showHealth(st channels.State, now time.Time) healthView {
	v := healthView{Status: "ok", Failures: st.Failures, Reason: st.Reason}
	if st.Failures == 0 {
		return healthView{Status: "ok"}
	}
	until := st.OpenUntil.UTC()
	v.OpenUntil = &until
	switch {
	case st.Disabled:
		v.Status = "disabled"
	case now.Before(st.OpenUntil):
		v.Status = "cooling"
	default:
		v.Status = "probing"
	}
	return v
}

func view(c gateway.Channel, version int64, states map[string]channels.State, now time.Time) channelView {
	v := channelView{Channel: channels.Masked(c), Version: version, Health: showHealth(states[c.ID], now), Keys: []keyView{}}
	for _, k := range c.APIKeys {
		id := channels.KeyID(k)
		v.Keys = append(v.Keys, keyView{Key: k.Masked(), ID: id, healthView: showHealth(states[channels.Target(c.ID, id)], now)})
	}
	if v.Models == nil {
		v.Models = []string{}
	}
	return v
}

func (h *Handler) channels() (*Channels, error) {
	if h.Channels == nil {
		return nil, gateway.Errorf(gateway.EUnavailable, "Channels are not available here.")
	}
	return h.Channels, nil
}

// channelRequest reads a channel the admin API is sent.
func (h *Handler) channelRequest(w http.ResponseWriter, r *http.Request) (*Channels, channelInput, error) {
	var in channelInput
	cs, err := h.channels()
	if err == nil {
		err = respond.DecodeJSON(w, r, h.maxBody, &in)
	}
	return cs, in, err
}

// ListChannels serves GET /admin/api/channels: every channel with its
// health.
func (h *Handler) ListChannels(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	list, versions, err := cs.Store.ListVersions(r.Context())
	if err != nil {
		return err
	}
	states, err := cs.Health.States(r.Context())
	if err != nil {
		return err
	}
	out := make([]channelView, 0, len(list))
	now := time.Now()
	for i, c := range list {
		out = append(out, view(c, versions[i], states, now))
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
	return nil
}

// CreateChannel serves POST /admin/api/channels. Omitted, weight is 1,
// enabled is true and capabilities are chat.
func (h *Handler) CreateChannel(w http.ResponseWriter, r *http.Request) error {
	cs, in, err := h.channelRequest(w, r)
	if err != nil {
		return err
	}
	base := gateway.Channel{Weight: 1, Enabled: true, Capabilities: []string{gateway.CapChat}, Models: []string{}}
	c, err := in.applyTo(base)
	if err != nil {
		return err
	}
	if c, err = cs.Store.Create(r.Context(), c); err != nil {
		return err
	}
	respond.JSON(w, http.StatusCreated, view(c, 1, nil, time.Now()))
	return nil
}

// GetChannel serves GET /admin/api/channels/{id}.
func (h *Handler) GetChannel(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	c, version, err := cs.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return show(w, r, cs, c, version)
}

// show answers with one channel's view: its breakers read now.
func show(w http.ResponseWriter, r *http.Request, cs *Channels, c gateway.Channel, version int64) error {
	states, err := cs.Health.States(r.Context())
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, view(c, version, states, time.Now()))
	return nil
}

// UpdateChannel serves PUT /admin/api/channels/{id}: the fields given
// change, the others stay.
func (h *Handler) UpdateChannel(w http.ResponseWriter, r *http.Request) error {
	cs, in, err := h.channelRequest(w, r)
	if err != nil {
		return err
	}
	cur, version, err := cs.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if in.Version != nil && *in.Version != version {
		return gateway.Errorf(gateway.EConflict, "The channel changed since it was read; reload it and try again.")
	}
	next, err := in.applyTo(cur)
	if err != nil {
		return err
	}
	if next, err = cs.Store.Update(r.Context(), next, version); err != nil {
		if gateway.IsConflict(err) {
			return gateway.Errorf(gateway.EConflict, "The channel changed while it was being saved; reload it and try again.")
		}
		return err
	}
	_, version, err = cs.Store.Get(r.Context(), next.ID)
	if err != nil {
		return err
	}
	return show(w, r, cs, next, version)
}

// DeleteChannel serves DELETE /admin/api/channels/{id}.
func (h *Handler) DeleteChannel(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	if err := cs.Store.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ChannelModels serves GET /admin/api/channels/{id}/models: the models
// the channel's upstream lists (GET /models with its first key), to pick
// from.
func (h *Handler) ChannelModels(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	c, _, err := cs.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return h.listModels(w, r, cs, c)
}

// listModels answers the models c's upstream lists.
func (h *Handler) listModels(w http.ResponseWriter, r *http.Request, cs *Channels, c gateway.Channel) error {
	up := gateway.Upstream{BaseURL: c.BaseURL}
	if len(c.APIKeys) > 0 {
		up.APIKey = c.APIKeys[0]
	}
	ids, err := cs.Upstream.Models(r.Context(), up)
	if err != nil {
		return err
	}
	for i, id := range ids {
		ids[i] = upstream.Scrub(id, string(up.APIKey))
	}
	respond.JSON(w, http.StatusOK, map[string]any{"object": "list", "data": ids})
	return nil
}

// testResult is what testing one key of a channel found.
type testResult struct {
	Key       string `json:"key,omitempty"`
	KeyID     string `json:"key_id,omitempty"`
	OK        bool   `json:"ok"`
	LatencyMS int64  `json:"latency_ms"`
	Answer    string `json:"answer,omitempty"`
	Error     string `json:"error,omitempty"`
}

// TestChannel serves POST /admin/api/channels/{id}/test: a small request
// for each key of the pool (chat: a short completion; embeddings: one
// input; rerank: two documents; images: the model list, since a picture
// costs money), each with its latency and the upstream's answer or error.
// A key that passes, and its channel, are back in rotation at once.
func (h *Handler) TestChannel(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	var in testInput
	if r.ContentLength != 0 {
		if err := respond.DecodeJSON(w, r, 64<<10, &in); err != nil {
			return err
		}
	}
	c, _, err := cs.Store.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return h.runTest(w, r, cs, c, in, stored)
}

// testInput is what a test asks for: a model and a capability (both
// optional).
type testInput struct {
	Model      string `json:"model"`
	Capability string `json:"capability"`
}

// TestNewChannel serves POST /admin/api/channels/test: the test of a
// channel not saved yet (the form's Test button), the same as a saved
// one's but for its breakers, which it leaves alone. With "id", the
// fields given change that saved channel for the test only.
func (h *Handler) TestNewChannel(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	var in struct {
		channelInput
		testInput
	}
	if err := respond.DecodeJSON(w, r, h.maxBody, &in); err != nil {
		return err
	}
	c, err := h.draft(r, cs, in.channelInput)
	if err != nil {
		return err
	}
	return h.runTest(w, r, cs, c, in.testInput, draft)
}

// draft is the channel a form shows, not saved: the fields given over the
// stored channel its "id" names (so that its masked keys stand for
// themselves), or over a new channel's defaults.
func (h *Handler) draft(r *http.Request, cs *Channels, in channelInput) (gateway.Channel, error) {
	base := gateway.Channel{Name: "test", Weight: 1, Enabled: true, Capabilities: []string{gateway.CapChat}}
	if len(in.ID) > 0 && string(in.ID) != "null" {
		var id string
		if err := json.Unmarshal(in.ID, &id); err != nil {
			e := gateway.Errorf(gateway.EInvalid, "id is the ID of a saved channel.")
			e.Param = "id"
			return gateway.Channel{}, e
		}
		cur, _, err := cs.Store.Get(r.Context(), id)
		if err != nil {
			return gateway.Channel{}, err
		}
		base = cur
	}
	c, err := in.applyTo(base)
	if err != nil {
		return gateway.Channel{}, err
	}
	if err := c.Validate(); err != nil {
		return gateway.Channel{}, err
	}
	return c, nil
}

// DraftModels serves POST /admin/api/channels/models: the models the
// upstream of a channel not saved yet lists (the form's Fetch models
// button), asked with its first key; "id" edits a saved channel as the
// test does.
func (h *Handler) DraftModels(w http.ResponseWriter, r *http.Request) error {
	cs, in, err := h.channelRequest(w, r)
	if err != nil {
		return err
	}
	c, err := h.draft(r, cs, in)
	if err != nil {
		return err
	}
	return h.listModels(w, r, cs, c)
}

// SetupTest serves POST /admin/api/setup/test: before the gateway is set
// up, the test of the upstream the setup page is given ({"base_url",
// "api_key", "model", "capability"}), so that it can say what is wrong
// before anything is stored. Once set up, 409.
func (h *Handler) SetupTest(w http.ResponseWriter, r *http.Request) error {
	cs, err := h.channels()
	if err != nil {
		return err
	}
	if ok, err := h.Guard.Initialized(r.Context()); err != nil {
		return err
	} else if ok {
		return gateway.Errorf(gateway.EConflict, "The gateway is already set up: test its channels in the admin panel.")
	}
	// Before setup no one is signed in: a cross-site page must not make
	// the gateway call addresses for it (a JSON body cannot come from a
	// form, and the browser says where the request comes from).
	if err := sameSite(r); err != nil {
		return err
	}
	var in struct {
		BaseURL string         `json:"base_url"`
		APIKey  gateway.Secret `json:"api_key"`
		testInput
	}
	if err := respond.DecodeJSON(w, r, 64<<10, &in); err != nil {
		return err
	}
	c := gateway.Channel{Name: "setup", BaseURL: strings.TrimSpace(in.BaseURL), Weight: 1, Enabled: true,
		Capabilities: []string{cmp.Or(in.Capability, gateway.CapChat)}, Models: []string{}}
	if in.APIKey != "" {
		c.APIKeys = []gateway.Secret{in.APIKey}
	}
	if in.Model == "" {
		e := gateway.Errorf(gateway.EInvalid, "Name the model to test.")
		e.Param = "model"
		return e
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return h.runTest(w, r, cs, c, in.testInput, anonymous)
}

// testKind is whose test it is.
type testKind int

const (
	// stored: a saved channel's; a key that passes goes back in rotation.
	stored testKind = iota
	// draft: an admin's, of a channel not saved.
	draft
	// anonymous: the setup page's, before any admin exists: it says only
	// whether the upstream answered and, if not, the kind of failure,
	// never what the address answered (no one is signed in to see it).
	anonymous
)

// sameSite refuses (403) a request that is not JSON, or that the browser
// says another site made: what the setup routes, open to anyone before
// setup, accept only from the setup page itself.
func sameSite(r *http.Request) error {
	if ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); strings.TrimSpace(strings.ToLower(ct)) != "application/json" {
		return gateway.Errorf(gateway.EUnsupported, "Send the request as application/json.")
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return gateway.Errorf(gateway.EForbidden, "The setup routes answer only the gateway's own pages.")
	}
	return nil
}

// runTest tests each key of c's pool and answers the results.
func (h *Handler) runTest(w http.ResponseWriter, r *http.Request, cs *Channels, c gateway.Channel, in testInput, kind testKind) error {
	capability := in.Capability
	if capability == "" {
		for _, cp := range gateway.Capabilities {
			if slices.Contains(c.Capabilities, cp) {
				capability = cp
				break
			}
		}
	}
	if !slices.Contains(c.Capabilities, capability) {
		e := gateway.Errorf(gateway.EInvalid, "The channel cannot do %q; it can do %s.", capability, strings.Join(c.Capabilities, ", "))
		e.Param = "capability"
		return e
	}
	model := in.Model
	if model == "" {
		var err error
		if model, err = h.testModel(r.Context(), c, capability); err != nil {
			return err
		}
	}
	sent := c.UpstreamModel(model)
	keys := c.APIKeys
	if len(keys) == 0 {
		keys = []gateway.Secret{""}
	}
	results := make([]testResult, 0, len(keys))
	all := true
	for _, k := range keys {
		res := h.testKey(r.Context(), cs, c, k, capability, sent, kind)
		all = all && res.OK
		results = append(results, res)
	}
	out := map[string]any{"model": model, "upstream_model": sent, "capability": capability, "ok": all, "results": results}
	if kind == stored {
		out["channel"] = c.ID
	}
	respond.JSON(w, http.StatusOK, out)
	return nil
}

// testModel picks the model a test asks for: the channel's first model
// that is a name, not a glob, else the model the settings name for the
// capability.
func (h *Handler) testModel(ctx context.Context, c gateway.Channel, capability string) (string, error) {
	for _, m := range c.Models {
		if !strings.ContainsAny(m, "*?[") {
			return m, nil
		}
	}
	for m := range c.ModelMap {
		if m != "*" {
			return m, nil
		}
	}
	st, err := h.Settings.Get(ctx)
	if err != nil {
		return "", err
	}
	m := map[string]string{gateway.CapChat: st.AI.Model, gateway.CapEmbeddings: st.RAG.Model,
		gateway.CapRerank: st.RAG.RerankModel, gateway.CapImages: st.ImageModel}[capability]
	if m == "" {
		e := gateway.Errorf(gateway.EInvalid, "Name the model to test: the channel lists none by name.")
		e.Param = "model"
		return "", e
	}
	return m, nil
}

func (h *Handler) testKey(ctx context.Context, cs *Channels, c gateway.Channel, key gateway.Secret, capability, model string, kind testKind) testResult {
	res := testResult{}
	if key != "" {
		res.Key, res.KeyID = key.Masked(), channels.KeyID(key)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	up := gateway.Upstream{BaseURL: c.BaseURL, APIKey: key, Model: model}
	start := time.Now()
	answer, err := testCall(ctx, cs.Upstream, up, capability)
	res.LatencyMS = time.Since(start).Milliseconds()
	if err != nil {
		res.Error = channels.Reason(err)
		if kind == anonymous {
			res.Error = failureKind(err)
		}
		return res
	}
	res.OK, res.Answer = true, upstream.Scrub(answer, string(key))
	if kind == anonymous {
		res.Answer = ""
	}
	if kind != stored {
		return res
	}
	for _, t := range []string{c.ID, channels.Target(c.ID, res.KeyID)} {
		if err := cs.Health.Success(context.WithoutCancel(ctx), t); err != nil {
			res.Error = "passed, but could not be put back in rotation: " + gateway.ErrorMessage(err)
		}
	}
	return res
}

// failureKind says what kind of failure err is, in words, without
// anything the upstream said.
func failureKind(err error) string {
	switch gateway.FaultOf(err) {
	case gateway.FaultKey:
		return "The upstream refused the API key (401 or 403): check the key."
	case gateway.FaultQuota:
		return "The upstream says the key's quota or balance is used up."
	case gateway.FaultRate:
		return "The upstream is rate limiting the key (429): try again shortly."
	case gateway.FaultRequest:
		return "The upstream refused the test request (400): check the model's name."
	}
	switch gateway.ErrorCode(err) {
	case gateway.ETimeout:
		return "The upstream did not answer in time."
	case gateway.EUpstream:
		if strings.Contains(gateway.ErrorMessage(err), "could not be reached") {
			return "The upstream could not be reached: check the base URL."
		}
		return "The upstream answered with an error, or not in the OpenAI format: check the base URL and the model."
	}
	return "The test failed."
}

// testCall makes the test request of capability and returns what the
// upstream answered, in short.
func testCall(ctx context.Context, u ChannelUpstream, up gateway.Upstream, capability string) (string, error) {
	if capability == gateway.CapImages {
		ids, err := u.Models(ctx, up)
		if err != nil {
			return "", err
		}
		if !slices.Contains(ids, up.Model) {
			return "", gateway.Errorf(gateway.EUpstream, "The upstream answered, but does not list the model %q among its %d models.", up.Model, len(ids))
		}
		return "lists " + up.Model, nil
	}
	var path string
	var body map[string]any
	switch capability {
	case gateway.CapChat:
		path, body = "/chat/completions", map[string]any{"model": up.Model, "max_tokens": 16,
			"messages": []map[string]string{{"role": "user", "content": "Say OK."}}}
	case gateway.CapEmbeddings:
		path, body = "/embeddings", map[string]any{"model": up.Model, "input": []string{"ping"}}
	default:
		path, body = "/rerank", map[string]any{"model": up.Model, "query": "ping", "documents": []string{"ping", "pong"}}
	}
	raw, _ := json.Marshal(body)
	resp, err := u.Once(ctx, up, path, raw)
	if err != nil {
		return "", err
	}
	defer resp.Close()
	data, err := resp.ReadAll(1 << 20)
	if err != nil {
		return "", err
	}
	var v struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Data []struct {
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return "", gateway.Errorf(gateway.EUpstream, "The upstream answered 2xx, but not with JSON.")
	}
	switch {
	case capability == gateway.CapChat && len(v.Choices) > 0:
		text := v.Choices[0].Message.Content
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		return text, nil
	case capability == gateway.CapEmbeddings && len(v.Data) > 0 && len(v.Data[0].Embedding) > 0:
		return "an embedding of " + strconv.Itoa(len(v.Data[0].Embedding)) + " dimensions", nil
	case capability == gateway.CapRerank && len(v.Results) > 0:
		return strconv.Itoa(len(v.Results)) + " documents ranked", nil
	}
	return "", gateway.Errorf(gateway.EUpstream, "The upstream answered 2xx, but not in the shape of the %s API.", capability)
}
