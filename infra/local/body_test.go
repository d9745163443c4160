package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// TestSlowBodies runs the server with a one-second body timeout: a client
// that trickles its body is cut off; a request without a key is refused
// before its (large) body is read; and a streamed answer that lasts longer
// than the body timeout is not cut with it.
func TestSlowBodies(t *testing.T) {
	bin := gatewayBinary(t)
	up := fakeupstream.New(t)
	base := start(t, bin, "GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR="+filepath.Join(t.TempDir(), "data"),
		"GATEWAY_BODY_TIMEOUT=1s")
	host := strings.TrimPrefix(base, "http://")

	// Headers that never end: the connection is closed after the header
	// timeout (10 s), checked at the end of the test.
	slowHeaders, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer slowHeaders.Close()
	io.WriteString(slowHeaders, "POST /admin/api/login HTTP/1.1\r\nHost: x\r\n")
	headersSent := time.Now()

	// A trickled body: the connection is answered or closed soon after the
	// deadline, not held.
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /admin/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("a trickled body got %d", resp.StatusCode)
		}
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the server held a trickled body for 10 s")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("a trickled body was held %v", waited)
	}

	// Without a key, a chat request is refused before its body is read.
	conn2, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	io.WriteString(conn2, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30000000\r\n\r\n{")
	conn2.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("keyless request with a 30 MB body announced = %v, %v; want 401 before the body", resp, err)
	}

	// A streamed answer of two seconds outlives the body deadline.
	setup, _ := json.Marshal(map[string]any{"admin_password": "correct horse battery",
		"ai": map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "m"}})
	r, err := http.Post(base+"/admin/api/setup", "application/json", bytes.NewReader(setup))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		APIKey string `json:"api_key"`
	}
	json.NewDecoder(r.Body).Decode(&created)
	r.Body.Close()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"#slow:40"}]}`))
	req.Header.Set("Authorization", "Bearer "+created.APIKey)
	req.Header.Set("Content-Type", "application/json")
	r, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil || r.StatusCode != http.StatusOK || !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) || bytes.Contains(body, []byte(`"error"`)) {
		t.Fatalf("a 2 s stream = %d, %v, ends %q", r.StatusCode, err, tail(body))
	}

	slowHeaders.SetReadDeadline(headersSent.Add(20 * time.Second))
	if _, err := io.ReadAll(slowHeaders); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("headers that never end held the connection for 20 s")
		}
	}
	if waited := time.Since(headersSent); waited > 15*time.Second {
		t.Fatalf("headers that never end held the connection %v", waited)
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-120):] }
