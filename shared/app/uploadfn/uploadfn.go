// Package uploadfn is the upload function: the knowledge bases' documents,
// uploaded through the API or directly to the blob store, and their
// ingestion.
package uploadfn

import (
	"context"
	"time"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/documents"
	"github.com/aigateway/aigateway/shared/ingest"
	"github.com/aigateway/aigateway/shared/rag"
)

// Part is the upload function. Its handler also takes the blob store's
// object-created events and the records of ingestions that failed for good
// (see documents.Handler.IngestObject and IngestFailed).
var Part = app.Part{Function: app.FnUpload, Build: build}

func build(c *app.Core) (app.Served, error) {
	docs := ingest.New(c.Stores.Records, c.Stores.Blobs, knowledge(c))
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
	return app.Served{Value: h, Handlers: []app.HandlerFunc{h.List, h.Add, h.PrepareUpload, h.PutContent, h.Get, h.Delete}}, nil
}

// knowledge is the knowledge bases' index and retrieval, one per gateway
// (the chat and upload functions of one process share it).
func knowledge(c *app.Core) *rag.Service {
	return c.Shared("rag", func() any {
		return rag.NewService(rag.NewLibrary(c.Stores.Blobs, c.Stores.KV, c.Config.CacheTTL), c.Settings, c.Upstream)
	}).(*rag.Service)
}
