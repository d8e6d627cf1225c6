package node_test

// Per-peer buffer bounds (export.buffer) and lossy delivery
// (export.delivery: lossy), with a real link cut by a TCP proxy.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// arrivals records the ids of op-a's signals that reached op-b's store
// (watchArrivals), or another node's subject (watchSubject).
type arrivals struct {
	mu    sync.Mutex
	ids   map[string]int
	order []string
	// unverified: arrivals whose signature the verifier refused.
	unverified []string
}

func watchArrivals(t *testing.T, nb *node.Node) *arrivals {
	return watchSubject(t, nb, "an.sig.op-a.>", nil)
}

// watchSubject records the signals n's local subscribers get on subj,
// each checked by ver (nil: not checked).
func watchSubject(t *testing.T, n *node.Node, subj string, ver *origin.Verifier) *arrivals {
	t.Helper()
	cb, err := n.Connect()
	require.NoError(t, err)
	t.Cleanup(cb.Close)
	a := &arrivals{ids: map[string]int{}}
	_, err = cb.Subscribe(subj, func(m *nats.Msg) {
		ev, err := signal.DecodeStructured(m.Data)
		if err != nil {
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		a.ids[ev.ID]++
		a.order = append(a.order, ev.ID)
		if ver != nil {
			if err := ver.Verify(ev); err != nil {
				a.unverified = append(a.unverified, ev.ID+": "+err.Error())
			}
		}
	})
	require.NoError(t, err)
	require.NoError(t, cb.Flush())
	return a
}

func (a *arrivals) has(id string) bool { a.mu.Lock(); defer a.mu.Unlock(); return a.ids[id] > 0 }

func (a *arrivals) waitAll(t *testing.T, ids []string) {
	t.Helper()
	waitFor(t, 15*time.Second, func() error {
		for _, id := range ids {
			if !a.has(id) {
				return fmt.Errorf("%s not arrived", id)
			}
		}
		return nil
	})
}

func publishN(t *testing.T, nc *nats.Conn, prefix string, n int) []string {
	t.Helper()
	return publishEach(t, prefix, n, func(ev *signal.Event) signal.Answer { return publish(t, nc, ev) })
}

// publishEach publishes n congestion signals of op-a with pub, each
// answered OK, and returns their ids.
func publishEach(t *testing.T, prefix string, n int, pub func(*signal.Event) signal.Answer) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%03d", prefix, i)
		ev := congestion("op-a", ids[i])
		ev.Sequence = fmt.Sprintf("%s-%03d", prefix, i)
		a := pub(ev)
		require.True(t, a.OK(), "%v", a)
	}
	return ids
}

