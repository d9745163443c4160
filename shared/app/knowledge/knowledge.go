// Package knowledge makes the knowledge bases' index and retrieval of a
// gateway, one per process: the chat and upload parts of the local server
// share it, and its memory.
package knowledge

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/rag"
)

// Of returns the knowledge bases of c's gateway, making them on first use.
func Of(c *app.Core) *rag.Service {
	return c.Shared("rag", func() any {
		kv := c.Stores.KV
		if c.Extras.IndexKV != nil {
			kv = c.Extras.IndexKV
		}
		return rag.NewService(rag.NewLibrary(c.Stores.Blobs, kv, c.Config.CacheTTL), c.Settings, c.Upstream, c.Upstream)
	}).(*rag.Service)
}
