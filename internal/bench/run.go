package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/soak"
)

type options struct {
	rounds, conns, serial int
	duration              time.Duration
	out, profile          string
	rag                   bool
	soak                  time.Duration
}

// loaded is a loaded figure summed over its runs: requests, CPU, the
// latency percentiles of the runs (their median), the peak memory.
type loaded struct {
	requests, errors int64
	cpu              time.Duration
	rps              float64
	p50, p99         time.Duration
	peak             int64
	runs             int
}

func (l *loaded) add(r wrkResult, cpu time.Duration, peak int64) {
	l.requests += r.requests
	l.errors += r.errors
	l.cpu += cpu
	l.rps += r.rps
	l.p50 += r.p50
	l.p99 += r.p99
	l.peak = max(l.peak, peak)
	l.runs++
}

func (l loaded) perRequest() float64 {
	if l.requests == 0 {
		return 0
	}
	return float64(l.cpu.Microseconds()) / float64(l.requests)
}
func (l loaded) meanRPS() float64       { return l.rps / float64(max(l.runs, 1)) }
func (l loaded) meanP50() time.Duration { return l.p50 / time.Duration(max(l.runs, 1)) }
func (l loaded) meanP99() time.Duration { return l.p99 / time.Duration(max(l.runs, 1)) }

// measure loads p with req for a run and returns what it used: the run's
// result, the CPU p spent (until its deferred work, such as usage writes,
// settled) and its peak memory.
func measure(o options, dir string, p *proc, req request) (wrkResult, time.Duration, int64, error) {
	p.resetPeak()
	before := p.cpu()
	r, err := runWrk(dir, p.url, req, o.conns, o.duration)
	if err != nil {
		return r, 0, 0, err
	}
	time.Sleep(300 * time.Millisecond)
	cpu := p.cpu() - before
	_, peak := p.memory()
	if r.errors > 0 {
		return r, cpu, peak, fmt.Errorf("%s %s: %d errors of %d", p.name, req.path, r.errors, r.requests)
	}
	return r, cpu, peak, nil
}

// report is every figure of a run.
type report struct {
	machine                  string
	plain, stream            [3]loaded // direct, proxy, gateway
	responses, unstored      loaded    // gateway: /v1/responses stored, and with store: false
	messages                 loaded
	idleProxy, idleGateway   int64
	addedProxy, addedGateway [2]time.Duration // p50, p99 added to a lone request
	ttfbProxy, ttfbGateway   time.Duration    // p50 added to the time to first byte
	startProxy, startGateway time.Duration
	rag                      string
	soak                     soakReport
	o                        options
}

