package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/models"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/upstream"
	"github.com/aigateway/aigateway/shared/usage"
)

// Core is what the functions share: the stores, the sealing box, keys,
// settings, public models, usage, admin sessions, conversations, the
// upstream client and metrics. Each function's Part builds its handler on
// it.
type Core struct {
	Config        Config
	Stores        Stores
	Extras        Extras
	Box           *seal.Box
	Keys          *keys.Service
	Settings      *settings.Store
	Models        *models.Store
	Meter         Meter
	Guard         *auth.Guard
	Conversations *conversations.Store
	Upstream      *upstream.Client
	Metrics       metrics.Recorder
	closers       []io.Closer

	sharedMu sync.Mutex
	shared   map[string]any
}

// Shared returns the value made once per gateway under name, making it
// with make the first time: what two parts of one process share (the chat
// and upload functions' knowledge-base index, and its memory).
func (c *Core) Shared(name string, make func() any) any {
	c.sharedMu.Lock()
	defer c.sharedMu.Unlock()
	if v, ok := c.shared[name]; ok {
		return v
	}
	if c.shared == nil {
		c.shared = map[string]any{}
	}
	v := make()
	c.shared[name] = v
	return v
}

// Meter admits requests under their key's limits, records usage and sums
// it up.
type Meter interface {
	Admit(ctx context.Context, key gateway.APIKey, reserve int64) (usage.Reservation, error)
	Release(ctx context.Context, res usage.Reservation)
	Extend(ctx context.Context, res *usage.Reservation, key gateway.APIKey, more int64) error
	Record(ctx context.Context, r usage.Record) error
	Summary(ctx context.Context, f usage.Filter) ([]usage.Row, error)
}

// OnClose has the gateway close c when it closes, before whatever was
// registered earlier (the stores last).
func (c *Core) OnClose(cl io.Closer) { c.closers = append([]io.Closer{cl}, c.closers...) }

// Part is one function of the gateway: the routes it serves, built on the
// core. Each Lambda links only its own part; the local server links all.
type Part struct {
	Function Function
	Build    func(c *Core) (http.Handler, error)
}

// Gateway is the assembled gateway: its core and the handlers of its
// parts.
type Gateway struct {
	core     *Core
	handlers map[Function]http.Handler
}

// Stores are the three storage roles of one backend, and what to close
// when the gateway closes.
type Stores struct {
	KV      storage.KV
	Records storage.Records
	Blobs   storage.Blobs
	Closers []io.Closer
}

// Extras are what a target adds to its stores.
type Extras struct {
	// Metrics records request and token metrics.
	Metrics metrics.Recorder
	// UsageEvery, when not zero, writes usage in batches at this interval
	// (a long-running process); zero writes it within each request.
	UsageEvery time.Duration
	// SingleProcess is a long-running process that is the whole gateway
	// (the local server): direct uploads are ingested in the background
	// after answering, and ingestions a stop interrupted are failed at
	// start-up, since none can still be running.
	SingleProcess bool
	// HTTP is the client of every call to an upstream (chat, embeddings,
	// rerank, images) and ImageFetch the one that fetches the images an
	// upstream links to; nil means the native clients
	// (upstream.NativeClient, draw.FetchClient with its guard against
	// private addresses). A target with its own network stack passes its own.
	HTTP, ImageFetch *http.Client
}

