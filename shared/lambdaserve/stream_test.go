package lambdaserve_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/aigateway/aigateway/shared/lambdaserve"
)

// readPrelude reads the JSON prelude and the 8 NUL bytes that separate it
// from the body, as API Gateway does.
func readPrelude(t *testing.T, r *bufio.Reader) map[string]any {
	t.Helper()
	raw, err := r.ReadBytes(0)
	if err != nil {
		t.Fatal(err)
	}
	for range 7 {
		if b, err := r.ReadByte(); err != nil || b != 0 {
			t.Fatalf("separator byte = %v, %v; want NUL", b, err)
		}
	}
	var prelude map[string]any
	if err := json.Unmarshal(raw[:len(raw)-1], &prelude); err != nil {
		t.Fatalf("prelude %q: %v", raw, err)
	}
	return prelude
}

func TestStreamDeliversWritesAsTheyHappen(t *testing.T) {
	next := make(chan struct{})
	gone := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" || r.URL.Query().Get("a") != "1" || string(body) != `{"x":1}` ||
			r.Header.Get("Authorization") != "Bearer sk-1" || len(r.Header.Values("X-Multi")) != 2 {
			t.Errorf("request = %s %s %q headers %v", r.Method, r.URL, body, r.Header)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("data: one\n\n"))
		w.(http.Flusher).Flush()
		<-next
		w.Write([]byte("data: two\n\n"))
		<-r.Context().Done()
		close(gone)
	})
	ev := events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/v1/chat/completions",
		MultiValueHeaders:               map[string][]string{"Authorization": {"Bearer sk-1"}, "X-Multi": {"a", "b"}},
		MultiValueQueryStringParameters: map[string][]string{"a": {"1"}},
		Body:                            base64.StdEncoding.EncodeToString([]byte(`{"x":1}`)), IsBase64Encoded: true,
	}
	resp, err := lambdaserve.Stream(h)(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp)
	prelude := readPrelude(t, r)
	if prelude["statusCode"] != float64(http.StatusAccepted) {
		t.Fatalf("prelude = %v", prelude)
	}
	mv := prelude["multiValueHeaders"].(map[string]any)
	if len(mv["Set-Cookie"].([]any)) != 2 || mv["Content-Type"].([]any)[0] != "text/event-stream" {
		t.Fatalf("headers = %v", mv)
	}
	// "one" is readable while the handler still waits to write "two".
	line, err := r.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first line = %q, %v", line, err)
	}
	r.ReadString('\n')
	close(next)
	line, _ = r.ReadString('\n')
	if line != "data: two\n" {
		t.Fatalf("second line = %q", line)
	}
	// The runtime closes the body when the client is gone: the handler's
	// context ends.
	resp.Close()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's context was not cancelled when the body was closed")
	}
}

func TestStreamHandlerThatWritesNothing(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	resp, err := lambdaserve.Stream(h)(context.Background(), events.APIGatewayProxyRequest{HTTPMethod: "GET", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp)
	if p := readPrelude(t, r); p["statusCode"] != float64(200) {
		t.Fatalf("prelude = %v", p)
	}
	if rest, _ := io.ReadAll(r); len(rest) != 0 {
		t.Fatalf("body = %q, want empty", rest)
	}
}

func TestStreamBadEvent(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.Error("handler called for a bad event") })
	resp, err := lambdaserve.Stream(h)(context.Background(), events.APIGatewayProxyRequest{
		HTTPMethod: "POST", Path: "/v1/chat/completions", Body: "%%%", IsBase64Encoded: true})
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp)
	if p := readPrelude(t, r); p["statusCode"] != float64(400) {
		t.Fatalf("prelude = %v", p)
	}
	if body, _ := io.ReadAll(r); !bytes.Contains(body, []byte(`"code":"invalid"`)) {
		t.Fatalf("body = %s", body)
	}
}

// TestStreamPanicAfterHeaders panics halfway through a streamed answer:
// the body ends with an error, not cleanly, so that the runtime reports
// the invocation failed and the client sees a broken stream.
func TestStreamPanicAfterHeaders(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"n\":1}\n\n")
		panic("boom")
	})
	resp, err := lambdaserve.Stream(h)(context.Background(), events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/"})
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp)
	readPrelude(t, r)
	body, err := io.ReadAll(r)
	if err == nil || !bytes.Contains(body, []byte(`"n":1`)) {
		t.Fatalf("body = %q, err = %v; want what was written, then an error", body, err)
	}
}
