// Package admin serves the admin side: first-run setup, login and logout,
// settings, API keys, and the web pages over them.
package admin

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsgateway"
	"github.com/aigateway/aigateway/shared/keys"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/settings"
	"github.com/aigateway/aigateway/shared/usage"
)

// Settings stores the gateway's settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
	Save(ctx context.Context, st gateway.Settings) error
	Patch(ctx context.Context, patch []byte) (gateway.Settings, error)
	Reset(ctx context.Context) error
}

// Keys manages client API keys.
type Keys interface {
	Create(ctx context.Context, name string, limits gateway.KeyLimits) (gateway.APIKey, string, error)
	Import(ctx context.Context, name, secret string, createdAt time.Time) (gateway.APIKey, bool, error)
	List(ctx context.Context) ([]gateway.APIKey, error)
	Revoke(ctx context.Context, id string) (gateway.APIKey, error)
	SetLimits(ctx context.Context, id string, limits gateway.KeyLimits) (gateway.APIKey, error)
}

// Catalog stores the extra public models.
type Catalog interface {
	List(ctx context.Context) ([]gateway.Model, error)
	Put(ctx context.Context, m gateway.Model) error
	Delete(ctx context.Context, name string) error
}

// Guard holds the admin credential and sessions.
type Guard interface {
	Initialized(ctx context.Context) (bool, error)
	Claim(ctx context.Context, password string) error
	Unclaim(ctx context.Context) error
	Login(ctx context.Context, password, client string) (auth.Session, error)
	Verify(ctx context.Context, cookie string) (auth.Session, error)
	Logout(ctx context.Context, cookie string) error
}

// CookieName is the admin session cookie.
const CookieName = auth.CookieName

// Deps are what the admin handler works on.
type Deps struct {
	Guard         Guard
	Keys          Keys
	Settings      Settings
	Catalog       Catalog
	Conversations Conversations
	Usage         Usage
	// Channels, when set, serve the channel pages.
	Channels *Channels
	// MaxAnswer, when not zero, bounds an export: the platform buffers
	// answers up to a size (Lambda).
	MaxAnswer int64
	// Import brings the JavaScript gateway's data over at setup (its
	// Source, Records and Keys are used; files are imported by the upload
	// function). Nil where there is none to read (off Cloudflare Workers).
	Import *jsgateway.Handler
}

// Handler serves the admin API and pages.
type Handler struct {
	Deps
	maxBody       int64
	uploadOrigins string // " origin origin…" the page may PUT direct uploads to
}

// New returns the admin handler. maxBody bounds request bodies;
// uploadOrigins are the origins (https://bucket.s3.region.amazonaws.com)
// the admin page may send direct uploads to, besides its own.
func New(d Deps, maxBody int64, uploadOrigins ...string) *Handler {
	h := &Handler{Deps: d, maxBody: maxBody}
	for _, o := range uploadOrigins {
		h.uploadOrigins += " " + o
	}
	return h
}

// current returns the session of the request's cookie, or EUnauthorized.
func (h *Handler) current(r *http.Request) (auth.Session, error) { return auth.Current(h.Guard, r) }

func (h *Handler) SetupState(w http.ResponseWriter, r *http.Request) error {
	ok, err := h.Guard.Initialized(r.Context())
	if err != nil {
		return err
	}
	out := map[string]any{"initialized": ok}
	// Before the first run, say what the JavaScript gateway left here to
	// import (counts and names, no secrets).
	if !ok && h.Import != nil {
		snap, err := jsgateway.Read(r.Context(), *h.Import.Source)
		if err != nil {
			return err
		}
		if snap.Found {
			out["import"] = snap.Summary()
		}
	}
	respond.JSON(w, http.StatusOK, out)
	return nil
}

type setupRequest struct {
	AdminPassword string            `json:"admin_password"`
	AI            gateway.Upstream  `json:"ai"`
	RAG           *gateway.Upstream `json:"rag"`
	// Import brings the JavaScript gateway's data over; Proof is its AI
	// API key or its admin password.
	Import *struct {
		Proof string `json:"proof"`
	} `json:"import"`
}

