package awslocal

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

//go:embed translate.py
var translateScript []byte

// Stack is a CloudFormation template as the real SAM translator (the
// Serverless transform CloudFormation runs) makes it from a SAM template:
// what AWS will really deploy. Mappings are map[string]any, lists []any.
type Stack struct {
	Root map[string]any
}

var (
	translated   sync.Map // template path → *Stack
	translateMus sync.Map // template path → *sync.Mutex
)

// Translate runs the SAM translator over the template at path, once per
// test binary. Where Python or aws-sam-translator is missing the test is
// skipped, or fails under GATEWAY_REQUIRE_TOOLS=1 (make test, CI).
func Translate(t testing.TB, path string) *Stack {
	t.Helper()
	mu, _ := translateMus.LoadOrStore(path, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if s, ok := translated.Load(path); ok {
		return s.(*Stack)
	}
	RequirePython(t, "samtranslator")
	s, err := TranslateTemplate(path)
	if err != nil {
		t.Fatal(err)
	}
	translated.Store(path, s)
	return s
}

// Python returns the Python interpreter to use (GATEWAY_PYTHON or python3).
func Python() string {
	if p := os.Getenv("GATEWAY_PYTHON"); p != "" {
		return p
	}
	return "python3"
}

// RequirePython skips the test (or fails it under GATEWAY_REQUIRE_TOOLS=1)
// unless Python can import module.
func RequirePython(t testing.TB, module string) {
	t.Helper()
	out, err := exec.Command(Python(), "-c", "import "+module).CombinedOutput()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s cannot import %s (it ships with this machine kind's Python): %v %s", Python(), module, err, bytes.TrimSpace(out))
	if os.Getenv("GATEWAY_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// TranslateTemplate runs the SAM translator over the template at path.
func TranslateTemplate(path string) (*Stack, error) {
	cmd := exec.Command(Python(), "-", path)
	cmd.Stdin = bytes.NewReader(translateScript)
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION="+Region, "PYTHONDONTWRITEBYTECODE=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("translate %s: %v\n%s", path, err, stderr.Bytes())
	}
	var root map[string]any
	if err := json.Unmarshal(out, &root); err != nil {
		return nil, fmt.Errorf("translate %s: output is not a template: %w", path, err)
	}
	return &Stack{Root: root}, nil
}

// Get walks the template along path (mapping keys) and returns what is
// there, or nil.
func (s *Stack) Get(path ...string) any {
	var cur any = s.Root
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

// Resources returns the logical IDs of the resources of type typ, sorted.
func (s *Stack) Resources(typ string) []string {
	res, _ := s.Get("Resources").(map[string]any)
	var ids []string
	for id, r := range res {
		if m, ok := r.(map[string]any); ok && m["Type"] == typ {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// Route is one method of one resource path of a REST API, as its OpenAPI
// body tells API Gateway to serve it.
type Route struct {
	// Path is the resource path ("/v1/models", "/files/{id}",
	// "/{proxy+}"); Method is upper case, or ANY.
	Path, Method string
	// Function is the logical ID of the Lambda function the integration
	// invokes ("" when it invokes none).
	Function string
	// URI is the integration URI with its Fn::Sub template as written.
	URI string
	// TransferMode is the integration's responseTransferMode ("" buffered).
	TransferMode string
	// TimeoutMillis is the integration timeout (0: API Gateway's default,
	// 29,000 ms).
	TimeoutMillis int
	// Integrations counts the integrations of this method (API Gateway
	// takes exactly one).
	Integrations int
}

// Streaming reports whether API Gateway streams the function's response:
// the response-streaming invocation URI with responseTransferMode STREAM.
func (r Route) Streaming() bool {
	return r.TransferMode == "STREAM" && strings.Contains(r.URI, "/2021-11-15/functions/") &&
		strings.HasSuffix(r.URI, "/response-streaming-invocations")
}

// Buffered reports whether API Gateway waits for the whole response: the
// plain invocation URI without a transfer mode.
func (r Route) Buffered() bool {
	return r.TransferMode == "" && strings.Contains(r.URI, "/2015-03-31/functions/") && strings.HasSuffix(r.URI, "/invocations")
}

// Timeout returns the integration timeout in milliseconds, with API
// Gateway's default.
func (r Route) Timeout() int {
	if r.TimeoutMillis == 0 {
		return 29000
	}
	return r.TimeoutMillis
}

var functionArn = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\.Arn\}`)

// Routes returns the routes of the REST API with logical ID api, read from
// its generated OpenAPI body, sorted by path and method.
func (s *Stack) Routes(api string) ([]Route, error) {
	paths, ok := s.Get("Resources", api, "Properties", "Body", "paths").(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s has no OpenAPI body with paths", api)
	}
	var out []Route
	for p, methods := range paths {
		ms, _ := methods.(map[string]any)
		for m, op := range ms {
			method := strings.ToUpper(m)
			if m == "x-amazon-apigateway-any-method" {
				method = "ANY"
			}
			opm, _ := op.(map[string]any)
			rt := Route{Path: p, Method: method}
			if integ, ok := opm["x-amazon-apigateway-integration"].(map[string]any); ok {
				rt.Integrations = 1
				rt.URI = subTemplate(integ["uri"])
				if fm := functionArn.FindStringSubmatch(rt.URI); fm != nil {
					rt.Function = fm[1]
				}
				rt.TransferMode, _ = integ["responseTransferMode"].(string)
				if n, ok := integ["timeoutInMillis"].(float64); ok {
					rt.TimeoutMillis = int(n)
				}
			}
			out = append(out, rt)
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method) })
	return out, nil
}

// subTemplate returns the string template of an Fn::Sub (either form), or
// the string itself.
func subTemplate(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case map[string]any:
		switch s := x["Fn::Sub"].(type) {
		case string:
			return s
		case []any:
			if len(s) > 0 {
				str, _ := s[0].(string)
				return str
			}
		}
	}
	return ""
}

// BinaryMediaTypes returns the REST API's binary media types, "~1"
// unescaped.
func (s *Stack) BinaryMediaTypes(api string) []string {
	list, _ := s.Get("Resources", api, "Properties", "BinaryMediaTypes").([]any)
	var out []string
	for _, v := range list {
		if str, ok := v.(string); ok {
			out = append(out, strings.ReplaceAll(str, "~1", "/"))
		}
	}
	return out
}

// GatewayResponses returns the REST API's gateway responses: response type
// → its application/json body template.
func (s *Stack) GatewayResponses(api string) map[string]string {
	out := map[string]string{}
	rs, _ := s.Get("Resources", api, "Properties", "Body", "x-amazon-apigateway-gateway-responses").(map[string]any)
	for typ, r := range rs {
		rm, _ := r.(map[string]any)
		tm, _ := rm["responseTemplates"].(map[string]any)
		if body, ok := tm["application/json"].(string); ok {
			out[typ] = body
		}
	}
	return out
}
