package node_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
)

// pathIs checks the path a signal arrived with.
func pathIs(want ...string) tlCheck {
	return where(fmt.Sprintf("path is %v", want), func(ev *signal.Event) error {
		if !slices.Equal(ev.Path, want) {
			return fmt.Errorf("path %v", ev.Path)
		}
		return nil
	})
}

// signedBy checks that the signal still carries its origin's signature,
// as a third operator holding the origin's key checks it.
func signedBy(t *testing.T, id string) tlCheck {
	v, err := origin.NewVerifier(map[string]string{id: pub(t, id)})
	require.NoError(t, err)
	return where(id+"'s signature verifies", func(ev *signal.Event) error { return v.Verify(ev) })
}

// relayAll makes a leaf of a hub accept relayed signals and pin the keys of
// the other leaves, whose signals reach it through the hub.
func relayAll(t *testing.T, center string, leaves ...string) func(id string) func(*config.Config) {
	return func(id string) func(*config.Config) {
		return func(c *config.Config) {
			peerOf(c, center).Import.Transit = true
			for _, o := range leaves {
				if o != id {
					c.Origins = append(c.Origins, config.Origin{ID: o, SigningKey: pub(t, o)})
				}
			}
		}
	}
}

// decided asserts, on the copy of id that node hub stored, which rule of
// hub's export policy towards each peer decided it, and whether it
// exported it: the rule an operator sees in `anfed policy explain`.
func decided(hubNode *node.Node, id string, want map[string]string) tlAction {
	return do("decisions on "+id, func(t *testing.T, tl *timeline) {
		tl.mu.Lock()
		got := tl.got[hubNode.ID()][id]
		tl.mu.Unlock()
		require.NotEmpty(t, got, "%s never reached %s", id, hubNode.ID())
		ev, class := got[0].ev, strings.Split(got[0].ev.Type, ".")[2]
		cfg := hubNode.Config()
		for peer, rule := range want {
			p, ok := cfg.Peer(peer)
			require.True(t, ok)
			d := exportpolicy.ForConfig(cfg, p).Decide(ev, class)
			t.Logf("%s -> %s: export=%v rule=%q", id, peer, d.Export, d.Rule)
			wantExport := !strings.HasPrefix(rule, "!")
			assert.Equal(t, wantExport, d.Export, "%s to %s: %s", id, peer, d.Rule)
			assert.Contains(t, d.Rule, strings.TrimPrefix(rule, "!"), "%s to %s", id, peer)
		}
	})
}

// TestRolesTimeline: op-b relays (export.transit) between three partners
// with roles, RFC 9234 style: op-a and op-d are peers, op-c a customer.
// By default (valley-free) op-b passes a peer's signals to its customer
// only, never to another peer, and a customer's signals to everyone; an
// explicit export.transit_from towards op-a lets op-d's signals through.
// Relayed copies keep their origin's signature and carry path
// [origin, op-b].
func TestRolesTimeline(t *testing.T) {
	leaves := []string{"op-a", "op-c", "op-d"}
	relay := relayAll(t, "op-b", leaves...)
	ns := hub(t, "op-b", leaves, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			for i := range c.Peers {
				c.Peers[i].Export.Transit = true
			}
			peerOf(c, "op-c").Role = config.RoleCustomer
			peerOf(c, "op-d").Role = config.RolePeer
			// op-a explicitly takes what op-b learned from customers and
			// peers (op-d), not from providers.
			peerOf(c, "op-a").Export.TransitFrom = []string{config.RoleCustomer, config.RolePeer}
		},
		"op-a": relay("op-a"), "op-c": relay("op-c"), "op-d": relay("op-d"),
	})
	nb := ns[0]
	tlRun(t, ns,
		at(0, push("op-a", congestion("op-a", "ro-a1"))),
		at(100*time.Millisecond, push("op-c", congestion("op-c", "ro-c1"))),
		at(200*time.Millisecond, push("op-d", congestion("op-d", "ro-d1"))),
		// A peer's signal: to the customer, not to the other peer.
		want("op-c", "ro-a1", until(3*time.Second), pathIs("op-a", "op-b"), signedBy(t, "op-a")),
		wantNothing("op-d", "ro-a1", until(4*time.Second)),
		// A customer's signal: to everyone.
		want("op-a", "ro-c1", between(100*time.Millisecond, 3*time.Second), pathIs("op-c", "op-b"), signedBy(t, "op-c")),
		want("op-d", "ro-c1", between(100*time.Millisecond, 3*time.Second), pathIs("op-c", "op-b"), signedBy(t, "op-c")),
		// A peer's signal: to the customer, and to op-a which asked for
		// peers' signals explicitly.
		want("op-c", "ro-d1", between(200*time.Millisecond, 3*time.Second), pathIs("op-d", "op-b")),
		want("op-a", "ro-d1", between(200*time.Millisecond, 3*time.Second), pathIs("op-d", "op-b"), signedBy(t, "op-d")),
		at(3*time.Second,
			decided(nb, "ro-a1", map[string]string{
				"op-c": "export.transit relays it by roles (learned from op-a, a peer, and op-c is a customer)",
				"op-d": "!roles: learned from op-a (role peer), relayed only to customers, and op-d is a peer",
				"op-a": "!no-loop",
			}),
			decided(nb, "ro-c1", map[string]string{
				"op-a": "learned from op-c, a customer, and op-a is a peer",
				"op-d": "learned from op-c, a customer, and op-d is a peer",
			}),
			decided(nb, "ro-d1", map[string]string{
				"op-a": "by export.transit_from [customer peer] (learned from op-d, a peer, and op-a is a peer)",
				"op-c": "learned from op-d, a peer, and op-c is a customer",
			}),
		),
	)
}
