package aws_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/shared/app"
)

// logicalID is the template's resource of a function of the gateway.
func logicalID(fn app.Function) string {
	return strings.ToUpper(string(fn[:1])) + string(fn[1:]) + "Function"
}

// streamingFunctions are the functions whose every route streams: chat
// (answers for up to 15 minutes) and image (a slow image model).
var streamingFunctions = []string{"ChatFunction", "ImageFunction"}

// The integration timeouts the routes must have, in milliseconds.
var wantTimeouts = map[string]int{
	"/v1/chat/completions":   900000,
	"/v1/images/generations": 300000,
}

// stack is template.yaml as the SAM translator makes it: what
// CloudFormation deploys.
func translated(t *testing.T) *awslocal.Stack {
	t.Helper()
	return awslocal.Translate(t, filepath.Join(root, "template.yaml"))
}

func resource(t *testing.T, s *awslocal.Stack, id string) map[string]any {
	t.Helper()
	r, ok := s.Get("Resources", id).(map[string]any)
	if !ok {
		t.Fatalf("the translated template has no resource %s", id)
	}
	return r
}

func props(t *testing.T, s *awslocal.Stack, id string) map[string]any {
	t.Helper()
	p, _ := resource(t, s, id)["Properties"].(map[string]any)
	return p
}

// js renders v as compact JSON, for comparing intrinsics.
func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestTemplateCFNLint runs cfn-lint, which applies the SAM transform and
// checks the result against CloudFormation's resource specifications.
func TestTemplateCFNLint(t *testing.T) {
	awslocal.RequirePython(t, "cfnlint")
	// What the cfn-lint command runs.
	cmd := exec.Command(awslocal.Python(), "-c", "import sys; from cfnlint.runner import main; sys.exit(main())",
		"--format", "parseable", "template.yaml")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "AWS_DEFAULT_REGION="+awslocal.Region)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cfn-lint template.yaml: %v\n%s", err, out)
	}
}

// TestTemplateRoutes checks the REST API the translator generates: every
// route of the routing table (app.Routes) has exactly one integration, on
// the function the table names; the chat and image functions stream on
// every route (the response-streaming invocation URI with
// responseTransferMode STREAM) and the others are buffered within API
// Gateway's 29 seconds.
func TestTemplateRoutes(t *testing.T) {
	s := translated(t)
	gw, err := awslocal.NewGateway(s, "GatewayApi", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range app.Routes {
		rts, _ := gw.Candidates(rt.Method, rt.Example())
		if len(rts) != 1 {
			t.Errorf("%s %s is served by %d integrations %v, want exactly one", rt.Method, rt.Pattern, len(rts), rts)
			continue
		}
		if want := logicalID(rt.Function); rts[0].Function != want {
			t.Errorf("%s %s goes to %q, want %s", rt.Method, rt.Pattern, rts[0].Function, want)
		}
	}
	routes, err := s.Routes("GatewayApi")
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) == 0 {
		t.Fatal("the API has no routes")
	}
	timeouts := map[string]int{} // function → its Lambda timeout, ms
	for _, fn := range s.Resources("AWS::Lambda::Function") {
		n, _ := props(t, s, fn)["Timeout"].(float64)
		timeouts[fn] = int(n) * 1000
	}
	for _, rt := range routes {
		name := rt.Method + " " + rt.Path
		if rt.Integrations != 1 || rt.Function == "" {
			t.Errorf("%s: %d integrations, function %q; want one Lambda integration", name, rt.Integrations, rt.Function)
			continue
		}
		switch {
		case slices.Contains(streamingFunctions, rt.Function):
			if !rt.Streaming() {
				t.Errorf("%s (%s) is not streamed: uri %s, responseTransferMode %q", name, rt.Function, rt.URI, rt.TransferMode)
			}
			if rt.Timeout() > 900000 || rt.Timeout() > timeouts[rt.Function] {
				t.Errorf("%s waits %d ms, more than 15 minutes or the function's %d ms", name, rt.Timeout(), timeouts[rt.Function])
			}
		default:
			if !rt.Buffered() {
				t.Errorf("%s (%s) is not a plain buffered integration: uri %s, responseTransferMode %q", name, rt.Function, rt.URI, rt.TransferMode)
			}
			if rt.Timeout() > 29000 {
				t.Errorf("%s is buffered with a %d ms timeout; API Gateway allows 29,000", name, rt.Timeout())
			}
		}
		if want, ok := wantTimeouts[rt.Path]; ok && rt.Timeout() != want {
			t.Errorf("%s timeout = %d ms, want %d", name, rt.Timeout(), want)
		}
	}

}

