// Command admin is the admin Lambda function of the AI gateway.
package main

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/app/serverless"
)

func main() { serverless.Serve(app.MustLoad(), adminfn.Part) }
