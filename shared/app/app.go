package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/aigateway/aigateway/shared/admin"
	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/chat"
	"github.com/aigateway/aigateway/shared/disk"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/sqlite"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/upstream"
)

// Gateway is the assembled gateway: its stores, services and handlers.
type Gateway struct {
	Chat  http.Handler
	Admin http.Handler
	cors  []string
	close []io.Closer
}

// stores are the three storage roles of one backend.
type stores struct {
	kv      storage.KV
	records storage.Records
	blobs   storage.Blobs
	closers []io.Closer
}

// openLocal opens the embedded store in the data folder.
func openLocal(ctx context.Context, dir string) (stores, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return stores{}, fmt.Errorf("create data folder: %w", err)
	}
	db, err := sqlite.Open(ctx, filepath.Join(dir, "gateway.db"))
	if err != nil {
		return stores{}, err
	}
	blobs, err := disk.New(filepath.Join(dir, "blobs"))
	if err != nil {
		db.Close()
		return stores{}, err
	}
	return stores{kv: db.KV(), records: db.Records(), blobs: blobs, closers: []io.Closer{db}}, nil
}

// masterKey returns the configured master key, or the local key file's.
func masterKey(cfg Config) ([]byte, error) {
	if cfg.MasterKey != "" {
		k, err := seal.ParseKey(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_MASTER_KEY: %w", err)
		}
		return k, nil
	}
	return seal.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, "master.key"))
}

// Open assembles the gateway on the embedded store of cfg.DataDir.
func Open(ctx context.Context, cfg Config) (*Gateway, error) {
	st, err := openLocal(ctx, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	g, err := assemble(cfg, st)
	if err != nil {
		for _, c := range st.closers {
			c.Close()
		}
		return nil, err
	}
	return g, nil
}

func assemble(cfg Config, st stores) (*Gateway, error) {
	key, err := masterKey(cfg)
	if err != nil {
		return nil, err
	}
	box, err := seal.New(key)
	if err != nil {
		return nil, err
	}
	ks := keys.New(st.records, cfg.CacheTTL)
	set := settings.New(st.kv, box, cfg.CacheTTL)
	guard := auth.New(st.records, box.Derive("session"), box.Derive("csrf"))
	up := upstream.New(cfg.Upstream)
	return &Gateway{
		Chat:  chat.New(ks, set, up, cfg.MaxBody),
		Admin: admin.New(guard, ks, set, cfg.MaxBody),
		cors:  cfg.CORSOrigins,
		close: st.closers,
	}, nil
}

// Close releases the gateway's stores.
func (g *Gateway) Close() error {
	var errs []error
	for _, c := range g.close {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Function names one deployable function; each route belongs to one.
type Function string

// The four functions of the serverless deployment.
const (
	FnChat   Function = "chat"
	FnUpload Function = "upload"
	FnAdmin  Function = "admin"
	FnImage  Function = "image"
)

// Route is one path pattern of the HTTP contract and the function that
// serves it.
type Route struct {
	Pattern  string
	Function Function
}

// Routes is the HTTP contract's routing table: every target mounts it (the
// local server whole, each Lambda its own part, the SAM template as API
// events).
var Routes = []Route{
	{"/v1/chat/completions", FnChat},
	{"/v1/models", FnChat},
	{"/{$}", FnAdmin},
	{"/setup", FnAdmin},
	{"/admin", FnAdmin},
	{"/admin/api/", FnAdmin},
}

func (g *Gateway) handlerOf(fn Function) http.Handler {
	switch fn {
	case FnChat:
		return g.Chat
	case FnAdmin:
		return g.Admin
	}
	return nil
}

// Handler returns the handler serving the routes of fns (all routes when
// fns is empty), /healthz, and JSON 404s for everything else.
func (g *Gateway) Handler(fns ...Function) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		if len(fns) > 0 && !containsFn(fns, rt.Function) {
			continue
		}
		if h := g.handlerOf(rt.Function); h != nil {
			mux.Handle(rt.Pattern, h)
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		respond.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", respond.NotFound)
	return middleware(cors(g.cors, mux))
}

func containsFn(fns []Function, fn Function) bool {
	for _, f := range fns {
		if f == fn {
			return true
		}
	}
	return false
}

// Lazy returns a handler that assembles the gateway on its first request and
// serves the routes of fns. Lambda functions use it so that nothing heavy
// runs at init; a failed assembly answers 503 and is tried again on the next
// request.
func Lazy(cfg Config, fns ...Function) http.Handler {
	var (
		mu    sync.Mutex
		ready atomic.Pointer[http.Handler]
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := ready.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		mu.Lock()
		h := ready.Load()
		if h == nil {
			g, err := Open(r.Context(), cfg)
			if err != nil {
				mu.Unlock()
				respond.Error(w, r, unavailable(err))
				return
			}
			gh := g.Handler(fns...)
			h = &gh
			ready.Store(h)
		}
		mu.Unlock()
		(*h).ServeHTTP(w, r)
	})
}
