package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// proc is a process the harness started and measures.
type proc struct {
	name    string
	cmd     *exec.Cmd
	url     string
	started time.Time
	firstAt time.Duration // from start to the first answer (firstAnswer)
}

// startRole runs this program again in a role (upstream, proxy), which
// prints its URL first.
func startRole(name string, args ...string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.url = strings.TrimSpace(line)
	return p, nil
}

var listening = regexp.MustCompile(`"url":"(http://[^"]+)"`)

// startGateway runs the local gateway on dataDir and waits for its URL
// (the "listening" log line); its other log lines (the access log) are
// read and dropped, as a log collector would.
func startGateway(bin, dataDir string, env ...string) (*proc, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_DATA_DIR=" + dataDir}, env...)...)
	errOut, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: "gateway", cmd: cmd, started: time.Now()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := bufio.NewReader(errOut)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			cmd.Process.Kill()
			return nil, fmt.Errorf("start the gateway: %w", err)
		}
		if m := listening.FindStringSubmatch(line); m != nil {
			p.url = m[1]
			break
		}
	}
	go io.Copy(io.Discard, r)
	return p, nil
}

func (p *proc) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// clockTick is the kernel's clock tick (USER_HZ), the unit of CPU times
// in /proc.
var clockTick = func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
		return time.Second / time.Duration(n)
	}
	return 10 * time.Millisecond
}()

// cpu returns the CPU time (user and system) the process has used.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// memory returns the process's resident set and its peak since the last
// resetPeak, in bytes.
func (p *proc) memory() (rss, peak int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}

// resetPeak starts the peak resident set anew (Linux: 5 to clear_refs).
func (p *proc) resetPeak() {
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
}

// admin is a signed-in admin session on the gateway.
type admin struct {
	base, cookie, csrf string
}

func call(method, url string, body any, header ...string) (*http.Response, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func (a admin) do(method, path string, body any) ([]byte, error) {
	resp, b, err := call(method, a.base+path, body, "Cookie", a.cookie, "X-CSRF-Token", a.csrf)
	if err == nil && resp.StatusCode >= 300 {
		err = fmt.Errorf("%s %s = %d %s", method, path, resp.StatusCode, b)
	}
	return b, err
}

// setUp makes a fresh gateway ready as a user would run it: set up
// against the upstream, server-side memory on, and a key with limits
// (so that every request counts against them); it returns the key.
func setUp(gw *proc, upstream string) (string, admin, error) {
	const password = "bench admin password"
	resp, b, err := call("POST", gw.url+"/admin/api/setup", map[string]any{"admin_password": password,
		"ai": map[string]string{"base_url": upstream + "/v1", "api_key": "sk-bench-upstream-0000", "model": "bench-model"}})
	if err != nil || resp.StatusCode != http.StatusCreated {
		return "", admin{}, fmt.Errorf("setup: %v %s", err, b)
	}
	resp, b, err = call("POST", gw.url+"/admin/api/login", map[string]string{"password": password})
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", admin{}, fmt.Errorf("login: %v %s", err, b)
	}
	var login struct {
		CSRF string `json:"csrf_token"`
	}
	json.Unmarshal(b, &login)
	a := admin{base: gw.url, csrf: login.CSRF}
	for _, c := range resp.Cookies() {
		a.cookie += c.Name + "=" + c.Value + "; "
	}
	if _, err := a.do("PUT", "/admin/api/settings", map[string]any{"server_memory": true}); err != nil {
		return "", a, err
	}
	if _, err := a.do("PUT", "/admin/api/models/bench-paced", map[string]any{"upstream_model": "bench-paced"}); err != nil {
		return "", a, err
	}
	b, err = a.do("POST", "/admin/api/keys", map[string]any{"name": "bench", "rpm": 1_000_000_000, "tpm": 1_000_000_000_000})
	if err != nil {
		return "", a, err
	}
	var key struct {
		Key string `json:"key"`
	}
	json.Unmarshal(b, &key)
	return key.Key, a, nil
}

// buildGateway builds the local gateway binary into dir.
func buildGateway(dir string) (string, error) {
	bin := filepath.Join(dir, "gateway")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "./infra/local")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return bin, cmd.Run()
}
