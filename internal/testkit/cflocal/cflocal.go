// Package cflocal runs the gateway's Worker for tests as a developer does:
// built with the Go toolchain and syumai/workers' shim, its D1 migrations
// applied, served by `wrangler dev --local` (workerd, with local KV, D1 and
// R2). wrangler comes from `make tools`; without it the tests skip, or fail
// under GATEWAY_REQUIRE_TOOLS=1.
package cflocal

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/awslocal"
)

// Wrangler is wrangler's path under the tools folder.
const Wrangler = "wrangler/node_modules/.bin/wrangler"

var (
	buildMu sync.Mutex
	built   = map[string]error{}
)

// Build builds the Worker into dir/out (dir holds wrangler.toml) with the
// build tags, once per test binary, and returns the script to serve.
func Build(t testing.TB, dir, out string, tags ...string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	err, done := built[out]
	if !done {
		err = build(dir, out, tags)
		built[out] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, "worker.mjs")
}

func build(dir, out string, tags []string) error {
	gen := exec.Command("go", "run", "github.com/syumai/workers/cmd/workers-assets-gen", "-mode=go", "-o", out)
	gen.Dir = dir
	if b, err := gen.CombinedOutput(); err != nil {
		return fmt.Errorf("workers-assets-gen: %v\n%s", err, b)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-tags", strings.Join(tags, ","), "-o", filepath.Join(out, "app.wasm"), ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the Worker: %v\n%s", err, b)
	}
	return nil
}

// Worker is a running `wrangler dev --local`.
type Worker struct {
	URL   string
	State string // the --persist-to folder
	dir   string
	bin   string
	mu    sync.Mutex
	logs  strings.Builder
}

// Logs returns what wrangler and the Worker printed so far.
func (w *Worker) Logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.String()
}

func (w *Worker) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logs.Write(p)
}

// Start applies the migrations of dir's wrangler.toml to a fresh local
// state and serves script (from Build) with vars (its variables and
// secrets) until the test ends.
func Start(t testing.TB, dir, script string, vars map[string]string) *Worker {
	t.Helper()
	w := Prepare(t, dir)
	w.Serve(t, script, vars)
	return w
}

// env is wrangler's environment: quiet, no prompts.
func env() []string {
	return append(os.Environ(), "WRANGLER_SEND_METRICS=false", "CI=1", "NO_COLOR=1")
}

// Prepare applies the migrations of dir's wrangler.toml to a fresh local
// state, which Wrangler may then seed before Serve starts the Worker.
func Prepare(t testing.TB, dir string) *Worker {
	t.Helper()
	w := &Worker{State: t.TempDir(), dir: dir, bin: awslocal.Tool(t, Wrangler)}
	w.Wrangler(t, "d1", "migrations", "apply", "AI_DB")
	return w
}

// Wrangler runs a wrangler command on the local state (adding --local and
// --persist-to) and returns its output.
func (w *Worker) Wrangler(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(w.bin, append(args, "--local", "--persist-to", w.State)...)
	cmd.Dir, cmd.Env = w.dir, env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("wrangler %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Serve serves script (from Build) with vars (its variables and secrets)
// on the prepared state until the test ends.
func (w *Worker) Serve(t testing.TB, script string, vars map[string]string) {
	t.Helper()
	wrangler, dir := w.bin, w.dir
	port := awslocal.FreePort(t)
	args := []string{"dev", script, "--local", "--ip", "127.0.0.1", "--port", fmt.Sprint(port), "--persist-to", w.State,
		"--show-interactive-dev-session=false"}
	for k, v := range vars {
		args = append(args, "--var", k+":"+v)
	}
	cmd := exec.Command(wrangler, args...)
	cmd.Dir, cmd.Env = dir, env()
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // wrangler starts workerd
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("wrangler dev:\n%s", w.Logs())
		}
	})
	w.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", w.URL+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("wrangler dev did not answer /healthz within 90 s:\n%s", w.Logs())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// D1 runs sql on the Worker's local D1 database, as `wrangler d1 execute`
// does, and returns wrangler's JSON answer.
func (w *Worker) D1(t testing.TB, sql string) string {
	t.Helper()
	cmd := exec.Command(w.bin, "d1", "execute", "AI_DB", "--local", "--persist-to", w.State, "--json", "--command", sql)
	cmd.Dir, cmd.Env = w.dir, env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("wrangler d1 execute %q: %v\n%s", sql, err, out)
	}
	return string(out)
}

// Dir returns the folder of the Worker (infra/cloudflare) from a test in
// the module.
func Dir(t testing.TB) string {
	t.Helper()
	d := filepath.Join(filepath.Dir(awslocal.ToolsDir()), "infra", "cloudflare")
	if _, err := os.Stat(filepath.Join(d, "wrangler.toml")); err != nil {
		t.Fatal(err)
	}
	return d
}
