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

// noValue is what AWS::NoValue resolves to: the property is left out.
type noValue struct{}

// Resolve evaluates the intrinsic functions of v that a deployment with
// the parameter values params settles (Ref to a parameter, AWS::NoValue,
// Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition); parameters not
// in params take their defaults. Anything else is returned as it is.
func (s *Stack) Resolve(v any, params map[string]string) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			r, err := s.Resolve(e, params)
			if err != nil {
				return nil, err
			}
			if _, skip := r.(noValue); !skip {
				out = append(out, r)
			}
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					name, _ := arg.(string)
					if name == "AWS::NoValue" {
						return noValue{}, nil
					}
					if p, ok := s.Get("Parameters", name).(map[string]any); ok {
						if val, ok := params[name]; ok {
							return val, nil
						}
						return fmt.Sprint(p["Default"]), nil
					}
					return x, nil
				case "Fn::If":
					args, _ := arg.([]any)
					if len(args) != 3 {
						return nil, fmt.Errorf("Fn::If needs three arguments: %v", arg)
					}
					name, _ := args[0].(string)
					ok, err := s.condition(name, params)
					if err != nil {
						return nil, err
					}
					if ok {
						return s.Resolve(args[1], params)
					}
					return s.Resolve(args[2], params)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := s.Resolve(e, params)
			if err != nil {
				return nil, err
			}
			if _, skip := r.(noValue); !skip {
				out[k] = r
			}
		}
		return out, nil
	}
	return v, nil
}

// condition evaluates the template condition name.
func (s *Stack) condition(name string, params map[string]string) (bool, error) {
	c := s.Get("Conditions", name)
	if c == nil {
		return false, fmt.Errorf("no condition %q", name)
	}
	return s.truth(c, params)
}

func (s *Stack) truth(v any, params map[string]string) (bool, error) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("not a condition: %v", v)
	}
	for k, arg := range m {
		args, _ := arg.([]any)
		switch k {
		case "Condition":
			name, _ := arg.(string)
			return s.condition(name, params)
		case "Fn::Equals":
			if len(args) != 2 {
				return false, fmt.Errorf("Fn::Equals needs two arguments: %v", arg)
			}
			a, err := s.Resolve(args[0], params)
			if err != nil {
				return false, err
			}
			b, err := s.Resolve(args[1], params)
			if err != nil {
				return false, err
			}
			return fmt.Sprint(a) == fmt.Sprint(b), nil
		case "Fn::Not":
			if len(args) != 1 {
				return false, fmt.Errorf("Fn::Not needs one argument: %v", arg)
			}
			t, err := s.truth(args[0], params)
			return !t, err
		case "Fn::And", "Fn::Or":
			all, anyTrue := true, false
			for _, a := range args {
				t, err := s.truth(a, params)
				if err != nil {
					return false, err
				}
				all, anyTrue = all && t, anyTrue || t
			}
			if k == "Fn::And" {
				return all, nil
			}
			return anyTrue, nil
		}
	}
	return false, fmt.Errorf("not a condition: %v", v)
}

// GatewayResponse is one of the REST API's own answers as a deployment
// with some parameter values configures it.
type GatewayResponse struct {
	// Template is the application/json body template.
	Template string
	// Headers maps a header to its value: a static 'value' (quotes
	// removed) or a mapping such as method.request.header.Origin.
	Headers map[string]string
}

// GatewayResponsesFor returns the REST API's gateway responses for the
// parameter values params. A header value that API Gateway would refuse
// (neither a quoted static value nor a method request mapping) is an
// error: the deployment would fail.
func (s *Stack) GatewayResponsesFor(api string, params map[string]string) (map[string]GatewayResponse, error) {
	raw, _ := s.Get("Resources", api, "Properties", "Body", "x-amazon-apigateway-gateway-responses").(map[string]any)
	resolved, err := s.Resolve(raw, params)
	if err != nil {
		return nil, err
	}
	out := map[string]GatewayResponse{}
	rs, _ := resolved.(map[string]any)
	for typ, r := range rs {
		rm, _ := r.(map[string]any)
		gr := GatewayResponse{Headers: map[string]string{}}
		if tm, ok := rm["responseTemplates"].(map[string]any); ok {
			gr.Template, _ = tm["application/json"].(string)
		}
		ps, _ := rm["responseParameters"].(map[string]any)
		for k, v := range ps {
			name, ok := strings.CutPrefix(k, "gatewayresponse.header.")
			if !ok {
				continue
			}
			val, _ := v.(string)
			switch {
			case len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'':
			case strings.HasPrefix(val, "method.request.header.") || strings.HasPrefix(val, "method.request.path.") ||
				strings.HasPrefix(val, "method.request.querystring."):
			default:
				return nil, fmt.Errorf("%s: header %s = %q is neither a quoted value nor a request mapping; API Gateway refuses it", typ, name, val)
			}
			gr.Headers[name] = val
		}
		out[typ] = gr
	}
	return out, nil
}
