// Package images serves OpenAI's images API and the images the gateway
// keeps: POST /v1/images/generations draws through the image upstream
// (drawing in chat goes through the chat handler), GET /files/{id} serves
// what was drawn.
package images

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aigateway/aigateway/shared/auth"
	"github.com/aigateway/aigateway/shared/draw"
	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/jsonobj"
	"github.com/aigateway/aigateway/shared/respond"
	"github.com/aigateway/aigateway/shared/storage"
)

// Keys authenticates client API keys.
type Keys interface {
	AuthenticateFrom(ctx context.Context, secret, addr string) (gateway.APIKey, error)
}

// Settings supplies the current settings.
type Settings interface {
	Get(ctx context.Context) (gateway.Settings, error)
}

// Meter holds keys to their limits and records usage.
type Meter interface {
	Admit(ctx context.Context, key gateway.APIKey, ask gateway.Ask) (gateway.Reservation, error)
	Record(ctx context.Context, r gateway.UsageRecord) error
}

// Drawer draws images and keeps them.
type Drawer interface {
	Generate(ctx context.Context, up gateway.Upstream, req gateway.ImageRequest) ([]draw.Image, error)
	Open(ctx context.Context, id string) (io.ReadCloser, storage.BlobInfo, error)
	SignedURL(ctx context.Context, id string, ttl time.Duration) (string, error)
}

// Deps are what the images handler works with.
type Deps struct {
	Keys     Keys
	Settings Settings
	Meter    Meter
	Draw     Drawer
}

// Handler serves the images API.
type Handler struct {
	Deps
	maxBody int64
}

// New returns the images handler; maxBody bounds request bodies.
func New(d Deps, maxBody int64) *Handler { return &Handler{Deps: d, maxBody: maxBody} }

// members are the members the handler reads, written only so (see
// jsonobj.Check).
var members = []string{"model", "prompt", "n", "size", "response_format"}

// imagesRequest is an OpenAI images request, checked.
type imagesRequest struct {
	Model, Prompt, Size, ResponseFormat string
	N                                   int
	// Options are the other documented members, for the upstream.
	Options map[string]json.RawMessage
}

// imageOptions are the members of OpenAI's (and SiliconFlow's) images API
// that the gateway passes on as they came.
var imageOptions = []string{"quality", "style", "background", "moderation", "output_format", "output_compression",
	"user", "seed", "negative_prompt", "guidance_scale", "num_inference_steps"}

var sizeForm = regexp.MustCompile(`^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$`)

// readImagesRequest reads and checks an images request: each member once,
// the ones the gateway reads of the right type and range (n from 1 to 4,
// default 1; a size like 1024x1024 or auto), the documented others kept
// for the upstream; an unknown member is named.
func readImagesRequest(w http.ResponseWriter, r *http.Request, limit int64) (imagesRequest, error) {
	body, err := respond.ReadBody(w, r, limit)
	if err != nil {
		return imagesRequest{}, err
	}
	obj, err := jsonobj.Parse(body, members)
	if err != nil {
		return imagesRequest{}, err
	}
	req := imagesRequest{N: 1, Options: map[string]json.RawMessage{}}
	str := func(key string, dst *string) error {
		v, _, err := obj.GetString(key)
		*dst = v
		return err
	}
	for _, f := range obj {
		switch f.Key {
		case "model":
			err = str("model", &req.Model)
		case "prompt":
			err = str("prompt", &req.Prompt)
		case "size":
			err = str("size", &req.Size)
			if err == nil && !sizeForm.MatchString(req.Size) {
				err = jsonobj.Invalid("size", `a size like "1024x1024", or "auto"`)
			}
		case "response_format":
			err = str("response_format", &req.ResponseFormat)
			if err == nil && req.ResponseFormat != "url" && req.ResponseFormat != "b64_json" {
				err = jsonobj.Invalid("response_format", `"url" or "b64_json"`)
			}
		case "n":
			if json.Unmarshal(f.Raw, &req.N) != nil || req.N < 1 || req.N > 4 {
				err = jsonobj.Invalid("n", "a whole number from 1 to 4")
			}
		default:
			if !slices.Contains(imageOptions, f.Key) {
				e := gateway.Errorf(gateway.EInvalid, "The images API has no member %q.", f.Key)
				e.Param = f.Key
				return imagesRequest{}, e
			}
			req.Options[f.Key] = f.Raw
		}
		if err != nil {
			return imagesRequest{}, err
		}
	}
	if strings.TrimSpace(req.Prompt) == "" {
		return imagesRequest{}, jsonobj.Invalid("prompt", "what to draw")
	}
	return req, nil
}

