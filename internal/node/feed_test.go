package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// changeSeqs records the store sequence of every change of n's table
// from now on.
type changeSeqs struct {
	mu   sync.Mutex
	seqs []uint64
	ids  []string
}

func recordChanges(t *testing.T, n *node.Node) *changeSeqs {
	t.Helper()
	ch, cancel := n.Table().Subscribe(1 << 14)
	r := &changeSeqs{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range ch {
			r.mu.Lock()
			r.seqs, r.ids = append(r.seqs, c.Condition.Seq), append(r.ids, c.Condition.ID)
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *changeSeqs) get() ([]uint64, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...), append([]string(nil), r.ids...)
}

// storeBehindTheFeed stores ev in n's signal stream on the node's own
// store connection, as the store would, but without Store.Put: no writer
// reports it, as when a write's acknowledgement is lost. It returns the
// stream sequence.
func storeBehindTheFeed(t *testing.T, n *node.Node, class string, ev *signal.Event) uint64 {
	t.Helper()
	js, err := jetstream.New(n.StoreConn())
	require.NoError(t, err)
	svc, res, _ := strings.Cut(ev.Subject, "/")
	subj, err := subject.Signal(subject.Key{Origin: ev.Origin, Class: class, Service: svc, Resource: res})
	require.NoError(t, err)
	m := nats.NewMsg(subject.StorePrefix + strings.TrimPrefix(subj, subject.SignalPrefix))
	m.Header.Set(jetstream.MsgIDHeader, ev.Key())
	m.Data = ev.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.PublishMsg(ctx, m)
	require.NoError(t, err)
	require.False(t, ack.Duplicate)
	return ack.Sequence
}

// TestConditionFeedFillsGaps: in process the table is fed from the
// node's own writes; a signal stored without a writer reporting it (its
// acknowledgement lost) is read from the stream: one before a reported
// write is applied first, in stream order, and one that nothing follows
// is applied all the same.
func TestConditionFeedFillsGaps(t *testing.T) {
	n := startNode(t, baseConfig(t, "op-a"))
	changes := recordChanges(t, n)
	nc, err := n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	ev := func(id, res string) *signal.Event { return congestionOn("op-a", id, res) }

	lost := storeBehindTheFeed(t, n, "congestion", ev("lost-1", "ic-1"))
	require.True(t, publish(t, nc, ev("reported-2", "ic-2")).OK())
	trailing := storeBehindTheFeed(t, n, "congestion", ev("lost-3", "ic-3"))
	require.Equal(t, lost+2, trailing, "the three are the stream's, in a row")

	waitFor(t, 15*time.Second, func() error {
		if got := n.Conditions(conditions.Filter{}); len(got) != 3 {
			return fmt.Errorf("%d conditions, want 3: %+v", len(got), got)
		}
		return nil
	})
	seqs, ids := changes.get()
	assert.Equal(t, []uint64{lost, lost + 1, lost + 2}, seqs, "applied once each, in stream order")
	assert.Equal(t, []string{"lost-1", "reported-2", "lost-3"}, ids)
	for _, c := range n.Conditions(conditions.Filter{}) {
		assert.Equal(t, map[string]uint64{"lost-1": lost, "reported-2": lost + 1, "lost-3": lost + 2}[c.ID], c.Seq, c.ID)
	}

	// A signal the stream lost (a purge) before the feed read it is
	// passed over: what comes after it is applied, nothing waits.
	purged := storeBehindTheFeed(t, n, "congestion", ev("purged-4", "ic-4"))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, store.SignalStream)
	require.NoError(t, err)
	require.NoError(t, st.Purge(ctx))
	require.True(t, publish(t, nc, ev("reported-5", "ic-5")).OK())
	waitFor(t, 15*time.Second, func() error {
		if seqs, _ := changes.get(); len(seqs) < 4 {
			return fmt.Errorf("%d changes, want 4", len(seqs))
		}
		return nil
	})
	seqs, ids = changes.get()
	assert.Equal(t, []uint64{lost, lost + 1, lost + 2, purged + 1}, seqs)
	assert.Equal(t, "reported-5", ids[3])
}