// Setup claims the gateway: admin password, upstream settings and the first
// key, all validated before anything is stored. If a step after the claim
// fails, the settings are forgotten and the claim is undone so that setup
// can be tried again. With import, the JavaScript gateway's settings are
// the starting point and each upstream field the request gives overrides
// its own (a new base URL only with its key: the imported key is not sent
// to another address); then its public models and client keys come over,
// and its files are left to POST /admin/api/documents/import.
func (h *Handler) Setup(w http.ResponseWriter, r *http.Request) error {
	if err := sameSite(r); err != nil {
		return err
	}
	var req setupRequest
	if err := respond.DecodeJSON(w, r, h.maxBody, &req); err != nil {
		return err
	}
	if err := auth.CheckPassword(req.AdminPassword); err != nil {
		return err
	}
	// The defaults, not what the store holds: before the claim nothing
	// there is worth keeping, and another instance's cached copy may hold
	// what a setup that failed stored.
	st := gateway.DefaultSettings()
	var snap *jsgateway.Snapshot
	var err error
	if req.Import != nil {
		if snap, err = h.legacy(r, req.Import.Proof); err != nil {
			return err
		}
		snap.Apply(&st)
		if err := override(&st.AI.BaseURL, &st.AI.APIKey, &st.AI.Model, req.AI, "ai"); err != nil {
			return err
		}
		if req.RAG != nil {
			if err := override(&st.RAG.BaseURL, &st.RAG.APIKey, &st.RAG.Model, *req.RAG, "rag"); err != nil {
				return err
			}
		}
	} else {
		st.AI = req.AI
		if req.RAG != nil {
			st.RAG.BaseURL, st.RAG.APIKey, st.RAG.Model = req.RAG.BaseURL, req.RAG.APIKey, req.RAG.Model
		}
	}
	if err := st.Validate(); err != nil {
		return err
	}
	// The first channel: setup gives the gateway an upstream to answer
	// with (the settings' ai upstream becomes the channel ch_main).
	if err := gateway.CheckBaseURL(st.AI.BaseURL); err != nil {
		e := gateway.Errorf(gateway.EInvalid, "ai.base_url %s", gateway.ErrorMessage(err))
		e.Param = "ai.base_url"
		return e
	}
	if err := h.Guard.Claim(r.Context(), req.AdminPassword); err != nil {
		return err
	}
	// The claim is won; finish with a context the client cannot cancel, so
	// that a dropped connection does not leave a half-made setup.
	ctx := context.WithoutCancel(r.Context())
	_, secret, err := h.finishSetup(ctx, st)
	if err == nil && h.Import != nil {
		// Whoever set up with the proof may import later; anyone else
		// may not, whatever an earlier attempt left.
		if snap != nil {
			err = h.Import.MarkOwner(ctx)
		} else {
			err = h.Import.ForgetOwner(ctx)
		}
	}
	if err != nil {
		// Forget the settings and the proof: the next claimer must find
		// neither.
		if serr := h.Settings.Reset(ctx); serr != nil {
			err = errors.Join(err, serr)
		}
		if h.Import != nil {
			if ferr := h.Import.ForgetOwner(ctx); ferr != nil {
				err = errors.Join(err, ferr)
			}
		}
		if uerr := h.Guard.Unclaim(ctx); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return err
	}
	slog.InfoContext(ctx, "gateway initialized", "imported", snap != nil)
	out := map[string]any{"api_key": secret}
	if snap != nil {
		// The models and keys, now; what fails is tried again by the
		// import's steps, which the page runs next.
		p, err := h.Import.Step(ctx, *h.Import.Source, *snap, 0)
		if err != nil {
			slog.WarnContext(ctx, "import at setup", "err", err)
			out["import_error"] = gateway.ErrorMessage(err)
		} else {
			out["import"] = p
		}
	}
	respond.JSON(w, http.StatusCreated, out)
	return nil
}

// override sets each upstream field the request gives over the imported
// one. A base URL other than the imported one needs its key too, so that
// the imported key is never sent to an address its owner did not give it.
func override(baseURL *string, key *gateway.Secret, model *string, req gateway.Upstream, param string) error {
	if req.BaseURL != "" && req.BaseURL != *baseURL && req.APIKey == "" && *key != "" {
		e := gateway.Errorf(gateway.EInvalid, "A new base URL needs its API key: the imported key is not sent to another address.")
		e.Param = param + ".api_key"
		return e
	}
	if req.BaseURL != "" {
		*baseURL = req.BaseURL
	}
	if req.APIKey != "" {
		*key = req.APIKey
	}
	if req.Model != "" {
		*model = req.Model
	}
	return nil
}

// legacy reads the JavaScript gateway's data for setup, once the proof
// (checked under the attempts limit) shows the caller owns it.
func (h *Handler) legacy(r *http.Request, proof string) (*jsgateway.Snapshot, error) {
	if h.Import == nil {
		return nil, jsgateway.NoSource()
	}
	// Once set up, nothing is read and no proof checked: setup is over.
	if ok, err := h.Guard.Initialized(r.Context()); err != nil {
		return nil, err
	} else if ok {
		return nil, gateway.Errorf(gateway.EConflict, "The gateway is already initialized.")
	}
	snap, err := jsgateway.Read(r.Context(), *h.Import.Source)
	if err != nil {
		return nil, err
	}
	if !snap.Found {
		return nil, gateway.Errorf(gateway.ENotFound, "The bindings hold none of the JavaScript gateway's data to import.")
	}
	if err := h.Import.Prove(r.Context(), snap, respond.ClientAddr(r), proof); err != nil {
		return nil, err
	}
	return &snap, nil
}

func (h *Handler) finishSetup(ctx context.Context, st gateway.Settings) (gateway.APIKey, string, error) {
	if err := h.Settings.Save(ctx, st); err != nil {
		return gateway.APIKey{}, "", err
	}
	return h.Keys.Create(ctx, "default", gateway.KeyLimits{})
}

