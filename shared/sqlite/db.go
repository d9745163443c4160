// Package sqlite opens the KV and Records storage roles (package sqlstore)
// on an embedded SQLite database (pure Go, no cgo), for the local target.
//
// Writes go through one connection; reads use a small pool of their own,
// which WAL mode lets run beside the writer. Both open with a busy timeout,
// so that a second process on the same file waits instead of failing.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/aigateway/aigateway/shared/sqlstore"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is an open SQLite database holding the KV and Records roles (package
// sqlstore's statements, shared with Cloudflare D1).
type DB struct {
	write, read *sql.DB
	store       *sqlstore.Store
}

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
	if _, err := write.ExecContext(ctx, sqlstore.Schema); err != nil {
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
	db := &DB{write: write, read: read, store: sqlstore.New(read, write, nil)}
	db.store.SweepEvery = sweepEvery
	if err := db.store.Sweep(ctx); err != nil {
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
func (db *DB) KV() *sqlstore.KV { return db.store.KV() }

// Records returns the Records role of db.
func (db *DB) Records() *sqlstore.Records { return db.store.Records() }

// sweepEvery is how often expired records are deleted; reads filter them in
// the meantime.
const sweepEvery = 10 * time.Minute
