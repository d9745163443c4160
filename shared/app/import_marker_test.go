package app_test

import (
	"context"
	"errors"
	"net/http"
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

// ambiguousMarker stores the owner marker and then reports a failure (a
// write whose answer was lost: timeout after commit).
type ambiguousMarker struct {
	storage.Records
	armed *bool
}

func (f ambiguousMarker) Put(ctx context.Context, it storage.Item, c storage.Cond) (int64, error) {
	v, err := f.Records.Put(ctx, it, c)
	if *f.armed && it.PK == "jsimport" && it.SK == "owner" && err == nil {
		*f.armed = false
		return 0, storage.Unavailable("put", errors.New("injected: answer lost"))
	}
	return v, err
}

// TestImportProofDoesNotOutliveAFailedSetup: the record of the owner's
// proof is written, its answer lost, and setup fails: the next claimer,
// without proof, may not import.
func TestImportProofDoesNotOutliveAFailedSetup(t *testing.T) {
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(nil)
	for k, v := range ownerConfig("https://api.owner.example") {
		mem.KV().Put(context.Background(), k, []byte(v))
	}
	armed := true
	src := &jsgateway.Source{KV: mem.KV(), Blobs: mem.Blobs()}
	g, err := app.Assemble(cfg, app.Stores{KV: mem.KV(), Records: ambiguousMarker{mem.Records(), &armed}, Blobs: mem.Blobs()}, make([]byte, 32),
		app.Extras{Metrics: metrics.Nop{}, Legacy: src}, chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := g.Handler()
	rec := do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"import":{"proof":"`+ownerUpstreamKey+`"}}`)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("owner's setup = %d %s", rec.Code, rec.Body)
	}
	evil := fakeupstream.New(t)
	if rec = do(h, "POST", "/admin/api/setup", "", `{`+setupPassword+`,"ai":{"base_url":"`+evil.URL+`","api_key":"x","model":"m"}}`); rec.Code != http.StatusCreated {
		t.Fatalf("stranger's setup = %d %s", rec.Code, rec.Body)
	}
	rec = signIn(t, h).call("POST", "/admin/api/documents/import", "")
	if rec.Code == http.StatusOK {
		t.Errorf("the stranger imports without proof: %s", rec.Body)
	}
	if rec = do(h, "GET", "/v1/models", oldClientKey, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("an old client key works on the stranger's gateway: %d", rec.Code)
	}
}