// Assemble builds the gateway on st, with master as the master key, from
// parts.
func Assemble(cfg Config, st Stores, master []byte, ex Extras, parts ...Part) (*Gateway, error) {
	box, err := seal.New(master)
	if err != nil {
		return nil, err
	}
	c := &Core{Config: cfg, Stores: st, Extras: ex, Box: box, closers: st.Closers,
		Keys:          keys.New(st.Records, cfg.CacheTTL),
		Settings:      settings.New(st.KV, box, cfg.CacheTTL),
		Models:        models.New(st.Records, cfg.CacheTTL),
		Meter:         usage.New(st.Records),
		Guard:         auth.New(st.Records, box.Derive("session"), box.Derive("csrf")),
		Conversations: conversations.New(st.Records, st.Blobs),
		Upstream:      upstream.New(cfg.Upstream, ex.HTTP),
		Metrics:       ex.Metrics,
	}
	if ex.UsageEvery > 0 {
		buf := usage.NewBuffer(usage.New(st.Records), ex.UsageEvery)
		c.Meter = buf
		c.OnClose(buf) // written before the stores close
	}
	if c.Metrics == nil {
		c.Metrics = metrics.Nop{}
	}
	g := &Gateway{core: c, handlers: map[Function]http.Handler{}}
	for _, p := range parts {
		h, err := p.Build(c)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("build the %s function: %w", p.Function, err)
		}
		g.handlers[p.Function] = h
	}
	return g, nil
}

// Part returns the handler that the part of fn built, or nil.
func (g *Gateway) Part(fn Function) http.Handler { return g.handlers[fn] }

// Close releases the gateway's stores, after what its parts registered.
func (g *Gateway) Close() error {
	var errs []error
	for _, c := range g.core.closers {
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
// local server whole, each Lambda its own part), and the SAM template's API
// must agree with it (a test checks). A route whose function is not part
// of the gateway answers 404.
var Routes = []Route{
	{"/v1/chat/completions", FnChat},
	{"/v1/models", FnChat},
	{"/v1/embeddings", FnChat},
	{"/v1/conversations", FnChat},
	{"/v1/conversations/", FnChat},
	{"/v1/images/generations", FnImage},
	{"/files/", FnImage},
	{"/admin/api/documents", FnUpload},
	{"/admin/api/documents/", FnUpload},
	{"/{$}", FnAdmin},
	{"/setup", FnAdmin},
	{"/admin", FnAdmin},
	{"/admin/assets/", FnAdmin},
	{"/admin/api/", FnAdmin},
}

// Handler returns the handler serving the routes of fns (all routes when
// fns is empty), /healthz, and JSON 404s for everything else.
func (g *Gateway) Handler(fns ...Function) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range Routes {
		if len(fns) > 0 && !containsFn(fns, rt.Function) {
			continue
		}
		if h := g.handlers[rt.Function]; h != nil {
			mux.Handle(rt.Pattern, h)
		}
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		respond.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", respond.NotFound)
	label := "all"
	if len(fns) == 1 {
		label = string(fns[0])
	}
	return middleware(label, g.core.Metrics, cors(g.core.Config.CORSOrigins, mux))
}

func containsFn(fns []Function, fn Function) bool {
	for _, f := range fns {
		if f == fn {
			return true
		}
	}
	return false
}

// Lazy opens the gateway on its first use and serves the routes of some
// functions. Lambda functions use it so that nothing heavy runs at init; a
// failed open answers 503 and is tried again on the next request.
type Lazy struct {
	open func(context.Context) (*Gateway, error)
	fns  []Function

	mu    sync.Mutex
	ready atomic.Pointer[lazyReady]
}

type lazyReady struct {
	g *Gateway
	h http.Handler
}

// NewLazy returns a Lazy over open serving the routes of fns.
func NewLazy(open func(context.Context) (*Gateway, error), fns ...Function) *Lazy {
	return &Lazy{open: open, fns: fns}
}

// Gateway returns the gateway, opening it if needed.
func (l *Lazy) Gateway(ctx context.Context) (*Gateway, error) {
	r, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return r.g, nil
}

func (l *Lazy) get(ctx context.Context) (*lazyReady, error) {
	if r := l.ready.Load(); r != nil {
		return r, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if r := l.ready.Load(); r != nil {
		return r, nil
	}
	g, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	r := &lazyReady{g: g, h: g.Handler(l.fns...)}
	l.ready.Store(r)
	return r, nil
}

// ServeHTTP implements http.Handler.
func (l *Lazy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ready, err := l.get(r.Context())
	if err != nil {
		respond.Error(w, r, unavailable(err))
		return
	}
	ready.h.ServeHTTP(w, r)
}
