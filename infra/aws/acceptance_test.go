package aws_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/acceptance"
	"github.com/aigateway/aigateway/internal/testkit/awslocal"
)

// TestAcceptance runs the acceptance suite against the four functions under
// the emulator, behind a router built from the REST API the SAM translator
// generates (each path to its function, streamed or buffered as the
// integration says, within its timeout), as API Gateway does, with
// DynamoDB Local and MinIO as storage.
func TestAcceptance(t *testing.T) {
	st := startStack(t, append([]string{"GATEWAY_CACHE_TTL=1s"}, acceptance.Env...)...)
	router, err := awslocal.NewGateway(translated(t), "GatewayApi", st.invokeURLs())
	if err != nil {
		t.Fatal(err)
	}
	gw := httptest.NewServer(router)
	t.Cleanup(gw.Close)
	target := acceptance.NewTarget(t, gw.URL)
	target.KeyCacheTTL = time.Second
	target.StreamsBuffered = true
	target.TextBodiesReencoded = true
	target.ObjectCreated = func(t *testing.T, key string) {
		// What EventBridge delivers for the bucket's event.
		ev, _ := json.Marshal(map[string]any{
			"version": "0", "id": "local", "detail-type": "Object Created", "source": "aws.s3",
			"account": "123456789012", "time": time.Now().UTC().Format(time.RFC3339), "region": awslocal.Region,
			"resources": []string{"arn:aws:s3:::" + st.bucket},
			"detail": map[string]any{"version": "0", "bucket": map[string]any{"name": st.bucket},
				"object": map[string]any{"key": key}, "reason": "PutObject"},
		})
		resp, err := http.Post(st.lambdas["UploadFunction"].InvokeURL, "application/json", bytes.NewReader(ev))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || bytes.Contains(out, []byte("errorMessage")) {
			t.Fatalf("the upload function failed on the object-created event: %s", out)
		}
	}
	acceptance.Run(t, target)
}
