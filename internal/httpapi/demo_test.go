package httpapi_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/demo"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
)

// tryScrape is nodetest.Scrape that gives up quietly (the demo may be
// stopping).
func tryScrape(base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	m, _ := nodetest.ParseMetrics(resp.Body) // nil: unreadable, as stopping
	return m
}

// TestMetricsDuringDemo runs the three-operator demo with each node's
// HTTP server, scrapes op-a's and op-b's /metrics while signals cross, and
// finds the per-peer families of a healthy federation moving: signals in
// and out, export and import latency, active conditions. (Link state,
// backlog and stale conditions move only when a link is cut:
// TestMetricsMoveWhileSignalsCross.)
func TestMetricsDuringDemo(t *testing.T) {
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel)
	servers := map[string]*httpapi.Server{}
	urls := make(chan map[string]string, 1)
	done := make(chan demo.Summary, 1)
	go func() {
		s, err := demo.Run(t.Context(), demo.Options{
			Duration: 4 * time.Second, Interval: 50 * time.Millisecond, Dir: t.TempDir(), Out: io.Discard, Log: log,
			NodeOptions: func(id string) []node.Option {
				hs := httpapi.New(httpapi.Options{Listen: "127.0.0.1:0", Tick: 200 * time.Millisecond, Log: log})
				servers[id] = hs
				return []node.Option{node.WithObserver(hs.Observer())}
			},
			Started: func(nodes map[string]*node.Node) (func(), error) {
				u := map[string]string{}
				var started []*httpapi.Server
				for id, hs := range servers {
					if err := hs.Start(nodes[id]); err != nil {
						return nil, err
					}
					started = append(started, hs)
					u[id] = "http://" + hs.Addr()
				}
				urls <- u
				return func() {
					for _, hs := range started {
						hs.Stop()
					}
				}, nil
			},
		})
		assert.NoError(t, err)
		done <- s
	}()
	var u map[string]string
	select {
	case u = <-urls:
	case s := <-done:
		t.Fatalf("the demo ended before its nodes served HTTP: %v", s)
	}
	ha, hb := history{}, history{}
	var s demo.Summary
scraping:
	for {
		if m := tryScrape(u["op-a"]); m != nil {
			ha.add(m)
		}
		if m := tryScrape(u["op-b"]); m != nil {
			hb.add(m)
		}
		select {
		case s = <-done:
			break scraping
		case <-time.After(250 * time.Millisecond):
		}
	}
	require.Zero(t, s.Lost, "%v", s)
	for _, c := range []struct {
		h            history
		family, peer string
	}{
		{ha, "anfed_peer_signals_out_total", "op-b"},
		{ha, "anfed_peer_signals_in_total", "op-b"},
		{ha, "anfed_peer_export_latency_seconds_count", "op-b"},
		{ha, "anfed_peer_import_latency_seconds_count", "op-b"},
		{ha, "anfed_peer_conditions_active", "op-b"},
		{hb, "anfed_peer_signals_in_total", "op-a"},
		{hb, "anfed_peer_signals_out_total", "op-a"},
		{hb, "anfed_peer_signals_out_total", "op-c"},
		{hb, "anfed_peer_export_latency_seconds_count", "op-a"},
		{hb, "anfed_peer_export_latency_seconds_count", "op-c"},
		{hb, "anfed_peer_import_latency_seconds_count", "op-a"},
		{hb, "anfed_peer_conditions_active", "op-a"},
		{ha, "anfed_peer_rejected_total", "local"}, // the demo's buggy probe
	} {
		assert.True(t, c.h.moved(c.family, c.peer), "%s{peer=%q} did not move during the demo", c.family, c.peer)
	}
	for _, f := range []string{"anfed_peer_link_up", "anfed_peer_backlog", "anfed_peer_conditions_stale"} {
		assert.True(t, hb.has(f, "op-a") && hb.has(f, "op-c"), "%s present for each of op-b's peers", f)
	}
}
