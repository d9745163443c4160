// Package draw generates images through the image upstream and keeps them:
// each image is fetched (or decoded) at once, checked and stored as a blob,
// and handed out as the gateway's own unguessable link, because upstream
// links expire within the hour.
package draw

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/idna"

	"github.com/aigateway/aigateway/shared/gateway"
	"github.com/aigateway/aigateway/shared/storage"
)

// Options bound what is fetched.
type Options struct {
	// MaxBytes bounds one image.
	MaxBytes int64
	// FetchTimeout bounds fetching one image.
	FetchTimeout time.Duration
	// Fetcher fetches the images an upstream answers with a link to; nil
	// means FetchClient(FetchTimeout), which guards against private
	// addresses. A target whose network cannot reach private addresses
	// (Workers) passes its own.
	Fetcher *http.Client
}

// Service draws and keeps images.
type Service struct {
	upstream gateway.ImageGenerator
	blobs    storage.Blobs
	opt      Options
	fetcher  *http.Client
}

// New returns a Service. It fetches images with opt.Fetcher, or one
// client of its own whose connections are pooled and closed when idle.
func New(up gateway.ImageGenerator, blobs storage.Blobs, opt Options) *Service {
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = 20 << 20
	}
	if opt.FetchTimeout <= 0 {
		opt.FetchTimeout = DefaultFetchTimeout
	}
	fetcher := opt.Fetcher
	if fetcher == nil {
		fetcher = FetchClient(opt.FetchTimeout)
	}
	return &Service{upstream: up, blobs: blobs, opt: opt, fetcher: fetcher}
}

// DefaultFetchTimeout bounds the fetch of one generated image.
const DefaultFetchTimeout = 60 * time.Second

// allowedKey carries, in a fetch's context, the private addresses (ip:port)
// it may connect to.
type allowedKey struct{}

// FetchClient returns the client that fetches generated images: it
// connects only to public addresses, or to the private addresses a
// fetch's context allows (the image upstream's own host and port, when the
// upstream is a local model server), redirects included, and closes idle
// connections after 30 seconds.
func FetchClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, ControlContext: func(ctx context.Context, network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return errPrivate
		}
		if !private(ip) {
			return nil
		}
		if allowed, _ := ctx.Value(allowedKey{}).(map[string]bool); allowed[canonical(address)] {
			return nil
		}
		return errPrivate
	}}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{DialContext: dialer.DialContext, TLSHandshakeTimeout: 10 * time.Second,
			ResponseHeaderTimeout: timeout, IdleConnTimeout: 30 * time.Second, MaxIdleConnsPerHost: 4,
			ForceAttemptHTTP2: true},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

// canonical writes ip:port the same way whatever the IP's notation.
func canonical(address string) string {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return address
	}
	if ip := net.ParseIP(host); ip != nil {
		host = ip.String()
	}
	return net.JoinHostPort(host, port)
}

// Image is a stored image.
type Image struct {
	ID          string
	ContentType string
	Data        []byte
	// RevisedPrompt is what the upstream says it drew, when it says.
	RevisedPrompt string
}

// Path is the image's link on the gateway.
func (i Image) Path() string { return "/files/" + i.ID }

func blobKey(id string) string { return "images/" + id }