// Generate serves POST /v1/images/generations: prompt, n (1 to 4), size,
// response_format "url" (links to the gateway's stored copies) or
// "b64_json".
func (h *Handler) Generate(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	key, err := h.authenticate(r)
	if err != nil {
		return err
	}
	req, err := readImagesRequest(w, r, h.maxBody)
	if err != nil {
		return err
	}
	st, err := h.Settings.Get(r.Context())
	if err != nil {
		return err
	}
	switch {
	case !st.DrawingEnabled:
		return gateway.Errorf(gateway.EForbidden, "Drawing is turned off on this gateway.")
	case req.Model != "" && req.Model != st.ImageModel, !key.Allows(st.ImageModel):
		e := gateway.Errorf(gateway.EModelNotFound, "The model %q does not exist or you do not have access to it.", req.Model)
		e.Param = "model"
		return e
	}
	if req.Size == "" {
		req.Size = st.ImageSize
	}
	price, _ := st.PriceOf(st.ImageModel)
	res, err := h.Meter.Admit(r.Context(), key, gateway.Ask{Tokens: int64(req.N) * gateway.ImageTokens, Cost: int64(req.N) * price.Cost(0, 0, 1, false)})
	if err != nil {
		return err
	}
	ctx, route := gateway.WithRoute(r.Context())
	rec := gateway.UsageRecord{RequestID: w.Header().Get("X-Request-ID"), KeyID: key.ID, Model: st.ImageModel, Kind: "image", Status: http.StatusOK,
		Reservation: &res, PerMinute: key.TPM > 0}
	defer func() {
		rec.LatencyMS = time.Since(start).Milliseconds()
		rec.CostMicros = price.Cost(0, 0, rec.Images, false)
		rec.Channel, rec.FailedChannels = route.Channel(), route.FailedChannels()
		h.record(r.Context(), rec)
	}()
	images, err := h.Draw.Generate(ctx, st.ImageUpstream(), gateway.ImageRequest{Prompt: req.Prompt, N: req.N, Size: req.Size, Options: req.Options})
	if err != nil {
		rec.Status = respond.Status(err)
		return err
	}
	rec.Images = int64(len(images))
	data := make([]map[string]string, len(images))
	for i, im := range images {
		if req.ResponseFormat == "b64_json" {
			data[i] = map[string]string{"b64_json": base64.StdEncoding.EncodeToString(im.Data)}
		} else {
			data[i] = map[string]string{"url": respond.BaseURL(r) + im.Path()}
		}
		if im.RevisedPrompt != "" {
			data[i]["revised_prompt"] = im.RevisedPrompt
		}
	}
	respond.JSON(w, http.StatusOK, map[string]any{"created": time.Now().Unix(), "data": data})
	return nil
}

// File serves GET /files/{id}: a stored image, by its unguessable ID. Where
// the blob store signs URLs (S3), it redirects to a short-lived one.
func (h *Handler) File(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	url, err := h.Draw.SignedURL(r.Context(), id, 10*time.Minute)
	if err != nil {
		return err
	}
	if url != "" {
		w.Header().Set("Cache-Control", "private, max-age=300")
		http.Redirect(w, r, url, http.StatusFound)
		return nil
	}
	rc, info, err := h.Draw.Open(r.Context(), id)
	if err != nil {
		return err
	}
	defer rc.Close()
	hd := w.Header()
	hd.Set("Content-Type", info.ContentType)
	hd.Set("Content-Length", fmt.Sprint(info.Size))
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	w.WriteHeader(http.StatusOK)
	io.Copy(w, rc)
	return nil
}

// authenticate returns the key of the request's bearer token.
func (h *Handler) authenticate(r *http.Request) (gateway.APIKey, error) {
	return auth.KeyOf(r, h.Keys)
}

// record stores a usage record; a failure is logged, since the answer has
// gone out already.
func (h *Handler) record(ctx context.Context, rec gateway.UsageRecord) {
	if rec.RequestID == "" {
		rec.RequestID = "none"
	}
	if err := h.Meter.Record(context.WithoutCancel(ctx), rec); err != nil {
		slog.ErrorContext(ctx, "record usage", "err", err)
	}
}
