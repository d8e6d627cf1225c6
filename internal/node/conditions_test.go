package node_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// The condition table follows the lifecycle of a peer's conditions, marks
// them stale and then withdraws them when the link stays down, tells local
// consumers, and resyncs without duplicates when the link is back.
func TestConditionTableGracefulRestart(t *testing.T) {
	// Short timers for the test: grace 300ms, withdrawal 300ms later.
	na, nb, proxy := linked(t, func(c *config.Config) {
		c.Peers[0].Import.Grace = config.Duration(300 * time.Millisecond)
		c.Peers[0].Import.WithdrawAfter = config.Duration(300 * time.Millisecond)
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	changes := make(chan *nats.Msg, 64)
	_, err = cb.ChanSubscribe("an.cond.>", changes)
	require.NoError(t, err)
	require.NoError(t, cb.Flush())

	active := func(n int, stale bool) func() error {
		return func() error {
			got := nb.Conditions(conditions.Filter{Peer: "op-a", IncludeStale: stale})
			if len(got) != n {
				return fmt.Errorf("%d conditions, want %d", len(got), n)
			}
			return nil
		}
	}
	raise := func(id, res string, st signal.State) {
		ev := congestion("op-a", id)
		ev.Subject, ev.State = "vpn-acme/"+res, st
		require.True(t, publish(t, pa, ev).OK())
	}
	raise("r1", "ic-1", signal.Raised)
	raise("r2", "ic-2", signal.Raised)
	raise("u2", "ic-2", signal.Updated)
	waitFor(t, 5*time.Second, active(2, false))
	raise("c1", "ic-1", signal.Cleared)
	waitFor(t, 5*time.Second, active(1, false))
	c := nb.Conditions(conditions.Filter{Peer: "op-a"})[0]
	assert.Equal(t, "vpn-acme/ic-2", c.Subject)
	assert.Equal(t, signal.Updated, c.State)
	assert.Equal(t, "u2", c.ID)

	// The API answers the same, to any NATS client.
	m, err := cb.Request(subject.APIConditions, []byte(`{"Peer":"op-a"}`), 2*time.Second)
	require.NoError(t, err)
	var api []conditions.Condition
	require.NoError(t, json.Unmarshal(m.Data, &api))
	require.Len(t, api, 1)
	assert.Equal(t, "u2", api[0].ID)

	proxy.Cut()
	waitFor(t, 5*time.Second, func() error {
		if got := nb.Conditions(conditions.Filter{Peer: "op-a", IncludeStale: true}); len(got) != 1 || got[0].Status != conditions.StatusStale {
			return fmt.Errorf("not stale yet: %+v", got)
		}
		return nil
	})
	waitFor(t, 5*time.Second, active(0, true))
	kinds := map[string]int{}
	drain := func() {
		for {
			select {
			case m := <-changes:
				var ch conditions.Change
				require.NoError(t, json.Unmarshal(m.Data, &ch))
				kinds[string(ch.Kind)]++
			default:
				return
			}
		}
	}
	waitFor(t, 2*time.Second, func() error {
		drain()
		if kinds["withdraw"] != 1 || kinds["stale"] != 1 {
			return fmt.Errorf("changes so far: %v", kinds)
		}
		return nil
	})

	// While the link is down, A raises one more and clears ic-2.
	raise("r3", "ic-3", signal.Raised)
	raise("c2", "ic-2", signal.Cleared)
	proxy.Restore()
	waitFor(t, 10*time.Second, func() error {
		got := nb.Conditions(conditions.Filter{Peer: "op-a"})
		if len(got) != 1 || got[0].ID != "r3" {
			return fmt.Errorf("after resync: %+v", got)
		}
		return nil
	})
	assert.Len(t, nb.Conditions(conditions.Filter{Peer: "op-a", IncludeStale: true}), 1, "no duplicate after resync")
}

func condFilter(peer string) conditions.Filter { return conditions.Filter{Peer: peer} }
