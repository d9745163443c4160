// Package sqlitetest opens throwaway embedded stores for tests.
package sqlitetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aigateway/aigateway/shared/sqlite"
)

// Open opens a fresh database in the test's temporary folder, closed when
// the test ends.
func Open(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
