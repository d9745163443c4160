// Package sqlstore implements the KV and Records storage roles in SQL, on a
// SQLite database reached through database/sql: the embedded SQLite of the
// local target and Cloudflare D1 (which is SQLite) run the same schema and
// the same statements.
//
// Every write is one statement: conditional puts and counters are upserts
// whose conditions and arithmetic happen inside SQLite (ON CONFLICT …
// WHERE, RETURNING, the JSON functions), because D1 has no interactive
// transactions. Statements bind at most 100 parameters, D1's limit.
package sqlstore

import (
	"context"
	"database/sql"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aigateway/aigateway/shared/storage"
)

// Schema creates the tables; it is idempotent. The Cloudflare target
// applies it as its first D1 migration.
//
//go:embed schema.sql
var Schema string

// Store holds the KV and Records roles on one database. Reads go through
// read and writes through write, which may be the same pool.
type Store struct {
	read, write *pool
	now         func() time.Time
	// SweepEvery, when not zero, deletes expired records at most this
	// often, on a write; reads never show them in the meantime.
	SweepEvery time.Duration
	lastSweep  atomic.Int64
}

// New returns a Store on db's pools; now is the clock (nil: time.Now).
func New(read, write *sql.DB, now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{read: newPool(read), now: now}
	s.write = s.read
	if write != read {
		s.write = newPool(write)
	}
	return s
}

// KV returns the KV role.
func (s *Store) KV() *KV { return &KV{s: s} }

// Records returns the Records role.
func (s *Store) Records() *Records { return &Records{s: s} }

// Sweep deletes expired records.
func (s *Store) Sweep(ctx context.Context) error {
	now := s.now()
	s.lastSweep.Store(now.Unix())
	if _, err := s.write.ExecContext(ctx, `DELETE FROM records WHERE expires_at != 0 AND expires_at <= ?`, now.UnixMilli()); err != nil {
		return storage.Unavailable("sweep expired records", err)
	}
	return nil
}

// maybeSweep sweeps when the last sweep is older than SweepEvery.
func (s *Store) maybeSweep(ctx context.Context) {
	last := s.lastSweep.Load()
	now := s.now().Unix()
	if s.SweepEvery <= 0 || now-last < int64(s.SweepEvery/time.Second) || !s.lastSweep.CompareAndSwap(last, now) {
		return
	}
	// A failed sweep is retried at the next interval; reads never show
	// expired records, so nothing depends on it.
	_ = s.Sweep(ctx)
}

var _ storage.KV = (*KV)(nil)

// KV is the KV role: table kv.
type KV struct{ s *Store }

