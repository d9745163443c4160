// Package awslocal starts the real local stand-ins of AWS for tests:
// DynamoDB Local (Amazon's own jar), MinIO for S3 and the Lambda runtime
// interface emulator. `make tools` installs them into .tools/ at the module
// root (or GATEWAY_TOOLS_DIR); a test whose stand-in is missing is skipped,
// unless GATEWAY_REQUIRE_TOOLS=1 (set by `make test` and CI), where it fails.
package awslocal

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Region and credentials the stand-ins accept.
const (
	Region    = "us-east-1"
	AccessKey = "gatewaylocal"
	SecretKey = "gatewaylocal-secret"
)

// ToolsDir returns the folder `make tools` installs into.
func ToolsDir() string {
	if d := os.Getenv("GATEWAY_TOOLS_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		return ".tools"
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, ".tools")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ".tools"
		}
		dir = parent
	}
}

// Tool returns the path of a tool under ToolsDir, skipping (or failing, with
// GATEWAY_REQUIRE_TOOLS=1) when it is not installed.
func Tool(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(ToolsDir(), rel)
	if _, err := os.Stat(p); err != nil {
		msg := fmt.Sprintf("%s is not installed (run `make tools`, or `make test` which does it): %v", p, err)
		if os.Getenv("GATEWAY_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Start runs cmd until the test ends, with its output in the test log on
// failure, and waits until addr accepts connections.
func Start(t testing.TB, cmd *exec.Cmd, addr string, within time.Duration) {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(cmd.Path), out.String())
		}
	})
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited before listening on %s:\n%s", cmd.Path, addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within %s:\n%s", cmd.Path, addr, within, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<20 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Config is an AWS config for the stand-ins.
func Config() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	}
}

// DynamoDB starts DynamoDB Local in memory and returns its endpoint URL and
// a client for it.
func DynamoDB(t testing.TB) (string, *dynamodb.Client) {
	t.Helper()
	jar := Tool(t, "package/emulator/DynamoDBLocal.jar")
	port := FreePort(t)
	cmd := exec.Command("java", "-Xmx256m", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
		"-inMemory", "-sharedDb", "-disableTelemetry", "-port", fmt.Sprint(port))
	cmd.Dir = filepath.Dir(jar)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	Start(t, cmd, addr, 60*time.Second)
	endpoint := "http://" + addr
	client := dynamodb.NewFromConfig(Config(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.DisableValidateResponseChecksum = true
	})
	// The port opens before the service answers: wait for a real answer.
	answers(t, "DynamoDB Local", func(ctx context.Context) error {
		_, err := client.ListTables(ctx, &dynamodb.ListTablesInput{})
		return err
	})
	return endpoint, client
}

// MinIO starts a MinIO server on a fresh folder and returns its endpoint URL
// and an S3 client for it (path-style addressing).
func MinIO(t testing.TB) (string, *s3.Client) {
	t.Helper()
	bin := Tool(t, "bin/minio")
	port, console := FreePort(t), FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", console), t.TempDir())
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	Start(t, cmd, addr, 60*time.Second)
	endpoint := "http://" + addr
	client := S3Client(endpoint)
	answers(t, "MinIO", func(ctx context.Context) error {
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		return err
	})
	return endpoint, client
}

// answers waits up to a minute until call succeeds.
func answers(t testing.TB, what string, call func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		err := call(ctx)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("%s does not answer: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// S3Client returns an S3 client for a stand-in at endpoint.
func S3Client(endpoint string) *s3.Client {
	return s3.NewFromConfig(Config(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	})
}

// Name returns a fresh name for a table or bucket: lower case, 3 to 63
// characters.
func Name(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:12])
}
