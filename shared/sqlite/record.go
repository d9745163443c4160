package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

var _ storage.Records = (*Records)(nil)

// Records is the Records role on SQLite: one table keyed by (pk, sk).
type Records struct{ db *DB }

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

const liveClause = `(expires_at = 0 OR expires_at > ?)`

type scanner interface{ Scan(...any) error }

func scanItem(row scanner) (storage.Item, error) {
	var it storage.Item
	var counters string
	var exp int64
	if err := row.Scan(&it.PK, &it.SK, &it.Value, &counters, &it.Version, &exp); err != nil {
		return it, err
	}
	it.ExpiresAt = fromMillis(exp)
	if counters != "{}" {
		if err := json.Unmarshal([]byte(counters), &it.Counters); err != nil {
			return it, fmt.Errorf("decode counters of %s/%s: %w", it.PK, it.SK, err)
		}
	}
	return it, nil
}

const columns = `pk, sk, value, counters, version, expires_at`

// Get implements storage.Records.
func (r *Records) Get(ctx context.Context, pk, sk string) (storage.Item, error) {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return storage.Item{}, err
	}
	row := r.db.read.QueryRowContext(ctx, `SELECT `+columns+` FROM records WHERE pk = ? AND sk = ? AND `+liveClause,
		pk, sk, r.db.now().UnixMilli())
	it, err := scanItem(row)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storage.Item{}, storage.NotFound("record " + pk + "/" + sk)
	case err != nil:
		return storage.Item{}, storage.Unavailable("get record "+pk+"/"+sk, err)
	}
	return it, nil
}

