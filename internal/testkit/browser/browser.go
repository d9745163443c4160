// Package browser drives headless Chromium for the tests of the admin
// pages.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Path returns the headless browser to drive, skipping (or failing, under
// make test) when it is not installed.
func Path(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("GATEWAY_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("GATEWAY_REQUIRE_TOOLS") == "1" {
		t.Fatal("chromium is not installed (make tools installs it)")
	}
	t.Skip("chromium is not installed (make tools installs it)")
	return ""
}

// New starts a headless Chromium with a fresh profile and returns the
// context of its first tab, ended after within or with the test.
func New(t testing.TB, within time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Path(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(ctx, within)
	t.Cleanup(func() { cancel(); cancelTab(); cancelAlloc() })
	return ctx
}

// Text returns the text of the element sel selects.
func Text(t testing.TB, ctx context.Context, sel string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("read %s: %v", sel, err)
	}
	return v
}

// Widths of the screens pages are checked at: a phone's and a laptop's.
const (
	Phone  = 390
	Laptop = 1280
)

// Fits checks the page at width: nothing wider than the screen (no
// scrolling sideways), and saves a screenshot of the whole page as
// name-<width>.png among the test's artifacts (see Artifacts).
func Fits(t testing.TB, ctx context.Context, name string, width int) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), 844), chromedp.Sleep(150*time.Millisecond)); err != nil {
		t.Fatalf("show %s at %d px: %v", name, width, err)
	}
	wide, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const w = document.documentElement.clientWidth;
		if (document.documentElement.scrollWidth <= w) return "";
		const over = [...document.querySelectorAll("body *")].filter((e) => e.getBoundingClientRect().right > w + 1);
		return over.slice(-3).map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : "")).join(", ") || "the page";
	})()`))
	if err != nil {
		t.Fatalf("measure %s at %d px: %v", name, width, err)
	}
	// From the top, where a sticky header belongs.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("(window.scrollTo(0, 0), true)")); err != nil {
		t.Fatalf("scroll %s to the top: %v", name, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s at %d px: %v", name, width, err)
	}
	dir := Artifacts(t)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width)), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if wide != "" {
		t.Errorf("%s at %d px scrolls sideways: %s wider than the screen", name, width, wide)
	}
}

// Artifacts returns the folder screenshots go to: GATEWAY_ARTIFACTS, or
// artifacts/screenshots in the repository.
func Artifacts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("GATEWAY_ARTIFACTS")
	if dir == "" {
		out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			dir = filepath.Join(os.TempDir(), "aigateway-artifacts")
		} else {
			dir = filepath.Join(strings.TrimSpace(string(out)), "artifacts", "screenshots")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
