// Command image is the image Lambda function of the AI gateway.
package main

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/serverless"
)

func main() { serverless.Serve(app.MustLoad(), imagefn.Part) }
