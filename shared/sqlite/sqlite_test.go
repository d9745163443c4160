package sqlite_test

import (
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/internal/testkit/storagetest"
)

func TestKV(t *testing.T)      { storagetest.TestKV(t, sqlitetest.Open(t).KV()) }
func TestRecords(t *testing.T) { storagetest.TestRecords(t, sqlitetest.Open(t).Records()) }
