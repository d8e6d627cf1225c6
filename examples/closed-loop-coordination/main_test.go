package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
)

const user, password = "closed-loop", "loop-pass-123"

// startPair starts op-a, which decides on reroutes of its interconnects,
// and op-b, with a client listener for the example, linked.
func startPair(t *testing.T) (a, b *node.Node) {
	t.Helper()
	keys := new(nodetest.Keys)
	log := node.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	act := []string{"action"}
	ca := nodetest.BaseConfig(t, "op-a")
	ca.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	ca.Coordination = &config.Coordination{AutoAccept: []config.CoordinationRule{{From: []string{"op-b"}, Kinds: []string{"reroute"}}}}
	ca.Peers = []config.Peer{{ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: act, Services: []string{"*"}}, Import: config.ImportPolicy{Classes: act}, SigningKey: keys.Public(t, "op-b")}}
	a = nodetest.Start(t, keys, ca, log)
	cb := nodetest.WithClient(nodetest.BaseConfig(t, "op-b"), user, password)
	cb.Peers = []config.Peer{{ID: "op-a", Dial: &config.Dial{URL: a.LeafURL(), User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: act, Services: []string{"*"}}, Import: config.ImportPolicy{Classes: act}, SigningKey: keys.Public(t, "op-a")}}
	b = nodetest.Start(t, keys, cb, log)
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !a.LinkUp("op-b") || !b.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	return a, b
}

func opts(b *node.Node, resource string) options {
	return options{URL: b.ClientURL(), User: user, Password: password, Self: "op-b", Affected: []string{"op-a"},
		Service: "vpn-acme", Resource: resource, Kind: "reroute", Duration: "PT5M", Effect: "below 80%",
		CauseSource: "anfed://op-a/assurance", CauseID: "cong-1", Work: 100 * time.Millisecond, Timeout: 15 * time.Second}
}

// With the wire alone, the example proposes, is accepted under op-a's
// policy, acts, completes, and sees op-a release the lease.
func TestProposeActComplete(t *testing.T) {
	_, b := startPair(t)
	var out strings.Builder
	require.NoError(t, run(context.Background(), opts(b, "ic-paris-1"), &out))
	assert.Regexp(t, `(?m)^proposed op-b-reroute-[0-9a-f]+: reroute of vpn-acme/ic-paris-1 for PT5M, affecting op-a$`, out.String())
	assert.Regexp(t, `(?m)^op-a accepted \(coordination.auto_accept\[0\]\): lease until \d{4}-`, out.String())
	assert.Contains(t, out.String(), "completed: every lease released")
}

// A resource leased to another action: the example is told who holds it
// and until when, and does nothing.
func TestProposeDeclinedNamesTheHolder(t *testing.T) {
	_, b := startPair(t)
	nc, err := b.Connect()
	require.NoError(t, err)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	held, err := coordination.NewClient(nc, "op-b", "other-loop").Propose(ctx, coordination.Proposal{ActionID: "op-b-other", Kind: "reroute",
		Resources: []coordination.Resource{{ID: "ic-paris-2", Type: "interconnect"}}, Services: []string{"vpn-acme"}, Affected: []string{"op-a"},
		Causes: []coordination.Cause{{Source: "anfed://op-a/assurance", ID: "cong-2"}}, ExpectedEffect: "x", Duration: time.Minute})
	require.NoError(t, err)
	require.True(t, held.Accepted())
	var out strings.Builder
	err = run(ctx, opts(b, "ic-paris-2"), &out)
	require.Error(t, err)
	assert.Regexp(t, `(?m)^op-a declined \(lease-held\): held by op-b until \d{4}-`, out.String())
	assert.NotContains(t, out.String(), "active")
}
