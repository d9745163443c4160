package main

import (
	"fmt"
	"strings"
	"time"
)

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func ratio(a, b float64) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

// markdown is the report: the machine, how it was measured, the table.
func (r report) markdown() string {
	var b strings.Builder
	o := r.o
	fmt.Fprintf(&b, "# Benchmarks\n\n")
	fmt.Fprintf(&b, "Measured %s by `make bench` (`go run ./internal/bench -out BENCHMARKS.md`) on: %s.\n\n", time.Now().UTC().Format("2006-01-02"), r.machine)
	fmt.Fprintf(&b, "Three processes on loopback: a fake OpenAI upstream answering from memory, "+
		"a plain `httputil.ReverseProxy` in front of it (**the floor**), and the local gateway in front of it "+
		"(SQLite store; a key with RPM and TPM limits, usage recording, server-side memory and the access log on). "+
		"wrk (`-t1 -c%d -d%s`) loads one at a time, proxy and gateway alternating for %d rounds so that drift cancels; "+
		"the CPU time of the process under load comes from `/proc/<pid>/stat` (user + system, including the usage writes "+
		"that settle after the run) and is divided by the requests answered; peak RSS is `VmHWM`, reset before each run. "+
		"The requests are a chat of a system prompt and a question (about 60 tokens) answered by about 30 tokens, "+
		"or streamed as %d events.\n\n", o.conns, o.duration, o.rounds, streamEvents)
	b.WriteString("| figure | direct | floor (proxy) | gateway | gateway ÷ floor |\n|---|---|---|---|---|\n")
	for _, f := range []struct {
		name string
		l    [3]loaded
	}{{"plain answers", r.plain}, {fmt.Sprintf("%d-event streams", streamEvents), r.stream}} {
		d, p, g := f.l[0], f.l[1], f.l[2]
		fmt.Fprintf(&b, "| %s: CPU per request | — | %.0f µs | %.0f µs | **%s** |\n", f.name, p.perRequest(), g.perRequest(), ratio(g.perRequest(), p.perRequest()))
		fmt.Fprintf(&b, "| %s: requests/s at %d connections | %.0f | %.0f | %.0f | %s |\n", f.name, o.conns, d.meanRPS(), p.meanRPS(), g.meanRPS(), ratio(g.meanRPS(), p.meanRPS()))
		fmt.Fprintf(&b, "| %s: latency p50 / p99 | %s / %s | %s / %s | %s / %s | %s |\n", f.name, ms(d.meanP50()), ms(d.meanP99()),
			ms(p.meanP50()), ms(p.meanP99()), ms(g.meanP50()), ms(g.meanP99()), ratio(float64(g.meanP50()), float64(p.meanP50())))
		fmt.Fprintf(&b, "| %s: peak RSS | — | %s | %s | %s |\n", f.name, mb(p.peak), mb(g.peak), ratio(float64(g.peak), float64(p.peak)))
	}
	fmt.Fprintf(&b, "| Responses API (`/v1/responses`, stored): CPU per request | — | %.0f µs (chat) | %.0f µs | %s |\n", r.plain[1].perRequest(), r.responses.perRequest(), ratio(r.responses.perRequest(), r.plain[1].perRequest()))
	fmt.Fprintf(&b, "| Responses API (`store: false`): CPU per request | — | %.0f µs (chat) | %.0f µs | %s |\n", r.plain[1].perRequest(), r.unstored.perRequest(), ratio(r.unstored.perRequest(), r.plain[1].perRequest()))
	fmt.Fprintf(&b, "| Messages API (`/v1/messages`): CPU per request | — | %.0f µs (chat) | %.0f µs | %s |\n", r.plain[1].perRequest(), r.messages.perRequest(), ratio(r.messages.perRequest(), r.plain[1].perRequest()))
	fmt.Fprintf(&b, "| idle RSS | — | %s | %s | %s |\n", mb(r.idleProxy), mb(r.idleGateway), ratio(float64(r.idleGateway), float64(r.idleProxy)))
	fmt.Fprintf(&b, "| one request in flight: added latency p50 / p99 | — | %s / %s | %s / %s | **%s** |\n", us(r.addedProxy[0]), us(r.addedProxy[1]),
		us(r.addedGateway[0]), us(r.addedGateway[1]), ratio(float64(r.addedGateway[0]), float64(r.addedProxy[0])))
	fmt.Fprintf(&b, "| added time to first byte p50 (events 2 ms apart) | — | %s | %s | %s |\n", us(r.ttfbProxy), us(r.ttfbGateway), ratio(float64(r.ttfbGateway), float64(r.ttfbProxy)))
	fmt.Fprintf(&b, "| process start to first answer (median of 5) | — | %s | %s | %s |\n", ms(r.startProxy), ms(r.startGateway), ratio(float64(r.startGateway), float64(r.startProxy)))
	if r.rag != "" {
		fmt.Fprintf(&b, "\nRetrieval (`go test ./shared/rag -run '^$' -bench Search -cpu 1 -benchtime 200x`: hybrid search over chunks of 1,024 dimensions, one core; p50/p99 per query and the heap each chunk takes):\n\n```\n%s\n```\n", r.rag)
	}
	return b.String()
}
