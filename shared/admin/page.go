package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/aigateway/aigateway/shared/gateway"
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

// assetTags are the assets' ETags (a hash of each), made on first use.
var assetTags sync.Map

// Asset serves GET /admin/assets/{name}: the pages' scripts and style
// sheet (the pages hold no inline script: the CSP allows none). A browser
// revalidates each with its ETag, and a 304 saves sending it again.
func (h *Handler) Asset(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	typ, ok := assetTypes[path.Ext(name)]
	data, err := assets.ReadFile("assets/" + name)
	if !ok || err != nil || strings.Contains(name, "/") {
		return gateway.Errorf(gateway.ENotFound, "No asset %q.", name)
	}
	tag, ok := assetTags.Load(name)
	if !ok {
		sum := sha256.Sum256(data)
		tag, _ = assetTags.LoadOrStore(name, `"`+hex.EncodeToString(sum[:12])+`"`)
	}
	hd := w.Header()
	hd.Set("Content-Type", typ)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", tag.(string))
	hd.Set("X-Content-Type-Options", "nosniff")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, tag.(string)) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.Write(data)
	return nil
}

// Home serves GET /: a redirect to the setup page until the gateway is
// set up, then to the admin panel.
func (h *Handler) Home(w http.ResponseWriter, r *http.Request) error {
	ok, err := h.Guard.Initialized(r.Context())
	if err != nil {
		return err
	}
	if !ok {
		http.Redirect(w, r, prefix(r)+"/setup", http.StatusFound)
		return nil
	}
	http.Redirect(w, r, prefix(r)+"/admin", http.StatusFound)
	return nil
}

// SetupPage serves GET /setup: the first-run page, until the gateway is
// set up; then a redirect to the admin panel.
func (h *Handler) SetupPage(w http.ResponseWriter, r *http.Request) error {
	ok, err := h.Guard.Initialized(r.Context())
	if err != nil {
		return err
	}
	if ok {
		http.Redirect(w, r, prefix(r)+"/admin", http.StatusFound)
		return nil
	}
	h.render(w, r, "setup.html")
	return nil
}

// AdminPage serves GET /admin: the admin panel (it signs in through the
// API).
func (h *Handler) AdminPage(w http.ResponseWriter, r *http.Request) error {
	h.render(w, r, "admin.html")
	return nil
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
