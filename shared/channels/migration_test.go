package channels_test

import (
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/migrationtest"
	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
)

// TestSettingsMigrationOnSQLite moves an older release's upstream settings
// into channels on the embedded store.
func TestSettingsMigrationOnSQLite(t *testing.T) {
	db := sqlitetest.Open(t)
	migrationtest.Run(t, db.KV(), db.Records())
}
