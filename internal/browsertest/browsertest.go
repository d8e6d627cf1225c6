// Package browsertest opens the node's pages in headless Chromium for
// tests: the dashboard's tests, and those of the parts that add a card
// to it.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// Chromium finds the browser: $ANFED_CHROMIUM, else chromium on the PATH
// (Debian's package installs /usr/bin/chromium). Without one the test is
// skipped, unless ANFED_REQUIRE_BROWSER=1 (CI), where it fails.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, c := range []string{os.Getenv("ANFED_CHROMIUM"), "chromium", "chromium-browser", "/usr/bin/chromium"} {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	if os.Getenv("ANFED_REQUIRE_BROWSER") == "1" {
		t.Fatal("no chromium found and ANFED_REQUIRE_BROWSER=1: install it (apt-get install -y chromium) or set ANFED_CHROMIUM")
	}
	t.Skip("no chromium found: install Debian's chromium package to run the dashboard test (CI sets ANFED_REQUIRE_BROWSER=1)")
	return ""
}

// OpenPage opens url in headless Chromium for the rest of the test and
// returns the page's context and see, which waits until the text of the
// element at sel holds every want.
func OpenPage(t testing.TB, exe, url string) (context.Context, func(sel string, want ...string)) {
	t.Helper()
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1360, 1000))...)
	t.Cleanup(cancelA)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first action starts the browser, which lives as long as ctx.
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1360, 1000), chromedp.Navigate(url)))
	// see waits until the text of the element at sel holds every want.
	see := func(sel string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		var text string
		for {
			tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			act := chromedp.Text(chromedp.CSS(sel)) // the rendered text
			if strings.HasPrefix(sel, "#map") || strings.HasPrefix(sel, "#tracegraph") {
				act = chromedp.TextContent(chromedp.CSS(sel)) // an SVG has no innerText
			}
			got, err := chromedp.Run(tctx, act)
			cancel()
			if err == nil {
				text = got
			}
			ok := err == nil
			for _, w := range want {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: want %q, page shows %q (err %v)", sel, want, text, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return ctx, see
}

// Click clicks the element at sel in one step of the page's own script
// (querySelector, then click), waiting up to 20 s for it to be there. A
// page that re-renders a table on each event can replace the element
// between two protocol calls, which chromedp.Click makes (CDP: "Could
// not find node with given id").
func Click(t testing.TB, ctx context.Context, sel string) {
	t.Helper()
	js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); if (!e) return false; e.click(); return true })()`
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("click %s: no such element (err %v)", sel, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
