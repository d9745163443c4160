// Package chatfn is the chat function: chat completions (with retrieval
// from the knowledge bases and drawing from chat), models, embeddings and
// conversations.
package chatfn

import (
	"net/http"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/chat"
	"github.com/aigateway/aigateway/shared/rag"
)

// Part is the chat function.
var Part = app.Part{Function: app.FnChat, Build: build}

func build(c *app.Core) (http.Handler, error) {
	return chat.New(chat.Deps{Keys: c.Keys, Settings: c.Settings, Models: c.Models, Meter: c.Meter,
		Conversations: c.Conversations, Knowledge: knowledge(c),
		Draw:     imagefn.Drawing(c),
		Upstream: c.Upstream, Metrics: c.Metrics},
		chat.Options{MaxBody: c.Config.MaxBody, DrainTimeout: c.Config.DrainTimeout}), nil
}

// knowledge is the knowledge bases' index and retrieval, one per gateway
// (the chat and upload functions of one process share it).
func knowledge(c *app.Core) *rag.Service {
	return c.Shared("rag", func() any {
		return rag.NewService(rag.NewLibrary(c.Stores.Blobs, c.Stores.KV, c.Config.CacheTTL), c.Settings, c.Upstream)
	}).(*rag.Service)
}
