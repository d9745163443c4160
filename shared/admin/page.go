package admin

import (
	"embed"
	"html/template"
	"net/http"
	"path"
	"strings"

	"github.com/aigateway/aigateway/shared/respond"
)

//go:embed assets/*.html assets/*.js assets/*.css
var assets embed.FS

// pages holds the page templates; {{t .EN "中文" "English"}} picks a text by
// language.
var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"t": func(en bool, zh, eng string) string {
		if en {
			return eng
		}
		return zh
	},
}).ParseFS(assets, "assets/*.html"))

// lang picks the page language: a "lang" query or cookie first, then the
// first language of Accept-Language; Chinese unless English is asked for.
func lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh" {
		return l
	}
	if c, err := r.Cookie("lang"); err == nil && (c.Value == "en" || c.Value == "zh") {
		return c.Value
	}
	first, _, _ := strings.Cut(r.Header.Get("Accept-Language"), ",")
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(first)), "en") {
		return "en"
	}
	return "zh"
}

func prefix(r *http.Request) string { return respond.Prefix(r) }

// assetTypes are the static files the pages load, by extension.
var assetTypes = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

// asset serves the pages' scripts and style sheet (the pages hold no
// inline script: the CSP allows none).
func asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	typ, ok := assetTypes[path.Ext(name)]
	data, err := assets.ReadFile("assets/" + name)
	if !ok || err != nil || strings.Contains(name, "/") {
		respond.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", typ)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.Write(data)
}

func (h *Handler) pages() {
	h.mux.HandleFunc("GET /admin/assets/{name}", asset)
	h.mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		ok, err := h.Guard.Initialized(r.Context())
		if err != nil {
			respond.Error(w, r, err)
			return
		}
		if !ok {
			http.Redirect(w, r, prefix(r)+"/setup", http.StatusFound)
			return
		}
		http.Redirect(w, r, prefix(r)+"/admin", http.StatusFound)
	})
	h.mux.HandleFunc("/setup", respond.Methods(map[string]http.HandlerFunc{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		ok, err := h.Guard.Initialized(r.Context())
		if err != nil {
			respond.Error(w, r, err)
			return
		}
		if ok {
			http.Redirect(w, r, prefix(r)+"/admin", http.StatusFound)
			return
		}
		h.render(w, r, "setup.html")
	}}))
	h.mux.HandleFunc("/admin", respond.Methods(map[string]http.HandlerFunc{http.MethodGet: func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, "admin.html")
	}}))
}

// multipartSlack is what a multipart envelope may add to a file.
const multipartSlack = 64 << 10

func (h *Handler) render(w http.ResponseWriter, r *http.Request, name string) {
	l := lang(r)
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"+
		h.uploadOrigins+"; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Vary", "Accept-Language, Cookie")
	if r.URL.Query().Has("lang") {
		http.SetCookie(w, &http.Cookie{Name: "lang", Value: l, Path: "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode})
	}
	// Files larger than a request may carry go as direct uploads.
	pages.ExecuteTemplate(w, name, map[string]any{"Lang": l, "EN": l == "en", "MaxUpload": max(h.maxBody-multipartSlack, 0)})
}
