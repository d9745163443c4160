package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/catalog"
	"github.com/aigateway/aigateway/shared/channels"
	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsgateway"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/metrics"
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
	Catalog       *catalog.Store
	Meter         Meter
	Guard         *auth.Guard
	Conversations *conversations.Store
	Upstream      *upstream.Client
	// Channels are the upstreams behind the public models, Health their
	// circuit breakers, Router what sends each upstream call to them.
	Channels *channels.Store
	Health   *channels.Health
	Router   *channels.Router
	Metrics  metrics.Recorder
	closers  []io.Closer

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
	Admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask) (gateway.Reservation, error)
	Release(ctx context.Context, res gateway.Reservation)
	Extend(ctx context.Context, res *gateway.Reservation, key gateway.APIKey, more int64) error
	Record(ctx context.Context, r gateway.UsageRecord) error
	Summary(ctx context.Context, f gateway.UsageFilter) ([]gateway.UsageRow, error)
	ChannelSummary(ctx context.Context, from, to time.Time) ([]gateway.ChannelUsageRow, error)
	EachRecord(ctx context.Context, f gateway.UsageFilter, fn func(gateway.UsageRecord) error) error
}

// OnClose has the gateway close c when it closes, before whatever was
// registered earlier (the stores last).
func (c *Core) OnClose(cl io.Closer) { c.closers = append([]io.Closer{cl}, c.closers...) }

// Part is one function of the gateway: the handlers of its routes, built
// on the core. Each Lambda links only its own part; the local server links
// all.
type Part struct {
	Function Function
	Build    func(c *Core) (Served, error)
}

// Gateway is the assembled gateway: its core, the handler of each route
// ("METHOD pattern") its parts serve, and the values behind them.
type Gateway struct {
	core   *Core
	routes map[string]HandlerFunc
	values map[Function]any
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
	// IndexKV, when set, holds the knowledge bases' index version in place
	// of Stores.KV: a store every instance reads at once after a write, and
	// that takes a write per ingestion (D1 on Workers, whose KV is
	// eventually consistent and takes one write a second per key).
	IndexKV storage.KV
	// Legacy, when set, is where the JavaScript gateway left its data
	// (the Worker's bindings): setup offers to import it.
	Legacy *jsgateway.Source
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
		Catalog:       catalog.New(st.Records, cfg.CacheTTL),
		Meter:         usage.New(st.Records),
		Guard:         auth.New(st.Records, box.Derive("session"), box.Derive("csrf")),
		Conversations: conversations.New(st.Records, st.Blobs),
		Upstream:      upstream.New(cfg.Upstream, ex.HTTP),
		Metrics:       ex.Metrics,
	}
	c.Channels = channels.New(st.Records, box, cfg.CacheTTL)
	c.Health = channels.NewHealth(st.Records)
	c.Health.BaseCooldown, c.Health.MaxCooldown = cfg.ChannelCooldown, cfg.ChannelMaxCooldown
	c.Health.DisableAfter = int(cfg.ChannelDisableAfter)
	c.Router = channels.NewRouter(c.Channels, c.Health, cfg.CacheTTL)
	c.Router.MaxAttempts = cfg.Upstream.Retries + 2
	c.Router.Backoff = cfg.Upstream.RetryBackoff
	c.Settings.Channels(c.Channels)
	c.Upstream.Route(c.Router)
	if ex.UsageEvery > 0 {
		buf := usage.NewBuffer(usage.New(st.Records), ex.UsageEvery)
		c.Meter = buf
		c.OnClose(buf) // written before the stores close
	}
	if c.Metrics == nil {
		c.Metrics = metrics.Nop{}
	}
	g := &Gateway{core: c, routes: map[string]HandlerFunc{}, values: map[Function]any{}}
	for _, p := range parts {
		s, err := p.Build(c)
		if err == nil {
			var routes map[string]HandlerFunc
			if routes, err = bind(p.Function, s); err == nil {
				maps.Copy(g.routes, routes)
				g.values[p.Function] = s.Value
			}
		}
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("build the %s function: %w", p.Function, err)
		}
	}
	return g, nil
}

// Part returns the value behind the handlers of fn's part (Served.Value),
// or nil.
func (g *Gateway) Part(fn Function) any { return g.values[fn] }

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

// Handler returns the handler serving the routes of fns (all routes when
// fns is empty), /healthz, and JSON 404s for everything else.
func (g *Gateway) Handler(fns ...Function) http.Handler {
	mux := http.NewServeMux()
	g.mount(mux, fns)
	mux.HandleFunc("/", respond.NotFound)
	label := "all"
	if len(fns) == 1 {
		label = string(fns[0])
	}
	return middleware(label, g.core.Metrics, cors(g.core.Config.CORSOrigins, mux))
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
