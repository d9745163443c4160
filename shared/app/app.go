package app

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aigateway/aigateway/shared/admin"
	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/chat"
	"github.com/aigateway/aigateway/shared/conversations"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/metrics"
	"github.com/aigateway/aigateway/shared/models"
	"github.com/aigateway/aigateway/shared/rag"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/seal"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/storage"
	"github.com/aigateway/aigateway/shared/upstream"
	"github.com/aigateway/aigateway/shared/usage"
)

// Gateway is the assembled gateway: its stores, services and handlers.
type Gateway struct {
	Chat    http.Handler
	Admin   http.Handler
	Upload  http.Handler
	docs    *rag.Service
	cors    []string
	metrics metrics.Recorder
	close   []io.Closer
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
	// BackgroundIngest ingests direct uploads after answering (a
	// long-running process).
	BackgroundIngest bool
}

// Assemble builds the gateway on st, with master as the master key.
func Assemble(cfg Config, st Stores, master []byte, ex Extras) (*Gateway, error) {
	box, err := seal.New(master)
	if err != nil {
		return nil, err
	}
	ks := keys.New(st.Records, cfg.CacheTTL)
	set := settings.New(st.KV, box, cfg.CacheTTL)
	ms := models.New(st.Records, cfg.CacheTTL)
	var meter interface {
		chat.Meter
		admin.Usage
	} = usage.New(st.Records)
	closers := st.Closers
	if ex.UsageEvery > 0 {
		buf := usage.NewBuffer(usage.New(st.Records), ex.UsageEvery)
		meter = buf
		closers = append([]io.Closer{buf}, closers...) // written before the stores close
	}
	rec := ex.Metrics
	if rec == nil {
		rec = metrics.Nop{}
	}
	convs := conversations.New(st.Records, st.Blobs)
	guard := auth.New(st.Records, box.Derive("session"), box.Derive("csrf"))
	up := upstream.New(cfg.Upstream)
	docs := rag.NewService(st.Records, st.Blobs, rag.NewLibrary(st.Blobs, st.KV, cfg.CacheTTL), set, up)
	uploads := admin.NewDocuments(guard, docs, box.Derive("upload"), ex.BackgroundIngest, cfg.MaxBody)
	closers = append([]io.Closer{uploads}, closers...) // ingestions finish before the stores close
	return &Gateway{
		Upload: uploads,
		docs:   docs,
		Chat: chat.New(chat.Deps{Keys: ks, Settings: set, Models: ms, Meter: meter, Conversations: convs, Knowledge: docs,
			Draw: draw.New(up, st.Blobs, draw.Options{MaxBytes: cfg.ImageMaxBytes}), Upstream: up, Metrics: rec},
			chat.Options{MaxBody: cfg.MaxBody, DrainTimeout: cfg.DrainTimeout}),
		Admin:   admin.New(admin.Deps{Guard: guard, Keys: ks, Settings: set, Models: ms, Conversations: convs, Usage: meter}, cfg.MaxBody),
		cors:    cfg.CORSOrigins,
		metrics: rec,
		close:   closers,
	}, nil
}

// IngestObject ingests a direct upload that arrived in the blob store at
// key (the upload function's object-created events).
func (g *Gateway) IngestObject(ctx context.Context, key string) error {
	_, err := g.docs.IngestObject(ctx, key)
	return err
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
// local server whole, each Lambda its own part), and the SAM template's API
// events must agree with it (a test checks). A route whose function has no
// handler yet answers 404.
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
	{"/admin/api/", FnAdmin},
}

func (g *Gateway) handlerOf(fn Function) http.Handler {
	switch fn {
	case FnChat:
		return g.Chat
	case FnAdmin:
		return g.Admin
	case FnUpload:
		return g.Upload
	case FnImage:
		return g.Chat // the chat handler draws, from chat and from /v1/images
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
	label := "all"
	if len(fns) == 1 {
		label = string(fns[0])
	}
	return middleware(label, g.metrics, cors(g.cors, mux))
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
