package node_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// op-b writes a burst from op-a's link with many store writes in flight,
// and its store connection is kicked in the middle of it: writes fail
// with later ones in flight. The receiver goes back
// to the first failed one — answers it and every later one "not now",
// rolls its last decided sequence back — and op-a resends from there:
// every signal of the burst reaches op-b's consumers exactly once, in
// link order.
func TestReceiverStoreKickedMidBurstGoesBackN(t *testing.T) {
	tb := newTally()
	na, nb, proxy := linkedOpts(t, nil, []node.Option{node.WithObserver(tb)}, nil)
	pa, err := na.Connect()
	require.NoError(t, err)
	t.Cleanup(pa.Close)
	arr := watchArrivals(t, nb)
	arr.waitAll(t, publishN(t, pa, "before", 1))

	// A backlog at op-a, sent as one burst when the link is back.
	cutLink(t, na, nb, proxy)
	const n = 1500 // a burst the kicks land in, on a fast machine too
	// Over 40 conditions in turn, each raised then updated: the
	// receiver keeps writes of distinct conditions in flight together,
	// one per condition.
	const conds = 40
	i := 0
	ids := publishEach(t, "burst", n, func(ev *signal.Event) signal.Answer {
		ev.Subject = fmt.Sprintf("vpn-acme/r%02d", i%conds)
		if i >= conds {
			ev.State = signal.Updated
		}
		i++
		return publish(t, pa, ev)
	})
	proxy.Restore()
	waitFor(t, 20*time.Second, func() error {
		if !arr.has(ids[0]) {
			return fmt.Errorf("the burst has not started")
		}
		return nil
	})
	kicks := 0
	for range 4 {
		if arr.has(ids[n-1]) {
			break // over
		}
		if id, ok := tryConnID(nb, "anfed-node-store"); ok && nb.Server().DisconnectClientByID(id) == nil {
			kicks++
		}
		time.Sleep(50 * time.Millisecond)
	}
	arr.waitAll(t, ids)
	time.Sleep(500 * time.Millisecond) // a duplicate would have come by now

	arr.mu.Lock()
	var order []string
	for _, id := range arr.order {
		if arr.ids[id] > 1 {
			t.Errorf("%s arrived %d times", id, arr.ids[id])
		}
		if strings.HasPrefix(id, "burst-") {
			order = append(order, id)
		}
	}
	arr.mu.Unlock()
	assert.Equal(t, ids, order, "the burst in link order")
	// The table follows the store's order: each condition holds its
	// last signal.
	waitFor(t, 10*time.Second, func() error {
		held := map[string]string{}
		for _, c := range nb.Conditions(conditions.Filter{Peer: "op-a"}) {
			held[c.Subject] = c.ID
		}
		for i := n - conds; i < n; i++ {
			if k := fmt.Sprintf("vpn-acme/r%02d", i%conds); held[k] != ids[i] {
				return fmt.Errorf("op-b's table holds %q for %s, want its last signal %s", held[k], k, ids[i])
			}
		}
		return nil
	})
	failed := tb.rejections("op-a", reject.Unavailable)
	t.Logf("%d kicks of op-b's store connection: %d go-back-N (a failed write answered not now, with all after it); %d resends answered duplicate (stored, their answer lost)",
		kicks, failed, tb.rejections("op-a", reject.Duplicate))
	require.Positive(t, kicks, "no kick during the burst: make it longer")
	assert.Positive(t, failed, "a kick failed writes in flight")
	assert.NoError(t, nb.Err())
}
