package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
)

// B relays (export.transit) to A, which does not accept transit from B:
// A's leaf permissions drop B's relayed signals. The link must not jam: B's
// own signals behind them still arrive.
func TestRelayDroppedByPermissionsDoesNotJamLink(t *testing.T) {
	testLogLevel = zerolog.InfoLevel
	defer func() { testLogLevel = zerolog.ErrorLevel }()
	all := config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}, Transit: true, TransitFrom: config.Roles}
	addrA, addrB := natstest.FreeAddr(t), natstest.FreeAddr(t)
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: addrA}
	a.Peers = []config.Peer{{ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-b")}}
	b := baseConfig(t, "op-b")
	b.NATS.LeafNodes = &config.Listener{Listen: addrB}
	b.Peers = []config.Peer{
		{ID: "op-a", Dial: &config.Dial{URL: "nats-leaf://" + addrA, User: "op-b", Password: "secret-b-123"}, Export: all, SigningKey: pub(t, "op-a")},
		{ID: "op-c", Accept: &config.Accept{User: "op-c", Password: "secret-c-123"}, Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-c")},
	}
	c := baseConfig(t, "op-c")
	c.Peers = []config.Peer{{ID: "op-b", Dial: &config.Dial{URL: "nats-leaf://" + addrB, User: "op-c", Password: "secret-c-123"}, Export: all, SigningKey: pub(t, "op-b")}}
	na, nb, nc := startNode(t, a), startNode(t, b), startNode(t, c)
	_ = nb
	waitFor(t, 10*time.Second, func() error {
		if !na.LinkUp("op-b") || !nc.LinkUp("op-b") {
			return fmt.Errorf("links not up")
		}
		return nil
	})
	ca, err := na.Connect()
	require.NoError(t, err)
	defer ca.Close()
	got := &collector{}
	_, err = ca.Subscribe("an.sig.>", got.add)
	require.NoError(t, err)
	require.NoError(t, ca.Flush())
	pc, err := nc.Connect()
	require.NoError(t, err)
	defer pc.Close()
	pb, err := nb.Connect()
	require.NoError(t, err)
	defer pb.Close()
	require.True(t, publish(t, pb, congestion("op-b", "b-0")).OK())
	waitFor(t, 5*time.Second, func() error {
		if got.n() != 1 {
			return fmt.Errorf("a has %d signals", got.n())
		}
		return nil
	})
	for i := range 3 {
		require.True(t, publish(t, pc, congestion("op-c", fmt.Sprintf("c-%d", i))).OK())
	}
	waitFor(t, 5*time.Second, func() error {
		if nb.Conditions(condFilter("op-c")) == nil {
			return fmt.Errorf("not at b")
		}
		return nil
	})
	require.True(t, publish(t, pb, congestion("op-b", "b-1")).OK())
	waitFor(t, 20*time.Second, func() error {
		if got.n() != 2 {
			return fmt.Errorf("a has %d signals", got.n())
		}
		return nil
	})
}
