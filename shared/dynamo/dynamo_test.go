package dynamo_test

import (
	"context"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/internal/testkit/migrationtest"
	"github.com/aigateway/aigateway/internal/testkit/storagetest"
	"github.com/aigateway/aigateway/shared/dynamo"
)

// TestConformance runs the storage conformance suite against DynamoDB Local.
func TestConformance(t *testing.T) {
	_, client := awslocal.DynamoDB(t)
	table := dynamo.New(client, awslocal.Name("gateway"))
	if err := table.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Run("KV", func(t *testing.T) { storagetest.TestKV(t, table.KV()) })
	t.Run("Records", func(t *testing.T) { storagetest.TestRecords(t, table.Records()) })
}

// TestSettingsMigration moves an older release's upstream settings into
// channels on DynamoDB Local.
func TestSettingsMigration(t *testing.T) {
	_, client := awslocal.DynamoDB(t)
	table := dynamo.New(client, awslocal.Name("migration"))
	if err := table.Create(context.Background()); err != nil {
		t.Fatal(err)
	}
	migrationtest.Run(t, table.KV(), table.Records())
}
