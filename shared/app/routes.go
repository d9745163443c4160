package app

import (
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/respond"
)

// Access says who may call a route.
type Access string

// The callers of routes.
const (
	// Anyone: the handler checks whatever else it needs (setup once, the
	// login throttle, an unguessable ID).
	Anyone Access = "none"
	// Key: a client with an API key (Authorization: Bearer sk-…), which
	// the handler authenticates, since it holds the key to its limits.
	Key Access = "key"
	// Session: a signed-in admin; the gateway checks the session before the
	// handler runs, and the CSRF token of every method but GET.
	Session Access = "session"
	// Signed: whoever holds a URL the gateway signed (a direct upload); the
	// handler checks the signature.
	Signed Access = "signed URL"
)

// Route is one route of the HTTP contract: its method and path pattern
// (net/http's), who may call it, the function that serves it on the
// serverless target, and the Go method behind it ("chat.Handler.Models" is
// method Models of type Handler in package shared/chat).
type Route struct {
	Method   string
	Pattern  string
	Access   Access
	Function Function
	Handler  string
}

// Routes is the gateway's routing table, the one place every route is
// listed: the local server mounts all of it, each Lambda the routes of its
// function, and the tests check the SAM template and the README against
// it. Assemble checks that each part serves exactly its function's routes,
// with the methods named here. GET /healthz is answered by every function
// (a probe of each Lambda); the API routes it to the admin function.
var Routes = []Route{
	// The OpenAI-compatible API.
	{"GET", "/v1/models", Key, FnChat, "chat.Handler.Models"},
	{"GET", "/v1/models/{id...}", Key, FnChat, "chat.Handler.Model"},
	{"POST", "/v1/chat/completions", Key, FnChat, "chat.Handler.Completions"},
	{"POST", "/v1/responses", Key, FnChat, "chat.Handler.Responses"},
	{"GET", "/v1/responses/{id}", Key, FnChat, "chat.Handler.GetResponse"},
	{"DELETE", "/v1/responses/{id}", Key, FnChat, "chat.Handler.DeleteResponse"},
	{"GET", "/v1/responses/{id}/input_items", Key, FnChat, "chat.Handler.ResponseInputItems"},
	{"POST", "/v1/messages", Key, FnChat, "chat.Handler.Messages"},
	{"POST", "/v1/messages/count_tokens", Key, FnChat, "chat.Handler.CountTokens"},
	{"POST", "/v1/completions", Key, FnChat, "chat.Handler.LegacyCompletions"},
	{"POST", "/v1/rerank", Key, FnChat, "chat.Handler.Rerank"},
	{"POST", "/v1/embeddings", Key, FnChat, "chat.Handler.Embeddings"},
	{"GET", "/v1/conversations", Key, FnChat, "chat.Handler.ListConversations"},
	{"GET", "/v1/conversations/{id}", Key, FnChat, "chat.Handler.GetConversation"},
	{"DELETE", "/v1/conversations/{id}", Key, FnChat, "chat.Handler.DeleteConversation"},
	{"POST", "/v1/images/generations", Key, FnImage, "images.Handler.Generate"},
	{"GET", "/files/{id}", Anyone, FnImage, "images.Handler.File"},
	{"GET", "/healthz", Anyone, FnAdmin, "app.Health"},

	// Setup and the admin session.
	{"GET", "/admin/api/setup", Anyone, FnAdmin, "admin.Handler.SetupState"},
	{"POST", "/admin/api/setup", Anyone, FnAdmin, "admin.Handler.Setup"},
	{"POST", "/admin/api/setup/test", Anyone, FnAdmin, "admin.Handler.SetupTest"},
	{"POST", "/admin/api/login", Anyone, FnAdmin, "admin.Handler.Login"},
	{"POST", "/admin/api/logout", Anyone, FnAdmin, "admin.Handler.Logout"},
	{"GET", "/admin/api/session", Session, FnAdmin, "admin.Handler.Session"},

	// The admin API.
	{"GET", "/admin/api/settings", Session, FnAdmin, "admin.Handler.GetSettings"},
	{"PUT", "/admin/api/settings", Session, FnAdmin, "admin.Handler.PutSettings"},
	{"GET", "/admin/api/keys", Session, FnAdmin, "admin.Handler.ListKeys"},
	{"POST", "/admin/api/keys", Session, FnAdmin, "admin.Handler.CreateKey"},
	{"PUT", "/admin/api/keys/{id}", Session, FnAdmin, "admin.Handler.SetKeyLimits"},
	{"DELETE", "/admin/api/keys/{id}", Session, FnAdmin, "admin.Handler.RevokeKey"},
	{"GET", "/admin/api/channels", Session, FnAdmin, "admin.Handler.ListChannels"},
	{"POST", "/admin/api/channels", Session, FnAdmin, "admin.Handler.CreateChannel"},
	{"POST", "/admin/api/channels/test", Session, FnAdmin, "admin.Handler.TestNewChannel"},
	{"POST", "/admin/api/channels/models", Session, FnAdmin, "admin.Handler.DraftModels"},
	{"GET", "/admin/api/channels/{id}", Session, FnAdmin, "admin.Handler.GetChannel"},
	{"PUT", "/admin/api/channels/{id}", Session, FnAdmin, "admin.Handler.UpdateChannel"},
	{"DELETE", "/admin/api/channels/{id}", Session, FnAdmin, "admin.Handler.DeleteChannel"},
	{"POST", "/admin/api/channels/{id}/test", Session, FnAdmin, "admin.Handler.TestChannel"},
	{"GET", "/admin/api/channels/{id}/models", Session, FnAdmin, "admin.Handler.ChannelModels"},
	{"GET", "/admin/api/models", Session, FnAdmin, "admin.Handler.ListModels"},
	{"PUT", "/admin/api/models/{name}", Session, FnAdmin, "admin.Handler.PutModel"},
	{"DELETE", "/admin/api/models/{name}", Session, FnAdmin, "admin.Handler.DeleteModel"},
	{"GET", "/admin/api/documents", Session, FnUpload, "documents.Handler.List"},
	{"POST", "/admin/api/documents", Session, FnUpload, "documents.Handler.Add"},
	{"POST", "/admin/api/documents/uploads", Session, FnUpload, "documents.Handler.PrepareUpload"},
	{"PUT", "/admin/api/documents/{id}/content", Signed, FnUpload, "documents.Handler.PutContent"},
	{"POST", "/admin/api/documents/search", Session, FnUpload, "documents.Retrieval.Try"},
	{"GET", "/admin/api/documents/import", Session, FnUpload, "jsgateway.Handler.State"},
	{"POST", "/admin/api/documents/import", Session, FnUpload, "jsgateway.Handler.Import"},
	{"GET", "/admin/api/documents/{id}", Session, FnUpload, "documents.Handler.Get"},
	{"DELETE", "/admin/api/documents/{id}", Session, FnUpload, "documents.Handler.Delete"},
	{"GET", "/admin/api/conversations", Session, FnAdmin, "admin.Handler.ListConversations"},
	{"GET", "/admin/api/conversations/{id}", Session, FnAdmin, "admin.Handler.GetConversation"},
	{"DELETE", "/admin/api/conversations/{id}", Session, FnAdmin, "admin.Handler.DeleteConversation"},
	{"GET", "/admin/api/usage", Session, FnAdmin, "admin.Handler.UsageSummary"},
	{"GET", "/admin/api/usage/export", Session, FnAdmin, "admin.Handler.UsageExport"},
	{"GET", "/admin/api/stats", Session, FnAdmin, "admin.Handler.Stats"},

	// The pages.
	{"GET", "/{$}", Anyone, FnAdmin, "admin.Handler.Home"},
	{"GET", "/setup", Anyone, FnAdmin, "admin.Handler.SetupPage"},
	{"GET", "/admin", Anyone, FnAdmin, "admin.Handler.AdminPage"},
	{"GET", "/admin/assets/{name}", Anyone, FnAdmin, "admin.Handler.Asset"},
}

