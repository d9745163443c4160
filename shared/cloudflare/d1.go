//go:build js && wasm

package cloudflare

import (
	"database/sql"
	"fmt"

	"github.com/syumai/workers/cloudflare/d1"

	"github.com/aigateway/aigateway/shared/sqlstore"
)

// OpenD1 returns the KV and Records roles' statements on the D1 database
// bound as name (its tables made by the migrations, which hold
// sqlstore.Schema).
func OpenD1(name string) (*sqlstore.Store, *sql.DB, error) {
	c, err := d1.OpenConnector(name)
	if err != nil {
		return nil, nil, fmt.Errorf("open D1 database %s: %w", name, err)
	}
	db := sql.OpenDB(c)
	return sqlstore.New(db, db, nil), db, nil
}
