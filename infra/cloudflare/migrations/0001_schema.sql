-- The KV and Records roles (package sqlstore): the local SQLite file and
-- Cloudflare D1 hold the same two tables.
CREATE TABLE IF NOT EXISTS kv (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
	pk         TEXT NOT NULL,
	sk         TEXT NOT NULL,
	value      BLOB NOT NULL,
	counters   TEXT NOT NULL DEFAULT '{}', -- a JSON object of integers
	version    INTEGER NOT NULL,
	expires_at INTEGER NOT NULL DEFAULT 0, -- unix milliseconds, 0 = never
	PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at) WHERE expires_at != 0;
