// Package models stores the extra public models on the Records role: each
// a name over an upstream model with its own system prompt, knowledge bases
// and drawing switch.
package models

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

const partition = "model"

// Store reads and writes the extra public models. The list is cached for a
// short time per instance; a change is seen at once on the instance that
// made it.
type Store struct {
	records storage.Records
	ttl     time.Duration
	now     func() time.Time

	mu     sync.Mutex
	cached []gateway.Model
	until  time.Time
}

// New returns a Store caching the list for ttl (zero disables the cache).
func New(records storage.Records, ttl time.Duration) *Store {
	return &Store{records: records, ttl: ttl, now: time.Now}
}

// List returns every extra public model, sorted by name.
func (s *Store) List(ctx context.Context) ([]gateway.Model, error) {
	now := s.now()
	s.mu.Lock()
	if now.Before(s.until) {
		defer s.mu.Unlock()
		return s.cached, nil
	}
	s.mu.Unlock()
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
	if s.ttl > 0 {
		s.mu.Lock()
		s.cached, s.until = out, now.Add(s.ttl)
		s.mu.Unlock()
	}
	return out, nil
}

func (s *Store) forget() {
	s.mu.Lock()
	s.until = time.Time{}
	s.mu.Unlock()
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
	s.forget()
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
	s.forget()
	return nil
}
