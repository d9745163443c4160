package aws_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
)

// BenchmarkColdStart measures each function's cold start under the runtime
// interface emulator: from the first invocation (which starts the
// bootstrap process) to its answer to GET /healthz, which opens the gateway
// (AWS configuration, clients, master key). The second invocation is the
// warm latency. It also reports the size of the deployed linux/arm64
// binary when `make build` has made it.
//
//	make build tools
//	GATEWAY_TOOLS_DIR=$PWD/.tools go test ./infra/aws -run '^$' -bench ColdStart -benchtime 10x
func BenchmarkColdStart(b *testing.B) {
	dir := bootstraps(b)
	ids := make([]string, 0, len(functions))
	for id := range functions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	ev, _ := json.Marshal(events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/healthz", Resource: "/healthz",
		RequestContext: events.APIGatewayProxyRequestContext{Identity: events.APIGatewayRequestIdentity{SourceIP: "203.0.113.7"}}})
	for _, id := range ids {
		b.Run(id, func(b *testing.B) {
			var cold, warm time.Duration
			for range b.N {
				b.StopTimer()
				l := awslocal.StartLambda(b, filepath.Join(dir, functions[id], "bootstrap"),
					"GATEWAY_TABLE=t", "GATEWAY_BUCKET=b", "GATEWAY_LOG_LEVEL=warn",
					"GATEWAY_MASTER_KEY=ZmFrZS1tYXN0ZXIta2V5LWZvci1sb2NhbC10ZXN0cyE=")
				b.StartTimer()
				start := time.Now()
				post(b, l.InvokeURL, ev)
				cold += time.Since(start)
				start = time.Now()
				post(b, l.InvokeURL, ev)
				warm += time.Since(start)
				b.StopTimer()
				l.Stop()
				b.StartTimer()
			}
			b.ReportMetric(float64(cold.Microseconds())/1000/float64(b.N), "cold-ms")
			b.ReportMetric(float64(warm.Microseconds())/1000/float64(b.N), "warm-ms")
			if fi, err := os.Stat(filepath.Join(root, "build", functions[id], "bootstrap")); err == nil {
				b.ReportMetric(float64(fi.Size())/(1<<20), "arm64-MB")
			}
		})
	}
}

// post invokes the function and checks that it answered 200, in either
// the buffered or the streamed format.
func post(b *testing.B, url string, payload []byte) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(payload))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`"statusCode":200`)) {
		b.Fatalf("GET /healthz answered %s", body)
	}
}
