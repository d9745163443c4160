// Package sqlite implements the KV and Records storage roles on an embedded
// SQLite database (pure Go, no cgo), for the local target.
//
// Writes go through one connection, so that read-modify-write transactions
// (conditional puts, counters) are serialised in the process; reads use a
// small pool of their own, which WAL mode lets run beside the writer. Both
// open with an immediate transaction lock and a busy timeout, so that a
// second process on the same file waits instead of failing.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/aigateway/aigateway/shared/storage"
)

// DB is an open SQLite database holding the KV and Records roles.
type DB struct {
	write, read *sql.DB
	// lastSweep is the unix time of the last removal of expired records.
	lastSweep atomic.Int64
	now       func() time.Time
}

const schema = `
CREATE TABLE IF NOT EXISTS kv (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
	pk         TEXT NOT NULL,
	sk         TEXT NOT NULL,
	value      BLOB NOT NULL,
	counters   TEXT NOT NULL DEFAULT '{}',
	version    INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0, -- unix milliseconds, 0 = never
	PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at) WHERE expires_at != 0;
`

// Open opens (creating if needed) the database file at path.
func Open(ctx context.Context, path string) (*DB, error) {
	// The file holds key hashes and sealed secrets: owner only. SQLite gives
	// its -wal and -shm files the same mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err != nil {
		return nil, fmt.Errorf("create sqlite file %s: %w", path, err)
	} else {
		f.Close()
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()

	write, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	if _, err := write.ExecContext(ctx, schema); err != nil {
		write.Close()
		return nil, fmt.Errorf("create sqlite schema in %s: %w", path, err)
	}
	q.Add("_pragma", "query_only(ON)")
	read, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(4)
	db := &DB{write: write, read: read, now: time.Now}
	if err := db.sweep(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Close closes the database.
func (db *DB) Close() error {
	rerr := db.read.Close()
	if err := db.write.Close(); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	if rerr != nil {
		return fmt.Errorf("close sqlite reader: %w", rerr)
	}
	return nil
}

// KV returns the KV role of db.
func (db *DB) KV() *KV { return &KV{db: db} }

// Records returns the Records role of db.
func (db *DB) Records() *Records { return &Records{db: db} }

// sweepEvery is how often expired records are deleted; reads filter them in
// the meantime.
const sweepEvery = 10 * time.Minute

// sweep deletes expired records.
func (db *DB) sweep(ctx context.Context) error {
	now := db.now()
	db.lastSweep.Store(now.Unix())
	if _, err := db.write.ExecContext(ctx, `DELETE FROM records WHERE expires_at != 0 AND expires_at <= ?`, now.UnixMilli()); err != nil {
		return storage.Unavailable("sweep expired records", err)
	}
	return nil
}

// maybeSweep sweeps when the last sweep is older than sweepEvery.
func (db *DB) maybeSweep(ctx context.Context) {
	last := db.lastSweep.Load()
	if db.now().Unix()-last < int64(sweepEvery/time.Second) || !db.lastSweep.CompareAndSwap(last, db.now().Unix()) {
		return
	}
	// A failed sweep is retried at the next interval; reads never show
	// expired records, so nothing depends on it.
	_ = db.sweep(ctx)
}
