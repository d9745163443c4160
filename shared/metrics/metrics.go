// Package metrics records request and token metrics. On AWS they are lines
// in CloudWatch Embedded Metric Format on stdout, which CloudWatch Logs
// turns into metrics with no API call and no extra latency.
package metrics

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Recorder records metrics. Implementations are safe for concurrent use.
type Recorder interface {
	// Request records one HTTP request served by function fn.
	Request(fn string, status int, latency time.Duration)
	// Chat records one chat completion of a public model, with the tokens
	// the upstream reported (zero when it reported none).
	Chat(model string, status int, latency time.Duration, promptTokens, completionTokens int64)
	// CacheLookup records a request of a model with an exact response
	// cache: answered from it (hit) or not.
	CacheLookup(model string, hit bool)
}

// Nop records nothing.
type Nop struct{}

// Request implements Recorder.
func (Nop) Request(string, int, time.Duration) {}

// Chat implements Recorder.
func (Nop) Chat(string, int, time.Duration, int64, int64) {}

// CacheLookup implements Recorder.
func (Nop) CacheLookup(string, bool) {}

// Namespace is the CloudWatch namespace of the gateway's metrics.
const Namespace = "AIGateway"

// EMF writes each record as one line of CloudWatch Embedded Metric Format.
type EMF struct {
	mu  sync.Mutex
	w   io.Writer
	now func() time.Time
}

// NewEMF returns an EMF recorder writing to w (stdout on Lambda).
func NewEMF(w io.Writer) *EMF { return &EMF{w: w, now: time.Now} }

type metric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type directive struct {
	Namespace  string     `json:"Namespace"`
	Dimensions [][]string `json:"Dimensions"`
	Metrics    []metric   `json:"Metrics"`
}

func (e *EMF) write(dims [][]string, metrics []metric, fields map[string]any) {
	fields["_aws"] = map[string]any{
		"Timestamp":         e.now().UnixMilli(),
		"CloudWatchMetrics": []directive{{Namespace: Namespace, Dimensions: dims, Metrics: metrics}},
	}
	line, err := json.Marshal(fields)
	if err != nil {
		return
	}
	line = append(line, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(line)
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Request implements Recorder: Requests, ClientErrors (4xx), Errors (5xx)
// and Latency by Function.
func (e *EMF) Request(fn string, status int, latency time.Duration) {
	e.write([][]string{{"Function"}},
		[]metric{{"Requests", "Count"}, {"ClientErrors", "Count"}, {"Errors", "Count"}, {"Latency", "Milliseconds"}},
		map[string]any{"Function": fn, "Requests": 1, "ClientErrors": flag(status >= 400 && status < 500),
			"Errors": flag(status >= 500), "Latency": float64(latency.Microseconds()) / 1000, "Status": status})
}

// Chat implements Recorder: ChatRequests, ChatErrors, ChatLatency,
// PromptTokens and CompletionTokens by Model.
func (e *EMF) Chat(model string, status int, latency time.Duration, prompt, completion int64) {
	e.write([][]string{{"Model"}},
		[]metric{{"ChatRequests", "Count"}, {"ChatErrors", "Count"}, {"ChatLatency", "Milliseconds"},
			{"PromptTokens", "Count"}, {"CompletionTokens", "Count"}},
		map[string]any{"Model": model, "ChatRequests": 1, "ChatErrors": flag(status >= 500),
			"ChatLatency": float64(latency.Microseconds()) / 1000, "PromptTokens": prompt, "CompletionTokens": completion})
}

// CacheLookup implements Recorder: CacheHits and CacheMisses by Model.
func (e *EMF) CacheLookup(model string, hit bool) {
	e.write([][]string{{"Model"}}, []metric{{"CacheHits", "Count"}, {"CacheMisses", "Count"}},
		map[string]any{"Model": model, "CacheHits": flag(hit), "CacheMisses": flag(!hit)})
}
