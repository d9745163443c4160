// Command chat is the chat Lambda function of the AI gateway.
package main

import (
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/chatfn"
	"github.com/aigateway/aigateway/shared/app/serverless"
)

func main() { serverless.Serve(app.MustLoad(), chatfn.Part) }
