//go:build !js

package ingest

import (
	"os"
	"path/filepath"
	"time"
)

// MaxDirectUpload bounds a file uploaded straight to the blob store; it is
// spooled to a temporary file to be read.
const MaxDirectUpload = 512 << 20

// spoolPrefix names the temporary files uploads are spooled to.
const spoolPrefix = "gateway-ingest-"

// tempSpool is a temporary file, removed when closed.
type tempSpool struct{ *os.File }

func (t tempSpool) Close() error {
	err := t.File.Close()
	os.Remove(t.Name())
	return err
}

// newSpool makes a temporary file (size, the blob's, is not needed). Spooled files a killed ingestion left
// behind (older than any live one) are removed first, so that they do not
// fill the disk of the next.
func newSpool(int64) (spoolFile, error) {
	if old, err := filepath.Glob(filepath.Join(os.TempDir(), spoolPrefix+"*")); err == nil {
		for _, name := range old {
			if fi, err := os.Stat(name); err == nil && time.Since(fi.ModTime()) > IngestTimeout+leaseTime {
				os.Remove(name)
			}
		}
	}
	f, err := os.CreateTemp("", spoolPrefix+"*")
	if err != nil {
		return nil, err
	}
	return tempSpool{f}, nil
}