func peerState(t *testing.T, n *node.Node, id string) node.PeerState {
	t.Helper()
	for _, p := range n.Peers(context.Background()) {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no peer %s", id)
	return node.PeerState{}
}

// cutLink cuts the proxied link and waits until both ends see it down.
func cutLink(t *testing.T, na, nb *node.Node, proxy *natstest.Proxy) {
	t.Helper()
	proxy.Cut()
	waitFor(t, 10*time.Second, func() error {
		if na.LinkUp("op-b") || nb.LinkUp("op-a") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
}

// cutWithOneInFlight links op-a to op-b with op-a's export buffer set by
// edit, lets 3 signals cross, cuts the link, and publishes one more: the
// first signal after the cut is sent and finds no route, so it is in
// flight (the peer may have decided it) and never dropped.
func cutWithOneInFlight(t *testing.T, edit func(*config.Buffer), optsA ...node.Option) (na *node.Node, pa *nats.Conn, arr *arrivals, proxy *natstest.Proxy, inFlight []string) {
	t.Helper()
	na, nb, proxy := linkedWith(t, optsA, func(c *config.Config) { edit(&c.Peers[0].Export.Buffer) })
	pa, err := na.Connect()
	require.NoError(t, err)
	t.Cleanup(pa.Close)
	arr = watchArrivals(t, nb)
	arr.waitAll(t, publishN(t, pa, "before", 3))
	// op-b's answers too: a signal at op-b's consumers may not be
	// answered yet, and one unanswered at the cut waits with the rest.
	waitFor(t, 10*time.Second, func() error {
		if bl := peerState(t, na, "op-b").Backlog; bl != 0 {
			return fmt.Errorf("%d signals unanswered", bl)
		}
		return nil
	})
	cutLink(t, na, nb, proxy)
	inFlight = publishN(t, pa, "inflight", 1)
	time.Sleep(200 * time.Millisecond)
	return na, pa, arr, proxy, inFlight
}

// untilOneCrosses publishes a signal every 50 ms until one reaches the
// peer: over a lossy link, what is published before the peer's interest
// crossed is lost.
func untilOneCrosses(t *testing.T, pa *nats.Conn, arr *arrivals, prefix string) {
	t.Helper()
	untilCrosses(t, arr, prefix, func(p string) string { return publishN(t, pa, p, 1)[0] })
}

// untilCrosses publishes one signal at a time with publish until one
// reaches arr.
func untilCrosses(t *testing.T, arr *arrivals, prefix string, publish func(prefix string) string) {
	t.Helper()
	i := 0
	waitFor(t, 10*time.Second, func() error {
		i++
		id := publish(fmt.Sprintf("%s%d", prefix, i))
		time.Sleep(50 * time.Millisecond)
		if !arr.has(id) {
			return fmt.Errorf("no signal crossed yet")
		}
		return nil
	})
}

// A signal that waited for the peer longer than export.buffer.max_age is
// not sent to it: counted, reported with its reason (buffer-age, to the
// peer), and the peer gets only the fresh ones. The local store keeps
// everything.
func TestBufferMaxAgeDropsStaleSignalsForThatPeer(t *testing.T) {
	const maxAge = 3 * time.Second
	ta := newTally()
	na, pa, arr, proxy, inFlight := cutWithOneInFlight(t, func(b *config.Buffer) { b.MaxAge = config.Duration(maxAge) }, node.WithObserver(ta))
	stale := publishN(t, pa, "stale", 30)
	time.Sleep(maxAge + 500*time.Millisecond)
	fresh := publishN(t, pa, "fresh", 10)
	proxy.Restore()
	arr.waitAll(t, append(inFlight, fresh...))
	time.Sleep(500 * time.Millisecond) // anything else would have come by now

	for _, id := range stale {
		assert.False(t, arr.has(id), "stale %s reached the peer", id)
	}
	ps := peerState(t, na, "op-b")
	assert.EqualValues(t, len(stale), ps.DroppedTooOld, "each stale signal counted")
	assert.Equal(t, len(stale), ta.rejections("to:op-b", reject.BufferAge), "each stale signal reported with its reason")
	assert.Zero(t, ps.DroppedOverBytes)
	assert.Zero(t, ta.rejections("to:op-b", reject.BufferBytes))
	assert.Zero(t, ps.Backlog)
	// Dropped for the peer only: the store keeps every signal.
	assert.EqualValues(t, 3+1+30+10, streamMsgs(t, na, store.SignalStream, "an.sig.>"))
}

// When the signals waiting for the peer take more than
// export.buffer.max_bytes, the oldest not yet sent are dropped until they
// fit: the peer gets the newest, in order, and the drops are counted and
// reported with their reason (buffer-bytes, to the peer).
func TestBufferMaxBytesKeepsTheNewest(t *testing.T) {
	const maxBytes = 16 << 10
	ta := newTally()
	na, pa, arr, proxy, inFlight := cutWithOneInFlight(t, func(b *config.Buffer) { b.MaxBytes = maxBytes }, node.WithObserver(ta))
	batch := publishN(t, pa, "batch", 100)
	// The bound is checked every second.
	waitFor(t, 10*time.Second, func() error {
		if ps := peerState(t, na, "op-b"); ps.DroppedOverBytes == 0 {
			return fmt.Errorf("nothing dropped yet")
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond)
	ps := peerState(t, na, "op-b")
	mean, err := na.StoreMeanSize(context.Background())
	require.NoError(t, err)
	proxy.Restore()
	kept := 100 - int(ps.DroppedOverBytes)
	require.Positive(t, kept)
	arr.waitAll(t, append(inFlight, batch[100-kept:]...))
	time.Sleep(500 * time.Millisecond)

	for _, id := range batch[:100-kept] {
		assert.False(t, arr.has(id), "dropped %s reached the peer", id)
	}
	// What waited fits the bound (the in-flight signal counts too).
	assert.LessOrEqual(t, float64(kept+1)*mean, float64(maxBytes)+mean, "kept %d signals of %.0f bytes", kept, mean)
	assert.Greater(t, float64(kept+2)*mean, float64(maxBytes), "dropped no more than needed: kept %d of %.0f bytes", kept, mean)
	t.Logf("max_bytes %d, mean signal %.0f bytes: kept the newest %d of 100, dropped %d", maxBytes, mean, kept, ps.DroppedOverBytes)
	assert.Zero(t, peerState(t, na, "op-b").Backlog)
	assert.EqualValues(t, peerState(t, na, "op-b").DroppedOverBytes, ta.rejections("to:op-b", reject.BufferBytes), "each drop reported with its reason")
}

// export.delivery: lossy: signals cross fire and forget. What is published
// while the link is down is lost to the peer, counted, and never resent;
// nothing waits; after the link is back new signals cross at once.
func TestLossyDeliveryLosesWhatTheCutTakesAndNothingWaits(t *testing.T) {
	na, nb, proxy := linkedEdit(t, func(c *config.Config) { c.Peers[0].Export.Delivery = config.DeliveryLossy })
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	arr := watchArrivals(t, nb)

	// The peer's interest crosses the link shortly after it comes up.
	untilOneCrosses(t, pa, arr, "warmup")
	before := publishN(t, pa, "before", 20)
	arr.waitAll(t, before)

	cutLink(t, na, nb, proxy)
	time.Sleep(300 * time.Millisecond)
	lost := publishN(t, pa, "lost", 20)
	time.Sleep(300 * time.Millisecond)
	proxy.Restore()
	untilOneCrosses(t, pa, arr, "rewarm")
	after := publishN(t, pa, "after", 20)
	arr.waitAll(t, after)
	time.Sleep(500 * time.Millisecond)

	for _, id := range lost {
		assert.False(t, arr.has(id), "%s crossed while the link was down", id)
	}
	ps := peerState(t, na, "op-b")
	assert.Equal(t, config.DeliveryLossy, ps.Delivery)
	assert.Zero(t, ps.Backlog, "nothing waits for a lossy peer")
	assert.GreaterOrEqual(t, ps.DroppedLinkDown, uint64(len(lost)), "each signal dropped while down is counted")
}

// A peer's export.delivery turned lossy by a reload while signals wait
// for it (the link cut): its durable backlog is dropped with its consumer,
// never sent, and reported against the peer with its reason
// (delivery-changed), as many signals as waited.
func TestDeliveryChangedDropsTheBacklogWithItsReason(t *testing.T) {
	ta := newTally()
	na, nb, proxy := linkedWith(t, []node.Option{node.WithObserver(ta)}, nil)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	arr := watchArrivals(t, nb)
	arr.waitAll(t, publishN(t, pa, "before", 3))
	cutLink(t, na, nb, proxy)
	publishN(t, pa, "waiting", 20)
	var waiting uint64
	waitFor(t, 10*time.Second, func() error {
		if waiting = peerState(t, na, "op-b").Backlog; waiting < 20 {
			return fmt.Errorf("backlog %d, want 20 or more", waiting)
		}
		return nil
	})
	assert.Zero(t, ta.rejections("to:op-b", reject.DeliveryChanged), "nothing dropped while durable")

	lossy := *na.Config()
	lossy.Peers = slices.Clone(lossy.Peers)
	lossy.Peers[0].Export.Delivery = config.DeliveryLossy
	_, err = na.Reload(context.Background(), &lossy)
	require.NoError(t, err)

	ps := peerState(t, na, "op-b")
	assert.Equal(t, config.DeliveryLossy, ps.Delivery)
	assert.Zero(t, ps.Backlog, "nothing waits for a lossy peer")
	assert.EqualValues(t, waiting, ta.rejections("to:op-b", reject.DeliveryChanged), "the whole backlog reported with its reason")
}
