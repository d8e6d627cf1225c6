package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// perPeerFamilies are the per-peer series that must move while signals
// cross, a link is cut and comes back.
var perPeerFamilies = []string{
	"anfed_peer_link_up",
	"anfed_peer_signals_in_total",
	"anfed_peer_signals_out_total",
	"anfed_peer_rejected_total",
	"anfed_peer_conditions_active",
	"anfed_peer_conditions_stale",
	"anfed_peer_backlog",
	"anfed_peer_export_latency_seconds_count",
	"anfed_peer_import_latency_seconds_count",
	"anfed_peer_session_state",
	"anfed_peer_refreshes_total",
}

// history keeps every value each series had across scrapes.
type history map[string]map[float64]bool

func (h history) add(m map[string]float64) {
	first := len(h) == 0
	for k, v := range m {
		if h[k] == nil {
			h[k] = map[float64]bool{}
			if !first {
				h[k][0] = true // a series that appears later was 0 before
			}
		}
		h[k][v] = true
	}
}

// has reports whether some series of family for peer was scraped.
func (h history) has(family, peer string) bool {
	for k := range h {
		name, labels, _ := strings.Cut(k, "{")
		if name == family && strings.Contains(labels, `peer="`+peer+`"`) {
			return true
		}
	}
	return false
}

// moved reports whether some series of family for peer took two values.
func (h history) moved(family, peer string) bool {
	for k, vs := range h {
		name, labels, _ := strings.Cut(k, "{")
		if name == family && strings.Contains(labels, `peer="`+peer+`"`) && len(vs) > 1 {
			return true
		}
	}
	return false
}

