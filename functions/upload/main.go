// Command upload is the upload Lambda function of the AI gateway.
package main

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/lambdaserve"
)

func main() {
	cfg := app.MustLoad()
	app.SetupLogging(cfg)
	lambdaserve.Serve(app.Lazy(cfg, app.FnUpload))
}