// Put implements storage.Records.
func (r *Records) Put(ctx context.Context, item storage.Item, cond storage.Cond) (int64, error) {
	if err := storage.CheckItemKey(item.PK, item.SK); err != nil {
		return 0, err
	}
	if err := storage.CheckValue(item.Value); err != nil {
		return 0, err
	}
	defer r.db.maybeSweep(ctx)
	value := item.Value
	if value == nil {
		value = []byte{}
	}
	var version int64
	err := r.tx(ctx, "put record "+item.PK+"/"+item.SK, func(tx *sql.Tx) error {
		cur, live, err := current(ctx, tx, item.PK, item.SK, r.db.now())
		if err != nil {
			return err
		}
		switch {
		case cond.IfAbsent && live:
			return storage.Conflict()
		case cond.IfVersion != 0 && (!live || cur.Version != cond.IfVersion):
			return storage.Conflict()
		}
		version = 1
		counters := "{}"
		if live {
			version = cur.Version + 1
			counters = encodeCounters(cur.Counters)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO records (`+columns+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (pk, sk) DO UPDATE SET value = excluded.value, counters = excluded.counters,
				version = excluded.version, expires_at = excluded.expires_at`,
			item.PK, item.SK, value, counters, version, millis(item.ExpiresAt))
		return err
	})
	return version, err
}

// Delete implements storage.Records.
func (r *Records) Delete(ctx context.Context, pk, sk string) error {
	if err := storage.CheckItemKey(pk, sk); err != nil {
		return err
	}
	if _, err := r.db.write.ExecContext(ctx, `DELETE FROM records WHERE pk = ? AND sk = ?`, pk, sk); err != nil {
		return storage.Unavailable("delete record "+pk+"/"+sk, err)
	}
	return nil
}

// Incr implements storage.Records.
func (r *Records) Incr(ctx context.Context, pk, sk string, deltas map[string]int64, expiresAt time.Time) (map[string]int64, error) {
	if err := storage.CheckIncr(pk, sk, deltas); err != nil {
		return nil, err
	}
	defer r.db.maybeSweep(ctx)
	var out map[string]int64
	err := r.tx(ctx, "incr record "+pk+"/"+sk, func(tx *sql.Tx) error {
		cur, live, err := current(ctx, tx, pk, sk, r.db.now())
		if err != nil {
			return err
		}
		if !live {
			cur = storage.Item{ExpiresAt: expiresAt}
		}
		if cur.Value == nil {
			cur.Value = []byte{}
		}
		out = make(map[string]int64, len(cur.Counters)+len(deltas))
		for k, v := range cur.Counters {
			out[k] = v
		}
		for k, d := range deltas {
			out[k] += d
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO records (`+columns+`) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (pk, sk) DO UPDATE SET value = excluded.value, counters = excluded.counters,
				version = excluded.version, expires_at = excluded.expires_at`,
			pk, sk, cur.Value, encodeCounters(out), cur.Version+1, millis(cur.ExpiresAt))
		return err
	})
	if err != nil {
		return nil, err
	}
	for k := range out {
		if _, ok := deltas[k]; !ok {
			delete(out, k)
		}
	}
	return out, nil
}

func encodeCounters(c map[string]int64) string {
	if len(c) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(c) // a map of strings to integers always encodes
	return string(b)
}

// current reads the stored item at (pk, sk) inside tx and reports whether it
// is live (present and not expired).
func current(ctx context.Context, tx *sql.Tx, pk, sk string, now time.Time) (storage.Item, bool, error) {
	it, err := scanItem(tx.QueryRowContext(ctx, `SELECT `+columns+` FROM records WHERE pk = ? AND sk = ?`, pk, sk))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return storage.Item{}, false, nil
	case err != nil:
		return storage.Item{}, false, err
	}
	if !it.ExpiresAt.IsZero() && !it.ExpiresAt.After(now) {
		return storage.Item{}, false, nil
	}
	return it, true, nil
}

// tx runs fn in a write transaction. Errors that fn returns from the storage
// package pass through; any other is the backend's and becomes EUnavailable.
func (r *Records) tx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := r.db.write.BeginTx(ctx, nil)
	if err != nil {
		return storage.Unavailable(op, err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if err := fn(tx); err != nil {
		if storageErr(err) {
			return err
		}
		return storage.Unavailable(op, err)
	}
	if err := tx.Commit(); err != nil {
		return storage.Unavailable(op, err)
	}
	return nil
}

// Query implements storage.Records.
func (r *Records) Query(ctx context.Context, pk string, q storage.Query) (storage.Page, error) {
	if err := storage.CheckKey("partition key", pk); err != nil {
		return storage.Page{}, err
	}
	limit := storage.Clamp(q.Limit)
	lo, hi := q.Bounds()
	var where strings.Builder
	args := []any{pk, r.db.now().UnixMilli()}
	where.WriteString(`pk = ? AND ` + liveClause)
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
	rows, err := r.db.read.QueryContext(ctx, `SELECT `+columns+` FROM records WHERE `+where.String()+
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

// storageErr reports whether err already carries a storage error code.
func storageErr(err error) bool { return gateway.ErrorCode(err) != gateway.EInternal }

var _ storage.Batcher = (*Records)(nil)

// PutNew implements storage.Batcher in one transaction.
func (r *Records) PutNew(ctx context.Context, items []storage.Item) error {
	for _, it := range items {
		if err := storage.CheckItemKey(it.PK, it.SK); err != nil {
			return err
		}
		if err := storage.CheckValue(it.Value); err != nil {
			return err
		}
	}
	defer r.db.maybeSweep(ctx)
	return r.tx(ctx, fmt.Sprintf("put %d records", len(items)), func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO records (`+columns+`) VALUES (?, ?, ?, '{}', 1, ?)
			ON CONFLICT (pk, sk) DO UPDATE SET value = excluded.value, counters = '{}', version = 1, expires_at = excluded.expires_at`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, it := range items {
			value := it.Value
			if value == nil {
				value = []byte{}
			}
			if _, err := stmt.ExecContext(ctx, it.PK, it.SK, value, millis(it.ExpiresAt)); err != nil {
				return err
			}
		}
		return nil
	})
}