// TestTemplateAPI checks the API around the routes: one stage only (the
// one named by StageName, throttled), a regional endpoint, binary media
// types, API Gateway's own errors in the OpenAI shape with CORS headers,
// and the optional custom domain.
func TestTemplateAPI(t *testing.T) {
	s := translated(t)
	stages := s.Resources("AWS::ApiGateway::Stage")
	if len(stages) != 1 {
		t.Fatalf("stages = %v, want exactly one", stages)
	}
	st := props(t, s, stages[0])
	if js(st["StageName"]) != `{"Ref":"StageName"}` || st["MethodSettings"] == nil {
		t.Errorf("stage %s = %v, want StageName from the parameter and throttling", stages[0], st)
	}
	for _, d := range s.Resources("AWS::ApiGateway::Deployment") {
		if name, ok := props(t, s, d)["StageName"]; ok {
			t.Errorf("deployment %s creates a stage of its own (%v): an unthrottled extra stage", d, name)
		}
	}
	api := props(t, s, "GatewayApi")
	if js(api["EndpointConfiguration"]) != `{"Types":["REGIONAL"]}` {
		t.Errorf("endpoint = %v, want REGIONAL (edge endpoints cut idle streams after 30 s)", api["EndpointConfiguration"])
	}
	for _, want := range []string{"multipart/form-data", "image/*", "application/pdf"} {
		if !slices.Contains(s.BinaryMediaTypes("GatewayApi"), want) {
			t.Errorf("BinaryMediaTypes %v lack %s", s.BinaryMediaTypes("GatewayApi"), want)
		}
	}
	// The custom domain: a regional domain and its mapping onto the stage,
	// both only when DomainName is set, and an output.
	dom := resource(t, s, "CustomDomain")
	if dom["Type"] != "AWS::ApiGateway::DomainName" || dom["Condition"] != "HasDomain" ||
		js(dom["Properties"].(map[string]any)["EndpointConfiguration"]) != `{"Types":["REGIONAL"]}` ||
		js(dom["Properties"].(map[string]any)["RegionalCertificateArn"]) != `{"Ref":"CertificateArn"}` {
		t.Errorf("CustomDomain = %v", dom)
	}
	mapping := resource(t, s, "CustomDomainMapping")
	mp, _ := mapping["Properties"].(map[string]any)
	if mapping["Type"] != "AWS::ApiGateway::BasePathMapping" || mapping["Condition"] != "HasDomain" ||
		js(mp["RestApiId"]) != `{"Ref":"GatewayApi"}` || js(mp["Stage"]) != `{"Ref":"`+stages[0]+`"}` || mp["BasePath"] != nil {
		t.Errorf("CustomDomainMapping = %v, want the whole API at the domain's root", mapping)
	}
	if out, _ := s.Get("Outputs", "CustomDomainUrl").(map[string]any); out["Condition"] != "HasDomain" {
		t.Errorf("output CustomDomainUrl = %v", out)
	}
}

