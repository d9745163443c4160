// Package channels keeps the channels (the upstream endpoints behind the
// public models) on the Records role, their API keys sealed, and orders
// the candidates for a request: the highest priority group first,
// weighted at random within each group.
package channels

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/cache"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/storage"
)

// partition holds every channel, sorted by ID.
const partition = "channel"

// maxRecord bounds a channel's stored record, under DynamoDB's 400 KB an
// item.
const maxRecord = 300 << 10

// Store keeps the channels. The list the router reads is cached for a
// short time per instance; a change is seen at once on the instance that
// made it.
type Store struct {
	records storage.Records
	box     *seal.Box
	now     func() time.Time
	cached  cache.Value[[]gateway.Channel]
}

// New returns a Store on records, sealing keys with box, caching the list
// for ttl (zero: no cache).
func New(records storage.Records, box *seal.Box, ttl time.Duration) *Store {
	return &Store{records: records, box: box, now: time.Now, cached: cache.Value[[]gateway.Channel]{TTL: ttl}}
}

// sealContext binds a channel's sealed keys to the channel: a key cannot be
// moved to another channel's record, and stays valid wherever it sits in
// the channel's own pool.
func sealContext(id string) string { return "channel:" + id + ":api_key" }

func notFound(id string) error {
	return gateway.Errorf(gateway.ENotFound, "No channel with ID %q exists.", id)
}

