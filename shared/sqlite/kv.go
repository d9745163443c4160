package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.KV = (*KV)(nil)

// KV is the KV role on SQLite.
type KV struct{ db *DB }

// Get implements storage.KV.
func (s *KV) Get(ctx context.Context, key string) ([]byte, error) {
	if err := storage.CheckKey("key", key); err != nil {
		return nil, err
	}
	var v []byte
	err := s.db.read.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, storage.NotFound("key " + key)
	case err != nil:
		return nil, storage.Unavailable("get "+key, err)
	}
	return v, nil
}

// Put implements storage.KV.
func (s *KV) Put(ctx context.Context, key string, value []byte) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	if err := storage.CheckValue(value); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := s.db.write.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return storage.Unavailable("put "+key, err)
	}
	return nil
}

// Delete implements storage.KV.
func (s *KV) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	if _, err := s.db.write.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key); err != nil {
		return storage.Unavailable("delete "+key, err)
	}
	return nil
}

// List implements storage.KV.
func (s *KV) List(ctx context.Context, prefix, cursor string, limit int) ([]string, string, error) {
	limit = storage.Clamp(limit)
	lo, hi := storage.PrefixRange(prefix)
	if cursor > lo {
		lo = cursor
	}
	query := `SELECT key FROM kv WHERE key > ? `
	args := []any{lo}
	if cursor == "" {
		query = `SELECT key FROM kv WHERE key >= ? `
	}
	if hi != "" {
		query += `AND key < ? `
		args = append(args, hi)
	}
	query += `ORDER BY key LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.db.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", storage.Unavailable("list "+prefix, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, "", storage.Unavailable("list "+prefix, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", storage.Unavailable("list "+prefix, err)
	}
	if len(keys) > limit {
		keys = keys[:limit]
		return keys, keys[limit-1], nil
	}
	return keys, "", nil
}
