// Package local opens the gateway on the embedded store: SQLite and a blob
// folder in the data folder, with the master key from the configuration or
// a 0600 key file made there on first run.
package local

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/app/chatfn"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/uploadfn"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/sqlite"
)

// Open assembles the gateway on the embedded store of cfg.DataDir.
func Open(ctx context.Context, cfg app.Config) (*app.Gateway, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	master, err := masterKey(cfg)
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "gateway.db"))
	if err != nil {
		return nil, err
	}
	blobs, err := disk.New(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		db.Close()
		return nil, err
	}
	g, err := app.Assemble(cfg, app.Stores{KV: db.KV(), Records: db.Records(), Blobs: blobs, Closers: []io.Closer{db}}, master,
		app.Extras{Metrics: metrics.Nop{}, UsageEvery: 100 * time.Millisecond, SingleProcess: true},
		chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
	if err != nil {
		db.Close()
		return nil, err
	}
	return g, nil
}

// masterKey returns the configured master key, or the data folder's key file.
func masterKey(cfg app.Config) ([]byte, error) {
	if cfg.MasterKey != "" {
		k, err := seal.ParseKey(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_MASTER_KEY: %w", err)
		}
		return k, nil
	}
	return seal.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, "master.key"))
}