func run(o options) error {
	dir, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if _, err := exec.LookPath("wrk"); err != nil {
		return fmt.Errorf("wrk is not installed (make tools installs it): %w", err)
	}
	// Retrieval first, on a machine nothing else is running on.
	rag := ""
	if o.rag && o.profile == "" {
		fmt.Fprintln(os.Stderr, "retrieval…")
		if rag, err = retrieval(); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "building the gateway…")
	bin, err := buildGateway(dir)
	if err != nil {
		return err
	}
	up, err := startRole("upstream", "upstream")
	if err != nil {
		return err
	}
	defer up.stop()
	proxy, err := startRole("proxy", "proxy", up.url)
	if err != nil {
		return err
	}
	defer func() { proxy.stop() }()
	data := filepath.Join(dir, "data")
	gw, err := startGateway(bin, data, "GATEWAY_PPROF_ADDR="+pprofAddr)
	if err != nil {
		return err
	}
	defer func() { gw.stop() }()
	key, adm, err := setUp(gw, up.url)
	if err != nil {
		return err
	}
	if o.profile != "" {
		return profile(o, dir, gw, key)
	}
	rep := report{o: o, machine: machine(), rag: rag}
	// Idle memory: after start and setup, once the process has settled.
	time.Sleep(2 * time.Second)
	rep.idleProxy, _ = proxy.memory()
	rep.idleGateway, _ = gw.memory()

	direct := &proc{name: "direct", url: up.url, cmd: up.cmd}
	for _, fig := range []struct {
		name string
		req  request
		into *[3]loaded
	}{{"plain", chatRequest(key, false, "bench-model"), &rep.plain}, {"stream", chatRequest(key, true, "bench-model"), &rep.stream}} {
		fmt.Fprintf(os.Stderr, "%s answers at %d connections…\n", fig.name, o.conns)
		r, _, _, err := measure(o, dir, direct, fig.req)
		if err != nil {
			return err
		}
		fig.into[0].add(r, 0, 0)
		for range o.rounds {
			for i, p := range []*proc{proxy, gw} {
				r, cpu, peak, err := measure(o, dir, p, fig.req)
				if err != nil {
					return err
				}
				fig.into[i+1].add(r, cpu, peak)
			}
		}
	}
	for _, fig := range []struct {
		name string
		req  request
		into *loaded
	}{{"responses", responsesRequest(key, true), &rep.responses}, {"responses (store: false)", responsesRequest(key, false), &rep.unstored},
		{"messages", messagesRequest(key), &rep.messages}} {
		fmt.Fprintf(os.Stderr, "%s at %d connections…\n", fig.name, o.conns)
		for range max(1, o.rounds-1) {
			r, cpu, peak, err := measure(o, dir, gw, fig.req)
			if err != nil {
				return err
			}
			fig.into.add(r, cpu, peak)
		}
	}

	fmt.Fprintln(os.Stderr, "one request at a time…")
	lone := chatRequest(key, false, "bench-model")
	paced := chatRequest(key, true, "bench-paced")
	var totals, firsts [3][]time.Duration
	for range 2 {
		for i, base := range []string{up.url, proxy.url, gw.url} {
			_, total, err := serial(base, lone, o.serial/2)
			if err != nil {
				return err
			}
			first, _, err := serial(base, paced, o.serial/10)
			if err != nil {
				return err
			}
			totals[i] = append(totals[i], total...)
			firsts[i] = append(firsts[i], first...)
		}
	}
	for i, p := range []float64{50, 99} {
		rep.addedProxy[i] = percentile(totals[1], p) - percentile(totals[0], p)
		rep.addedGateway[i] = percentile(totals[2], p) - percentile(totals[0], p)
	}
	rep.ttfbProxy = percentile(firsts[1], 50) - percentile(firsts[0], 50)
	rep.ttfbGateway = percentile(firsts[2], 50) - percentile(firsts[0], 50)

	if o.soak > 0 {
		fmt.Fprintf(os.Stderr, "soak: 500 streams for %s…\n", o.soak)
		if rep.soak, err = soakRun(gw, adm, key, o.soak); err != nil {
			return err
		}
	}

	fmt.Fprintln(os.Stderr, "start to first answer…")
	var gwStarts, proxyStarts []time.Duration
	for range 5 {
		gw.stop()
		if gw, err = startGateway(bin, data, "GATEWAY_PPROF_ADDR="+pprofAddr); err != nil {
			return err
		}
		if err := firstAnswer(gw, lone); err != nil {
			return err
		}
		gwStarts = append(gwStarts, gw.firstAt)
		proxy.stop()
		if proxy, err = startRole("proxy", "proxy", up.url); err != nil {
			return err
		}
		if err := firstAnswer(proxy, lone); err != nil {
			return err
		}
		proxyStarts = append(proxyStarts, proxy.firstAt)
	}
	rep.startGateway, rep.startProxy = percentile(gwStarts, 50), percentile(proxyStarts, 50)

	text := rep.markdown()
	fmt.Print(text)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(text), 0o644)
	}
	return nil
}

// firstAnswer asks p until it answers, and records when it first did.
func firstAnswer(p *proc, req request) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, err := serial(p.url, req, 1); err == nil {
			p.firstAt = time.Since(p.started)
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("%s never answered", p.name)
}