// TestTemplateGatewayResponses deploys the API (in the router) with each
// kind of AllowedOrigins and asks it for one of API Gateway's own answers
// (a body over its 10 MB) from a browser: the body is an OpenAI error,
// and the CORS headers are exactly what a browser of an allowed origin
// needs, and nothing for others.
func TestTemplateGatewayResponses(t *testing.T) {
	s := translated(t)
	for _, c := range []struct{ origins, want string }{
		{"", ""},
		{"*", "*"},
		{"https://a.example.com,https://b.example.com", "https://b.example.com"},
	} {
		t.Run("origins="+c.origins, func(t *testing.T) {
			gw, err := awslocal.NewGateway(s, "GatewayApi", nil, map[string]string{"AllowedOrigins": c.origins})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/v1/chat/completions", bytes.NewReader(make([]byte, 11<<20)))
			req.Header.Set("Origin", "https://b.example.com")
			gw.ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d", rec.Code)
			}
			if got := rec.Header().Get("Access-Control-Allow-Origin"); got != c.want {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, c.want)
			}
			if got := rec.Header().Get("Vary"); got != "Origin" {
				t.Errorf("Vary = %q, want Origin", got)
			}
			expose := rec.Header().Get("Access-Control-Expose-Headers")
			if (c.want != "") != strings.Contains(expose, "Retry-After") {
				t.Errorf("Access-Control-Expose-Headers = %q", expose)
			}
			var body struct {
				Error struct{ Message, Type, Code string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Message != "Request Too Long" ||
				body.Error.Code != "REQUEST_TOO_LARGE" {
				t.Errorf("body = %s (%v), want an OpenAI error", rec.Body, err)
			}
		})
	}
}

// TestTemplateParameters checks that the AllowedOrigins pattern accepts
// exactly what the functions accept, so that a bad value fails the deploy
// rather than every function's start; and the other parameters.
func TestTemplateParameters(t *testing.T) {
	s := translated(t)
	pattern, _ := s.Get("Parameters", "AllowedOrigins", "AllowedPattern").(string)
	re, err := regexp.Compile(pattern)
	if pattern == "" || err != nil {
		t.Fatalf("AllowedOrigins pattern %q: %v", pattern, err)
	}
	for _, c := range []struct {
		value string
		ok    bool
	}{
		{"", true}, {"*", true}, {"https://chat.example.com", true}, {"http://localhost:3000", true},
		{"https://a.example.com,https://b.example.com", true}, {"https://a.example.com, http://b.example.com:8443", true},
		{"chat.example.com", false}, {"https://a.example.com,", false}, {"ftp://x.example.com", false},
		{"https://a.example.com/path", false}, {"*,https://a.example.com", false}, {"https://a b.com", false},
	} {
		if got := re.MatchString(c.value); got != c.ok {
			t.Errorf("AllowedOrigins %q: pattern accepts %v, want %v", c.value, got, c.ok)
		}
		t.Setenv("GATEWAY_CORS_ORIGINS", c.value)
		if _, err := app.Load(); (err == nil) != c.ok {
			t.Errorf("GATEWAY_CORS_ORIGINS %q: the functions accept it %v (%v), the template %v", c.value, err == nil, err, c.ok)
		}
	}
	for _, p := range []string{"StageName", "LogLevel", "LogRetentionDays", "DomainName", "CertificateArn"} {
		if s.Get("Parameters", p) == nil {
			t.Errorf("no parameter %s", p)
		}
	}
	if d, _ := s.Get("Parameters", "LogRetentionDays", "Default").(float64); d != 30 {
		t.Errorf("LogRetentionDays default = %v, want 30", s.Get("Parameters", "LogRetentionDays", "Default"))
	}
}

