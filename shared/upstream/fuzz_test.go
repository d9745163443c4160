package upstream

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"
)

// FuzzEvents reads arbitrary bytes as a server-sent event stream: it never
// panics or hangs, and every event it yields fits the event limit.
func FuzzEvents(f *testing.F) {
	for _, seed := range []string{
		"data: {\"a\":1}\n\ndata: [DONE]\n\n",
		"event: x\r\ndata: a\r\ndata: b\r\n\r\n",
		": comment\n\ndata:no-space\n\n",
		"data: unterminated",
		"\n\n\n\ndata: \n\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithCancelCause(context.Background())
		r := &Response{body: io.NopCloser(bytes.NewReader(data)), cancel: cancel, ctx: ctx, idle: time.Minute}
		r.timer = time.AfterFunc(time.Minute, func() {})
		defer r.timer.Stop()
		n := 0
		for {
			ev, err := r.Next()
			if err != nil {
				if again, err2 := r.Next(); err2 != err || again.Raw != nil {
					t.Fatalf("after %v, Next returned %q, %v", err, again.Raw, err2)
				}
				break
			}
			if len(ev.Raw) > MaxEvent+2 || len(ev.Data) > len(ev.Raw) {
				t.Fatalf("event of %d bytes (data %d)", len(ev.Raw), len(ev.Data))
			}
			n++
			if n > len(data)+1 {
				t.Fatalf("%d events from %d bytes", n, len(data))
			}
		}
	})
}
