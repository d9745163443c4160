// Command bench measures the gateway as a user's machine sees it:
// separate processes (a fake upstream, a plain httputil.ReverseProxy as
// the floor, the local gateway with authentication, limits, usage
// recording, memory and its access log on), loaded by wrk, the CPU each
// process spends per request read from /proc, proxy and gateway runs
// alternated (A B A B) so that drift cancels. It prints a table of each
// figure and its ratio to the floor, and writes BENCHMARKS.md.
//
//	make bench            # go run ./internal/bench -out BENCHMARKS.md
//	go run ./internal/bench -rounds 1 -duration 3s   # a quick look
//
// The roles "upstream" and "proxy" are this program run again.
package main

import (
	"flag"
	"os"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "upstream":
			fail(serveUpstream("127.0.0.1:0"))
		case "proxy":
			fail(serveProxy("127.0.0.1:0", os.Args[2]))
		}
	}
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "proxy/gateway pairs of each loaded figure")
	flag.DurationVar(&o.duration, "duration", 8*time.Second, "each wrk run")
	flag.IntVar(&o.conns, "conns", 32, "connections of the loaded runs")
	flag.IntVar(&o.serial, "serial", 1500, "requests of each one-at-a-time measure")
	flag.StringVar(&o.out, "out", "", "write the report here (BENCHMARKS.md)")
	flag.BoolVar(&o.rag, "rag", true, "also run the retrieval benchmark")
	flag.DurationVar(&o.soak, "soak", time.Minute, "then hold 500 streams this long (0: no soak)")
	flag.StringVar(&o.profile, "profile", "", "instead, profile the gateway under load: plain, stream, responses or messages (writes cpu.pprof and heap.pprof)")
	flag.Parse()
	if err := run(o); err != nil {
		fail(err)
	}
}
