// Command upload is the upload Lambda function of the AI gateway.
package main

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/serverless"
	"github.com/aigateway/aigateway/shared/app/uploadfn"
)

func main() { serverless.Serve(app.MustLoad(), uploadfn.Part) }
