// Package imagefn is the image function: /v1/images/generations and the
// stored images at /files/{id}.
package imagefn

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/images"
)

// Part is the image function.
var Part = app.Part{Function: app.FnImage, Build: build}

func build(c *app.Core) (app.Served, error) {
	h := images.New(images.Deps{Keys: c.Keys, Settings: c.Settings, Meter: c.Meter, Draw: Drawing(c)}, c.Config.MaxBody)
	return app.Served{Handlers: []app.HandlerFunc{h.Generate, h.File}, Value: h}, nil
}

// Drawing is the gateway's image service, one per process: the chat and
// image parts of the local server share it and its pool of fetches.
func Drawing(c *app.Core) *draw.Service {
	return c.Shared("draw", func() any {
		return draw.New(c.Upstream, c.Stores.Blobs, draw.Options{MaxBytes: c.Config.ImageMaxBytes, Fetcher: c.Extras.ImageFetch})
	}).(*draw.Service)
}
