package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/reject"
)

// At the store's bound the oldest signals are discarded, as the policy
// states; what a peer that was away never got is counted, per peer. The
// peer's export consumer reads only what its policy may send, so the
// count comes from where the store's first sequence moved past the
// consumer, not from gaps in what it reads: with a policy that sends only
// congestion signals, among faults, no congestion signal is lost
// uncounted.
func TestStoreBoundDiscardsOldestAndCounts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		classes []string
		faults  bool // a fault, not for op-b, before each signal
	}{
		{"every class", []string{"*"}, false},
		{"congestion among faults", []string{"congestion"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) { storeBound(t, tc.classes, tc.faults) })
	}
}

func storeBound(t *testing.T, classes []string, faults bool) {
	a := baseConfig(t, "op-a")
	a.Storage.MaxBytes = config.MinStorageBytes // the signals get 624 KiB of it (store.Split)
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: classes, Services: []string{"*"}}, SigningKey: pub(t, "op-b"),
	}}
	ta := newTally()
	na := startNode(t, a, node.WithObserver(ta))
	proxy := natstest.StartProxy(t, na.LeafURL()[len("nats-leaf://"):])
	b := baseConfig(t, "op-b")
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: "nats-leaf://" + proxy.Addr(), User: "op-b", Password: "secret-b-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-a"),
	}}
	nb := startNode(t, b)
	waitFor(t, 10*time.Second, func() error {
		if !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	proxy.Cut()
	waitFor(t, 5*time.Second, func() error {
		if nb.LinkUp("op-a") {
			return fmt.Errorf("still up")
		}
		return nil
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	// More than the sender holds in flight (512) plus what the bound keeps.
	const n = 2500
	for i := range n {
		if faults {
			require.True(t, publish(t, pa, faultEvent("op-a", fmt.Sprintf("f-%d", i))).OK())
		}
		require.True(t, publish(t, pa, congestion("op-a", fmt.Sprintf("d-%d", i))).OK())
	}
	stored := n
	if faults {
		stored = 2 * n
	}
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	got := &collector{}
	_, err = cb.Subscribe("an.sig.op-a.>", got.add)
	require.NoError(t, err)
	require.NoError(t, cb.Flush())
	proxy.Restore()
	var discarded uint64
	waitFor(t, 60*time.Second, func() error {
		bl, err := na.Backlog(context.Background(), "op-b")
		if err != nil || bl != 0 {
			return fmt.Errorf("backlog %d %v", bl, err)
		}
		ps := na.Peers(context.Background())
		discarded = ps[0].Discarded
		switch {
		case !faults && int(discarded)+got.n() != n:
			return fmt.Errorf("discarded %d + received %d != %d", discarded, got.n(), n)
		case faults && int(discarded)+got.n() < n:
			// The faults discarded behind op-b's export count too:
			// the store cannot tell what they were any more.
			return fmt.Errorf("discarded %d + received %d < %d: congestion signals lost uncounted", discarded, got.n(), n)
		}
		return nil
	})
	assert.LessOrEqual(t, int(discarded)+got.n(), stored, "no signal counted twice, none counted that is still stored")
	t.Logf("store bound 1 MiB (624 KiB for the signals): %d stored while the link was down (%d for op-b), %d discarded at the bound, %d delivered", stored, n, discarded, got.n())
	assert.Positive(t, discarded, "the bound was reached")
	// Each discard is reported against the peer with its reason (just
	// after it is counted).
	waitFor(t, 5*time.Second, func() error {
		if n := ta.rejections("to:op-b", reject.StoreBound); uint64(n) != discarded {
			return fmt.Errorf("%d store-bound rejections, %d discarded", n, discarded)
		}
		return nil
	})
	assert.Positive(t, got.n(), "the newest signals still arrive")
}
