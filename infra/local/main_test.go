package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/acceptance"
)

// TestAcceptance builds the local server, starts it as a real process on a
// fresh data folder and runs the acceptance suite against it.
func TestAcceptance(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "gateway")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if os.Getenv("GATEWAY_TEST_RACE") == "1" {
		// The server under the race detector (needs cgo and a C compiler).
		build = exec.Command("go", "build", "-race", "-o", bin, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=1")
	}
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	env := append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + filepath.Join(t.TempDir(), "data")}, acceptance.Env...)
	acceptance.Run(t, acceptance.NewTarget(t, start(t, bin, env...)))
}

// start runs the gateway binary with env and returns its base URL, read
// from its "listening" log line. The process is stopped with SIGTERM (and
// must exit cleanly) when the test ends.
func start(t *testing.T, bin string, env ...string) string {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	logs := make(chan struct{})
	go func() {
		defer close(logs)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			var rec struct {
				Msg, URL string
				Level    string
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				urls <- rec.URL
			}
			if testing.Verbose() || strings.Contains(line, `"level":"ERROR"`) {
				t.Log(line)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { <-logs; done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gateway exited with %v after SIGTERM", err)
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Error("gateway did not stop within 20s of SIGTERM")
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	select {
	case u := <-urls:
		return u
	case <-ctx.Done():
		t.Fatal("the gateway did not start listening within 30s")
	}
	return ""
}
