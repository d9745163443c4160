package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/acceptance"
)

// TestAcceptance builds the local server, starts it as a real process on a
// fresh data folder and runs the acceptance suite against it.
func TestAcceptance(t *testing.T) {
	bin := gatewayBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	env := append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + data, "GATEWAY_LOG_LEVEL=debug"}, acceptance.Env...)
	p := startProcess(t, bin, env...)
	target := acceptance.NewTarget(t, p.url)
	acceptance.Run(t, target)

	// The secrets the suite gave it (and the upstreams' echoes of them) are
	// nowhere in the logs, or in the store's files in plaintext.
	logs := p.log()
	if !strings.Contains(logs, `"request_id"`) {
		t.Fatal("no request was logged: the log check would see nothing")
	}
	for _, secret := range acceptance.Secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret reached the logs: %q", secret)
		}
	}
	filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, secret := range acceptance.Secrets {
			if bytes.Contains(b, []byte(secret)) {
				t.Errorf("%s holds a secret in plaintext: %q", path, secret)
			}
		}
		return nil
	})
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// gatewayBinary builds the local server once per test binary (under the
// race detector with GATEWAY_TEST_RACE=1, which needs cgo and a C
// compiler) and returns its path.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gateway-local-")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "gateway")
		build := exec.Command("go", "build", "-o", binary, ".")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if os.Getenv("GATEWAY_TEST_RACE") == "1" {
			build = exec.Command("go", "build", "-race", "-o", binary, ".")
			build.Env = append(os.Environ(), "CGO_ENABLED=1")
		}
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// start runs the gateway binary with env and returns its base URL, read
// from its "listening" log line. The process is stopped with SIGTERM (and
// must exit cleanly) when the test ends.
func start(t *testing.T, bin string, env ...string) string {
	t.Helper()
	return startProcess(t, bin, env...).url
}

// process is a running gateway.
type process struct {
	url    string
	cmd    *exec.Cmd
	exited chan error
	logs   *strings.Builder
	mu     *sync.Mutex
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *process) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed gateway did not exit")
	}
}

// log returns what the process logged so far.
func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func startProcess(t *testing.T, bin string, env ...string) *process {
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
	p := &process{cmd: cmd, exited: make(chan error, 1), logs: &strings.Builder{}, mu: &sync.Mutex{}}
	urls := make(chan string, 1)
	logs := make(chan struct{})
	go func() {
		defer close(logs)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
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
	go func() { <-logs; p.exited <- cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return // killed by the test
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.exited:
			if err != nil && cmd.ProcessState != nil && !cmd.ProcessState.Success() {
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
		p.url = u
		return p
	case <-ctx.Done():
		t.Fatal("the gateway did not start listening within 30s")
	}
	return p
}
