package disk_test

import (
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/storagetest"
	"github.com/aigateway/aigateway/shared/disk"
)

func TestBlobs(t *testing.T) {
	b, err := disk.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storagetest.TestBlobs(t, b)
}
