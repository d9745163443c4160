package aws_test

import (
	"debug/elf"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/awslocal"
)

// contract is every route of the HTTP contract (API.md) and the function
// that must serve it.
var contract = []struct{ method, path, function string }{
	{"GET", "/v1/models", "ChatFunction"},
	{"POST", "/v1/chat/completions", "ChatFunction"},
	{"POST", "/v1/embeddings", "ChatFunction"},
	{"GET", "/v1/conversations", "ChatFunction"},
	{"GET", "/v1/conversations/c1", "ChatFunction"},
	{"DELETE", "/v1/conversations/c1", "ChatFunction"},
	{"POST", "/v1/images/generations", "ImageFunction"},
	{"GET", "/files/f1", "ImageFunction"},
	{"GET", "/healthz", "AdminFunction"},
	{"GET", "/admin/api/setup", "AdminFunction"},
	{"POST", "/admin/api/setup", "AdminFunction"},
	{"POST", "/admin/api/login", "AdminFunction"},
	{"POST", "/admin/api/logout", "AdminFunction"},
	{"GET", "/admin/api/settings", "AdminFunction"},
	{"PUT", "/admin/api/settings", "AdminFunction"},
	{"GET", "/admin/api/models", "AdminFunction"},
	{"PUT", "/admin/api/models/bot", "AdminFunction"},
	{"DELETE", "/admin/api/models/bot", "AdminFunction"},
	{"GET", "/admin/api/keys", "AdminFunction"},
	{"POST", "/admin/api/keys", "AdminFunction"},
	{"DELETE", "/admin/api/keys/k1", "AdminFunction"},
	{"POST", "/admin/api/documents", "UploadFunction"},
	{"GET", "/admin/api/documents", "UploadFunction"},
	{"GET", "/admin/api/documents/d1", "UploadFunction"},
	{"DELETE", "/admin/api/documents/d1", "UploadFunction"},
	{"POST", "/admin/api/documents/uploads", "UploadFunction"},
	{"PUT", "/admin/api/documents/d1/content", "UploadFunction"},
	{"GET", "/admin/api/conversations", "AdminFunction"},
	{"GET", "/admin/api/conversations/c1", "AdminFunction"},
	{"GET", "/admin/api/usage", "AdminFunction"},
	{"GET", "/", "AdminFunction"},
	{"GET", "/setup", "AdminFunction"},
	{"GET", "/admin", "AdminFunction"},
}

