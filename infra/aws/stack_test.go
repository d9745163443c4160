package aws_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/shared/bucket"
	"github.com/aigateway/aigateway/shared/dynamo"
)

const root = "../.."

// functions maps the template's function logical IDs to their packages.
var functions = map[string]string{
	"ChatFunction":   "chat",
	"UploadFunction": "upload",
	"AdminFunction":  "admin",
	"ImageFunction":  "image",
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// bootstraps builds the four functions for this machine (linux, as Lambda
// runs them) once per test binary and returns the folder holding
// <package>/bootstrap.
func bootstraps(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "gateway-lambda-")
		if buildErr != nil {
			return
		}
		for _, pkg := range functions {
			cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w",
				"-o", filepath.Join(buildDir, pkg, "bootstrap"), "./functions/"+pkg)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// stack is a fresh AWS deployment on local stand-ins: a table in DynamoDB
// Local, a bucket in MinIO, and the four functions under the emulator.
type stack struct {
	lambdas map[string]*awslocal.Lambda // by logical ID
	bucket  string
}

func startStack(t *testing.T, env ...string) *stack {
	t.Helper()
	dir := bootstraps(t)
	ddbURL, ddb := awslocal.DynamoDB(t)
	s3URL, s3c := awslocal.MinIO(t)
	table, bucketName := awslocal.Name("gateway"), awslocal.Name("gateway")
	ctx := context.Background()
	if err := dynamo.New(ddb, table).Create(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bucket.New(s3c, bucketName).CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"GATEWAY_TABLE=" + table, "GATEWAY_BUCKET=" + bucketName,
		"GATEWAY_DYNAMODB_ENDPOINT=" + ddbURL, "GATEWAY_S3_ENDPOINT=" + s3URL,
		"GATEWAY_MASTER_KEY=" + "ZmFrZS1tYXN0ZXIta2V5LWZvci1sb2NhbC10ZXN0cyE=",
		"GATEWAY_LOG_LEVEL=warn",
	}
	st := &stack{lambdas: map[string]*awslocal.Lambda{}, bucket: bucketName}
	for id, pkg := range functions {
		fnEnv := append(append([]string{"AWS_LAMBDA_FUNCTION_NAME=" + id}, base...), env...)
		st.lambdas[id] = awslocal.StartLambda(t, filepath.Join(dir, pkg, "bootstrap"), fnEnv...)
	}
	return st
}

func (s *stack) invokeURLs() map[string]string {
	out := map[string]string{}
	for id, l := range s.lambdas {
		out[id] = l.InvokeURL
	}
	return out
}
