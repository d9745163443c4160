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
	"github.com/aigateway/aigateway/shared/storage"
)

// Part is the admin function.
var Part = app.Part{Function: app.FnAdmin, Build: build}

func build(c *app.Core) (http.Handler, error) {
	var origins []string
	// The admin page PUTs large files straight to the blob store, at URLs
	// it signs (S3): its CSP must allow that origin. Signing is local work.
	if signer, ok := c.Stores.Blobs.(storage.Signer); ok {
		link, err := signer.SignURL(context.Background(), http.MethodPut, "incoming/origin", time.Minute)
		if err != nil {
			return nil, err
		}
		if u, err := url.Parse(link); err == nil && u.Host != "" {
			origins = append(origins, u.Scheme+"://"+u.Host)
		}
	}
	return admin.New(admin.Deps{Guard: c.Guard, Keys: c.Keys, Settings: c.Settings, Models: c.Models,
		Conversations: c.Conversations, Usage: c.Meter}, c.Config.MaxBody, origins...), nil
}
