package lambdaserve

import (
	"net/http"
	"strings"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"
)

// StagePrefix tells h the path prefix the client sees in front of the
// routes: "/<stage>" on the API's own execute-api URL, nothing behind a
// custom domain. It sets X-Forwarded-Prefix (replacing any the client sent),
// so that redirects and links can include it.
func StagePrefix(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("X-Forwarded-Prefix")
		if gw, ok := core.GetAPIGatewayContextFromContext(r.Context()); ok && gw.Stage != "" &&
			strings.Contains(gw.DomainName, ".execute-api.") {
			r.Header.Set("X-Forwarded-Prefix", "/"+gw.Stage)
		}
		h.ServeHTTP(w, r)
	})
}