// validID reports whether id can be a channel's.
func validID(id string) bool {
	body, ok := strings.CutPrefix(id, "ch_")
	if !ok || body == "" || len(body) > 64 {
		return false
	}
	for _, r := range body {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// Create stores a new channel and returns it with its ID: c's own when it
// has one (EConflict if taken), else a new one.
func (s *Store) Create(ctx context.Context, c gateway.Channel) (gateway.Channel, error) {
	if c.ID == "" {
		c.ID = "ch_" + strings.ToLower(crand.Text()[:16])
	} else if !validID(c.ID) {
		return gateway.Channel{}, gateway.Errorf(gateway.EInvalid, "A channel's ID is ch_ and 1 to 64 lowercase letters or digits.")
	}
	now := s.now().UTC()
	c.CreatedAt, c.UpdatedAt = now, now
	if err := c.Validate(); err != nil {
		return gateway.Channel{}, err
	}
	if _, err := s.put(ctx, c, storage.Cond{IfAbsent: true}); err != nil {
		return gateway.Channel{}, err
	}
	return c, nil
}

// Update replaces a channel, if it is still at version (from Get): a
// concurrent change is EConflict.
func (s *Store) Update(ctx context.Context, c gateway.Channel, version int64) (gateway.Channel, error) {
	old, _, err := s.Get(ctx, c.ID)
	if err != nil {
		return gateway.Channel{}, err
	}
	c.CreatedAt, c.UpdatedAt = old.CreatedAt, s.now().UTC()
	if err := c.Validate(); err != nil {
		return gateway.Channel{}, err
	}
	if _, err := s.put(ctx, c, storage.Cond{IfVersion: version}); err != nil {
		return gateway.Channel{}, err
	}
	return c, nil
}

func (s *Store) put(ctx context.Context, c gateway.Channel, cond storage.Cond) (int64, error) {
	sealed := c
	sealed.APIKeys = make([]gateway.Secret, len(c.APIKeys))
	for i, k := range c.APIKeys {
		sealed.APIKeys[i] = gateway.Secret(s.box.Seal(string(k), sealContext(c.ID)))
	}
	value, err := json.Marshal(sealed)
	if err != nil {
		return 0, fmt.Errorf("encode channel: %w", err)
	}
	if len(value) > maxRecord {
		return 0, gateway.Errorf(gateway.ETooLarge, "The channel is too large to store (%d KB with its keys sealed, at most %d KB): fewer keys, models or mappings.", len(value)>>10, maxRecord>>10)
	}
	v, err := s.records.Put(ctx, storage.Item{PK: partition, SK: c.ID, Value: value}, cond)
	s.cached.Forget()
	if err != nil {
		return 0, fmt.Errorf("store channel %s: %w", c.ID, err)
	}
	return v, nil
}

// decode opens a stored channel.
func (s *Store) decode(it storage.Item) (gateway.Channel, error) {
	var c gateway.Channel
	if err := json.Unmarshal(it.Value, &c); err != nil {
		return gateway.Channel{}, fmt.Errorf("decode channel %s: %w", it.SK, err)
	}
	if c.ID != it.SK {
		return gateway.Channel{}, fmt.Errorf("channel record %s names %s", it.SK, c.ID)
	}
	for i, k := range c.APIKeys {
		plain, err := s.box.Open(string(k), sealContext(c.ID))
		if err != nil {
			return gateway.Channel{}, fmt.Errorf("open key %d of channel %s: %w", i, c.ID, err)
		}
		c.APIKeys[i] = gateway.Secret(plain)
	}
	return c, nil
}

// Get returns a channel and its version.
func (s *Store) Get(ctx context.Context, id string) (gateway.Channel, int64, error) {
	if !validID(id) {
		return gateway.Channel{}, 0, notFound(id)
	}
	it, err := s.records.Get(ctx, partition, id)
	if gateway.IsNotFound(err) {
		return gateway.Channel{}, 0, notFound(id)
	}
	if err != nil {
		return gateway.Channel{}, 0, err
	}
	c, err := s.decode(it)
	return c, it.Version, err
}

// Cached returns every channel, by ID, from the instance's cache when it
// is fresh: what routing reads. The slice is shared; do not change it.
func (s *Store) Cached(ctx context.Context) ([]gateway.Channel, error) {
	now := s.now()
	if cs, ok := s.cached.Get(now); ok {
		return cs, nil
	}
	gen := s.cached.Generation()
	cs, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	s.cached.SetIf(cs, now, gen)
	return cs, nil
}

// List returns every channel, by ID, as stored now.
func (s *Store) List(ctx context.Context) ([]gateway.Channel, error) {
	cs, _, err := s.ListVersions(ctx)
	return cs, err
}

// ListVersions returns every channel, by ID, as stored now, with the
// version each was read at (for an Update).
func (s *Store) ListVersions(ctx context.Context) ([]gateway.Channel, []int64, error) {
	out, versions := []gateway.Channel{}, []int64{}
	q := storage.Query{Limit: storage.MaxLimit}
	for {
		page, err := s.records.Query(ctx, partition, q)
		if err != nil {
			return nil, nil, err
		}
		for _, it := range page.Items {
			c, err := s.decode(it)
			if err != nil {
				return nil, nil, err
			}
			out, versions = append(out, c), append(versions, it.Version)
		}
		if page.Cursor == "" {
			return out, versions, nil
		}
		q.Cursor = page.Cursor
	}
}

// Delete removes a channel: ENotFound when there is none.
func (s *Store) Delete(ctx context.Context, id string) error {
	if _, _, err := s.Get(ctx, id); err != nil {
		return err
	}
	err := s.records.Delete(ctx, partition, id)
	s.cached.Forget()
	return err
}

// Masked returns c as it may be shown: its keys masked.
func Masked(c gateway.Channel) gateway.Channel {
	out := c
	out.APIKeys = make([]gateway.Secret, len(c.APIKeys))
	for i, k := range c.APIKeys {
		out.APIKeys[i] = gateway.Secret(k.Masked())
	}
	return out
}

// Order returns the channels of cands that serve model for capability, in
// the order a request tries them: the highest priority group first, and
// within a group a weighted random order (a channel of weight 3 comes
// first three times as often as one of weight 1). rnd is the random
// source (seeded in tests).
func Order(cands []gateway.Channel, model, capability string, rnd *rand.Rand) []gateway.Channel {
	var serving []gateway.Channel
	for _, c := range cands {
		if c.Serves(model, capability) {
			serving = append(serving, c)
		}
	}
	slices.SortStableFunc(serving, func(a, b gateway.Channel) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), strings.Compare(a.ID, b.ID))
	})
	out := make([]gateway.Channel, 0, len(serving))
	for start := 0; start < len(serving); {
		end := start
		for end < len(serving) && serving[end].Priority == serving[start].Priority {
			end++
		}
		out = append(out, weighted(serving[start:end], rnd)...)
		start = end
	}
	return out
}

// weighted returns group in a weighted random order: each place drawn
// among those left in proportion to their weights.
func weighted(group []gateway.Channel, rnd *rand.Rand) []gateway.Channel {
	left := slices.Clone(group)
	out := make([]gateway.Channel, 0, len(left))
	for len(left) > 0 {
		total := 0
		for _, c := range left {
			total += c.Weight
		}
		pick := rnd.IntN(total)
		i := 0
		for ; pick >= left[i].Weight; i++ {
			pick -= left[i].Weight
		}
		out = append(out, left[i])
		left = slices.Delete(left, i, i+1)
	}
	return out
}
