package channels

import (
	"context"

	"github.com/aigateway/aigateway/shared/gateway"
)

// The settings' upstream fields (ai, fallback, image and rag: a base URL
// and a key each) predate channels. They are now a view of four channels
// with fixed IDs, deprecated, kept for one release: reading the settings
// shows those channels' address and first key there, and a change made
// there changes the channel (creating it, or deleting it when the base
// URL is cleared). Settings stored by an older release are moved into the
// channels the first time they are read.
const (
	MainID     = "ch_main"
	FallbackID = "ch_fallback"
	ImagesID   = "ch_images"
	RAGID      = "ch_rag"
)

// legacyIDs are the four, in the order of the settings' fields.
var legacyIDs = []string{MainID, FallbackID, ImagesID, RAGID}

// legacyPart is what the settings hold of one of the four channels.
type legacyPart struct {
	baseURL string
	key     gateway.Secret
	model   string // the fallback's model: the name it is sent for every model
}

// partsOf returns the settings' upstream fields, by channel ID.
func partsOf(st gateway.Settings) map[string]legacyPart {
	return map[string]legacyPart{
		MainID:     {baseURL: st.AI.BaseURL, key: st.AI.APIKey},
		FallbackID: {baseURL: st.Fallback.BaseURL, key: st.Fallback.APIKey, model: st.Fallback.Model},
		ImagesID:   {baseURL: st.Image.BaseURL, key: st.Image.APIKey},
		RAGID:      {baseURL: st.RAG.BaseURL, key: st.RAG.APIKey},
	}
}

// partOf is what the settings show of channel c.
func partOf(c gateway.Channel) legacyPart {
	p := legacyPart{baseURL: c.BaseURL}
	if len(c.APIKeys) > 0 {
		p.key = c.APIKeys[0]
	}
	if c.ID == FallbackID {
		p.model = c.ModelMap["*"]
	}
	return p
}

// newLegacy returns the channel a settings field becomes, doing what that
// field did: the main upstream answered every model's chat and, without
// an image upstream, drew; the fallback answered when it failed; the
// image upstream drew; the RAG upstream embedded and reranked.
func newLegacy(id string, p legacyPart) gateway.Channel {
	c := gateway.Channel{ID: id, BaseURL: p.baseURL, Models: []string{"*"}, Weight: 1, Enabled: true}
	if p.key != "" {
		c.APIKeys = []gateway.Secret{p.key}
	}
	switch id {
	case MainID:
		c.Name, c.Capabilities = "Main upstream", []string{gateway.CapChat, gateway.CapImages}
		c.Note = "The settings' ai upstream."
	case FallbackID:
		c.Name, c.Capabilities, c.Priority = "Fallback upstream", []string{gateway.CapChat}, -1
		c.Note = "The settings' fallback upstream: tried when the main upstream fails."
	case ImagesID:
		c.Name, c.Capabilities, c.Priority = "Image upstream", []string{gateway.CapImages}, 1
		c.Note = "The settings' image upstream."
	case RAGID:
		c.Name, c.Capabilities = "RAG upstream", []string{gateway.CapEmbeddings, gateway.CapRerank}
		c.Note = "The settings' rag upstream: embeddings and rerank."
	}
	setModel(&c, p.model)
	return c
}

// setModel makes c send every model as model ("": as asked).
func setModel(c *gateway.Channel, model string) {
	if model == "" {
		delete(c.ModelMap, "*")
		if len(c.ModelMap) == 0 {
			c.ModelMap = nil
		}
		return
	}
	if c.ModelMap == nil {
		c.ModelMap = map[string]string{}
	}
	c.ModelMap["*"] = model
}

// Fill sets the settings' upstream fields from the channels: the view.
func Fill(st *gateway.Settings, chs []gateway.Channel) {
	for _, c := range chs {
		p := partOf(c)
		switch c.ID {
		case MainID:
			st.AI.BaseURL, st.AI.APIKey = p.baseURL, p.key
		case FallbackID:
			st.Fallback = gateway.Upstream{BaseURL: p.baseURL, APIKey: p.key, Model: p.model}
		case ImagesID:
			st.Image = gateway.Upstream{BaseURL: p.baseURL, APIKey: p.key}
		case RAGID:
			st.RAG.BaseURL, st.RAG.APIKey = p.baseURL, p.key
		}
	}
}

// Fill implements the settings store's view of the channels.
func (s *Store) Fill(ctx context.Context, st *gateway.Settings) error {
	chs, err := s.Cached(ctx)
	if err != nil {
		return err
	}
	Fill(st, chs)
	return nil
}

// Apply changes the four channels to agree with next's upstream fields
// where they differ from view's (what the settings showed): a channel
// made, changed (its address, its first key, the fallback's model) or,
// its base URL cleared, deleted. Concurrent appliers of the same change
// agree: the IDs are fixed, and each change is made on the version read.
func (s *Store) Apply(ctx context.Context, view, next gateway.Settings) error {
	was, now := partsOf(view), partsOf(next)
	for _, id := range legacyIDs {
		if was[id] == now[id] {
			continue
		}
		if err := s.applyOne(ctx, id, was[id], now[id]); err != nil {
			return err
		}
	}
	return nil
}

// applyOne changes channel id by what differs from was to p: only that,
// on the channel as stored now (the view may be a cached one). A new base
// URL takes only the key given with it: the pool's other keys are never
// sent to an address their owner did not give them.
func (s *Store) applyOne(ctx context.Context, id string, was, p legacyPart) error {
	for range 5 {
		cur, version, err := s.Get(ctx, id)
		switch {
		case gateway.IsNotFound(err) && p.baseURL == "":
			return nil
		case gateway.IsNotFound(err):
			_, err = s.Create(ctx, newLegacy(id, p))
		case err != nil:
			return err
		case p.baseURL == "":
			err = s.Delete(ctx, id)
			if gateway.IsNotFound(err) {
				return nil
			}
		default:
			if partOf(cur) == p {
				return nil // already so (another instance made the same change)
			}
			if cur.BaseURL != was.baseURL && p.baseURL == was.baseURL && p.key != was.key {
				// The channel moved since the settings were read: the key
				// given was meant for the address they showed.
				e := gateway.Errorf(gateway.EConflict, "The upstream's address changed since the settings were read; reload them and enter the key again.")
				e.Param = "api_key"
				return e
			}
			switch {
			case p.baseURL != was.baseURL && p.baseURL != cur.BaseURL:
				cur.BaseURL, cur.APIKeys = p.baseURL, nil
				if p.key != "" {
					cur.APIKeys = []gateway.Secret{p.key}
				}
			case p.key != was.key && p.key == "" && len(cur.APIKeys) > 0:
				cur.APIKeys = cur.APIKeys[1:]
			case p.key != was.key && p.key != "" && len(cur.APIKeys) > 0:
				cur.APIKeys = append([]gateway.Secret{p.key}, cur.APIKeys[1:]...)
			case p.key != was.key && p.key != "":
				cur.APIKeys = []gateway.Secret{p.key}
			}
			if id == FallbackID && p.model != was.model {
				setModel(&cur, p.model)
			}
			_, err = s.Update(ctx, cur, version)
		}
		if !gateway.IsConflict(err) {
			return err
		}
		// Another instance changed it between: read it again.
	}
	return gateway.Errorf(gateway.EConflict, "The channel %s kept changing; try again.", id)
}
