package node_test

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// TestPeerDialsEveryServer: op-b dials op-a's cluster with peers[].dial.urls
// naming each server's leaf listener. The server holding the link is shut
// down; op-b's server dials another of the URLs, and signals cross both
// ways again, none lost or twice.
func TestPeerDialsEveryServer(t *testing.T) {
	a := externalConfig(t)
	leafs := []string{natstest.FreeAddr(t), natstest.FreeAddr(t), natstest.FreeAddr(t)}
	a.NATS.LeafNodes = &config.Listener{Listen: leafs[0]}
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-b"),
	}}
	cl := nodetest.StartCluster(t, a, func(i int, o *server.Options) {
		// One host: each server's leaf listener on a port of its own.
		host, port, err := net.SplitHostPort(leafs[i])
		require.NoError(t, err)
		o.LeafNode.Host = host
		o.LeafNode.Port, err = strconv.Atoi(port)
		require.NoError(t, err)
	})
	na := startNode(t, a)

	b := baseConfig(t, "op-b")
	var urls []string
	for _, l := range leafs {
		urls = append(urls, "nats-leaf://"+l)
	}
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URLs: urls, User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-a"),
	}}
	nb := startNode(t, b)
	// holding is the cluster server holding op-b's leaf connection.
	holding := func() *server.Server {
		for _, s := range cl.Servers() {
			if s.Running() && s.NumLeafNodes() > 0 {
				return s
			}
		}
		return nil
	}
	waitFor(t, 20*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") || holding() == nil {
			return fmt.Errorf("link not up")
		}
		return nil
	})

	loop, err := nats.Connect(a.NATS.External.URLs[0]+","+a.NATS.External.URLs[1]+","+a.NATS.External.URLs[2],
		nats.UserInfo("loop", "loop-pass-123"), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	defer loop.Close()
	atA := follow(t, loop, "an.sig.op-b.>")
	bc, err := nb.Connect()
	require.NoError(t, err)
	defer bc.Close()
	atB := follow(t, bc, "an.sig.op-a.>")

	seq := 0
	send := func(n int) {
		for range n {
			seq++
			for _, side := range []struct {
				nc     *nats.Conn
				origin string
			}{{loop, "op-a"}, {bc, "op-b"}} {
				ev := congestion(side.origin, fmt.Sprintf("%s-%d", side.origin, seq))
				ev.Sequence = fmt.Sprintf("%020d", seq)
				waitFor(t, 30*time.Second, func() error {
					m, err := side.nc.Request("an.pub", ev.Encode(), 2*time.Second)
					if err != nil {
						return err
					}
					ans, err := signal.ParseAnswer(m.Data)
					if err != nil || !ans.OK() {
						return fmt.Errorf("%+v %v", ans, err)
					}
					return nil
				})
			}
		}
	}
	arrived := func(n int) func() error {
		return func() error {
			if atA.count() < n || atB.count() < n {
				return fmt.Errorf("%d at op-a, %d at op-b of %d", atA.count(), atB.count(), n)
			}
			return nil
		}
	}
	send(10)
	waitFor(t, 20*time.Second, arrived(10))

	victim := holding()
	cut := time.Now()
	victim.Shutdown()
	waitFor(t, 30*time.Second, func() error {
		h := holding()
		if h == nil || h == victim || !nb.LinkUp("op-a") {
			return fmt.Errorf("op-b has not dialled another server yet")
		}
		return nil
	})
	relinked := time.Since(cut)
	send(10)
	waitFor(t, 30*time.Second, arrived(20))
	t.Logf("%s shut down: op-b dialled %s after %v; both ways flowing %v after the shutdown",
		victim.Name(), holding().Name(), relinked.Round(time.Millisecond), time.Since(cut).Round(time.Millisecond))
	assert.Empty(t, atA.duplicates())
	assert.Empty(t, atB.duplicates())
	assert.Empty(t, atA.violations())
	assert.Empty(t, atB.violations())
}