// TestTemplateFunctions checks the four functions as deployed: runtime,
// architecture, timeouts, a log group each with the chosen retention, and
// every variable that `sam local start-api --env-vars env.json` (as the
// README shows it) overrides declared, since SAM overrides no other.
func TestTemplateFunctions(t *testing.T) {
	s := translated(t)
	fns := s.Resources("AWS::Lambda::Function")
	if want := []string{"AdminFunction", "ChatFunction", "ImageFunction", "UploadFunction"}; !slices.Equal(fns, want) {
		t.Fatalf("functions = %v, want %v", fns, want)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, envJSON, _ := strings.Cut(string(readme), "`env.json`")
	envJSON, _, _ = strings.Cut(envJSON, "}}")
	envVars := regexp.MustCompile(`"(GATEWAY_[A-Z0-9_]+)"`).FindAllStringSubmatch(envJSON, -1)
	if len(envVars) < 4 {
		t.Fatalf("the README's env.json example names %d variables", len(envVars))
	}
	wantTimeout := map[string]float64{"ChatFunction": 900, "UploadFunction": 900, "ImageFunction": 300, "AdminFunction": 29}
	for _, fn := range fns {
		r := resource(t, s, fn)
		p := props(t, s, fn)
		if md, _ := r["Metadata"].(map[string]any); md["BuildMethod"] != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod = %v, want makefile", fn, md["BuildMethod"])
		}
		if p["Runtime"] != "provided.al2023" || p["Handler"] != "bootstrap" || js(p["Architectures"]) != `["arm64"]` {
			t.Errorf("%s: runtime %v, handler %v, architectures %v", fn, p["Runtime"], p["Handler"], p["Architectures"])
		}
		if p["Timeout"] != wantTimeout[fn] {
			t.Errorf("%s: Timeout = %v, want %v", fn, p["Timeout"], wantTimeout[fn])
		}
		group := js(p["LoggingConfig"])
		logs, _ := strings.CutPrefix(group, `{"LogGroup":{"Ref":"`)
		logs = strings.TrimSuffix(logs, `"}}`)
		if lg := s.Get("Resources", logs); lg == nil || js(s.Get("Resources", logs, "Properties", "RetentionInDays")) != `{"Ref":"LogRetentionDays"}` {
			t.Errorf("%s: LoggingConfig %s, want its own log group kept LogRetentionDays", fn, group)
		}
		vars, _ := s.Get("Resources", fn, "Properties", "Environment", "Variables").(map[string]any)
		for _, v := range envVars {
			if _, ok := vars[v[1]]; !ok {
				t.Errorf("%s does not declare %s, which the README's env.json sets", fn, v[1])
			}
		}
		for name, ref := range map[string]string{"GATEWAY_TABLE": "Table", "GATEWAY_BUCKET": "Bucket",
			"GATEWAY_MASTER_KEY_SECRET": "MasterKeySecret", "GATEWAY_CORS_ORIGINS": "AllowedOrigins", "GATEWAY_LOG_LEVEL": "LogLevel"} {
			if js(vars[name]) != `{"Ref":"`+ref+`"}` {
				t.Errorf("%s: %s = %v, want !Ref %s", fn, name, vars[name], ref)
			}
		}
	}
}

// TestTemplateIngestionFailures checks that a direct upload whose
// ingestion fails for good is not lost: Lambda's failed async invocations
// and EventBridge's undeliverable events both land in a queue that the
// upload function reads back to mark the document failed.
func TestTemplateIngestionFailures(t *testing.T) {
	s := translated(t)
	rule := props(t, s, "UploadFunctionIncomingObject")
	pattern := js(rule["EventPattern"])
	for _, want := range []string{`"source":["aws.s3"]`, `"detail-type":["Object Created"]`, `{"prefix":"incoming/"}`, `"name":[{"Ref":"Bucket"}]`} {
		if !strings.Contains(pattern, want) {
			t.Errorf("event pattern %s lacks %s", pattern, want)
		}
	}
	targets := js(rule["Targets"])
	if !strings.Contains(targets, `"Fn::GetAtt":["UploadFunction","Arn"]`) || !strings.Contains(targets, `"DeadLetterConfig":{"Arn":{"Fn::GetAtt":["IngestionFailures","Arn"]}}`) {
		t.Errorf("rule targets = %s, want the upload function with IngestionFailures as dead-letter queue", targets)
	}
	inv := props(t, s, "UploadFunctionEventInvokeConfig")
	if js(inv["DestinationConfig"]) != `{"OnFailure":{"Destination":{"Fn::GetAtt":["IngestionFailures","Arn"]}}}` {
		t.Errorf("on-failure destination = %s", js(inv["DestinationConfig"]))
	}
	esm := props(t, s, "IngestionFailuresTrigger")
	if js(esm["EventSourceArn"]) != `{"Fn::GetAtt":["IngestionFailures","Arn"]}` || js(esm["FunctionName"]) != `{"Ref":"UploadFunction"}` {
		t.Errorf("the upload function does not read IngestionFailures: %v", esm)
	}
	policy := js(props(t, s, "IngestionFailuresPolicy"))
	if !strings.Contains(policy, `"Service":"events.amazonaws.com"`) || !strings.Contains(policy, `"aws:SourceArn":{"Fn::GetAtt":["UploadFunctionIncomingObject","Arn"]}`) {
		t.Errorf("IngestionFailures does not let the rule (only) send its dead letters: %s", policy)
	}
	if vt, _ := props(t, s, "IngestionFailures")["VisibilityTimeout"].(float64); vt < 900 {
		t.Errorf("IngestionFailures visibility timeout %v s is below the upload function's timeout", vt)
	}
	if rp := js(props(t, s, "IngestionFailures")["RedrivePolicy"]); !strings.Contains(rp, `"deadLetterTargetArn":{"Fn::GetAtt":["IngestionFailuresUnsettled","Arn"]}`) {
		t.Errorf("IngestionFailures redrive policy = %s, want records that never settle kept aside", rp)
	}
	if e := props(t, s, "Bucket"); js(e["NotificationConfiguration"]) != `{"EventBridgeConfiguration":{"EventBridgeEnabled":true}}` {
		t.Errorf("the bucket does not send its events to EventBridge: %v", e["NotificationConfiguration"])
	}
}