// Get implements storage.KV.
func (k *KV) Get(ctx context.Context, key string) ([]byte, error) {
	if err := storage.CheckKey("key", key); err != nil {
		return nil, err
	}
	var v []byte
	err := k.s.read.QueryRowContext(ctx, `SELECT value FROM kv WHERE key = ?`, key).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, storage.NotFound("key " + key)
	case err != nil:
		return nil, storage.Unavailable("get "+key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put implements storage.KV.
func (k *KV) Put(ctx context.Context, key string, value []byte) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	if err := storage.CheckValue(value); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	_, err := k.s.write.ExecContext(ctx, `INSERT INTO kv (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return storage.Unavailable("put "+key, err)
	}
	return nil
}

// Delete implements storage.KV.
func (k *KV) Delete(ctx context.Context, key string) error {
	if err := storage.CheckKey("key", key); err != nil {
		return err
	}
	if _, err := k.s.write.ExecContext(ctx, `DELETE FROM kv WHERE key = ?`, key); err != nil {
		return storage.Unavailable("delete "+key, err)
	}
	return nil
}

// List implements storage.KV.
func (k *KV) List(ctx context.Context, prefix, cursor string, limit int) ([]string, string, error) {
	limit = storage.Clamp(limit)
	lo, hi := storage.PrefixRange(prefix)
	query := `SELECT key FROM kv WHERE key >= ? `
	if cursor != "" && cursor >= lo {
		lo = cursor
		query = `SELECT key FROM kv WHERE key > ? `
	}
	args := []any{lo}
	if hi != "" {
		query += `AND key < ? `
		args = append(args, hi)
	}
	query += `ORDER BY key LIMIT ?`
	args = append(args, limit+1)
	rows, err := k.s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", storage.Unavailable("list "+prefix, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var key string
		if err := rows.Scan(&key); err != nil {
			return nil, "", storage.Unavailable("list "+prefix, err)
		}
		keys = append(keys, key)
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

var (
	_ storage.Records = (*Records)(nil)
	_ storage.Batcher = (*Records)(nil)
)

// Records is the Records role: table records, keyed by (pk, sk).
type Records struct{ s *Store }

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

const columns = `pk, sk, value, counters, version, expires_at`

// live is true of a stored row that has not expired at parameter ?5 (the
// statements below bind the time there).
const live = `(records.expires_at = 0 OR records.expires_at > ?5)`

type scanner interface{ Scan(...any) error }

func scanItem(row scanner) (storage.Item, error) {
	var it storage.Item
	var counters string
	var exp int64
	if err := row.Scan(&it.PK, &it.SK, &it.Value, &counters, &it.Version, &exp); err != nil {
		return it, err
	}
	if it.Value == nil {
		it.Value = []byte{}
	}
	it.ExpiresAt = fromMillis(exp)
	if counters != "{}" {
		if err := json.Unmarshal([]byte(counters), &it.Counters); err != nil {
			return it, fmt.Errorf("decode counters of %s/%s: %w", it.PK, it.SK, err)
		}
	}
	return it, nil
}

// Get implements storage.Records.
func (r *Records) Get(ctx context.Context, pk, sk string) (storage.Item, error) {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return storage.Item{}, err
	}
	row := r.s.read.QueryRowContext(ctx, `SELECT `+columns+` FROM records WHERE pk = ? AND sk = ? AND (expires_at = 0 OR expires_at > ?)`,
		pk, sk, r.s.now().UnixMilli())
	it, err := scanItem(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storage.Item{}, storage.NotFound("record " + pk + "/" + sk)
	case err != nil:
		return storage.Item{}, storage.Unavailable("get record "+pk+"/"+sk, err)
	}
	return it, nil
}

// The statements of Put, by condition. Each binds ?1 pk, ?2 sk, ?3 value,
// ?4 expires_at, ?5 now (and ?6 the expected version) and returns the new
// version, or no row when the condition failed.
const (
	// An unconditional put keeps a live item's counters and counts on its
	// version; an expired item is replaced as new.
	putAny = `INSERT INTO records (` + columns + `) VALUES (?1, ?2, ?3, '{}', 1, ?4)
		ON CONFLICT (pk, sk) DO UPDATE SET value = excluded.value,
			counters = CASE WHEN ` + live + ` THEN records.counters ELSE '{}' END,
			version = CASE WHEN ` + live + ` THEN records.version + 1 ELSE 1 END,
			expires_at = excluded.expires_at
		RETURNING version`
	// IfAbsent replaces only an expired item.
	putIfAbsent = `INSERT INTO records (` + columns + `) VALUES (?1, ?2, ?3, '{}', 1, ?4)
		ON CONFLICT (pk, sk) DO UPDATE SET value = excluded.value, counters = '{}', version = 1,
			expires_at = excluded.expires_at
		WHERE NOT ` + live + `
		RETURNING version`
	// IfVersion updates only the live item of that version.
	putIfVersion = `UPDATE records SET value = ?3, version = version + 1, expires_at = ?4
		WHERE pk = ?1 AND sk = ?2 AND version = ?6 AND ` + live + `
		RETURNING version`
)

// Put implements storage.Records.
func (r *Records) Put(ctx context.Context, item storage.Item, cond storage.Cond) (int64, error) {
	if err := storage.CheckItemKey(item.PK, item.SK); err != nil {
		return 0, err
	}
	if err := storage.CheckValue(item.Value); err != nil {
		return 0, err
	}
	defer r.s.maybeSweep(ctx)
	value := item.Value
	if value == nil {
		value = []byte{}
	}
	stmt, args := putAny, []any{item.PK, item.SK, value, millis(item.ExpiresAt), r.s.now().UnixMilli()}
	switch {
	case cond.IfAbsent:
		stmt = putIfAbsent
	case cond.IfVersion != 0:
		stmt, args = putIfVersion, append(args, cond.IfVersion)
	}
	var version int64
	err := r.s.write.QueryRowContext(ctx, stmt, args...).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, storage.Conflict()
	case err != nil:
		return 0, storage.Unavailable("put record "+item.PK+"/"+item.SK, err)
	}
	return version, nil
}

// Delete implements storage.Records.
func (r *Records) Delete(ctx context.Context, pk, sk string) error {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return err
	}
	if _, err := r.s.write.ExecContext(ctx, `DELETE FROM records WHERE pk = ? AND sk = ?`, pk, sk); err != nil {
		return storage.Unavailable("delete record "+pk+"/"+sk, err)
	}
	return nil
}

// incr adds the counters of ?3 (a JSON object) to a live item's, summing
// by name in SQLite's JSON functions, or starts a new item with them.
const incr = `INSERT INTO records (` + columns + `) VALUES (?1, ?2, x'', ?3, 1, ?4)
	ON CONFLICT (pk, sk) DO UPDATE SET
		counters = CASE WHEN ` + live + ` THEN (
			SELECT json_group_object(key, total) FROM (
				SELECT key, SUM(value) AS total FROM (
					SELECT key, value FROM json_each(records.counters)
					UNION ALL SELECT key, value FROM json_each(?3))
				GROUP BY key))
			ELSE excluded.counters END,
		value = CASE WHEN ` + live + ` THEN records.value ELSE x'' END,
		version = CASE WHEN ` + live + ` THEN records.version + 1 ELSE 1 END,
		expires_at = CASE WHEN ` + live + ` THEN records.expires_at ELSE excluded.expires_at END
	RETURNING counters`

// Incr implements storage.Records.
func (r *Records) Incr(ctx context.Context, pk, sk string, deltas map[string]int64, expiresAt time.Time) (map[string]int64, error) {
	if err := storage.CheckIncr(pk, sk, deltas); err != nil {
		return nil, err
	}
	defer r.s.maybeSweep(ctx)
	d, err := json.Marshal(deltas)
	if err != nil {
		return nil, fmt.Errorf("encode counters: %w", err)
	}
	var counters string
	err = r.s.write.QueryRowContext(ctx, incr, pk, sk, string(d), millis(expiresAt), r.s.now().UnixMilli()).Scan(&counters)
	if err != nil {
		return nil, storage.Unavailable("incr record "+pk+"/"+sk, err)
	}
	all := map[string]int64{}
	if err := json.Unmarshal([]byte(counters), &all); err != nil {
		return nil, storage.Unavailable("incr record "+pk+"/"+sk, err)
	}
	out := make(map[string]int64, len(deltas))
	for k := range deltas {
		out[k] = all[k]
	}
	return out, nil
}

// Query implements storage.Records.
func (r *Records) Query(ctx context.Context, pk string, q storage.Query) (storage.Page, error) {
	if err := storage.CheckKey("partition key", pk); err != nil {
		return storage.Page{}, err
	}
	limit := storage.Clamp(q.Limit)
	lo, hi := q.Bounds()
	var where strings.Builder
	args := []any{pk, r.s.now().UnixMilli()}
	where.WriteString(`pk = ? AND (expires_at = 0 OR expires_at > ?)`)
	if lo != "" {
		where.WriteString(` AND sk >= ?`)
		args = append(args, lo)
	}
	if hi != "" {
		where.WriteString(` AND sk < ?`)
		args = append(args, hi)
	}
	if q.Cursor != "" {
		after, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil {
			return storage.Page{}, storage.Invalid("the cursor is malformed")
		}
		if q.Desc {
			where.WriteString(` AND sk < ?`)
		} else {
			where.WriteString(` AND sk > ?`)
		}
		args = append(args, string(after))
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	args = append(args, limit+1)
	rows, err := r.s.read.QueryContext(ctx, `SELECT `+columns+` FROM records WHERE `+where.String()+
		` ORDER BY sk `+order+` LIMIT ?`, args...)
	if err != nil {
		return storage.Page{}, storage.Unavailable("query "+pk, err)
	}
	defer rows.Close()
	var page storage.Page
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return storage.Page{}, storage.Unavailable("query "+pk, err)
		}
		page.Items = append(page.Items, it)
	}
	if err := rows.Err(); err != nil {
		return storage.Page{}, storage.Unavailable("query "+pk, err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.Cursor = base64.RawURLEncoding.EncodeToString([]byte(page.Items[limit-1].SK))
	}
	return page, nil
}

// batchRows is how many items one statement of PutNew writes: four
// parameters each, within D1's 100.
const batchRows = 25

// PutNew implements storage.Batcher: a statement per batchRows items.
func (r *Records) PutNew(ctx context.Context, items []storage.Item) error {
	for _, it := range items {
		if err := storage.CheckItemKey(it.PK, it.SK); err != nil {
			return err
		}
		if err := storage.CheckValue(it.Value); err != nil {
			return err
		}
	}
	defer r.s.maybeSweep(ctx)
	for start := 0; start < len(items); start += batchRows {
		batch := items[start:min(start+batchRows, len(items))]
		var b strings.Builder
		b.WriteString(`INSERT INTO records (` + columns + `) VALUES `)
		args := make([]any, 0, 4*len(batch))
		for i, it := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`(?, ?, ?, '{}', 1, ?)`)
			value := it.Value
			if value == nil {
				value = []byte{}
			}
			args = append(args, it.PK, it.SK, value, millis(it.ExpiresAt))
		}
		b.WriteString(` ON CONFLICT (pk, sk) DO UPDATE SET value = excluded.value, counters = '{}', version = 1,
			expires_at = excluded.expires_at`)
		if _, err := r.s.write.ExecContext(ctx, b.String(), args...); err != nil {
			return storage.Unavailable(fmt.Sprintf("put %d records", len(batch)), err)
		}
	}
	return nil
}