func loadTemplate(t *testing.T) *awslocal.Template {
	t.Helper()
	tpl, err := awslocal.LoadTemplate(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// TestTemplateTyped parses the template with goformation and checks what it
// models: the functions, the table, the bucket, the secret and the API.
func TestTemplateTyped(t *testing.T) {
	tpl, err := goformation.Open(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fns := tpl.GetAllServerlessFunctionResources()
	var ids []string
	for id := range fns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if want := []string{"AdminFunction", "ChatFunction", "ImageFunction", "UploadFunction"}; !slices.Equal(ids, want) {
		t.Fatalf("functions = %v, want %v", ids, want)
	}
	for id, fn := range fns {
		if fn.AWSCloudFormationMetadata["BuildMethod"] != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod = %v, want makefile", id, fn.AWSCloudFormationMetadata["BuildMethod"])
		}
		if fn.Runtime != nil || fn.Architectures != nil || fn.Handler != nil {
			t.Errorf("%s overrides the runtime, architecture or handler of Globals", id)
		}
	}
	wantTimeout := map[string]int{"ChatFunction": 900, "UploadFunction": 300, "ImageFunction": 120}
	for id, want := range wantTimeout {
		if got := fns[id].Timeout; got == nil || *got != want {
			t.Errorf("%s: Timeout = %v, want %d", id, got, want)
		}
	}
	if fns["AdminFunction"].Timeout != nil {
		t.Error("AdminFunction should take the Globals timeout (API Gateway's buffered limit)")
	}

	table, err := tpl.GetDynamoDBTableWithName("Table")
	if err != nil {
		t.Fatal(err)
	}
	if table.BillingMode == nil || *table.BillingMode != "PAY_PER_REQUEST" ||
		table.TimeToLiveSpecification == nil || table.TimeToLiveSpecification.AttributeName == nil ||
		*table.TimeToLiveSpecification.AttributeName != "exp" || !table.TimeToLiveSpecification.Enabled ||
		table.PointInTimeRecoverySpecification == nil || table.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled == nil ||
		!*table.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled ||
		table.SSESpecification == nil || !table.SSESpecification.SSEEnabled {
		t.Errorf("table: want pay per request, TTL on exp, point-in-time recovery and encryption; got %+v", table)
	}
	if len(table.KeySchema) != 2 || table.KeySchema[0].AttributeName != "pk" || table.KeySchema[1].AttributeName != "sk" {
		t.Errorf("table key schema = %+v, want pk HASH, sk RANGE", table.KeySchema)
	}

	b, err := tpl.GetS3BucketWithName("Bucket")
	if err != nil {
		t.Fatal(err)
	}
	pab := b.PublicAccessBlockConfiguration
	if pab == nil || !deref(pab.BlockPublicAcls) || !deref(pab.BlockPublicPolicy) || !deref(pab.IgnorePublicAcls) || !deref(pab.RestrictPublicBuckets) {
		t.Errorf("bucket public access block = %+v, want all four on", pab)
	}
	if b.BucketEncryption == nil || len(b.BucketEncryption.ServerSideEncryptionConfiguration) == 0 {
		t.Error("bucket has no default encryption")
	}
	abort := false
	if b.LifecycleConfiguration != nil {
		for _, r := range b.LifecycleConfiguration.Rules {
			if r.AbortIncompleteMultipartUpload != nil && r.Status == "Enabled" {
				abort = true
			}
		}
	}
	if !abort {
		t.Error("bucket has no lifecycle rule for abandoned multipart uploads")
	}

	secret, err := tpl.GetSecretsManagerSecretWithName("MasterKeySecret")
	if err != nil {
		t.Fatal(err)
	}
	if secret.GenerateSecretString == nil || secret.GenerateSecretString.PasswordLength == nil || *secret.GenerateSecretString.PasswordLength < 32 {
		t.Errorf("master key secret must generate at least 32 characters: %+v", secret.GenerateSecretString)
	}

	api, err := tpl.GetServerlessApiWithName("GatewayApi")
	if err != nil {
		t.Fatal(err)
	}
	if api.EndpointConfiguration == nil || api.EndpointConfiguration.Type == nil || *api.EndpointConfiguration.Type != "REGIONAL" {
		t.Errorf("API endpoint = %+v, want REGIONAL (edge endpoints cut idle streams after 30 s)", api.EndpointConfiguration)
	}
	for _, want := range []string{"multipart~1form-data", "image~1*"} {
		if !slices.Contains(api.BinaryMediaTypes, want) {
			t.Errorf("BinaryMediaTypes %v lacks %s", api.BinaryMediaTypes, want)
		}
	}
	for _, out := range []string{"ApiUrl", "AdminUrl"} {
		if _, ok := tpl.Outputs[out]; !ok {
			t.Errorf("no output %s", out)
		}
	}
	for _, p := range []string{"StageName", "AllowedOrigins", "LogLevel"} {
		if _, ok := tpl.Parameters[p]; !ok {
			t.Errorf("no parameter %s", p)
		}
	}
}

func deref(b *bool) bool { return b != nil && *b }

// TestTemplateGlobals checks what goformation does not merge: Globals.
func TestTemplateGlobals(t *testing.T) {
	tpl := loadTemplate(t)
	g := func(k string) any { return tpl.Get("Globals", "Function", k) }
	if g("Runtime") != "provided.al2023" || g("Handler") != "bootstrap" || g("CodeUri") != "." || g("Timeout") != "29" {
		t.Errorf("Globals.Function = %v", tpl.Get("Globals", "Function"))
	}
	if arch, _ := g("Architectures").([]any); len(arch) != 1 || arch[0] != "arm64" {
		t.Errorf("Architectures = %v, want [arm64]", g("Architectures"))
	}
	env, _ := tpl.Get("Globals", "Function", "Environment", "Variables").(map[string]any)
	for name, ref := range map[string]string{
		"GATEWAY_TABLE": "Table", "GATEWAY_BUCKET": "Bucket", "GATEWAY_MASTER_KEY_SECRET": "MasterKeySecret",
		"GATEWAY_CORS_ORIGINS": "AllowedOrigins", "GATEWAY_LOG_LEVEL": "LogLevel",
	} {
		if m, _ := env[name].(map[string]any); m["Ref"] != ref {
			t.Errorf("%s = %v, want !Ref %s", name, env[name], ref)
		}
	}
}

// TestTemplateRoutes checks that every route of the contract is served by
// exactly one function event, the intended one; that the chat function
// streams on every route and nothing else does; and that the app's own
// routing agrees with the template's.
func TestTemplateRoutes(t *testing.T) {
	tpl := loadTemplate(t)
	gw := awslocal.NewGateway(tpl, "GatewayApi", nil)
	for _, r := range contract {
		evs, _ := gw.Candidates(r.method, r.path)
		if len(evs) != 1 {
			t.Errorf("%s %s is served by %d events %v, want exactly one", r.method, r.path, len(evs), evs)
			continue
		}
		if evs[0].Function != r.function {
			t.Errorf("%s %s goes to %s, want %s", r.method, r.path, evs[0].Function, r.function)
		}
	}
	for _, ev := range tpl.APIEvents() {
		if m, _ := ev.RestAPIReference.(map[string]any); m["Ref"] != "GatewayApi" {
			t.Errorf("%s.%s is not on GatewayApi: %v", ev.Function, ev.Name, ev.RestAPIReference)
		}
		streams := ev.TransferMode == "STREAM"
		if streams != (ev.Function == "ChatFunction") {
			t.Errorf("%s.%s: ResponseTransferMode %q; the chat function's routes stream, no others", ev.Function, ev.Name, ev.TransferMode)
		}
		if ev.Path == "/v1/chat/completions" && ev.TimeoutInMillis != "900000" {
			t.Errorf("chat completions integration timeout = %q ms, want 900000 (15 minutes)", ev.TimeoutInMillis)
		}
	}

	// The app's routing table names the same function for every route it
	// serves already.
	mux := http.NewServeMux()
	for _, rt := range app.Routes {
		fn := rt.Function
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) { w.Header().Set("Fn", string(fn)) })
	}
	for _, r := range contract {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(r.method, r.path, nil))
		fn := rec.Header().Get("Fn")
		if fn == "" {
			continue // not served by the app yet
		}
		if want := strings.TrimSuffix(r.function, "Function"); !strings.EqualFold(fn, want) {
			t.Errorf("%s %s: the app routes it to %s, the template to %s", r.method, r.path, fn, r.function)
		}
	}
}