// TestTemplateData checks the table, the bucket, its policy and the secret:
// kept when the stack goes, encrypted, locked down.
func TestTemplateData(t *testing.T) {
	s := translated(t)
	for _, id := range []string{"Table", "Bucket", "BucketPolicy", "MasterKeySecret"} {
		r := resource(t, s, id)
		if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("%s: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain", id, r["DeletionPolicy"], r["UpdateReplacePolicy"])
		}
	}
	table := js(props(t, s, "Table"))
	for _, want := range []string{`"BillingMode":"PAY_PER_REQUEST"`, `"TimeToLiveSpecification":{"AttributeName":"exp","Enabled":true}`,
		`"PointInTimeRecoveryEnabled":true`, `"SSESpecification":{"SSEEnabled":true}`,
		`"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"},{"AttributeName":"sk","KeyType":"RANGE"}]`} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %s: %s", want, table)
		}
	}
	bucket := js(props(t, s, "Bucket"))
	for _, want := range []string{`"BlockPublicAcls":true`, `"BlockPublicPolicy":true`, `"IgnorePublicAcls":true`, `"RestrictPublicBuckets":true`,
		`"AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}`, `"SSEAlgorithm":"AES256"`, `"Prefix":"incoming/"`} {
		if !strings.Contains(bucket, want) {
			t.Errorf("bucket lacks %s: %s", want, bucket)
		}
	}
	policy := props(t, s, "BucketPolicy")["PolicyDocument"].(map[string]any)
	if policy["Version"] != "2012-10-17" || !strings.Contains(js(policy), `"aws:SecureTransport":"false"`) {
		t.Errorf("bucket policy = %s, want version 2012-10-17 and TLS only", js(policy))
	}
	if n, _ := s.Get("Resources", "MasterKeySecret", "Properties", "GenerateSecretString", "PasswordLength").(float64); n < 32 {
		t.Errorf("the master key secret generates %v characters, want at least 32", n)
	}
}

