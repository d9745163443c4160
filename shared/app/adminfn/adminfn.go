// Package adminfn is the admin function: setup, the admin pages and the
// admin API (but documents), and every path no other function serves.
package adminfn

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/aigateway/aigateway/shared/admin"
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/jsgateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Part is the admin function.
var Part = app.Part{Function: app.FnAdmin, Build: build}

func build(c *app.Core) (app.Served, error) {
	var origins []string
	// The admin page PUTs large files straight to the blob store, at URLs
	// it signs (S3): its CSP must allow that origin. Signing is local work.
	if signer, ok := c.Stores.Blobs.(storage.Signer); ok {
		link, err := signer.SignURL(context.Background(), http.MethodPut, "incoming/origin", time.Minute)
		if err != nil {
			return app.Served{}, err
		}
		if u, err := url.Parse(link); err == nil && u.Host != "" {
			origins = append(origins, u.Scheme+"://"+u.Host)
		}
	}
	deps := admin.Deps{Guard: c.Guard, Keys: c.Keys, Settings: c.Settings, Catalog: c.Catalog,
		Conversations: c.Conversations, Usage: c.Meter,
		Channels: &admin.Channels{Store: c.Channels, Health: c.Health, Upstream: c.Upstream}, MaxAnswer: c.Config.MaxAnswer}
	if c.Extras.Legacy != nil {
		deps.Import = &jsgateway.Handler{Source: c.Extras.Legacy, Records: c.Stores.Records, Keys: c.Keys,
			Models: c.Catalog, Settings: c.Settings, Guard: c.Guard}
	}
	h := admin.New(deps, c.Config.MaxBody, origins...)
	return app.Served{Value: h, Handlers: []app.HandlerFunc{
		h.SetupState, h.Setup, h.SetupTest, h.Login, h.Logout, h.Session,
		h.GetSettings, h.PutSettings, h.ListKeys, h.CreateKey, h.SetKeyLimits, h.RevokeKey,
		h.ListChannels, h.CreateChannel, h.TestNewChannel, h.GetChannel, h.UpdateChannel, h.DeleteChannel, h.TestChannel, h.ChannelModels, h.DraftModels,
		h.ListModels, h.PutModel, h.DeleteModel, h.ListConversations, h.GetConversation, h.DeleteConversation, h.UsageSummary, h.UsageExport, h.Stats,
		h.Home, h.SetupPage, h.AdminPage, h.Asset}}, nil
}