// retrieval runs the retrieval benchmark (one core) and returns its lines.
func retrieval() (string, error) {
	out, err := exec.Command("go", "test", "./shared/rag", "-run", "^$", "-bench", "Search", "-cpu", "1", "-benchtime", "200x").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("the retrieval benchmark: %v\n%s", err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "BenchmarkSearch") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(lines, "\n"), nil
}

// machine describes the machine: CPU, cores, memory, kernel, Go.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			cpu = string(m[1])
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(b); m != nil {
			kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	wrk, _ := exec.Command("wrk", "-v").CombinedOutput()
	wrkVersion := strings.Fields(string(bytes.SplitN(wrk, []byte("\n"), 2)[0]))
	w := "wrk"
	if len(wrkVersion) > 1 {
		w = "wrk " + wrkVersion[1]
	}
	return fmt.Sprintf("%s, %d cores%s, Linux %s, %s, %s", cpu, runtime.NumCPU(), mem, strings.TrimSpace(string(kernel)), runtime.Version(), w)
}

const pprofAddr = "127.0.0.1:6061"

// profile loads the gateway with one kind of request while taking its CPU
// profile, then its heap profile, into cpu.pprof and heap.pprof.
func profile(o options, dir string, gw *proc, key string) error {
	reqs := map[string]request{"plain": chatRequest(key, false, "bench-model"), "stream": chatRequest(key, true, "bench-model"),
		"responses": responsesRequest(key, true), "messages": messagesRequest(key)}
	req, ok := reqs[o.profile]
	if !ok {
		return fmt.Errorf("-profile is plain, stream, responses or messages")
	}
	load := make(chan error, 1)
	go func() {
		r, err := runWrk(dir, gw.url, req, o.conns, o.duration)
		fmt.Fprintf(os.Stderr, "%d requests, %.0f/s, %d errors\n", r.requests, r.rps, r.errors)
		load <- err
	}()
	get := func(path, file string) error {
		resp, err := http.Get("http://" + pprofAddr + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
		return err
	}
	err := get(fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(1, int(o.duration.Seconds())-2)), "cpu.pprof")
	err = errors.Join(err, get("/debug/pprof/heap", "heap.pprof"), <-load)
	fmt.Fprintln(os.Stderr, "go tool pprof -top cpu.pprof | head -40")
	return err
}

// soakReport is what the soak found.
type soakReport struct {
	d                time.Duration
	requests, errors int64
	counted          int64 // the requests the gateway's usage counts
	rssMin, rssMax   int64 // sampled every second
	before, after    soak.Runtime
	firstError       string
}

// soakRun holds 500 streams for d, sampling the gateway's memory, and
// compares the requests made with what its usage counts.
func soakRun(gw *proc, adm admin, key string, d time.Duration) (soakReport, error) {
	r := soakReport{d: d, rssMin: 1 << 62}
	counted := func() (int64, error) {
		b, err := adm.do("GET", "/admin/api/usage", nil)
		if err != nil {
			return 0, err
		}
		var rep struct {
			Data []struct {
				KeyID    string `json:"key_id"`
				Model    string `json:"model"`
				Requests int64  `json:"requests"`
			} `json:"data"`
		}
		json.Unmarshal(b, &rep)
		n := int64(0)
		for _, row := range rep.Data {
			if row.Model == "bench-model" {
				n += row.Requests
			}
		}
		return n, nil
	}
	start, err := counted()
	if err != nil {
		return r, err
	}
	if r.before, err = soak.Settled(pprofAddr, 0, time.Second); err != nil {
		return r, err
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				rss, _ := gw.memory()
				r.rssMin, r.rssMax = min(r.rssMin, rss), max(r.rssMax, rss)
			}
		}
	}()
	res := soak.Streams(context.Background(), gw.url, key, "bench-model", 500, d)
	close(done)
	r.requests, r.errors, r.firstError = res.Requests, res.Errors, res.FirstError
	if r.after, err = soak.Settled(pprofAddr, r.before.Goroutines+2*64, 10*time.Second); err != nil {
		return r, err
	}
	end, err := counted()
	r.counted = end - start
	return r, err
}
