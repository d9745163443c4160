// Package catalog stores the extra public models on the Records role: each
// a name over an upstream model with its own system prompt, knowledge bases
// and drawing switch.
package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/cache"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

const partition = "model"

// Store reads and writes the extra public models. The list is cached for a
// short time per instance; a change is seen at once on the instance that
// made it.
type Store struct {
	records storage.Records
	now     func() time.Time
	cached  cache.Value[[]gateway.Model]
}

// New returns a Store caching the list for ttl (zero disables the cache).
func New(records storage.Records, ttl time.Duration) *Store {
	return &Store{records: records, now: time.Now, cached: cache.Value[[]gateway.Model]{TTL: ttl}}
}

// List returns every extra public model, sorted by name.
func (s *Store) List(ctx context.Context) ([]gateway.Model, error) {
	now := s.now()
	if ms, ok := s.cached.Get(now); ok {
		return ms, nil
	}
	gen := s.cached.Generation()
	var out []gateway.Model
	for it, err := range storage.QueryAll(ctx, s.records, partition, storage.Query{}) {
		if err != nil {
			return nil, fmt.Errorf("list models: %w", err)
		}
		var m gateway.Model
		if err := json.Unmarshal(it.Value, &m); err != nil {
			return nil, fmt.Errorf("decode model %s: %w", it.SK, err)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b gateway.Model) int { return strings.Compare(a.Name, b.Name) })
	s.cached.SetIf(out, now, gen)
	return out, nil
}

// Put validates and stores m, replacing any model of that name.
func (s *Store) Put(ctx context.Context, m gateway.Model) error {
	if m.KnowledgeBases == nil {
		m.KnowledgeBases = []string{}
	}
	if err := m.Validate(); err != nil {
		return err
	}
	value, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode model: %w", err)
	}
	if _, err := s.records.Put(ctx, storage.Item{PK: partition, SK: m.Name, Value: value}, storage.Cond{}); err != nil {
		return fmt.Errorf("save model %s: %w", m.Name, err)
	}
	s.cached.Forget()
	return nil
}

// Delete removes the model name, or returns ENotFound.
func (s *Store) Delete(ctx context.Context, name string) error {
	if _, err := s.records.Get(ctx, partition, name); gateway.IsNotFound(err) {
		return gateway.Errorf(gateway.ENotFound, "No public model named %q exists.", name)
	} else if err != nil {
		return fmt.Errorf("delete model %s: %w", name, err)
	}
	if err := s.records.Delete(ctx, partition, name); err != nil {
		return fmt.Errorf("delete model %s: %w", name, err)
	}
	s.cached.Forget()
	return nil
}
