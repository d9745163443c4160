//go:build js && wasm

// Command cloudflare is the gateway as one Cloudflare Worker: every route
// of the routing table, on the bindings AI_KV (Workers KV), AI_DB (D1) and
// AI_R2 (R2), with outbound calls through the Fetch API.
//
// The shim (syumai/workers) starts a fresh Go instance for each request and
// ends it when the answer's body closes, so the gateway opens per request
// (no heavy work at start-up) and everything a request writes (usage,
// conversations, ingestion) is written before its answer ends.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"syscall/js"
	"time"

	"github.com/syumai/workers/cloudflare/cron"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/app/chatfn"
	"github.com/aigateway/aigateway/shared/app/imagefn"
	"github.com/aigateway/aigateway/shared/app/uploadfn"
	"github.com/aigateway/aigateway/shared/cloudflare"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsgateway"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/sqlstore"
)

// The bindings, named as the JavaScript gateway named them.
const (
	bindingKV = "AI_KV"
	bindingDB = "AI_DB"
	bindingR2 = "AI_R2"
)

func main() {
	bindFetch()
	setEnv()
	h, store, err := open()
	if err != nil {
		slog.Error("the gateway cannot start", "err", err)
		h = unavailable(err)
	}
	cron.ScheduleTaskNonBlock(func(ctx context.Context) error {
		if store == nil {
			return err
		}
		return store.Sweep(ctx)
	})
	cloudflare.Serve(h)
}

// bindFetch binds fetch to the global object. The shim hands Go a proxy of
// it as js.Global(), and net/http calls js.Global().Call("fetch", …): with
// the proxy as this, which workerd refuses ("Illegal invocation").
func bindFetch() {
	global := js.Global().Get("globalThis")
	js.Global().Set("fetch", global.Get("fetch").Call("bind", global))
}

// setEnv makes the Worker's variables and secrets the process environment
// that app.Load reads.
func setEnv() {
	env := js.Global().Get("context").Get("env")
	entries := js.Global().Get("Object").Call("entries", env)
	for i := range entries.Length() {
		kv := entries.Index(i)
		if v := kv.Index(1); v.Type() == js.TypeString {
			os.Setenv(kv.Index(0).String(), v.String())
		}
	}
}

// open assembles the gateway on the bindings.
func open() (http.Handler, *sqlstore.Store, error) {
	cfg, err := app.Load()
	if err != nil {
		return nil, nil, err
	}
	app.SetupLogging(cfg)
	if cfg.MasterKey == "" {
		return nil, nil, fmt.Errorf("the Worker has no GATEWAY_MASTER_KEY secret; set one with: wrangler secret put GATEWAY_MASTER_KEY")
	}
	master, err := seal.ParseKey(cfg.MasterKey)
	if err != nil {
		return nil, nil, fmt.Errorf("GATEWAY_MASTER_KEY: %w", err)
	}
	store, db, err := cloudflare.OpenD1(bindingDB)
	if err != nil {
		return nil, nil, err
	}
	kv, r2 := js.Global().Get("context").Get("env").Get(bindingKV), js.Global().Get("context").Get("env").Get(bindingR2)
	if kv.IsUndefined() || r2.IsUndefined() {
		return nil, nil, fmt.Errorf("the Worker needs the bindings %s (KV), %s (D1) and %s (R2); see wrangler.toml", bindingKV, bindingDB, bindingR2)
	}
	stores := app.Stores{KV: cloudflare.NewKV(kv), Records: store.Records(), Blobs: cloudflare.NewBlobs(r2)}
	g, err := app.Assemble(cfg, stores, master,
		app.Extras{
			Metrics: metrics.Nop{},
			// The Fetch API: a client with no dialer of its own.
			HTTP:       &http.Client{},
			ImageFetch: &http.Client{Timeout: 30 * time.Second},
			// The index version is in D1: a new document is searchable at
			// once everywhere, and bulk ingestion is not held to Workers
			// KV's one write a second per key.
			IndexKV: store.KV(),
			// The JavaScript gateway ran on the same bindings: setup
			// offers to import what it left (read only).
			Legacy: &jsgateway.Source{KV: stores.KV, Files: jsgateway.SQLFiles{DB: db}, Blobs: stores.Blobs},
		},
		chatfn.Part, uploadfn.Part, adminfn.Part, imagefn.Part)
	if err != nil {
		return nil, nil, err
	}
	h := g.Handler()
	if extraRoutes != nil {
		mux := http.NewServeMux()
		extraRoutes(mux)
		mux.Handle("/", h)
		h = mux
	}
	return h, store, nil
}

// extraRoutes adds the routes of a test build (conformance.go).
var extraRoutes func(*http.ServeMux)

// unavailable answers every request with 503 and why.
func unavailable(err error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		respond.Error(w, r, &gateway.Error{Code: gateway.EUnavailable, Message: "The gateway cannot start: " + err.Error()})
	})
}