// TestMetricsMoveWhileSignalsCross scrapes /metrics on two linked nodes
// while signals cross both ways, some are refused by the import policy,
// and the link is cut and restored; every per-peer family moves on both
// sides.
func TestMetricsMoveWhileSignalsCross(t *testing.T) {
	a, b, proxy := pair(t)
	ha, hb := history{}, history{}
	scrapeBoth := func() (ma, mb map[string]float64) {
		ma, mb = nodetest.Scrape(t, a.url), nodetest.Scrape(t, b.url)
		ha.add(ma)
		hb.add(mb)
		return ma, mb
	}
	ma, mb := scrapeBoth()
	// Every family is there from the start, for every configured peer.
	for _, f := range []string{"anfed_peer_link_up", "anfed_peer_signals_in_total", "anfed_peer_signals_out_total", "anfed_peer_backlog", "anfed_peer_conditions_active", "anfed_peer_conditions_stale", "anfed_peer_export_latency_seconds_count", "anfed_peer_import_latency_seconds_count"} {
		assert.Contains(t, ma, f+`{peer="op-b"}`)
		assert.Contains(t, mb, f+`{peer="op-a"}`)
	}
	assert.Contains(t, ma, "anfed_nats_slow_consumers_total")
	assert.Equal(t, 1.0, ma["anfed_ready"])
	assert.Equal(t, 1.0, ma[`anfed_peer_link_up{peer="op-b"}`])

	// Signals cross both ways; a fault from A and a congestion from B are
	// refused by the other's import policy.
	for i := range 5 {
		publish(t, a, event("op-a", "congestion", fmt.Sprintf("vpn-acme/ic-%d", i), congestionData))
		publish(t, b, event("op-b", "mitigation", fmt.Sprintf("vpn-acme/ic-%d", i), mitigationData))
	}
	publish(t, a, event("op-a", "fault", "vpn-acme/ic-9", faultData))
	publish(t, b, event("op-b", "congestion", "vpn-acme/ic-9", congestionData))
	natstest.WaitFor(t, 10*time.Second, func() error {
		ma, mb := scrapeBoth()
		for _, c := range []struct {
			m    map[string]float64
			key  string
			want float64
		}{
			{mb, `anfed_peer_signals_in_total{peer="op-a"}`, 5},
			{ma, `anfed_peer_signals_in_total{peer="op-b"}`, 5},
			{mb, `anfed_peer_rejected_total{peer="op-a",reason="not-imported"}`, 1},
			{ma, `anfed_peer_rejected_total{peer="op-b",reason="not-imported"}`, 1},
			{mb, `anfed_peer_conditions_active{peer="op-a"}`, 5},
			{ma, `anfed_peer_conditions_active{peer="op-b"}`, 5},
		} {
			if c.m[c.key] < c.want {
				return fmt.Errorf("%s = %v, want %v", c.key, c.m[c.key], c.want)
			}
		}
		return nil
	})

	// Cut the link: it goes down on both sides, what A and B publish waits
	// in their backlogs, and each side's conditions of the other go stale.
	proxy.Cut()
	natstest.WaitFor(t, 10*time.Second, func() error {
		ma, mb := scrapeBoth()
		if ma[`anfed_peer_link_up{peer="op-b"}`] != 0 || mb[`anfed_peer_link_up{peer="op-a"}`] != 0 {
			return fmt.Errorf("link still up: a %v b %v", ma[`anfed_peer_link_up{peer="op-b"}`], mb[`anfed_peer_link_up{peer="op-a"}`])
		}
		return nil
	})
	for i := range 3 {
		publish(t, a, event("op-a", "congestion", fmt.Sprintf("vpn-acme/ic-cut-%d", i), congestionData))
		publish(t, b, event("op-b", "mitigation", fmt.Sprintf("vpn-acme/ic-cut-%d", i), mitigationData))
	}
	natstest.WaitFor(t, 15*time.Second, func() error {
		ma, mb := scrapeBoth()
		for _, c := range []struct {
			m   map[string]float64
			key string
		}{
			{ma, `anfed_peer_backlog{peer="op-b"}`},
			{mb, `anfed_peer_backlog{peer="op-a"}`},
			{ma, `anfed_peer_conditions_stale{peer="op-b"}`},
			{mb, `anfed_peer_conditions_stale{peer="op-a"}`},
		} {
			if c.m[c.key] == 0 {
				return fmt.Errorf("%s = 0", c.key)
			}
		}
		return nil
	})

	// Restore it: the backlogs drain and the conditions are fresh again.
	proxy.Restore()
	// A cut shorter than the hold time keeps the session, so no refresh
	// follows it; the one at establishment may come before the first
	// scrape. Ask for one on demand, as an operator would.
	natstest.WaitFor(t, 20*time.Second, func() error {
		return a.n.RefreshPeer(context.Background(), "op-b", true, true) // once the session is back
	})
	natstest.WaitFor(t, 20*time.Second, func() error {
		ma, mb := scrapeBoth()
		for _, c := range []struct {
			m    map[string]float64
			key  string
			want float64
		}{
			{ma, `anfed_peer_link_up{peer="op-b"}`, 1},
			{mb, `anfed_peer_link_up{peer="op-a"}`, 1},
			{ma, `anfed_peer_backlog{peer="op-b"}`, 0},
			{mb, `anfed_peer_backlog{peer="op-a"}`, 0},
			{ma, `anfed_peer_conditions_stale{peer="op-b"}`, 0},
			{mb, `anfed_peer_conditions_stale{peer="op-a"}`, 0},
			{mb, `anfed_peer_signals_in_total{peer="op-a"}`, 8},
			{ma, `anfed_peer_signals_in_total{peer="op-b"}`, 8},
		} {
			if c.m[c.key] != c.want {
				return fmt.Errorf("%s = %v, want %v", c.key, c.m[c.key], c.want)
			}
		}
		return nil
	})

	// The on-demand refresh may end after the backlogs drained (under
	// -race on a busy machine, seconds after): scrape until every family
	// moved, then check.
	natstest.WaitFor(t, 20*time.Second, func() error {
		scrapeBoth()
		for _, f := range perPeerFamilies {
			if !ha.moved(f, "op-b") || !hb.moved(f, "op-a") {
				return fmt.Errorf("%s has not moved at both ends yet", f)
			}
		}
		return nil
	})
	for _, f := range perPeerFamilies {
		assert.True(t, ha.moved(f, "op-b"), "op-a's %s{peer=op-b} did not move", f)
		assert.True(t, hb.moved(f, "op-a"), "op-b's %s{peer=op-a} did not move", f)
	}
	ma, _ = scrapeBoth()
	require.GreaterOrEqual(t, ma[`anfed_peer_signals_out_total{peer="op-b"}`], 9.0, "5 + 1 fault + 3 after the cut, resends counted again")
	assert.Positive(t, ma[`anfed_local_signals_total{result="accepted"}`])
}
