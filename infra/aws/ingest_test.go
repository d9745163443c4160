package aws_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// TestIngestionFailureRecords hands the upload function what the
// IngestionFailures queue delivers (Lambda's on-failure record after the
// retries of an object-created event, and an EventBridge dead letter), as
// an SQS batch under the emulator: the documents become failed with a
// reason, a document already ready is left alone, and a malformed message
// is not retried forever.
func TestIngestionFailureRecords(t *testing.T) {
	up := fakeupstream.New(t)
	st := startStack(t)
	router, err := awslocal.NewGateway(translated(t), "GatewayApi", st.invokeURLs())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	call := func(method, path string, body any, csrf string) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", csrf)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	if code, body := call("POST", "/admin/api/setup", map[string]any{"admin_password": "correct horse battery",
		"ai":  map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "m"},
		"rag": map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "e"}}, ""); code != http.StatusCreated {
		t.Fatalf("setup = %d %s", code, body)
	}
	code, body := call("POST", "/admin/api/login", map[string]string{"password": "correct horse battery"}, "")
	var login struct {
		CSRF string `json:"csrf_token"`
	}
	if json.Unmarshal(body, &login); code != http.StatusOK || login.CSRF == "" {
		t.Fatalf("login = %d %s", code, body)
	}
	prepare := func(name string) (id, key string) {
		t.Helper()
		code, body := call("POST", "/admin/api/documents/uploads", map[string]any{"filename": name, "size": 100}, login.CSRF)
		var out struct {
			Document struct {
				ID string `json:"id"`
			} `json:"document"`
			Upload struct {
				ObjectKey string    `json:"object_key"`
				ExpiresAt time.Time `json:"expires_at"`
			} `json:"upload"`
		}
		if json.Unmarshal(body, &out); code != http.StatusCreated || out.Upload.ObjectKey == "" {
			t.Fatalf("start upload = %d %s", code, body)
		}
		if left := time.Until(out.Upload.ExpiresAt); left > 15*time.Minute || left < 14*time.Minute {
			t.Errorf("the upload URL lives %v, want 15 minutes", left)
		}
		return out.Document.ID, out.Upload.ObjectKey
	}
	status := func(id string) (string, string) {
		t.Helper()
		code, body := call("GET", "/admin/api/documents/"+id, nil, "")
		var d struct{ Status, Reason string }
		if json.Unmarshal(body, &d); code != http.StatusOK {
			t.Fatalf("GET document = %d %s", code, body)
		}
		return d.Status, d.Reason
	}
	objectCreated := func(key string) map[string]any {
		return map[string]any{"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3",
			"account": "123456789012", "region": awslocal.Region,
			"detail": map[string]any{"bucket": map[string]any{"name": st.bucket}, "object": map[string]any{"key": key}}}
	}
	gaveUp, gaveUpKey := prepare("a.md")
	undelivered, undeliveredKey := prepare("b.md")

	// Lambda's on-failure destination record, and EventBridge's dead letter.
	record, _ := json.Marshal(map[string]any{"version": "1.0", "timestamp": time.Now().UTC(),
		"requestContext": map[string]any{"requestId": "r1", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:upload",
			"condition": "RetriesExhausted", "approximateInvokeCount": 3},
		"requestPayload":  objectCreated(gaveUpKey),
		"responseContext": map[string]any{"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
		"responsePayload": map[string]any{"errorMessage": "Task timed out after 900.00 seconds"}})
	dead, _ := json.Marshal(objectCreated(undeliveredKey))
	batch, _ := json.Marshal(map[string]any{"Records": []map[string]any{
		{"messageId": "m1", "receiptHandle": "h1", "body": string(record), "eventSource": "aws:sqs",
			"eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:IngestionFailures", "awsRegion": awslocal.Region},
		{"messageId": "m2", "receiptHandle": "h2", "body": string(dead), "eventSource": "aws:sqs",
			"eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:IngestionFailures", "awsRegion": awslocal.Region},
		{"messageId": "m3", "receiptHandle": "h3", "body": "not json", "eventSource": "aws:sqs",
			"eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:IngestionFailures", "awsRegion": awslocal.Region},
	}})
	resp, err := http.Post(st.lambdas["UploadFunction"].InvokeURL, "application/json", bytes.NewReader(batch))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var answer struct {
		BatchItemFailures []struct {
			ItemIdentifier string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
		ErrorMessage string `json:"errorMessage"`
	}
	if err := json.Unmarshal(out, &answer); err != nil || answer.ErrorMessage != "" || len(answer.BatchItemFailures) != 0 {
		t.Fatalf("the upload function answered the failure batch with %s, want no failed items", out)
	}
	if s, reason := status(gaveUp); s != "failed" || !strings.Contains(reason, "3 times") {
		t.Errorf("document whose event Lambda gave up on = %s %q, want failed after 3 attempts", s, reason)
	}
	if s, reason := status(undelivered); s != "failed" || !strings.Contains(reason, "could not be handed") {
		t.Errorf("document whose event was never delivered = %s %q, want failed", s, reason)
	}
}