// Generate asks the upstream up for images and stores each, fetching the
// ones it links to and decoding the ones it sends inline. An image that is
// too large, not an image, or behind a
// redirect to a private address is refused (EUpstream with the reason), and
// no image of the request is kept.
func (s *Service) Generate(ctx context.Context, up gateway.Upstream, req gateway.ImageRequest) ([]Image, error) {
	if strings.TrimSpace(req.Prompt) == "" {
		e := gateway.Errorf(gateway.EInvalid, "Say what to draw.")
		e.Param = "prompt"
		return nil, e
	}
	if req.N < 1 {
		req.N = 1
	}
	sources, err := s.upstream.GenerateImages(ctx, up, req)
	if err != nil {
		return nil, err
	}
	sources = sources[:min(len(sources), req.N)]
	var images []Image
	for _, src := range sources {
		var data []byte
		var ct string
		if src.B64JSON != "" {
			data, ct, err = s.decode(src.B64JSON)
		} else {
			data, ct, err = s.fetch(ctx, up.BaseURL, src.URL)
		}
		if err != nil {
			return nil, err
		}
		images = append(images, Image{ID: strings.ToLower(rand.Text()), ContentType: ct, Data: data, RevisedPrompt: src.RevisedPrompt})
	}
	// Stored only once every image passed, so a refusal keeps nothing.
	for i, im := range images {
		if err := s.blobs.Put(ctx, blobKey(im.ID), bytes.NewReader(im.Data), im.ContentType); err != nil {
			for _, done := range images[:i] {
				s.blobs.Delete(ctx, blobKey(done.ID))
			}
			return nil, fmt.Errorf("store image: %w", err)
		}
	}
	return images, nil
}

func refused(format string, args ...any) error {
	return gateway.Errorf(gateway.EUpstream, "The generated image was refused: "+format, args...)
}

// decode reads an image the upstream sent inline. Its faults are the
// upstream's own answer, so they are named.
func (s *Service) decode(b64 string) ([]byte, string, error) {
	if int64(base64.StdEncoding.DecodedLen(len(b64))) > s.opt.MaxBytes {
		return nil, "", refused("it is larger than %d bytes.", s.opt.MaxBytes)
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, "", refused("its base64 is malformed.")
	}
	ct := http.DetectContentType(data)
	if !strings.HasPrefix(ct, "image/") {
		return nil, "", refused("it is not an image.")
	}
	return data, ct, nil
}

// fetch downloads an image from link. It connects only to public
// addresses, or to the image upstream's own host and port when that host
// is private (a local model server), and checks every redirect the same
// way. What went wrong is logged; the caller learns only that the image
// could not be fetched, never what answered at an address.
func (s *Service) fetch(ctx context.Context, upstreamBase, link string) ([]byte, string, error) {
	failed := func(reason string, args ...any) ([]byte, string, error) {
		slog.WarnContext(ctx, "generated image refused", append([]any{"reason", reason}, args...)...)
		return nil, "", gateway.Errorf(gateway.EUpstream, "The generated image could not be fetched, or was not a usable image.")
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return failed("the link is not an http(s) URL")
	}
	allowed := allowedPrivate(ctx, upstreamBase)
	if namesPrivate(u, allowed) {
		return failed("the link leads to a private address", "host", u.Host)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, allowedKey{}, allowed), http.MethodGet, link, nil)
	if err != nil {
		return failed("the link is not usable", "err", err)
	}
	// Redirects are held to the same rule, before the client's own.
	client := *s.fetcher
	next := client.CheckRedirect
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if namesPrivate(req.URL, allowed) {
			return errPrivate
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, errPrivate) {
			return failed("the link leads to a private address", "host", u.Host)
		}
		return failed("the fetch failed", "host", u.Host, "err", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failed("the image host answered an error", "host", u.Host, "status", resp.StatusCode)
	}
	if resp.ContentLength > s.opt.MaxBytes {
		return failed("the image is too large", "host", u.Host, "bytes", resp.ContentLength, "max", s.opt.MaxBytes)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "" && !strings.HasPrefix(mt, "image/") && mt != "application/octet-stream" {
		return failed("not an image", "host", u.Host, "content_type", mt)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, s.opt.MaxBytes+1))
	if err != nil {
		return failed("the download broke off", "host", u.Host, "err", err)
	}
	if int64(len(data)) > s.opt.MaxBytes {
		return failed("the image is too large", "host", u.Host, "max", s.opt.MaxBytes)
	}
	ct := http.DetectContentType(data)
	if !strings.HasPrefix(ct, "image/") {
		return failed("not an image", "host", u.Host, "content_type", ct)
	}
	return data, ct, nil
}

var errPrivate = errors.New("private address")

