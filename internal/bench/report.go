package main

import (
	"fmt"
	"strconv"
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
	b.WriteString(r.goals())
	if s := r.soak; s.d > 0 {
		exact := "exactly"
		if s.counted != s.requests {
			exact = fmt.Sprintf("**not** exactly (%d counted)", s.counted)
		}
		fmt.Fprintf(&b, "\nSoak: 500 concurrent %d-event streams for %s: %d answered, %d failed%s; the usage records count them %s. "+
			"RSS between %s and %s, sampled every second. Goroutines %d before, %d after (the upstream pool keeps up to 64 idle connections, two each); heap in use %s before, %s after.\n",
			streamEvents, s.d, s.requests, s.errors, map[bool]string{true: " (" + s.firstError + ")", false: ""}[s.errors > 0], exact,
			mb(s.rssMin), mb(s.rssMax), s.before.Goroutines, s.after.Goroutines, mb(s.before.HeapInuse), mb(s.after.HeapInuse))
	}
	if r.rag != "" {
		fmt.Fprintf(&b, "\nRetrieval (`go test ./shared/rag -run '^$' -bench Search -cpu 1 -benchtime 200x`: hybrid search over chunks of 1,024 dimensions, one core; p50/p99 per query and the heap each chunk takes):\n\n```\n%s\n```\n", r.rag)
	}
	return b.String()
}

// goals is the table of the performance goals (issue 16), each with what
// was measured and whether it is met.
func (r report) goals() string {
	var b strings.Builder
	b.WriteString("\n## Goals\n\n| figure | goal | measured | met |\n|---|---|---|---|\n")
	row := func(name, goal, got string, ok bool) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, goal, got, map[bool]string{true: "yes", false: "**no**"}[ok])
	}
	cpu := func(l [3]loaded) float64 { return l[2].perRequest() / max(l[1].perRequest(), 1) }
	row("CPU per request, plain answers", "≤ 1.5× the floor", fmt.Sprintf("%.2f×", cpu(r.plain)), cpu(r.plain) <= 1.5)
	row("CPU per request, 20-event streams", "≤ 1.5× the floor", fmt.Sprintf("%.2f×", cpu(r.stream)), cpu(r.stream) <= 1.5)
	peak := max(r.plain[2].peak, r.stream[2].peak)
	row("peak RSS at 32 connections", "≤ 40 MB", mb(peak), peak <= 40<<20)
	row("idle RSS", "≤ 20 MB", mb(r.idleGateway), r.idleGateway <= 20<<20)
	added := float64(r.addedGateway[0]) / max(float64(r.addedProxy[0]), 1)
	row("added latency, one in flight, p50", "≤ 1.2× the floor's", fmt.Sprintf("%.2f×", added), added <= 1.2)
	ttfb := float64(r.ttfbGateway) / max(float64(r.ttfbProxy), 1)
	row("added time to first byte, p50", "≤ 1.2× the floor's", fmt.Sprintf("%.2f×", ttfb), ttfb <= 1.2)
	row("start to first answer", "≤ 50 ms", ms(r.startGateway), r.startGateway <= 50*time.Millisecond)
	if p50, perChunk, ok := r.ragAt100k(); ok {
		row("retrieval, 100k chunks × 1,024 dims, one core, p50", "≤ 3 ms", fmt.Sprintf("%.2f ms", p50), p50 <= 3)
		row("retrieval memory per chunk", "≤ 2 KB", fmt.Sprintf("%.1f KB", perChunk/1024), perChunk <= 2048)
	}
	if s := r.soak; s.d > 0 {
		flat := s.rssMax <= s.rssMin*3/2+8<<20
		row(fmt.Sprintf("soak, 500 streams × %s", s.d), "0 errors, flat RSS, usage exact",
			fmt.Sprintf("%d errors, RSS %s–%s, %d made / %d counted", s.errors, mb(s.rssMin), mb(s.rssMax), s.requests, s.counted),
			s.errors == 0 && flat && s.counted == s.requests)
	}
	// Why a goal is missed, where the cause is known.
	var why []string
	if added > 1.2 || ttfb > 1.2 {
		why = append(why, "The latency of a lone request and its time to first byte: on top of the proxy's copy, the gateway's path "+
			"authenticates the key, validates and rewrites the body (system prompt, memory, asking for usage), picks a channel and "+
			"admits the request against its limits, about 100 µs of CPU more per request at one in flight, where the proxy spends "+
			"about as much in all; under load the same work is spread and the CPU ratio is within its goal. The next step is one "+
			"pass over the body for the rewrite and the router's choice cached per model.")
	}
	if p50, _, ok := r.ragAt100k(); ok && p50 > 3 {
		why = append(why, "Retrieval at 100,000 chunks: the sign-code scan reads 12.8 MB of codes per query, which is bound by "+
			"memory bandwidth on this machine (about 2.3 ms of the total); a coarse partition of the vectors (scanning the nearest "+
			"few partitions only) is the way under 3 ms.")
	}
	if len(why) > 0 {
		b.WriteString("\nWhere a goal is missed:\n\n")
		for _, w := range why {
			b.WriteString("- " + w + "\n")
		}
	}
	return b.String()
}

// ragAt100k reads the retrieval benchmark's p50 (ms) and memory per chunk
// (bytes) at 100,000 chunks.
func (r report) ragAt100k() (p50, perChunk float64, ok bool) {
	for _, line := range strings.Split(r.rag, "\n") {
		if !strings.Contains(line, "chunks=100000") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			v, err := strconv.ParseFloat(f[i-1], 64)
			if err != nil {
				continue
			}
			switch f[i] {
			case "p50-ms":
				p50 = v
			case "B/chunk":
				perChunk, ok = v, true
			}
		}
	}
	return p50, perChunk, ok
}