// Example returns a path the route's pattern matches, with "x1" for each
// wildcard.
func (rt Route) Example() string {
	p := strings.TrimSuffix(rt.Pattern, "{$}")
	var b strings.Builder
	for {
		i := strings.IndexByte(p, '{')
		if i < 0 {
			return b.String() + p
		}
		j := strings.IndexByte(p[i:], '}')
		b.WriteString(p[:i] + "x1")
		p = p[i+j+1:]
	}
}

// HandlerFunc is a route's handler: nil means it answered; an error is
// answered as an OpenAI error (if nothing was written yet).
type HandlerFunc = func(http.ResponseWriter, *http.Request) error

// Served is what a part serves: the handlers of its function's routes, each
// a method value named in Routes by its Go name, and the value behind them
// (the upload function's handler takes the blob store's events too).
type Served struct {
	Handlers []HandlerFunc
	Value    any
}

// HandlerName is the Go name of a handler (a method value or a function)
// as Routes writes it: "chat.Handler.Models", "app.Health".
func HandlerName(h HandlerFunc) string {
	fn := runtime.FuncForPC(reflect.ValueOf(h).Pointer())
	if fn == nil {
		return ""
	}
	name := strings.TrimSuffix(fn.Name(), "-fm") // a method value's wrapper
	name = name[strings.LastIndex(name, "/")+1:]
	return strings.NewReplacer("(*", "", ")", "").Replace(name)
}