func secure(r *http.Request) bool { return respond.Secure(r) }

func (h *Handler) Login(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := respond.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	s, err := h.Guard.Login(r.Context(), req.Password, respond.ClientAddr(r))
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: s.Cookie, Path: "/", Expires: s.Expires,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode,
	})
	respond.JSON(w, http.StatusOK, map[string]string{"csrf_token": s.CSRF})
	return nil
}

// Session returns the CSRF token of the caller's session, so that a
// reloaded panel can go on without signing in again.
func (h *Handler) Session(w http.ResponseWriter, r *http.Request) error {
	s, ok := auth.SessionOf(r.Context())
	if !ok {
		var err error
		if s, err = h.current(r); err != nil {
			return err
		}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"csrf_token": s.CSRF, "expires_at": s.Expires})
	return nil
}

// Logout ends the caller's session. With a live session it needs the
// Session's CSRF token, like every other change; without one there is
// nothing to end.
func (h *Handler) Logout(w http.ResponseWriter, r *http.Request) error {
	if s, err := h.current(r); err == nil {
		if err := auth.CheckCSRF(s, r.Header.Get("X-CSRF-Token")); err != nil {
			return err
		}
		if err := h.Guard.Logout(r.Context(), s.Cookie); err != nil {
			return err
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) GetSettings(w http.ResponseWriter, r *http.Request) error {
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, settings.Masked(st))
	return nil
}

func (h *Handler) PutSettings(w http.ResponseWriter, r *http.Request) error {
	body, err := respond.ReadBody(w, r, h.maxBody)
	if err != nil {
		return err
	}
	cur, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	st, err := settings.Merge(cur, body)
	if err != nil {
		return err
	}
	// An allowlist that leaves out the address making the change would
	// lock its maker out.
	if addr := respond.ClientAddr(r); !gateway.AddrAllowed(st.AdminAllowedIPs, addr) {
		e := gateway.Errorf(gateway.EInvalid, "admin_allowed_ips leave out %s, the address making this change: the panel would lock you out.", addr)
		e.Param = "admin_allowed_ips"
		return e
	}
	// The default public model may not take an extra model's name: both
	// would be listed, and the extra one could not be reached.
	if name := st.PublicModelName(); name != cur.PublicModelName() {
		extras, err := h.Catalog.List(r.Context())
		if err != nil {
			return err
		}
		for _, m := range extras {
			if m.Name == name {
				e := gateway.Errorf(gateway.EConflict, "%q is already an extra public model; delete or rename it first.", name)
				e.Param = "public_model"
				return e
			}
		}
	}
	if err := h.Settings.Save(r.Context(), st); err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, settings.Masked(st))
	return nil
}

type keyList struct {
	Object string      `json:"object"`
	Data   []listedKey `json:"data"`
}

// ListKeys serves GET /admin/api/keys: every key (no secret), with what
// it has used and spent.
func (h *Handler) ListKeys(w http.ResponseWriter, r *http.Request) error {
	ks, err := h.Keys.List(r.Context())
	if err != nil {
		return err
	}
	totals := map[string]usage.KeyTotal{}
	if u, ok := h.Usage.(interface {
		KeyTotals(ctx context.Context) (map[string]usage.KeyTotal, error)
	}); ok {
		if f, ok := h.Usage.(interface{ Flush(context.Context) }); ok {
			f.Flush(r.Context())
		}
		if totals, err = u.KeyTotals(r.Context()); err != nil {
			return err
		}
	}
	out := keyList{Object: "list", Data: make([]listedKey, 0, len(ks))}
	for _, k := range ks {
		out.Data = append(out.Data, listedKey{APIKey: k, Usage: totals[k.ID]})
	}
	respond.JSON(w, http.StatusOK, out)
	return nil
}

// listedKey is a key as the list shows it: with its usage.
type listedKey struct {
	gateway.APIKey
	Usage usage.KeyTotal `json:"usage"`
}

func (h *Handler) CreateKey(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
		gateway.KeyLimits
	}
	if err := respond.DecodeJSON(w, r, 64<<10, &req); err != nil {
		return err
	}
	if err := keys.CheckName(req.Name); err != nil {
		return err
	}
	k, secret, err := h.Keys.Create(r.Context(), req.Name, req.KeyLimits)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusCreated, struct {
		gateway.APIKey
		Key string `json:"key"`
	}{k, secret})
	return nil
}

// SetKeyLimits replaces a key's limits: expires_at, rpm, tpm, token_quota
// and models (absent fields mean no limit).
func (h *Handler) SetKeyLimits(w http.ResponseWriter, r *http.Request) error {
	var limits gateway.KeyLimits
	if err := respond.DecodeJSON(w, r, 64<<10, &limits); err != nil {
		return err
	}
	k, err := h.Keys.SetLimits(r.Context(), r.PathValue("id"), limits)
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, k)
	return nil
}

func (h *Handler) RevokeKey(w http.ResponseWriter, r *http.Request) error {
	k, err := h.Keys.Revoke(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	respond.JSON(w, http.StatusOK, k)
	return nil
}
