// Package uploadfn is the upload function: the knowledge bases' documents,
// uploaded through the API or directly to the blob store, and their
// ingestion.
package uploadfn

import (
	"context"
	"time"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/knowledge"
	"github.com/aigateway/aigateway/shared/documents"
	"github.com/aigateway/aigateway/shared/ingest"
	"github.com/aigateway/aigateway/shared/jsgateway"
)

// Part is the upload function. Its handler also takes the blob store's
// object-created events and the records of ingestions that failed for good
// (see documents.Handler.IngestObject and IngestFailed).
var Part = app.Part{Function: app.FnUpload, Build: build}

func build(c *app.Core) (app.Served, error) {
	docs := ingest.New(c.Stores.Records, c.Stores.Blobs, knowledge.Of(c))
	if c.Extras.SingleProcess {
		// No ingestion can be running before this process starts one.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := docs.Recover(ctx); err != nil {
			return app.Served{}, err
		}
	}
	h := documents.New(docs, c.Box.Derive("upload"), c.Extras.SingleProcess, c.Config.MaxBody)
	c.OnClose(h) // background ingestions finish before the stores close
	imp := &jsgateway.Handler{Source: c.Extras.Legacy, Records: c.Stores.Records, Keys: c.Keys, Docs: docs,
		Models: c.Catalog, Settings: c.Settings, Guard: c.Guard}
	try := &documents.Retrieval{Knowledge: knowledge.Of(c), Settings: c.Settings, Documents: docs}
	return app.Served{Value: h, Handlers: []app.HandlerFunc{h.List, h.Add, h.PrepareUpload, h.PutContent, h.Get, h.Delete,
		try.Try, imp.State, imp.Import}}, nil
}