// bind returns the handler of each route of fn from what its part
// serves, or an error naming a route without one or a handler no route
// names.
func bind(fn Function, s Served) (map[string]HandlerFunc, error) {
	byName := map[string]HandlerFunc{}
	for _, h := range s.Handlers {
		name := HandlerName(h)
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("the %s function serves %s twice", fn, name)
		}
		byName[name] = h
	}
	out := map[string]HandlerFunc{}
	for _, rt := range Routes {
		if rt.Function != fn || rt.Handler == "app.Health" {
			continue
		}
		h, ok := byName[rt.Handler]
		if !ok {
			return nil, fmt.Errorf("%s %s: the %s function serves no %s", rt.Method, rt.Pattern, fn, rt.Handler)
		}
		out[rt.Method+" "+rt.Pattern] = h
	}
	for name := range byName {
		if !slices.ContainsFunc(Routes, func(rt Route) bool { return rt.Function == fn && rt.Handler == name }) {
			return nil, fmt.Errorf("the %s function serves %s, which no route names", fn, name)
		}
	}
	return out, nil
}

// Health answers GET /healthz: 200 when the process can serve.
func Health(w http.ResponseWriter, r *http.Request) error {
	respond.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

// mount adds the routes of fns (all when empty) that the gateway's parts
// serve to mux, each pattern answering its methods and a 405 with Allow to
// any other.
func (g *Gateway) mount(mux *http.ServeMux, fns []Function) {
	byPattern := map[string]map[string]http.HandlerFunc{}
	var patterns []string
	for _, rt := range Routes {
		if len(fns) > 0 && !slices.Contains(fns, rt.Function) {
			continue
		}
		h := g.routes[rt.Method+" "+rt.Pattern]
		if rt.Handler == "app.Health" {
			h = Health
		}
		if h == nil {
			continue
		}
		if byPattern[rt.Pattern] == nil {
			byPattern[rt.Pattern] = map[string]http.HandlerFunc{}
			patterns = append(patterns, rt.Pattern)
		}
		byPattern[rt.Pattern][rt.Method] = g.guard(rt, h)
	}
	if byPattern["/healthz"] == nil {
		byPattern["/healthz"] = map[string]http.HandlerFunc{http.MethodGet: respond.Handle(Health)}
		patterns = append(patterns, "/healthz")
	}
	for _, p := range patterns {
		mux.HandleFunc(p, respond.Methods(byPattern[p]))
	}
}

// guard applies the route's access rule the gateway itself enforces (a
// signed-in admin; the admin panel's address allowlist) and answers the
// handler's error.
func (g *Gateway) guard(rt Route, h HandlerFunc) http.HandlerFunc {
	if adminSide(rt) && !g.core.Config.AdminIgnoreAllowlist {
		h = g.adminAddress(h)
	}
	if rt.Access == Session {
		return auth.Require(g.core.Guard, h)
	}
	return respond.Handle(h)
}

// adminSide reports whether a route is the admin panel's: its pages and
// its API (a direct upload's signed URL aside: the signature is its
// credential).
func adminSide(rt Route) bool {
	return rt.Access == Session || rt.Access == Anyone &&
		(rt.Pattern == "/{$}" || rt.Pattern == "/setup" || strings.HasPrefix(rt.Pattern, "/admin"))
}

// adminAddress refuses (403) a request from an address the settings'
// admin_allowed_ips leave out.
func (g *Gateway) adminAddress(h HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st, err := g.core.Settings.Get(r.Context())
		if err != nil {
			return err
		}
		if addr := respond.ClientAddr(r); !gateway.AddrAllowed(st.AdminAllowedIPs, addr) {
			return gateway.Errorf(gateway.EForbidden, "The admin panel does not answer %s: the settings' admin_allowed_ips leave this address out.", addr)
		}
		return h(w, r)
	}
}
