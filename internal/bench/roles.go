package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"time"
)

// The fake upstream's answers: an OpenAI chat completion, and a stream of
// streamEvents chunks (with a usage chunk when the request asks for one).
const streamEvents = 20

var (
	answer = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1764300000,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I am a benchmark answer of a typical short length, about thirty tokens, so that the relay's cost shows."},"finish_reason":"stop"}],"usage":{"prompt_tokens":61,"completion_tokens":27,"total_tokens":88}}`)
	events [][]byte
	usage  = []byte(`data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764300000,"model":"bench-model","choices":[],"usage":{"prompt_tokens":61,"completion_tokens":20,"total_tokens":81}}` + "\n\n")
	done   = []byte("data: [DONE]\n\n")
)

func init() {
	for i := range streamEvents {
		finish := "null"
		if i == streamEvents-1 {
			finish = `"stop"`
		}
		events = append(events, fmt.Appendf(nil, `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1764300000,"model":"bench-model","choices":[{"index":0,"delta":{"content":"token%02d "},"finish_reason":%s}]}`+"\n\n", i, finish))
	}
}

// serveUpstream is the fake upstream: POST …/chat/completions answers at
// once, or streams; the model "bench-paced" paces its events 2 ms apart
// (for the time to first byte). It is its own process, so that its work
// is not the gateway's.
func serveUpstream(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("http://" + ln.Addr().String())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			if strings.HasSuffix(r.URL.Path, "/models") {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"object":"list","data":[{"id":"bench-model","object":"model"}]}`)
				return
			}
			http.NotFound(w, r)
			return
		}
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
			return
		}
		paced := bytes.Contains(body, []byte(`"model":"bench-paced"`))
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		rc := http.NewResponseController(w)
		for _, ev := range events {
			if paced {
				time.Sleep(2 * time.Millisecond)
			}
			w.Write(ev)
			if paced {
				rc.Flush()
			}
		}
		if bytes.Contains(body, []byte(`"include_usage":true`)) {
			w.Write(usage)
		}
		w.Write(done)
	}))
}

// serveProxy is the floor: a plain httputil.ReverseProxy to target, as
// one would write it, flushing streams as they come.
func serveProxy(addr, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	p := httputil.NewSingleHostReverseProxy(u)
	p.FlushInterval = -1
	p.ErrorLog = log.New(io.Discard, "", 0) // a client wrk leaves at the end is no news
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("http://" + ln.Addr().String())
	return http.Serve(ln, p)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
