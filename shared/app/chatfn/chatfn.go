// Package chatfn is the chat function: chat completions (with retrieval
// from the knowledge bases and drawing from chat), models, embeddings and
// conversations.
package chatfn

import (
	"github.com/aigateway/aigateway/shared/answers"
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/knowledge"
	"github.com/aigateway/aigateway/shared/chat"
	"github.com/aigateway/aigateway/shared/responses"
)

// Part is the chat function.
var Part = app.Part{Function: app.FnChat, Build: build}

func build(c *app.Core) (app.Served, error) {
	h := chat.New(chat.Deps{Keys: c.Keys, Settings: c.Settings, Catalog: c.Catalog, Meter: c.Meter,
		Conversations: c.Conversations, Knowledge: knowledge.Of(c),
		Draw:     imagefn.Drawing(c),
		Upstream: c.Upstream, Metrics: c.Metrics, ResponseStore: responses.NewStore(c.Stores.Records),
		Answers: answers.New(c.Stores.Records)},
		chat.Options{MaxBody: c.Config.MaxBody, DrainTimeout: c.Config.DrainTimeout})
	return app.Served{Handlers: []app.HandlerFunc{h.Models, h.Completions, h.Responses, h.GetResponse, h.DeleteResponse, h.ResponseInputItems, h.Messages, h.CountTokens, h.LegacyCompletions, h.Rerank, h.Model, h.Embeddings,
		h.ListConversations, h.GetConversation, h.DeleteConversation}, Value: h}, nil
}