// portOf is u's port, or its scheme's.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// endsInNumber reports whether a host's last label is a number (decimal,
// or 0x hexadecimal): the WHATWG URL parser (the Fetch API's) then reads the
// host as an IPv4 address, however it is written. No domain ends so.
func endsInNumber(host string) bool {
	last := host[strings.LastIndexByte(host, '.')+1:]
	if hex, ok := strings.CutPrefix(last, "0x"); ok {
		return strings.Trim(hex, "0123456789abcdef") == ""
	}
	return last != "" && strings.Trim(last, "0123456789") == ""
}

// namesPrivate reports whether u names a private address by itself (an IP
// literal, localhost, or a number that a browser-style URL parser reads as
// an IPv4 address) that allowed does not list. Every fetcher is held to
// it, before the fetch and on each redirect: on Workers, where no dialer
// can check the address a name resolves to, it is the only check; the
// native fetcher checks that address too.
func namesPrivate(u *url.URL, allowed map[string]bool) bool {
	host := u.Hostname()
	if net.ParseIP(host) == nil {
		// What the Fetch API's parser will make of the name: full-width
		// digits and ideographic full stops fold to ASCII (１２７。０。０。１
		// is 127.0.0.1), so the check reads the name the same way.
		ascii, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return true
		}
		host = ascii
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	port := portOf(u)
	ip := net.ParseIP(host)
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		ip = net.IPv4(127, 0, 0, 1)
	case ip == nil && endsInNumber(host):
		return true // 2130706433, 0x7f.1, 127.1: what a browser-style parser reads as IPv4
	}
	if ip == nil || !private(ip) {
		return false
	}
	return !allowed[net.JoinHostPort(ip.String(), port)]
}

// private reports whether ip is not on the public internet: loopback,
// private, link-local (cloud metadata lives there), unspecified, CGNAT,
// multicast.
func private(ip net.IP) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return true
	}
	_, cgnat, _ := net.ParseCIDR("100.64.0.0/10")
	return cgnat.Contains(ip)
}

// allowedPrivate returns the private addresses (ip:port) of the image
// upstream's own host and port, where fetching is allowed when the
// upstream is a model server on the local network: an IP literal, or a
// name all of whose addresses are private. A public name that also
// resolves to private addresses allows none of them.
func allowedPrivate(ctx context.Context, base string) map[string]bool {
	return allowedPrivateBy(ctx, base, net.DefaultResolver.LookupIPAddr)
}

// allowedPrivateBy is allowedPrivate with the resolver lookup.
func allowedPrivateBy(ctx context.Context, base string, lookup func(context.Context, string) ([]net.IPAddr, error)) map[string]bool {
	out := map[string]bool{}
	u, err := url.Parse(base)
	if err != nil || u.Hostname() == "" {
		return out
	}
	port := portOf(u)
	var ips []net.IP
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		ips = []net.IP{ip}
	} else if addrs, err := lookup(ctx, u.Hostname()); err == nil {
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !private(ip) {
			return map[string]bool{}
		}
		out[net.JoinHostPort(ip.String(), port)] = true
	}
	return out
}

// Open returns a stored image for serving.
func (s *Service) Open(ctx context.Context, id string) (io.ReadCloser, storage.BlobInfo, error) {
	if !validID(id) {
		return nil, storage.BlobInfo{}, gateway.Errorf(gateway.ENotFound, "No such file.")
	}
	rc, info, err := s.blobs.Get(ctx, blobKey(id))
	if gateway.IsNotFound(err) {
		return nil, storage.BlobInfo{}, gateway.Errorf(gateway.ENotFound, "No such file.")
	}
	return rc, info, err
}

// SignedURL returns a short-lived direct link to a stored image where the
// blob store signs URLs, or "".
func (s *Service) SignedURL(ctx context.Context, id string, ttl time.Duration) (string, error) {
	signer, ok := s.blobs.(storage.Signer)
	if !ok || !validID(id) {
		return "", nil
	}
	rc, _, err := s.Open(ctx, id)
	if err != nil {
		return "", err
	}
	rc.Close()
	return signer.SignURL(ctx, http.MethodGet, blobKey(id), ttl)
}

// validID reports whether id can be an image ID (rand.Text, lower-cased).
func validID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
