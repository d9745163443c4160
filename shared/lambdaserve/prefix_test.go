package lambdaserve_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"github.com/aigateway/aigateway/shared/lambdaserve"
	"github.com/aigateway/aigateway/shared/respond"
)

// TestStagePrefixLinks checks the links the gateway builds (image URLs, the
// setup redirect) on the API's own execute-api host, which carries the
// stage in the path, in every partition, and on a custom domain, whose
// base path mapping serves the stage at the root.
func TestStagePrefixLinks(t *testing.T) {
	for _, c := range []struct{ name, domain, want string }{
		{"execute-api", "abc123.execute-api.us-east-1.amazonaws.com", "https://abc123.execute-api.us-east-1.amazonaws.com/api/files/x"},
		{"china", "abc123.execute-api.cn-north-1.amazonaws.com.cn", "https://abc123.execute-api.cn-north-1.amazonaws.com.cn/api/files/x"},
		{"custom domain", "ai.example.com", "https://ai.example.com/files/x"},
		{"custom domain under amazonaws", "gw.amazonaws.com", "https://gw.amazonaws.com/files/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/files/x", Resource: "/files/{id}",
				Headers:        map[string]string{"Host": c.domain, "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/evil"},
				RequestContext: events.APIGatewayProxyRequestContext{Stage: "api", DomainName: c.domain}}
			var accessor core.RequestAccessor
			req, err := accessor.EventToRequestWithContext(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			lambdaserve.StagePrefix(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = respond.BaseURL(r) + "/files/x"
			})).ServeHTTP(httptest.NewRecorder(), req)
			if got != c.want {
				t.Fatalf("link = %q, want %q", got, c.want)
			}
		})
	}
}
