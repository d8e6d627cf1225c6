package node_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
)

// TestRotateLeafCertAndPassword: op-a rotates its leaf listener's
// certificate (new files from the same CA) and the password it issued to
// op-b, each with a reload, while signals cross: the link never drops
// (0 flaps), new connections get the new certificate, and op-b, whose
// live link keeps working, reconnects with the new password.
func TestRotateLeafCertAndPassword(t *testing.T) {
	ca := natstest.NewCA(t)
	cert1, key1 := ca.Issue(t, "leaf-1", net.ParseIP("127.0.0.1"))
	addr := natstest.FreeAddr(t)
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: addr, TLS: &config.TLS{Cert: cert1, Key: key1}}
	a.Peers = []config.Peer{reloadPeer(t, "op-b")}
	l := &reloadLab{t: t, cfg: a, peers: map[string]*node.Node{}}
	l.na = startNode(t, a)
	var err error
	l.pa, err = l.na.Connect()
	require.NoError(t, err)
	t.Cleanup(l.pa.Close)
	b := baseConfig(t, "op-b")
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: "tls://" + addr, User: "op-b", Password: "secret-op-b-123", TLS: &config.TLS{CA: ca.File}},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-a"),
	}}
	l.peers["op-b"] = startNode(t, b)
	l.established("op-b")
	l.raise("vpn-acme", "ic-1")
	l.waitHeld("op-b", "vpn-acme/ic-1")
	first := ca.ServedSerial(t, addr)

	// The certificate: new files, a reload.
	cert2, key2 := ca.Issue(t, "leaf-2", net.ParseIP("127.0.0.1"))
	res := l.reload(func(c *config.Config) {
		ln := *c.NATS.LeafNodes
		ln.TLS = &config.TLS{Cert: cert2, Key: key2}
		c.NATS.LeafNodes = &ln
	})
	assert.Equal(t, []string{"nats.leafnodes.tls"}, res.Node)
	second := ca.ServedSerial(t, addr)
	assert.NotEqual(t, first, second, "new connections get the new certificate")
	l.raise("vpn-acme", "ic-2")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-acme/ic-2")

	// The password op-a issued to op-b.
	res = l.reload(func(c *config.Config) {
		p := c.Peers[0]
		acc := *p.Accept
		acc.Password = "secret-op-b-456"
		p.Accept = &acc
		c.Peers[0] = p
	})
	assert.Equal(t, map[string][]string{"op-b": {"accept"}}, res.Changed)
	l.raise("vpn-acme", "ic-3")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-acme/ic-2", "vpn-acme/ic-3")
	assert.Zero(t, l.flaps("op-b"), "the link dropped for a rotation")

	// op-b takes the new password: its live link keeps the old one (a
	// remote is named by its URL with the credentials: reloading it would
	// cut the link) until its next connection.
	nb := l.peers["op-b"]
	next := *nb.Config()
	next.Peers = slices.Clone(next.Peers)
	d := *next.Peers[0].Dial
	d.Password = "secret-op-b-456"
	next.Peers[0].Dial = &d
	_, err = nb.Reload(context.Background(), &next)
	require.NoError(t, err)
	stayUp := time.Now().Add(2 * time.Second)
	for time.Now().Before(stayUp) {
		require.True(t, nb.LinkUp("op-a") && l.na.LinkUp("op-b"), "op-b's link dropped when it took the new password")
		time.Sleep(50 * time.Millisecond)
	}
	l.raise("vpn-acme", "ic-4")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-acme/ic-2", "vpn-acme/ic-3", "vpn-acme/ic-4")
	assert.Zero(t, l.flaps("op-b"), "the link dropped for a rotation")

	// The link is cut: op-b comes back with the new password.
	lz, err := l.na.Server().Leafz(nil)
	require.NoError(t, err)
	require.Len(t, lz.Leafs, 1)
	require.NoError(t, l.na.Server().DisconnectClientByID(lz.Leafs[0].ID))
	cut := time.Now()
	waitFor(t, 10*time.Second, func() error {
		if l.flaps("op-b") == 0 {
			return fmt.Errorf("the cut not seen yet")
		}
		return nil
	})
	l.established("op-b")
	t.Logf("after a cut op-b reconnected with the new password in %s", time.Since(cut))
	l.raise("vpn-acme", "ic-5")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-acme/ic-2", "vpn-acme/ic-3", "vpn-acme/ic-4", "vpn-acme/ic-5")
}
