// Package imagefn is the image function: /v1/images/generations and the
// stored images at /files/{id}.
package imagefn

import (
	"net/http"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/chat"
	"github.com/aigateway/aigateway/shared/draw"
)

// Part is the image function.
var Part = app.Part{Function: app.FnImage, Build: build}

// build serves the image routes with the chat handler, which draws for
// chat too; it needs no knowledge bases or conversations for them.
func build(c *app.Core) (http.Handler, error) {
	return chat.New(chat.Deps{Keys: c.Keys, Settings: c.Settings, Models: c.Models, Meter: c.Meter,
		Draw:     Drawing(c),
		Upstream: c.Upstream, Metrics: c.Metrics},
		chat.Options{MaxBody: c.Config.MaxBody, DrainTimeout: c.Config.DrainTimeout}), nil
}

// Drawing is the gateway's image service, one per process: the chat and
// image parts of the local server share it and its pool of fetches.
func Drawing(c *app.Core) *draw.Service {
	return c.Shared("draw", func() any {
		return draw.New(c.Upstream, c.Stores.Blobs, draw.Options{MaxBytes: c.Config.ImageMaxBytes, Fetcher: c.Extras.ImageFetch})
	}).(*draw.Service)
}
