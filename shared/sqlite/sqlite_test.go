package sqlite_test

import (
	"testing"

	"github.com/aigateway/aigateway/shared/sqlite/sqlitetest"
	"github.com/aigateway/aigateway/shared/storage/storagetest"
)

func TestKV(t *testing.T)      { storagetest.TestKV(t, sqlitetest.Open(t).KV()) }
func TestRecords(t *testing.T) { storagetest.TestRecords(t, sqlitetest.Open(t).Records()) }
