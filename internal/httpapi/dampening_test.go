package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// TestAPIDampening: a condition suppressed by flap dampening shows in
// /v1/conditions (suppressed, penalty, reuse time), /v1/peers and
// /metrics, and stops showing once released.
func TestAPIDampening(t *testing.T) {
	a, b, _ := pairWith(t, func(c *config.Config) {
		c.Peers[0].Import.Dampening = &config.Dampening{HalfLife: config.Duration(time.Second), MaxSuppress: config.Duration(10 * time.Second)}
	})
	for i, st := range []signal.State{signal.Raised, signal.Cleared, signal.Raised, signal.Cleared} {
		ev := event("op-a", "congestion", "vpn-acme/flappy", congestionData)
		ev.ID = fmt.Sprintf("flap-%d", i)
		ev.State = st
		publish(t, a, ev)
	}
	var cs []conditions.Condition
	natstest.WaitFor(t, 10*time.Second, func() error {
		getJSON(t, b.url+"/v1/conditions?peer=op-a", &cs)
		// The table is fed from the store: it may lag the suppression.
		if len(cs) != 1 || !cs[0].Suppressed || cs[0].Held != signal.Cleared || cs[0].Status != conditions.StatusSuppressed {
			return fmt.Errorf("conditions: %+v", cs)
		}
		return nil
	})
	c := cs[0]
	assert.Equal(t, conditions.StatusSuppressed, c.Status)
	assert.Equal(t, signal.Cleared, c.Held)
	assert.Greater(t, c.Penalty, 2000.0)
	assert.False(t, c.ReuseAt.IsZero())
	var peers []httpapi.Peer
	getJSON(t, b.url+"/v1/peers", &peers)
	require.Len(t, peers, 1)
	assert.Equal(t, 1, peers[0].Suppressed)
	assert.Equal(t, 0, peers[0].Conditions, "the table holds nothing active for it")
	natstest.WaitFor(t, 5*time.Second, func() error {
		m := nodetest.Scrape(t, b.url)
		if m[`anfed_peer_conditions_suppressed{peer="op-a"}`] != 1 || m[`anfed_peer_signals_dampened_total{peer="op-a"}`] < 1 {
			return fmt.Errorf("metrics: suppressed %v, dampened %v", m[`anfed_peer_conditions_suppressed{peer="op-a"}`], m[`anfed_peer_signals_dampened_total{peer="op-a"}`])
		}
		if m[`anfed_peer_conditions_active{peer="op-a"}`] != 0 {
			return fmt.Errorf("a suppressed condition counted active")
		}
		return nil
	})
	// Released after about three half-lives: the final clear is delivered,
	// nothing shows any more.
	natstest.WaitFor(t, 15*time.Second, func() error {
		getJSON(t, b.url+"/v1/conditions?peer=op-a", &cs)
		if len(cs) != 0 {
			return fmt.Errorf("conditions: %+v", cs)
		}
		if m := nodetest.Scrape(t, b.url); m[`anfed_peer_conditions_suppressed{peer="op-a"}`] != 0 || m[`anfed_peer_signals_dampened_total{peer="op-a"}`] != 2 {
			return fmt.Errorf("metrics: %v", m)
		}
		return nil
	})
}