// TestTemplateDirectUploads checks that objects arriving under incoming/
// reach the upload function through EventBridge.
func TestTemplateDirectUploads(t *testing.T) {
	tpl := loadTemplate(t)
	ev, _ := tpl.Get("Resources", "UploadFunction", "Properties", "Events", "IncomingObject").(map[string]any)
	if ev["Type"] != "EventBridgeRule" {
		t.Fatalf("UploadFunction has no EventBridge rule for uploads: %v", ev)
	}
	pattern := tpl.Get("Resources", "UploadFunction", "Properties", "Events", "IncomingObject", "Properties", "Pattern").(map[string]any)
	detail := pattern["detail"].(map[string]any)
	bucket := detail["bucket"].(map[string]any)["name"].([]any)
	key := detail["object"].(map[string]any)["key"].([]any)
	if pattern["source"].([]any)[0] != "aws.s3" || pattern["detail-type"].([]any)[0] != "Object Created" ||
		bucket[0].(map[string]any)["Ref"] != "Bucket" || key[0].(map[string]any)["prefix"] != "incoming/" {
		t.Fatalf("pattern = %v", pattern)
	}
	if tpl.Get("Resources", "Bucket", "Properties", "NotificationConfiguration", "EventBridgeConfiguration", "EventBridgeEnabled") != "true" {
		t.Fatal("the bucket does not send its events to EventBridge")
	}
}

