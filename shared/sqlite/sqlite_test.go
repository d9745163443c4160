package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/aigateway/aigateway/shared/sqlite"
	"github.com/aigateway/aigateway/shared/storage/storagetest"
)

func open(t *testing.T) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "gateway.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestKV(t *testing.T)      { storagetest.TestKV(t, open(t).KV()) }
func TestRecords(t *testing.T) { storagetest.TestRecords(t, open(t).Records()) }
