package metrics_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/aigateway/aigateway/shared/metrics"
)

// TestEMFLines checks the lines against the Embedded Metric Format: a root
// _aws object with a millisecond timestamp and metric directives whose
// dimensions and metric names are top-level members of the line.
func TestEMFLines(t *testing.T) {
	var buf bytes.Buffer
	e := metrics.NewEMF(&buf)
	e.Request("chat", 502, 1500*time.Microsecond)
	e.Chat("my-bot", 200, 2*time.Second, 11, 7)
	sc := bufio.NewScanner(&buf)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	for _, l := range lines {
		aws := l["_aws"].(map[string]any)
		if ts, ok := aws["Timestamp"].(float64); !ok || ts < 1e12 {
			t.Fatalf("Timestamp = %v, want Unix milliseconds", aws["Timestamp"])
		}
		for _, d := range aws["CloudWatchMetrics"].([]any) {
			d := d.(map[string]any)
			if d["Namespace"] != metrics.Namespace {
				t.Fatalf("Namespace = %v", d["Namespace"])
			}
			for _, set := range d["Dimensions"].([]any) {
				for _, dim := range set.([]any) {
					if _, ok := l[dim.(string)].(string); !ok {
						t.Fatalf("dimension %v is not a string member of %v", dim, l)
					}
				}
			}
			for _, m := range d["Metrics"].([]any) {
				name := m.(map[string]any)["Name"].(string)
				if _, ok := l[name].(float64); !ok {
					t.Fatalf("metric %s is not a number member of %v", name, l)
				}
			}
		}
	}
	if lines[0]["Errors"] != 1.0 || lines[0]["Latency"] != 1.5 || lines[1]["PromptTokens"] != 11.0 || lines[1]["CompletionTokens"] != 7.0 {
		t.Fatalf("values = %v / %v", lines[0], lines[1])
	}
}