// TestTemplatePolicies checks least privilege: each function may use only
// this stack's table, bucket and secret, and only the actions it needs.
func TestTemplatePolicies(t *testing.T) {
	tpl := loadTemplate(t)
	allowed := map[string][]string{ // resource → actions allowed on it
		`{"Fn::GetAtt":"Table.Arn"}`:                  {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"},
		`{"Fn::Sub":"${Bucket.Arn}/*"}`:               {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"},
		`{"Fn::Sub":"${Bucket.Arn}/rag/segments/*"}`:  {"s3:GetObject"},
		`{"Fn::Sub":"${Bucket.Arn}/conversations/*"}`: {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
		`{"Fn::Sub":"${Bucket.Arn}/images/*"}`:        {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
		`{"Fn::GetAtt":"Bucket.Arn"}`:                 {"s3:ListBucket"},
		`{"Ref":"MasterKeySecret"}`:                   {"secretsmanager:GetSecretValue"},
	}
	for _, fn := range tpl.Resources("AWS::Serverless::Function") {
		policies, _ := tpl.Get("Resources", fn, "Properties", "Policies").([]any)
		if len(policies) == 0 {
			t.Errorf("%s has no policies", fn)
		}
		usesS3 := false
		for _, p := range policies {
			stmts, _ := p.(map[string]any)["Statement"].([]any)
			if len(stmts) == 0 {
				t.Errorf("%s: policy %v is not an inline statement list (managed or template policies grant more than needed)", fn, p)
			}
			for _, s := range stmts {
				st := s.(map[string]any)
				if st["Effect"] != "Allow" {
					continue
				}
				res := compact(st["Resource"])
				acts, ok := allowed[res]
				if !ok {
					t.Errorf("%s: statement on %s: only this stack's table, bucket and secret may be named", fn, res)
					continue
				}
				for _, a := range list(st["Action"]) {
					if !slices.Contains(acts, a) {
						t.Errorf("%s: action %s on %s is not needed", fn, a, res)
					}
					usesS3 = usesS3 || strings.HasPrefix(a, "s3:")
				}
			}
		}
		if wantS3 := fn != "AdminFunction"; usesS3 != wantS3 {
			t.Errorf("%s: S3 access %v, want %v", fn, usesS3, wantS3)
		}
		if fn == "ChatFunction" || fn == "ImageFunction" {
			// Chat reads the index and keeps large messages and images;
			// image keeps images; neither touches the rest of the bucket.
			for _, p := range policies {
				for _, s := range p.(map[string]any)["Statement"].([]any) {
					st := s.(map[string]any)
					if res := compact(st["Resource"]); res == `{"Fn::Sub":"${Bucket.Arn}/*"}` {
						t.Errorf("%s may touch the whole bucket", fn)
					}
					if slices.Contains(list(st["Action"]), "s3:ListBucket") && st["Condition"] == nil {
						t.Errorf("%s may list the whole bucket", fn)
					}
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

// compact renders an intrinsic like {"Fn::GetAtt": "Table.Arn"} as JSON.
func compact(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		if s, ok := v.(string); ok {
			return s
		}
		return "?"
	}
	for k, val := range m {
		s, _ := val.(string)
		return `{"` + k + `":"` + s + `"}`
	}
	return "?"
}

// TestMakefileBuildTargets builds each function the way `sam build` does
// (BuildMethod makefile: `make build-<LogicalId>` with ARTIFACTS_DIR) and
// checks the bootstrap is a linux/arm64 executable.
func TestMakefileBuildTargets(t *testing.T) {
	tpl := loadTemplate(t)
	for _, fn := range tpl.Resources("AWS::Serverless::Function") {
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
