// Package soak holds many streams open against a gateway for a while,
// counting exactly the requests it made, and reads the gateway's own
// count of goroutines and heap (through GATEWAY_PPROF_ADDR) to see them
// come back down: the soak of the benchmarks and of the tests.
package soak

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what a soak did.
type Result struct {
	// Requests were answered whole (a stream that ended with [DONE]);
	// Errors were not.
	Requests, Errors int64
	// FirstError is the first failure seen, if any.
	FirstError string
}

// Streams holds conns streaming chat requests against base with key for
// d: each connection sends one request after another, and a request under
// way when d ends is finished, so that every request counted is whole.
func Streams(ctx context.Context, base, key, model string, conns int, d time.Duration) Result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	body := fmt.Sprintf(`{"model":%q,"stream":true,"messages":[{"role":"user","content":"Count to twenty, please."}]}`, model)
	var res Result
	var once sync.Once
	var ok, failed atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := stream(ctx, client, base, key, body); err != nil {
					failed.Add(1)
					once.Do(func() { res.FirstError = err.Error() })
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	res.Requests, res.Errors = ok.Load(), failed.Load()
	return res
}

func stream(ctx context.Context, client *http.Client, base, key, body string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if bytes.Equal(sc.Bytes(), []byte("data: [DONE]")) {
			io.Copy(io.Discard, resp.Body)
			return nil
		}
	}
	return fmt.Errorf("a stream without [DONE]: %v", sc.Err())
}

// Runtime is what the gateway's profile endpoint says of its runtime.
type Runtime struct {
	Goroutines int
	HeapInuse  int64
}

var (
	goroutines = regexp.MustCompile(`goroutine profile: total (\d+)`)
	heapInuse  = regexp.MustCompile(`# HeapInuse = (\d+)`)
)

// Read asks the profile endpoint at addr (GATEWAY_PPROF_ADDR) for the
// goroutines and, after a collection, the heap in use.
func Read(addr string) (Runtime, error) {
	get := func(path string) (string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	var rt Runtime
	g, err := get("/debug/pprof/goroutine?debug=1")
	if err != nil {
		return rt, err
	}
	// Two collections: the first only moves sync.Pool's contents aside.
	if _, err := get("/debug/pprof/heap?debug=1&gc=1"); err != nil {
		return rt, err
	}
	h, err := get("/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return rt, err
	}
	m, n := goroutines.FindStringSubmatch(g), heapInuse.FindStringSubmatch(h)
	if m == nil || n == nil {
		return rt, fmt.Errorf("the profile endpoint at %s answered no goroutines or heap", addr)
	}
	rt.Goroutines, _ = strconv.Atoi(m[1])
	rt.HeapInuse, _ = strconv.ParseInt(n[1], 10, 64)
	return rt, nil
}

// Settled reads the runtime until its goroutines are back to at most
// want, or within elapses; it returns the last reading.
func Settled(addr string, want int, within time.Duration) (Runtime, error) {
	end := time.Now().Add(within)
	for {
		rt, err := Read(addr)
		if err != nil || rt.Goroutines <= want || time.Now().After(end) {
			return rt, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
