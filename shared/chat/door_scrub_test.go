package chat

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aigateway/aigateway/internal/testkit/sqlitetest"
	"github.com/aigateway/aigateway/shared/channels"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/responses"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/upstream"
)

const (
	keyShown  = "sk-first-AAAAAAAAAAAAAAAAAAAAAAAAAAAA" // what the settings view shows (first key)
	keySecond = "sk-second-BBBBBBBBBBBBBBBBBBBBBBBBBBB"
)

// An upstream that refuses the first key and, with any other, answers 200
// quoting the key it was sent (as some proxies do in debug fields).
func echoUpstream(t *testing.T) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if key == keyShown {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":{"message":"bad key","type":"invalid_api_key"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/completions") && !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			fmt.Fprintf(w, `{"id":"x","object":"text_completion","choices":[{"index":0,"text":"debug: key=%s","finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, key)
			return
		}
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"debug: key=%s"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`, key)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestTheAnsweringKeyIsScrubbed: through a channel whose first key is
// refused, the key that answered is the one scrubbed from the answer, on
// chat and on the legacy completions.
func TestTheAnsweringKeyIsScrubbed(t *testing.T) {
	up := echoUpstream(t)
	box, _ := seal.New(make([]byte, 32))
	recs := sqlitetest.Open(t).Records()
	store := channels.New(recs, box, 0)
	if _, err := store.Create(context.Background(), gateway.Channel{ID: "ch_main", Name: "main", BaseURL: up.URL,
		APIKeys: []gateway.Secret{keyShown, keySecond}, Models: []string{"*"}, Capabilities: []string{"chat"}, Weight: 1, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	router := channels.NewRouter(store, channels.NewHealth(recs), 0)
	client := upstream.New(upstream.DefaultConfig(), nil)
	client.Route(router)

	st := gateway.DefaultSettings()
	st.AI = gateway.Upstream{BaseURL: up.URL, APIKey: keyShown, Model: "up-model"} // the legacy view: first key
	st.PublicModel = "pub"
	h := New(Deps{Keys: rvKeys{}, Settings: rvSettings{st}, Catalog: rvCatalog{}, Meter: &rvMeter{}, Upstream: client,
		Metrics: rvMetrics{}, ResponseStore: responses.NewStore(memstore.New(nil).Records())}, Options{MaxBody: 1 << 20, DrainTimeout: time.Second})
	mux := http.NewServeMux()
	wrap := func(f func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := f(w, r); err != nil {
				respond.Error(w, r, err)
			}
		}
	}
	mux.HandleFunc("POST /v1/chat/completions", wrap(h.Completions))
	mux.HandleFunc("POST /v1/completions", wrap(h.LegacyCompletions))
	do := func(path, body string) string {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer sk-client-a")
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return fmt.Sprint(w.Code, " ", w.Body.String())
	}
	for i := 0; i < 2; i++ {
		for path, body := range map[string]string{"/v1/chat/completions": `{"model":"pub","messages":[{"role":"user","content":"hi"}]}`,
			"/v1/completions": `{"model":"pub","prompt":"hi"}`} {
			if got := do(path, body); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, "[redacted]") || strings.Contains(got, "BBBBBBBBBB") {
				t.Fatalf("%s: %s", path, got)
			}
		}
	}
}
