package aws_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// invoke posts an API Gateway REST proxy event to a function under the
// emulator and returns the raw answer.
func invoke(t *testing.T, l *awslocal.Lambda, ev events.APIGatewayProxyRequest) []byte {
	t.Helper()
	ev.RequestContext.Identity.SourceIP = "203.0.113.7"
	ev.RequestContext.Stage = "api"
	ev.RequestContext.DomainName = "abc123.execute-api.us-east-1.amazonaws.com"
	payload, _ := json.Marshal(ev)
	resp, err := http.Post(l.InvokeURL, "application/json", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// buffered decodes a buffered proxy response.
func buffered(t *testing.T, raw []byte) events.APIGatewayProxyResponse {
	t.Helper()
	var r events.APIGatewayProxyResponse
	if err := json.Unmarshal(raw, &r); err != nil || r.StatusCode == 0 {
		t.Fatalf("not a proxy response (%v): %s", err, raw)
	}
	if r.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		r.Body = string(b)
	}
	return r
}

// streamed decodes a streamed response: a JSON prelude, 8 NUL bytes and
// the body.
func streamed(t *testing.T, raw []byte) events.APIGatewayProxyResponse {
	t.Helper()
	i := bytes.IndexByte(raw, 0)
	if i < 0 || len(raw) < i+8 || !bytes.Equal(raw[i:i+8], make([]byte, 8)) {
		t.Fatalf("not a streamed response (no prelude and 8 NUL bytes): %q", raw)
	}
	var r events.APIGatewayProxyResponse
	if err := json.Unmarshal(raw[:i], &r); err != nil || r.StatusCode == 0 {
		t.Fatalf("prelude %s: %v", raw[:i], err)
	}
	r.Body = string(raw[i+8:])
	return r
}

func header(r events.APIGatewayProxyResponse, name string) []string {
	if v := r.MultiValueHeaders[name]; len(v) > 0 {
		return v
	}
	if v, ok := r.Headers[name]; ok {
		return []string{v}
	}
	return nil
}

// TestFunctionsAnswerRESTProxyEvents runs each function's linux binary
// under the Lambda runtime interface emulator and sends it the events API
// Gateway would: GET with a query, POST with JSON, a base64 body, cookies
// and multi-value headers; the chat function answers in the streaming wire
// format.
func TestFunctionsAnswerRESTProxyEvents(t *testing.T) {
	up := fakeupstream.New(t)
	st := startStack(t, "GATEWAY_LOG_LEVEL=debug")
	admin, chat := st.lambdas["AdminFunction"], st.lambdas["ChatFunction"]

	r := buffered(t, invoke(t, admin, events.APIGatewayProxyRequest{
		HTTPMethod: "GET", Path: "/admin/api/setup", Resource: "/{proxy+}",
		QueryStringParameters: map[string]string{"probe": "1"}, MultiValueQueryStringParameters: map[string][]string{"probe": {"1"}},
	}))
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"initialized":false`) {
		t.Fatalf("GET setup = %d %s", r.StatusCode, r.Body)
	}

	setup, _ := json.Marshal(map[string]any{"admin_password": "correct horse battery",
		"ai": map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "m"}})
	r = buffered(t, invoke(t, admin, events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/admin/api/setup", Resource: "/{proxy+}",
		Headers: map[string]string{"Content-Type": "application/json"}, Body: string(setup),
	}))
	if r.StatusCode != http.StatusCreated {
		t.Fatalf("POST setup = %d %s", r.StatusCode, r.Body)
	}
	var created struct {
		APIKey string `json:"api_key"`
	}
	json.Unmarshal([]byte(r.Body), &created)

	// A base64 body, as API Gateway sends binary media types.
	r = buffered(t, invoke(t, admin, events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/admin/api/login", Resource: "/{proxy+}",
		MultiValueHeaders: map[string][]string{"Content-Type": {"application/json"}, "X-Forwarded-Proto": {"https"}},
		Body:              base64.StdEncoding.EncodeToString([]byte(`{"password":"correct horse battery"}`)), IsBase64Encoded: true,
	}))
	cookies := header(r, "Set-Cookie")
	if r.StatusCode != http.StatusOK || len(cookies) != 1 || !strings.Contains(cookies[0], "Secure") || !strings.Contains(cookies[0], "HttpOnly") {
		t.Fatalf("login = %d %s, Set-Cookie %q (want one Secure HttpOnly cookie over HTTPS)", r.StatusCode, r.Body, cookies)
	}
	var login struct {
		CSRF string `json:"csrf_token"`
	}
	json.Unmarshal([]byte(r.Body), &login)
	session := strings.SplitN(cookies[0], ";", 2)[0]

	// Cookies and the CSRF token in multi-value headers.
	r = buffered(t, invoke(t, admin, events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/admin/api/keys", Resource: "/{proxy+}",
		MultiValueHeaders: map[string][]string{"Cookie": {"lang=en", session}, "X-Csrf-Token": {login.CSRF},
			"Content-Type": {"application/json"}},
		Body: `{"name":"from an event"}`,
	}))
	if r.StatusCode != http.StatusCreated || !strings.Contains(r.Body, `"key":"sk-`) {
		t.Fatalf("create key = %d %s", r.StatusCode, r.Body)
	}

	// On the execute-api URL, redirects keep the stage.
	r = buffered(t, invoke(t, admin, events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/", Resource: "/"}))
	if loc := header(r, "Location"); r.StatusCode != http.StatusFound || len(loc) != 1 || loc[0] != "/api/admin" {
		t.Fatalf("GET / = %d, Location %q; want 302 to /api/admin", r.StatusCode, loc)
	}

	// The chat function streams: a JSON prelude, 8 NUL bytes, the SSE body.
	raw := invoke(t, chat, events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/v1/chat/completions", Resource: "/v1/chat/completions",
		MultiValueHeaders: map[string][]string{"Authorization": {"Bearer " + created.APIKey}, "Content-Type": {"application/json"}},
		Body:              `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello there"}]}`,
	})
	i := bytes.IndexByte(raw, 0)
	if i < 0 || len(raw) < i+8 || !bytes.Equal(raw[i:i+8], make([]byte, 8)) {
		t.Fatalf("streamed answer has no prelude and 8 NUL bytes: %q", raw)
	}
	var prelude struct {
		StatusCode        int                 `json:"statusCode"`
		MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	}
	if err := json.Unmarshal(raw[:i], &prelude); err != nil || prelude.StatusCode != http.StatusOK ||
		!strings.HasPrefix(prelude.MultiValueHeaders["Content-Type"][0], "text/event-stream") {
		t.Fatalf("prelude = %s (%v)", raw[:i], err)
	}
	body := string(raw[i+8:])
	if !strings.HasPrefix(body, "data: {") || !strings.Contains(body, `"content":" there"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Fatalf("SSE body = %q", body)
	}

	// GET with a query through the streaming adapter.
	raw = invoke(t, chat, events.APIGatewayProxyRequest{
		HTTPMethod: "GET", Path: "/v1/models", Resource: "/v1/models",
		QueryStringParameters: map[string]string{"limit": "5"}, MultiValueQueryStringParameters: map[string][]string{"limit": {"5"}},
		Headers: map[string]string{"Authorization": "Bearer " + created.APIKey},
	})
	if !bytes.Contains(raw, []byte(`"statusCode":200`)) || !bytes.Contains(raw, []byte(`"id":"m"`)) {
		t.Fatalf("GET /v1/models = %q", raw)
	}

	// The upload function answers buffered, the image function streams, as
	// their routes in the translated template say.
	routes, err := translated(t).Routes("GatewayApi")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"UploadFunction", "ImageFunction"} {
		raw := invoke(t, st.lambdas[id], events.APIGatewayProxyRequest{
			HTTPMethod: "GET", Path: "/healthz", Resource: "/healthz",
			QueryStringParameters: map[string]string{"probe": "1"}, MultiValueQueryStringParameters: map[string][]string{"probe": {"1"}},
		})
		streams := slices.ContainsFunc(routes, func(rt awslocal.Route) bool { return rt.Function == id && rt.Streaming() })
		if streams {
			r = streamed(t, raw)
		} else {
			r = buffered(t, raw)
		}
		if r.StatusCode != http.StatusOK || !strings.Contains(r.Body, `"ok"`) || header(r, "X-Request-Id") == nil && header(r, "X-Request-ID") == nil {
			t.Fatalf("%s GET /healthz = %d %v %s", id, r.StatusCode, r.MultiValueHeaders, r.Body)
		}
	}

	// Observability: JSON logs with request IDs and no secrets; metrics in
	// CloudWatch Embedded Metric Format, tokens by model included.
	out := chat.Output() + admin.Output()
	for _, secret := range []string{created.APIKey, "sk-up-123456789012", "correct horse battery", login.CSRF} {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret reached the logs: %q", secret)
		}
	}
	if !strings.Contains(out, `"request_id":"`) {
		t.Fatal("the logs carry no request IDs")
	}
	if !emfLine(out, `"Model":"m"`, `"PromptTokens":11`, `"CompletionTokens":7`) || !emfLine(out, `"Function":"chat"`, `"Requests":1`) {
		t.Fatalf("no EMF lines with requests and tokens by model in:\n%s", out)
	}

}

// emfLine reports whether a line of out is in Embedded Metric Format and
// holds every one of parts.
func emfLine(out string, parts ...string) bool {
	for line := range strings.Lines(out) {
		if !strings.Contains(line, `"_aws":{"CloudWatchMetrics"`) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestChatBufferedUnderSAMLocal checks that under `sam local`
// (AWS_SAM_LOCAL=true), which cannot stream, the chat function answers in
// the buffered proxy format, SSE included.
func TestChatBufferedUnderSAMLocal(t *testing.T) {
	up := fakeupstream.New(t)
	st := startStack(t, "AWS_SAM_LOCAL=true")
	setup, _ := json.Marshal(map[string]any{"admin_password": "correct horse battery",
		"ai": map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "m"}})
	r := buffered(t, invoke(t, st.lambdas["AdminFunction"], events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/admin/api/setup", Resource: "/{proxy+}", Body: string(setup),
		Headers: map[string]string{"Content-Type": "application/json"},
	}))
	var created struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal([]byte(r.Body), &created); err != nil || r.StatusCode != http.StatusCreated {
		t.Fatalf("setup = %d %s", r.StatusCode, r.Body)
	}
	r = buffered(t, invoke(t, st.lambdas["ChatFunction"], events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/v1/chat/completions", Resource: "/v1/chat/completions",
		Headers: map[string]string{"Authorization": "Bearer " + created.APIKey, "Content-Type": "application/json"},
		Body:    `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello there"}]}`,
	}))
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(header(r, "Content-Type")[0], "text/event-stream") ||
		!strings.Contains(r.Body, `"content":" there"`) || !strings.HasSuffix(r.Body, "data: [DONE]\n\n") {
		t.Fatalf("buffered stream = %d %v %q", r.StatusCode, r.MultiValueHeaders, r.Body)
	}
}
