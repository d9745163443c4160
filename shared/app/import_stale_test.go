package app_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aigateway/aigateway/internal/testkit/fakeupstream"
	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/app/chatfn"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/uploadfn"
	"github.com/aigateway/aigateway/shared/jsgateway"
	"github.com/aigateway/aigateway/shared/memstore"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/storage"
)

// hookKeys runs during the owner's setup, after its settings were saved and
// before its first key fails.
type hookKeys struct {
	storage.Records
	during func()
	fail   *atomic.Bool
}

func (f hookKeys) Put(ctx context.Context, it storage.Item, c storage.Cond) (int64, error) {
	if f.fail.Load() && it.PK == "apikey" {
		f.during()
		return 0, storage.Unavailable("put", errors.New("injected"))
	}
	return f.Records.Put(ctx, it, c)
}

// TestSetupStartsFromTheDefaults: a setup with import fails on instance
// A while a stranger's setup on instance B reads the settings (its claim
// lost, 409); after A undoes itself, the stranger's setup on B must not
// start from B's cached copy of the imported settings.
func TestSetupStartsFromTheDefaults(t *testing.T) {
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(nil)
	for k, v := range ownerConfig("https://api.owner.example") {
		mem.KV().Put(context.Background(), k, []byte(v))
	}
	mem.KV().Put(context.Background(), "SYSTEM_CONFIG", []byte(`{"systemPrompt":"OWNER-PRIVATE-PROMPT"}`))
	evil := fakeupstream.New(t)
	stranger := `{` + setupPassword + `,"ai":{"base_url":"` + evil.URL + `","api_key":"x","model":"m"}}`
	src := &jsgateway.Source{KV: mem.KV(), Blobs: mem.Blobs()}
	mk := func(rec storage.Records) http.Handler {
		g, err := app.Assemble(cfg, app.Stores{KV: mem.KV(), Records: rec, Blobs: mem.Blobs()}, make([]byte, 32),
			app.Extras{Metrics: metrics.Nop{}, Legacy: src}, chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		return g.Handler()
	}
	b := mk(mem.Records())
	fail := new(atomic.Bool)
	fail.Store(true)
	a := mk(hookKeys{Records: mem.Records(), fail: fail, during: func() {
		if rec := do(b, "POST", "/admin/api/setup", "", stranger); rec.Code != http.StatusConflict {
			t.Errorf("stranger during the owner's setup = %d %s", rec.Code, rec.Body)
		}
	}})
	rec := do(a, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+ownerUpstreamKey+`"}}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("owner's setup = %d %s", rec.Code, rec.Body)
	}
	fail.Store(false)
	if rec = do(b, "POST", "/admin/api/setup", "", stranger); rec.Code != http.StatusCreated {
		t.Fatalf("stranger's setup = %d %s", rec.Code, rec.Body)
	}
	rec = signIn(t, b).call("GET", "/admin/api/settings", "")
	if strings.Contains(rec.Body.String(), "owner.example") || strings.Contains(rec.Body.String(), "OWNER-PRIVATE-PROMPT") {
		t.Fatalf("the stranger's gateway holds the owner's imported settings: %s", rec.Body)
	}
}
