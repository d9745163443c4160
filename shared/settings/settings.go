// Package settings loads and saves the gateway's settings in the KV role,
// with upstream API keys sealed at rest, and applies the admin API's partial
// updates.
package settings

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/cache"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/storage"
)

// kvKey is where the settings live.
const kvKey = "settings"

// Store reads and writes the settings. Reads are cached for a short time per
// instance; a Save is seen at once on the instance that made it.
type Store struct {
	kv     storage.KV
	box    *seal.Box
	now    func() time.Time
	cached cache.Value[gateway.Settings]
	// upstreams, when set, holds the upstream addresses and keys (the
	// channels): see Channels.
	upstreams Upstreams
}

// Upstreams keeps the settings' upstream fields elsewhere (the channels):
// Fill shows them in the settings, Apply changes them to next's where
// next differs from view (what Fill showed).
type Upstreams interface {
	Fill(ctx context.Context, st *gateway.Settings) error
	Apply(ctx context.Context, view, next gateway.Settings) error
}

// Channels makes u the keeper of the upstream fields: the store keeps the
// settings without them, and settings an older release stored with them
// are moved to u the first time they are read. It is set once, before the
// store is used.
func (s *Store) Channels(u Upstreams) { s.upstreams = u }

// New returns a Store that seals upstream keys with box and caches reads
// for ttl (zero disables the cache).
func New(kv storage.KV, box *seal.Box, ttl time.Duration) *Store {
	return &Store{kv: kv, box: box, now: time.Now, cached: cache.Value[gateway.Settings]{TTL: ttl}}
}

// Get returns the current settings, or the defaults when none were saved.
func (s *Store) Get(ctx context.Context) (gateway.Settings, error) {
	st, err := s.stored(ctx)
	if err != nil || s.upstreams == nil {
		return st, err
	}
	if err := s.upstreams.Fill(ctx, &st); err != nil {
		return gateway.Settings{}, fmt.Errorf("load the upstreams: %w", err)
	}
	return st, nil
}

// stored returns the settings as stored (cached): with the upstream
// fields only when no Upstreams keeps them.
func (s *Store) stored(ctx context.Context) (gateway.Settings, error) {
	now := s.now()
	if st, ok := s.cached.Get(now); ok {
		return st, nil
	}
	gen := s.cached.Generation()
	data, err := s.kv.Get(ctx, kvKey)
	if gateway.IsNotFound(err) {
		return gateway.DefaultSettings(), nil
	}
	if err != nil {
		return gateway.Settings{}, fmt.Errorf("load settings: %w", err)
	}
	st := gateway.DefaultSettings()
	if err := json.Unmarshal(data, &st); err != nil {
		return gateway.Settings{}, fmt.Errorf("decode settings: %w", err)
	}
	plaintext := false
	err = gateway.EachSecret(&st, func(path string, sec *gateway.Secret) error {
		if *sec != "" && !seal.IsSealed(string(*sec)) {
			plaintext = true // kept by an older version: sealed below
			return nil
		}
		v, err := s.box.Open(string(*sec), path)
		if err != nil {
			return fmt.Errorf("open %s: %w", path, err)
		}
		*sec = gateway.Secret(v)
		return nil
	})
	if err != nil {
		return gateway.Settings{}, err
	}
	rewrite := plaintext
	if s.upstreams != nil && st.HasUpstreams() {
		// Stored before channels: the upstreams become channels, then
		// leave the settings. Stopped half-way, this is done again.
		if err := s.upstreams.Apply(ctx, gateway.Settings{}, st); err != nil {
			return gateway.Settings{}, fmt.Errorf("move the upstream settings to channels: %w", err)
		}
		st, rewrite = st.WithoutUpstreams(), true
	}
	if rewrite {
		if err := s.put(ctx, st); err != nil {
			return gateway.Settings{}, fmt.Errorf("seal the settings' secrets: %w", err)
		}
	}
	s.cached.SetIf(st, now, gen)
	return st, nil
}

// Save validates and stores st, every secret in it sealed (bound to its
// place in the settings, so that one cannot be moved to another). With
// Upstreams, its upstream fields go there, where they changed.
func (s *Store) Save(ctx context.Context, st gateway.Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	if s.upstreams != nil {
		view, err := s.Get(ctx)
		if err != nil {
			return err
		}
		if err := s.upstreams.Apply(ctx, view, st); err != nil {
			return err
		}
		st = st.WithoutUpstreams()
	}
	return s.put(ctx, st)
}

// put stores st as it is, its secrets sealed.
func (s *Store) put(ctx context.Context, st gateway.Settings) error {
	sealed := st
	sealed.DrawTriggers = slices.Clone(st.DrawTriggers)
	gateway.EachSecret(&sealed, func(path string, sec *gateway.Secret) error {
		*sec = gateway.Secret(s.box.Seal(string(*sec), path))
		return nil
	})
	data, err := json.Marshal(sealed)
	if err != nil {
		return fmt.Errorf("encode settings: %w", err)
	}
	if err := s.kv.Put(ctx, kvKey, data); err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	s.cached.Set(st, s.now())
	return nil
}

