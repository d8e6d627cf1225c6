package httpapi_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/browsertest"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
)

// TestDashboardInChromium opens op-b's dashboard in headless Chromium and
// checks what a person would see: the operator and its peer, the link's
// state (and that it changes live when the link is cut), a condition row
// and a live reject. With ANFED_SCREENSHOT=FILE it saves a PNG of the page
// (docs/dashboard.png is made so).
func TestDashboardInChromium(t *testing.T) {
	exe := browsertest.Chromium(t)
	// op-a <-> op-b <-> op-c; the page is op-b's, in the middle.
	a, b, proxy := pairWith(t, func(cb *config.Config) {
		cb.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
		cb.Peers = append(cb.Peers, config.Peer{
			ID: "op-c", Name: "Operator C", Accept: &config.Accept{User: "op-c", Password: "secret-c-123"},
			Export:     config.ExportPolicy{Classes: []string{"sla-risk"}, Services: []string{"*"}},
			Import:     config.ImportPolicy{Classes: []string{"mitigation"}},
			SigningKey: pub(t, "op-c"),
		})
	})
	cc := baseConfig(t, "op-c")
	cc.Peers = []config.Peer{{
		ID: "op-b", Name: "Operator B", Dial: &config.Dial{URL: b.n.LeafURL(), User: "op-c", Password: "secret-c-123"},
		Export:     config.ExportPolicy{Classes: []string{"mitigation"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"sla-risk"}},
		SigningKey: pub(t, "op-b"),
	}}
	c := serve(t, cc, "")
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !b.n.LinkUp("op-c") || !c.n.LinkUp("op-b") {
			return fmt.Errorf("link b-c not up")
		}
		return nil
	})
	for i := range 3 {
		publish(t, a, event("op-a", "congestion", fmt.Sprintf("vpn-acme/ic-paris-%d", i+1), congestionData))
	}
	publish(t, b, event("op-b", "mitigation", "vpn-acme/ic-paris-1", mitigationData))
	publish(t, a, event("op-a", "fault", "vpn-acme/ic-lyon-1", faultData)) // op-b does not import faults
	publish(t, b, event("op-b", "sla-risk", "transit-c/path-7", slaRiskData))
	publish(t, c, event("op-c", "mitigation", "transit-c/path-7", mitigationData))

	ctx, see := browsertest.OpenPage(t, exe, b.url+"/")
	see("h1", "op-b", "Operator B")
	see("#live", "live")
	see("#ready", "ready")
	see("#map", "op-b", "this operator", "op-a", "op-c", "link up")
	see("#peers tbody", "op-a (Operator A)", "op-c (Operator C)", "up")
	see("#conditions tbody", "op-c", "transit-c/path-7")
	see("#conditions tbody", "op-a", "congestion", "vpn-acme/ic-paris-1", "vpn-acme/ic-paris-3", "raised", "active")
	see("#conditions tbody", "local", "mitigation")
	see("#rejects tbody", "op-a", "not-imported", "vpn-acme/ic-lyon-1")

	// Live: a reject that happens while the page is open shows up...
	publish(t, a, event("op-a", "fault", "vpn-acme/ic-lyon-2", faultData))
	see("#rejects tbody", "vpn-acme/ic-lyon-2")
	if f := os.Getenv("ANFED_SCREENSHOT"); f != "" {
		// Some traffic, so the picture shows rates.
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(40 * time.Millisecond):
				}
				_, _ = a.nc.Request("an.pub", event("op-a", "congestion", fmt.Sprintf("vpn-acme/ic-paris-%d", 1+i%3), congestionData).Encode(), 5*time.Second)
			}
		}()
		time.Sleep(1500 * time.Millisecond) // a few of the page's 200 ms ticks
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		close(stop)
		<-done
		require.NoError(t, os.WriteFile(f, png, 0o644))
		t.Logf("screenshot: %s", f)
	}
	// ...and so does a link cut, and the stale conditions after it.
	proxy.Cut()
	see(`#map [data-peer="op-a"]`, "op-a", "link down")
	see(`#map [data-peer="op-c"]`, "op-c", "link up")
	see("#peers tbody", "down")
	see("#conditions tbody", "stale")
	proxy.Restore()
	see(`#map [data-peer="op-a"]`, "op-a", "link up")
}

// TestDashboardDecidesPendingProposal: op-b's drain waits on op-a's
// policy for a person; op-a's dashboard lists it with its buttons, and a
// click with the token accepts it: op-b gets the lease, and the page
// shows it, and the action's trace as a graph (ANFED_TRACE_SCREENSHOT=FILE
// saves a PNG of it: docs/trace.png is made so).
func TestDashboardDecidesPendingProposal(t *testing.T) {
	exe := browsertest.Chromium(t)
	tok := writeToken(t, "tok-dashboard-0123456789")
	a, b := drainPair(t, tok)
	ctx, see := browsertest.OpenPage(t, exe, a.url+"/")
	pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := proposeDrain(t, pctx, b, "b-drain-web")
	see("#actions tbody", "b-drain-web", "op-b", "drain", "ic-paris-1", "waiting for us (coordination.require_human[0])")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#acttoken"), "tok-dashboard-0123456789"),
		chromedp.SendKeys(chromedp.CSS("#actreason"), "fine in the window")))
	browsertest.Click(t, ctx, `button[data-action="b-drain-web"][data-verb="accept"]`)
	act := <-done
	require.True(t, act.Accepted(), "%+v", act.Decisions)
	assert.Equal(t, "dashboard", act.Decisions["op-a"].DecidedBy)
	see("#actresult", "b-drain-web: accepted")
	see("#leases tbody", "ic-paris-1", "op-a", "op-b", "b-drain-web")
	see("#actions tbody", "b-drain-web", "op-a: accepted (human)")

	// The action's trace as a graph: op-b's proposal, through op-b, and
	// op-a's accept, ours, an arrow from the one to the other.
	browsertest.Click(t, ctx, `a[data-trace="b-drain-web"]`) // in the actions table, which each event redraws
	see("#traceinfo", "b-drain-web: 2 signal(s) in the chain")
	see("#tracegraph", "op-b · action · raised", "via op-b", "op-a · action · raised", "ours")
	edges, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#tracegraph path.cause")].map(e => e.dataset.from + " -> " + e.dataset.to)`))
	require.NoError(t, err)
	require.Len(t, edges, 1, "one arrow: %v", edges)
	assert.Regexp(t, `^\S+ -> op-a/b-drain-web/accepted/\d+$`, edges[0])
	xOf := func(id string) float64 {
		x, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`+document.querySelector('#tracegraph g.hopbox[data-id="`+id+`"] rect').getAttribute("x")`))
		require.NoError(t, err)
		return x
	}
	from, to := xOf(strings.Fields(edges[0])[0]), xOf(strings.Fields(edges[0])[2])
	assert.Less(t, from, to, "the cause is drawn left of what it caused")
	h, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector("#tracegraph").getBoundingClientRect().height`))
	require.NoError(t, err)
	assert.Greater(t, h, 50.0, "the graph shows")
	if f := os.Getenv("ANFED_TRACE_SCREENSHOT"); f != "" {
		png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#trace-card")))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f, png, 0o644))
	}
	// an id the node never stored
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#traceid"), "no-such-id"), chromedp.Click(chromedp.CSS("#tracego"))))
	see("#traceinfo", "no-such-id: ", "no stored signal has that id")
}