// TestTemplatePolicies checks least privilege on the roles the translator
// generates: each function may use only this stack's table, bucket
// prefixes, secret and queue, and only the actions it needs.
func TestTemplatePolicies(t *testing.T) {
	s := translated(t)
	dynamo := []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"}
	rw := []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
	rwm := append(rw, "s3:AbortMultipartUpload") // large puts go in parts
	// function → resource → the actions it needs there.
	want := map[string]map[string][]string{
		"ChatFunction": {
			`{"Fn::GetAtt":["Table","Arn"]}`:                 dynamo,
			`{"Ref":"MasterKeySecret"}`:                      {"secretsmanager:GetSecretValue"},
			`{"Fn::Sub":"${Bucket.Arn}/rag/segments/*"}`:     {"s3:GetObject"},
			`{"Fn::Sub":"${Bucket.Arn}/conversations/*"}`:    rwm,
			`{"Fn::Sub":"${Bucket.Arn}/images/*"}`:           rwm,
			`{"Fn::GetAtt":["Bucket","Arn"]} rag/segments/*`: {"s3:ListBucket"},
		},
		"UploadFunction": {
			`{"Fn::GetAtt":["Table","Arn"]}`:                 dynamo,
			`{"Ref":"MasterKeySecret"}`:                      {"secretsmanager:GetSecretValue"},
			`{"Fn::Sub":"${Bucket.Arn}/documents/*"}`:        rwm,
			`{"Fn::Sub":"${Bucket.Arn}/incoming/*"}`:         rwm,
			`{"Fn::Sub":"${Bucket.Arn}/rag/segments/*"}`:     rwm,
			`{"Fn::GetAtt":["Bucket","Arn"]} rag/segments/*`: {"s3:ListBucket"},
			`{"Fn::GetAtt":["IngestionFailures","Arn"]}`:     {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"},
		},
		"AdminFunction": {
			`{"Fn::GetAtt":["Table","Arn"]}`:              dynamo,
			`{"Ref":"MasterKeySecret"}`:                   {"secretsmanager:GetSecretValue"},
			`{"Fn::Sub":"${Bucket.Arn}/conversations/*"}`: {"s3:GetObject", "s3:DeleteObject"},
		},
		"ImageFunction": {
			`{"Fn::GetAtt":["Table","Arn"]}`:       dynamo,
			`{"Ref":"MasterKeySecret"}`:            {"secretsmanager:GetSecretValue"},
			`{"Fn::Sub":"${Bucket.Arn}/images/*"}`: rwm,
		},
	}
	for fn, resources := range want {
		role := strings.TrimSuffix(strings.TrimPrefix(js(props(t, s, fn)["Role"]), `{"Fn::GetAtt":["`), `","Arn"]}`)
		rp := props(t, s, role)
		if js(rp["ManagedPolicyArns"]) != `["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]` {
			t.Errorf("%s: managed policies %v, want only the basic execution role (logs)", fn, rp["ManagedPolicyArns"])
		}
		got := map[string][]string{}
		policies, _ := rp["Policies"].([]any)
		for _, p := range policies {
			stmts, _ := p.(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any)
			for _, st := range stmts {
				stm := st.(map[string]any)
				if stm["Effect"] != "Allow" {
					continue
				}
				res := []any{stm["Resource"]}
				if list, ok := stm["Resource"].([]any); ok {
					res = list
				}
				for _, r := range res {
					key := js(r)
					if c := stm["Condition"]; c != nil {
						prefix, _ := c.(map[string]any)["StringLike"].(map[string]any)["s3:prefix"].(string)
						key += " " + prefix
					}
					got[key] = append(got[key], list(stm["Action"])...)
				}
			}
		}
		for res, acts := range got {
			need, ok := resources[res]
			if !ok {
				t.Errorf("%s may use %s (%v): not needed", fn, res, acts)
				continue
			}
			for _, a := range acts {
				if !slices.Contains(need, a) {
					t.Errorf("%s: action %s on %s is not needed", fn, a, res)
				}
			}
		}
		for res, acts := range resources {
			for _, a := range acts {
				if !slices.Contains(got[res], a) {
					t.Errorf("%s lacks %s on %s, which it uses", fn, a, res)
				}
			}
		}
	}
}

func list(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, _ := e.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// TestMakefileBuildTargets builds each function the way `sam build` does
// (BuildMethod makefile: `make build-<LogicalId>` with ARTIFACTS_DIR) and
// checks the bootstrap is a linux/arm64 executable.
func TestMakefileBuildTargets(t *testing.T) {
	s := translated(t)
	for _, fn := range s.Resources("AWS::Lambda::Function") {
		t.Run(fn, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command("make", "--no-print-directory", "build-"+fn, "ARTIFACTS_DIR="+dir)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("make build-%s: %v\n%s", fn, err, out)
			}
			f, err := elf.Open(filepath.Join(dir, "bootstrap"))
			if err != nil {
				t.Fatalf("bootstrap: %v", err)
			}
			defer f.Close()
			if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
				t.Fatalf("bootstrap is %v %v, want an arm64 executable", f.Machine, f.Type)
			}
		})
	}
}
