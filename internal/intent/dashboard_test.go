package intent_test

import (
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/browsertest"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// TestIntentsOnDashboardInChromium opens op-a's and op-b's dashboards in
// headless Chromium: the intents card asks for the token, then shows
// op-a's intent with its partner, targets and lifecycle, and follows it
// live as op-b's measurements make it notCompliant and compliant again;
// op-b's page shows the same intent as one it handles.
func TestIntentsOnDashboardInChromium(t *testing.T) {
	exe := browsertest.Chromium(t)
	a, b := pair(t, nil, func(c *config.Config) {
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
	})
	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)

	ctx, see := browsertest.OpenPage(t, exe, "http://"+a.hs.Addr()+"/")
	see("#intresult", "type the intent API's bearer token")
	require.NoError(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#inttoken"), token)))
	see("#intents tbody", "acme-vpn-1", "owner", "op-a → op-b", "vpn-acme", "latency <= 20 ms", "inProgress", "op-b accepted it (intents.accept[0])")

	nc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.True(t, nodetest.Publish(t, nc, latency(1, 48.2, signal.Raised)).OK())
	see("#intents tbody", "notCompliant", "op-b reports it nonCompliant", "acknowledged → inProgress → notCompliant")
	require.True(t, nodetest.Publish(t, nc, latency(2, 15, signal.Cleared)).OK())
	see("#intents tbody", "acknowledged → inProgress → notCompliant → compliant")

	ctxB, seeB := browsertest.OpenPage(t, exe, "http://"+b.hs.Addr()+"/")
	seeB("#intresult", "type the intent API's bearer token")
	require.NoError(t, chromedp.Do(ctxB, chromedp.SendKeys(chromedp.CSS("#inttoken"), token)))
	seeB("#intents tbody", "op-a.acme-vpn-1", "handler", "op-a → op-b", "compliant", "op-b's measurements: every expectation met")
}
