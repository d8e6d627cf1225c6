package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// A stream peer's counts show in /metrics and /v1/peers at both ends:
// telemetry sent and delivered while the link is up; dropped at op-a and
// lost at op-b while it is cut.
func TestStreamCountsInMetricsAndPeers(t *testing.T) {
	a, b, proxy := pairEdits(t, "", func(c *config.Config) { c.Peers[0].Export.Delivery = config.DeliveryStream }, nil)
	i := 0
	tel := func() {
		i++
		ev := event("op-a", "congestion", fmt.Sprintf("vpn-acme/ic-%d", i), congestionData)
		require.Equal(t, signal.StatusAccepted, nodetest.PublishTelemetry(t, a.nc, ev).Status)
	}
	// until waits, publishing telemetry meanwhile if more is true, until
	// every series is at least its value.
	until := func(more bool, want map[string]map[string]float64) {
		t.Helper()
		natstest.WaitFor(t, 15*time.Second, func() error {
			if more {
				tel()
			}
			for url, series := range want {
				m := nodetest.Scrape(t, url)
				for k, v := range series {
					if m[k] < v {
						return fmt.Errorf("%s = %v, want %v or more", k, m[k], v)
					}
				}
			}
			return nil
		})
	}
	until(true, map[string]map[string]float64{
		a.url: {`anfed_peer_stream_sent_total{kind="telemetry",peer="op-b"}`: 3, "anfed_telemetry_accepted_total": 3},
		b.url: {`anfed_peer_stream_telemetry_delivered_total{peer="op-a"}`: 3, `anfed_peer_stream_received_total{peer="op-a"}`: 3},
	})

	proxy.Cut()
	natstest.WaitFor(t, 10*time.Second, func() error {
		if a.n.LinkUp("op-b") || b.n.LinkUp("op-a") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // the sender's view of the link is 100 ms old at most
	for range 5 {
		tel()
	}
	until(false, map[string]map[string]float64{a.url: {`anfed_peer_dropped_total{peer="op-b",reason="link-down"}`: 5}})
	proxy.Restore()
	until(true, map[string]map[string]float64{b.url: {`anfed_peer_stream_lost_total{peer="op-a"}`: 5}})

	var pa, pb []httpapi.Peer
	getJSON(t, a.url+"/v1/peers", &pa)
	getJSON(t, b.url+"/v1/peers", &pb)
	require.Len(t, pa, 1)
	require.Len(t, pb, 1)
	assert.Equal(t, config.DeliveryStream, pa[0].Delivery)
	require.NotNil(t, pa[0].Stream)
	assert.GreaterOrEqual(t, pa[0].Stream.Out.DroppedLinkDown, uint64(5))
	require.NotNil(t, pb[0].Stream)
	assert.GreaterOrEqual(t, pb[0].Stream.In.Lost, uint64(5))
	t.Logf("op-a's view: %+v; op-b's view: %+v", pa[0].Stream.Out, pb[0].Stream.In)
}