// TestConditionFeedBurstAndRestart: a burst of local signals (intake) and
// a peer's (the receiver) written at once: every signal the stream holds
// changes the table once, in stream order, and the table holds the last
// signal of each key; a restart rebuilds the same table from the stream,
// and the writes after it are applied from the next sequence on.
func TestConditionFeedBurstAndRestart(t *testing.T) {
	na, nb := pair(t, []string{"congestion"}, []string{"congestion"})
	changes := recordChanges(t, nb)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	pb, err := nb.Connect()
	require.NoError(t, err)
	defer pb.Close()

	const perWriter, writers, keys = 40, 3, 7
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers)
	burst := func(nc *nats.Conn, origin string, w int) {
		defer wg.Done()
		for i := range perWriter {
			e := congestion(origin, fmt.Sprintf("%s-w%d-%d", origin, w, i))
			e.Subject = fmt.Sprintf("vpn-acme/ic-%d", (i*writers+w)%keys)
			if i >= keys {
				e.State = signal.Updated
			}
			a, err := nodetest.TryPublish(nc, e)
			if err == nil && !a.OK() {
				err = fmt.Errorf("%s: %+v", e.ID, a)
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}
	for w := range writers {
		wg.Add(2)
		go burst(pa, "op-a", w)
		go burst(pb, "op-b", w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	const total = 2 * writers * perWriter
	waitFor(t, 30*time.Second, func() error {
		if got := streamMsgs(t, nb, store.SignalStream, ""); got != total {
			return fmt.Errorf("%d signals stored at op-b, want %d", got, total)
		}
		if seqs, _ := changes.get(); len(seqs) < total {
			return fmt.Errorf("%d changes, want %d", len(seqs), total)
		}
		return nil
	})
	seqs, _ := changes.get()
	want := make([]uint64, total)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	require.Equal(t, want, seqs, "each stored signal applied once, in stream order")

	// The table holds, per key, the stream's last signal of that key.
	before := tableView(nb)
	require.Len(t, before, 2*keys)
	js, err := jetstream.New(pb)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, store.SignalStream)
	require.NoError(t, err)
	for k, c := range before {
		m, err := st.GetLastMsgForSubject(ctx, c.subj)
		require.NoError(t, err, k)
		assert.Equal(t, m.Sequence, c.seq, k)
	}

	// A restart rebuilds the same table.
	cfg := nb.Config()
	nb.Stop()
	nb2 := startNode(t, cfg)
	assert.Equal(t, before, tableView(nb2))
	pb2, err := nb2.Connect()
	require.NoError(t, err)
	defer pb2.Close()
	e := congestion("op-b", "after-restart")
	e.Subject = "vpn-acme/ic-new"
	require.True(t, publish(t, pb2, e).OK())
	waitFor(t, 10*time.Second, func() error {
		for _, c := range nb2.Conditions(conditions.Filter{Origin: "op-b"}) {
			if c.ID == "after-restart" {
				if c.Seq != total+1 {
					return fmt.Errorf("seq %d, want %d", c.Seq, total+1)
				}
				return nil
			}
		}
		return fmt.Errorf("not in the table yet")
	})
}

// congestionOn is origin's congestion signal id on vpn-acme/res.
func congestionOn(origin, id, res string) *signal.Event {
	e := congestion(origin, id)
	e.Subject = "vpn-acme/" + res
	return e
}

type viewed struct {
	subj, id string
	seq      uint64
}

// tableView is what the table holds, by key, active and stale.
func tableView(n *node.Node) map[string]viewed {
	out := map[string]viewed{}
	for _, c := range n.Table().Snapshot(conditions.Filter{IncludeStale: true}) {
		svc, res, _ := strings.Cut(c.Subject, "/")
		subj, _ := subject.Signal(subject.Key{Origin: c.Origin, Class: c.Class, Service: svc, Resource: res})
		out[c.Peer+"|"+c.Origin+"|"+c.Class+"|"+c.Subject] = viewed{subj: subj, id: c.ID, seq: c.Seq}
	}
	return out
}
