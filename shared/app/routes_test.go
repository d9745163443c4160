package app_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aigateway/aigateway/shared/app"
	"github.com/aigateway/aigateway/shared/app/adminfn"
	"github.com/aigateway/aigateway/shared/memstore"
)

// readmeRoute is one method and path of the README's HTTP table, with its
// auth column.
type readmeRoute struct{ method, path, auth string }

// readmeRoutes reads the README's HTTP table: its first column lists
// "`METHOD /path`" spans, several methods as "`GET`, `DELETE /path`",
// several paths of one method as "`GET /`, `/setup`", groups split by "·".
func readmeRoutes(t *testing.T) []readmeRoute {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "| method, path | auth | what |\n|---|---|---|\n")
	if !ok {
		t.Fatal("the README has no HTTP table")
	}
	span := regexp.MustCompile("`([^`]*)`")
	var out []readmeRoute
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "| ") {
			break
		}
		cols := strings.Split(line, " | ")
		auth := cols[1]
		for group := range strings.SplitSeq(cols[0], "·") {
			var methods []string
			for _, m := range span.FindAllStringSubmatch(group, -1) {
				method, path, hasPath := strings.Cut(m[1], " ")
				if strings.HasPrefix(m[1], "/") {
					method, path, hasPath = "", m[1], true
				}
				if method != "" {
					if len(methods) > 0 && strings.HasPrefix(methods[len(methods)-1], "+") {
						methods = nil
					}
					methods = append(methods, method)
				}
				if !hasPath {
					continue
				}
				for _, m := range methods {
					out = append(out, readmeRoute{strings.TrimPrefix(m, "+"), path, auth})
				}
				for i, m := range methods { // later paths of the group keep these methods
					methods[i] = "+" + strings.TrimPrefix(m, "+")
				}
			}
			if len(methods) > 0 && !strings.HasPrefix(methods[len(methods)-1], "+") {
				t.Fatalf("the README's HTTP table lists %v without a path in %q", methods, group)
			}
		}
	}
	if len(out) < 20 {
		t.Fatalf("read %d routes from the README's HTTP table: %v", len(out), out)
	}
	return out
}

// TestRoutesAreTheREADMEs holds the routing table and the README's HTTP
// table to each other: the same routes, each once, with the same access.
func TestRoutesAreTheREADMEs(t *testing.T) {
	readme := readmeRoutes(t)
	for _, r := range readme {
		n := 0
		for _, rt := range app.Routes {
			if rt.Method == r.method && strings.TrimSuffix(rt.Pattern, "{$}") == r.path {
				n++
				if auth, _, _ := strings.Cut(r.auth, " ("); strings.TrimSuffix(strings.TrimSuffix(auth, " + CSRF"), ", once") != string(rt.Access) {
					t.Errorf("%s %s: the README says %q, the routing table %q", r.method, r.path, r.auth, rt.Access)
				}
			}
		}
		if n != 1 {
			t.Errorf("%s %s is in the README's table; the routing table has it %d times", r.method, r.path, n)
		}
	}
	for _, rt := range app.Routes {
		if !slices.ContainsFunc(readme, func(r readmeRoute) bool {
			return r.method == rt.Method && r.path == strings.TrimSuffix(rt.Pattern, "{$}")
		}) {
			t.Errorf("%s %s is routed but not in the README's HTTP table", rt.Method, rt.Pattern)
		}
	}
}

// TestEveryRouteServedOnce sends a request to every route of the table:
// the whole gateway (the local target) reaches its handler, not the
// catch-all 404 or a 405; each function alone answers its own routes and
// no other function does (GET /healthz aside, which each function
// answers).
func TestEveryRouteServedOnce(t *testing.T) {
	g := open(t)
	fns := []app.Function{app.FnChat, app.FnImage, app.FnUpload, app.FnAdmin}
	routed := func(h http.Handler, rt app.Route) bool {
		rec := serve(h, rt.Method, rt.Example(), nil)
		return rec.Code != http.StatusMethodNotAllowed && !strings.Contains(rec.Body.String(), "No route for")
	}
	all := g.Handler()
	for _, rt := range app.Routes {
		name := rt.Method + " " + rt.Pattern
		if !routed(all, rt) {
			t.Errorf("%s is not served by the local target", name)
		}
		for _, fn := range fns {
			if got, want := routed(g.Handler(fn), rt), fn == rt.Function || rt.Pattern == "/healthz"; got != want {
				t.Errorf("%s served by the %s function: %v, want %v", name, fn, got, want)
			}
		}
	}
}

func TestHandlerNames(t *testing.T) {
	if got := app.HandlerName(app.Health); got != "app.Health" {
		t.Fatalf("HandlerName(app.Health) = %q", got)
	}
	for _, rt := range app.Routes {
		if strings.Count(rt.Handler, ".") != 2 && rt.Handler != "app.Health" {
			t.Errorf("%s %s: handler %q is not package.Type.Method", rt.Method, rt.Pattern, rt.Handler)
		}
	}
}

// TestHeadIsGet: monitors probe with HEAD; every GET route answers it.
func TestHeadIsGet(t *testing.T) {
	h := open(t).Handler()
	for _, path := range []string{"/healthz", "/admin/assets/console.js", "/admin"} {
		if rec := serve(h, "HEAD", path, nil); rec.Code != http.StatusOK {
			t.Errorf("HEAD %s = %d, want 200", path, rec.Code)
		}
	}
	if rec := serve(h, "POST", "/healthz", nil); rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Header().Get("Allow"), "HEAD") {
		t.Errorf("POST /healthz = %d, Allow %q; want 405 allowing GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}
}

// TestPartServesEachHandlerOnce: a part that lists a handler twice, or one
// no route names, is refused when the gateway is assembled.
func TestPartServesEachHandlerOnce(t *testing.T) {
	cfg, err := app.Load()
	if err != nil {
		t.Fatal(err)
	}
	mem := memstore.New(nil)
	stores := app.Stores{KV: mem.KV(), Records: mem.Records(), Blobs: mem.Blobs()}
	extra := map[string]app.HandlerFunc{
		"twice":          app.Health,
		"no route names": func(http.ResponseWriter, *http.Request) error { return nil },
	}
	for want, h := range extra {
		part := app.Part{Function: app.FnAdmin, Build: func(c *app.Core) (app.Served, error) {
			s, err := adminfn.Part.Build(c)
			s.Handlers = append(s.Handlers, h)
			if want == "twice" {
				s.Handlers = append(s.Handlers, h)
			}
			return s, err
		}}
		if _, err := app.Assemble(cfg, stores, make([]byte, 32), app.Extras{}, part); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Assemble with a handler listed %q: %v", want, err)
		}
	}
}