// Reset forgets the stored settings: Get returns the defaults again.
// Setup uses it to undo itself, on a gateway no one has claimed.
func (s *Store) Reset(ctx context.Context) error {
	if s.upstreams != nil {
		view, err := s.Get(ctx)
		if err != nil {
			return err
		}
		if err := s.upstreams.Apply(ctx, view, gateway.Settings{}); err != nil {
			return err
		}
	}
	if err := s.kv.Delete(ctx, kvKey); err != nil {
		return fmt.Errorf("reset settings: %w", err)
	}
	s.cached.Forget()
	return nil
}

// Patch applies a partial update: patch is a JSON object holding only the
// fields to change, nested objects included. An upstream key sent back in
// its masked form means "unchanged". It returns the saved settings.
func (s *Store) Patch(ctx context.Context, patch []byte) (gateway.Settings, error) {
	cur, err := s.Get(ctx)
	if err != nil {
		return gateway.Settings{}, err
	}
	next, err := Merge(cur, patch)
	if err != nil {
		return gateway.Settings{}, err
	}
	if err := s.Save(ctx, next); err != nil {
		return gateway.Settings{}, err
	}
	return next, nil
}

// Merge returns cur with the JSON object patch applied. Unknown fields and
// values of the wrong type are EInvalid.
func Merge(cur gateway.Settings, patch []byte) (gateway.Settings, error) {
	var p map[string]any
	if err := decodeObject(patch, &p); err != nil {
		return gateway.Settings{}, err
	}
	base, err := json.Marshal(cur)
	if err != nil {
		return gateway.Settings{}, fmt.Errorf("encode settings: %w", err)
	}
	var b map[string]any
	if err := decodeObject(base, &b); err != nil {
		return gateway.Settings{}, err
	}
	merged, err := json.Marshal(mergeObjects(b, p))
	if err != nil {
		return gateway.Settings{}, fmt.Errorf("encode merged settings: %w", err)
	}
	var next gateway.Settings
	if err := gateway.Unmarshal(merged, &next); err != nil {
		return gateway.Settings{}, err
	}
	if err := keepMasked(cur, &next); err != nil {
		return gateway.Settings{}, err
	}
	return next, nil
}

func decodeObject(data []byte, v *map[string]any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil || *v == nil {
		return gateway.Errorf(gateway.EInvalid, "The settings must be a JSON object.")
	}
	return nil
}

// keepMasked puts back into next every secret of cur that next holds in
// its masked form: a masked value sent back means "unchanged". A saved key
// never follows its upstream to a new address: when a secret's base_url
// changes to another (not cleared), the key must be entered anew, whether
// it was sent back masked or left out.
func keepMasked(cur gateway.Settings, next *gateway.Settings) error {
	was := map[string]gateway.Secret{}
	gateway.EachSecret(&cur, func(path string, sec *gateway.Secret) error {
		was[path] = *sec
		return nil
	})
	curTree, nextTree := tree(cur), tree(*next)
	return gateway.EachSecret(next, func(path string, sec *gateway.Secret) error {
		old, ok := was[path]
		if !ok || old == "" {
			return nil
		}
		if *sec != "" && string(*sec) == old.Masked() {
			*sec = old
		}
		parent, _, _ := cutLast(path)
		before, after := lookup(curTree, parent+".base_url"), lookup(nextTree, parent+".base_url")
		if *sec == old && after != "" && after != before {
			e := gateway.Errorf(gateway.EInvalid, "Enter the API key of %s again: its base URL changed, and a saved key is not sent to a new address.", parent)
			e.Param = path
			return e
		}
		return nil
	})
}

// tree is st as generic JSON.
func tree(st gateway.Settings) map[string]any {
	b, _ := json.Marshal(st)
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// cutLast splits a path at its last dot.
func cutLast(path string) (string, string, bool) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", path, false
	}
	return path[:i], path[i+1:], true
}

// lookup returns the string at a dotted path of m, or "".
func lookup(m map[string]any, path string) string {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

// mergeObjects applies patch onto base: objects merge recursively, anything
// else replaces.
func mergeObjects(base, patch map[string]any) map[string]any {
	for k, pv := range patch {
		if po, ok := pv.(map[string]any); ok {
			if bo, ok := base[k].(map[string]any); ok {
				base[k] = mergeObjects(bo, po)
				continue
			}
		}
		base[k] = pv
	}
	return base
}

// Masked returns st with every secret masked, for display.
func Masked(st gateway.Settings) gateway.Settings {
	st.DrawTriggers = slices.Clone(st.DrawTriggers)
	gateway.EachSecret(&st, func(_ string, sec *gateway.Secret) error {
		*sec = gateway.Secret(sec.Masked())
		return nil
	})
	return st
}
