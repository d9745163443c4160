// Package lambdaserve runs an http.Handler as a Lambda function behind an API
// Gateway REST API (proxy integration).
package lambdaserve

import (
	"net/http"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
)

// Serve answers API Gateway REST proxy events with h. It does not return.
func Serve(h http.Handler) {
	lambda.Start(httpadapter.New(h).ProxyWithContext)
}
