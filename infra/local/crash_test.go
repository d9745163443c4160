package main_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
)

// client is an admin session against one gateway process.
type client struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

func (c *client) call(method, path string, body any, header ...string) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.csrf)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func login(t *testing.T, base string) *client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
	code, body := c.call("POST", "/admin/api/login", map[string]string{"password": "correct horse battery"})
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	if json.Unmarshal(body, &s); code != http.StatusOK || s.CSRF == "" {
		t.Fatalf("login = %d %s", code, body)
	}
	c.csrf = s.CSRF
	return c
}

// TestKilledAndRestarted kills the local server (SIGKILL) while a document
// is being ingested, right after a burst of chat requests on a key with a
// token quota and a conversation, and starts it again on the same data:
// the document is failed with a reason (not stuck processing), the quota
// still counts every request admitted before the kill, and the
// conversation holds whole exchanges only.
func TestKilledAndRestarted(t *testing.T) {
	bin := gatewayBinary(t)
	up := fakeupstream.New(t)
	env := []string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "GATEWAY_CACHE_TTL=0s"}
	first := startProcess(t, bin, env...)
	c := &client{t: t, base: first.url, http: &http.Client{Timeout: 30 * time.Second}}
	if code, body := c.call("POST", "/admin/api/setup", map[string]any{"admin_password": "correct horse battery",
		"ai":  map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "m"},
		"rag": map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "e"}}); code != http.StatusCreated {
		t.Fatalf("setup = %d %s", code, body)
	}
	c = login(t, first.url)
	code, body := c.call("POST", "/admin/api/keys", map[string]any{"name": "quota", "token_quota": 90})
	var key struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(body, &key); code != http.StatusCreated {
		t.Fatalf("create key = %d %s", code, body)
	}

	// An ingestion whose embeddings never come.
	go c.call("POST", "/admin/api/documents", map[string]any{"title": "stuck", "text": "# Stuck\n\n#hang forever"})
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := c.call("GET", "/admin/api/documents", nil)
		if bytes.Contains(body, []byte(`"status":"processing"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the document never started processing: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Five requests of 18 tokens each: the 90-token quota is spent.
	for i := range 5 {
		code, body := c.call("POST", "/v1/chat/completions", map[string]any{"model": "m",
			"messages": []map[string]string{{"role": "user", "content": "hello"}}},
			"Authorization", "Bearer "+key.Key, "X-Conversation-ID", "kept")
		if code != http.StatusOK {
			t.Fatalf("request %d = %d %s", i, code, body)
		}
	}
	first.kill(t)

	second := startProcess(t, bin, env...)
	c = login(t, second.url)
	_, body = c.call("GET", "/admin/api/documents", nil)
	var docs struct {
		Data []struct{ Title, Status, Reason string }
	}
	json.Unmarshal(body, &docs)
	if len(docs.Data) != 1 || docs.Data[0].Status != "failed" || !strings.Contains(docs.Data[0].Reason, "interrupted") {
		t.Fatalf("after the restart the document is %+v, want failed as interrupted", docs.Data)
	}
	code, body = c.call("POST", "/v1/chat/completions", map[string]any{"model": "m",
		"messages": []map[string]string{{"role": "user", "content": "one more"}}}, "Authorization", "Bearer "+key.Key)
	if code != http.StatusTooManyRequests || !bytes.Contains(body, []byte("insufficient_quota")) {
		t.Fatalf("after the restart the spent quota admits again: %d %s", code, body)
	}
	code, body = c.call("GET", "/v1/conversations/kept", nil, "Authorization", "Bearer "+key.Key)
	var conv struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if json.Unmarshal(body, &conv); code != http.StatusOK || len(conv.Messages)%2 != 0 || len(conv.Messages) == 0 {
		t.Fatalf("after the restart the conversation = %d with %d messages, want whole exchanges", code, len(conv.Messages))
	}
}

// TestStopWithHungIngestion stops the server (SIGTERM) while a direct
// upload's ingestion waits on an embedding that never comes: the stop
// waits a bounded time, and the next start fails the document.
func TestStopWithHungIngestion(t *testing.T) {
	bin := gatewayBinary(t)
	up := fakeupstream.New(t)
	env := []string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + filepath.Join(t.TempDir(), "data")}
	p := startProcess(t, bin, env...)
	c := &client{t: t, base: p.url, http: &http.Client{Timeout: 30 * time.Second}}
	if code, body := c.call("POST", "/admin/api/setup", map[string]any{"admin_password": "correct horse battery",
		"ai":  map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "m"},
		"rag": map[string]string{"base_url": up.URL, "api_key": "sk-up-123456789012", "model": "e"}}); code != http.StatusCreated {
		t.Fatalf("setup = %d %s", code, body)
	}
	c = login(t, p.url)
	content := "# Hung\n\n#hang forever"
	code, body := c.call("POST", "/admin/api/documents/uploads", map[string]any{"filename": "hung.md", "size": len(content)})
	var start struct {
		Upload struct{ URL string } `json:"upload"`
	}
	if json.Unmarshal(body, &start); code != http.StatusCreated {
		t.Fatalf("start upload = %d %s", code, body)
	}
	req, _ := http.NewRequest("PUT", start.Upload.URL, strings.NewReader(content))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PUT = %v, %v", resp, err)
	}
	resp.Body.Close()
	began := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the stop is held by a hung ingestion")
	}
	if waited := time.Since(began); waited > 20*time.Second {
		t.Fatalf("the stop took %v", waited)
	}
	second := startProcess(t, bin, env...)
	c = login(t, second.url)
	_, body = c.call("GET", "/admin/api/documents", nil)
	if !bytes.Contains(body, []byte(`"status":"failed"`)) {
		t.Fatalf("after the restart the documents are %s, want the hung one failed", body)
	}
}
