package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// Attacks on the condition feed (feed.go): the table fed from the node's
// own writes must equal what the stream holds, each stored signal applied
// once and in stream order, whatever happens to the writes' answers.

// watchAnnounced records the upserts n announces on an.cond.> from now
// on: the store sequence and id of each, in the order they came.
func watchAnnounced(t *testing.T, n *node.Node) *changeSeqs {
	t.Helper()
	nc, err := n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	a := &changeSeqs{}
	_, err = nc.Subscribe("an.cond.>", func(m *nats.Msg) {
		var c conditions.Change
		if json.Unmarshal(m.Data, &c) != nil || c.Kind != conditions.Upsert {
			return // stale/fresh of the link: no new signal
		}
		a.mu.Lock()
		a.seqs, a.ids = append(a.seqs, c.Condition.Seq), append(a.ids, c.Condition.ID)
		a.mu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return a
}

// storedSignals is the signal stream of n read in order: the id at each
// sequence, the last sequence of each subject, and the last sequence.
type storedSignals struct {
	ids  map[uint64]string
	last map[string]uint64
	top  uint64
}

// signalStream is the signal stream through nc, with a context for its
// reads that ends with the test (30 s at the most).
func signalStream(t *testing.T, nc *nats.Conn) (jetstream.Stream, context.Context) {
	t.Helper()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := js.Stream(ctx, store.SignalStream)
	require.NoError(t, err)
	return st, ctx
}

func readSignals(t *testing.T, n *node.Node) storedSignals {
	t.Helper()
	nc, err := n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	st, ctx := signalStream(t, nc)
	info, err := st.Info(ctx)
	require.NoError(t, err)
	out := storedSignals{ids: map[uint64]string{}, last: map[string]uint64{}, top: info.State.LastSeq}
	if info.State.Msgs == 0 {
		return out
	}
	oc, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	for {
		m, err := oc.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		meta, err := m.Metadata()
		require.NoError(t, err)
		ev, err := signal.DecodeStructured(m.Data())
		require.NoError(t, err)
		out.ids[meta.Sequence.Stream] = ev.ID
		out.last[m.Subject()] = meta.Sequence.Stream
		if meta.Sequence.Stream >= info.State.LastSeq {
			return out
		}
	}
}

// tableMatchesStream says how n's table differs from its stream: each
// subject's last signal, and nothing else, held with its sequence.
func tableMatchesStream(t *testing.T, n *node.Node) error {
	s := readSignals(t, n)
	held := map[string]uint64{}
	for _, c := range tableView(n) {
		held[c.subj] = c.seq
	}
	if len(held) != len(s.last) {
		return fmt.Errorf("table holds %d keys, the stream %d subjects", len(held), len(s.last))
	}
	for subj, seq := range s.last {
		if held[subj] != seq {
			return fmt.Errorf("%s: table at seq %d, stream's last %d", subj, held[subj], seq)
		}
	}
	return nil
}

// settled waits until n's store holds the fromA signals of op-a that A
// accepted, its table equals its stream and ann has announced up to the
// stream's last sequence; it checks that each id of accepted is stored
// once, and returns the stream as read then.
func settled(t *testing.T, n *node.Node, ann *changeSeqs, fromA int, accepted ...[]string) storedSignals {
	t.Helper()
	waitFor(t, 60*time.Second, func() error {
		if c, err := streamCount(n, store.SignalStream, "an.sig.op-a.>"); err != nil || c < uint64(fromA) {
			return fmt.Errorf("%d of A's %d stored at B (%v)", c, fromA, err)
		}
		return nil
	})
	waitFor(t, 30*time.Second, func() error { return tableMatchesStream(t, n) })
	s := readSignals(t, n)
	waitFor(t, 15*time.Second, func() error {
		if seqs, _ := ann.get(); len(seqs) == 0 || seqs[len(seqs)-1] < s.top {
			return fmt.Errorf("last announced %v, stream at %d", seqs[max(0, len(seqs)-1):], s.top)
		}
		return nil
	})
	times := map[string]int{}
	for _, id := range s.ids {
		times[id]++
	}
	for _, ids := range accepted {
		for _, id := range ids {
			if times[id] != 1 {
				t.Errorf("%s stored %d times at B", id, times[id])
			}
		}
	}
	return s
}

// checkAnnounced checks that seqs (announced, in order) is a run of
// consecutive stream sequences, each announced with the stream's id at it.
func checkAnnounced(t *testing.T, what string, s storedSignals, seqs []uint64, ids []string) {
	t.Helper()
	require.NotEmpty(t, seqs, what)
	for i := range seqs {
		if i > 0 && seqs[i] != seqs[i-1]+1 {
			t.Fatalf("%s: announcement %d is seq %d after %d: each stored signal once, in stream order (seqs %v)", what, i, seqs[i], seqs[i-1], seqs)
		}
		if s.ids[seqs[i]] != ids[i] {
			t.Fatalf("%s: seq %d announced as %q, the stream holds %q there", what, seqs[i], ids[i], s.ids[seqs[i]])
		}
	}
}

// feedPair is A exporting congestion to B, producers' connections to
// each, and the upserts B announces from now on.
func feedPair(t *testing.T) (nb *node.Node, pa, pb *nats.Conn, ann *changeSeqs) {
	t.Helper()
	na, nb := pair(t, []string{"congestion"}, []string{"congestion"})
	pa, err := na.Connect()
	require.NoError(t, err)
	t.Cleanup(pa.Close)
	pb, err = nb.Connect()
	require.NoError(t, err)
	t.Cleanup(pb.Close)
	return nb, pa, pb, watchAnnounced(t, nb)
}

// keyedBurst publishes congestion signals of origin on keys keys through
// nc, as fast as answers come, until stop is closed or a request fails;
// it returns the ids accepted.
func keyedBurst(nc *nats.Conn, origin, prefix string, keys int, stop <-chan struct{}) func() []string {
	done := make(chan []string, 1)
	go func() {
		var ok []string
		defer func() { done <- ok }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			e := congestionOn(origin, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("ic-%d", i%keys))
			if i >= keys {
				e.State = signal.Updated
			}
			a, err := nodetest.TryPublish(nc, e)
			if err != nil {
				return // the node went away
			}
			if a.OK() {
				ok = append(ok, e.ID)
			}
		}
	}()
	return func() []string { return <-done }
}

// TestConditionFeedRestartUnderLoad: B is stopped while its intake and
// its receiver (A's signals) write at full rate, and started again on
// the same store while A still sends. Afterwards B's table holds, per
// subject, the stream's last signal; before the stop and after the
// restart, each upsert announced is the next stream sequence, with the
// stream's id at it (nothing applied twice, none out of order), and the
// restart's announcements continue after the first life's.
func TestConditionFeedRestartUnderLoad(t *testing.T) {
	nb, pa, pb, before := feedPair(t)
	// Keys written once, before the load: after the restart only the
	// rebuild from the stream holds them.
	for i := range 3 {
		require.True(t, publish(t, pb, congestionOn("op-b", fmt.Sprintf("quiet-%d", i), fmt.Sprintf("quiet-%d", i))).OK())
	}

	const keys = 9
	stopA, stopB := make(chan struct{}), make(chan struct{})
	doneA := keyedBurst(pa, "op-a", "a", keys, stopA)
	doneB := keyedBurst(pb, "op-b", "b1", keys, stopB)
	// Full rate on both writers: enough of each applied at B.
	waitFor(t, 30*time.Second, func() error {
		seqs, _ := before.get()
		if c, err := streamCount(nb, store.SignalStream, "an.sig.op-a.>"); err != nil || c < 50 || len(seqs) < 150 {
			return fmt.Errorf("%d announced at B, %d of A's stored (%v)", len(seqs), c, err)
		}
		return nil
	})
	cfg := nb.Config()
	nb.Stop()
	close(stopB)
	pb.Close()
	acceptedB1 := doneB()
	seqs1, ids1 := before.get()

	nb2 := startNode(t, cfg)
	after := watchAnnounced(t, nb2)
	pb2, err := nb2.Connect()
	require.NoError(t, err)
	defer pb2.Close()
	stopB2 := make(chan struct{})
	doneB2 := keyedBurst(pb2, "op-b", "b2", keys, stopB2)
	waitFor(t, 30*time.Second, func() error {
		if seqs, _ := after.get(); len(seqs) < 150 {
			return fmt.Errorf("%d announced at B after the restart", len(seqs))
		}
		return nil
	})
	close(stopA)
	close(stopB2)
	acceptedA, acceptedB2 := doneA(), doneB2()
	t.Logf("accepted: A %d, B %d before the stop, %d after; B announced %d before the stop", len(acceptedA), len(acceptedB1), len(acceptedB2), len(seqs1))

	// Everything A accepted reaches B's store (A resends what the stop cut).
	s := settled(t, nb2, after, len(acceptedA), acceptedA, acceptedB1, acceptedB2)
	seqs2, ids2 := after.get()
	checkAnnounced(t, "before the stop", s, seqs1, ids1)
	assert.Equal(t, uint64(1), seqs1[0], "the first life announced from the stream's first signal")
	assert.Len(t, s.last, 2*keys+3)
	checkAnnounced(t, "after the restart", s, seqs2, ids2)
	assert.Greater(t, seqs2[0], seqs1[len(seqs1)-1], "the restart announces after what the first life did, nothing again")
	assert.Equal(t, s.top, seqs2[len(seqs2)-1])
}

// TestConditionFeedStoreKickedMidBurst: B's store connection is kicked
// again and again while its intake and its receiver write at full rate.
// A write whose answer went with the connection was stored all the same
// (or is resent as a duplicate, which no writer reports): the feed reads
// it from the stream. Each stored signal is announced once, in stream
// order, and the table ends equal to the stream.
func TestConditionFeedStoreKickedMidBurst(t *testing.T) {
	nb, pa, pb, got := feedPair(t)

	const keys = 9
	stop := make(chan struct{})
	doneA := keyedBurst(pa, "op-a", "a", keys, stop)
	doneB := keyedBurst(pb, "op-b", "b", keys, stop)
	kicks := 0
	for mark := 100; kicks < 6; mark += 60 {
		waitFor(t, 30*time.Second, func() error {
			if seqs, _ := got.get(); len(seqs) < mark {
				return fmt.Errorf("%d announced at B, want %d before kick %d", len(seqs), mark, kicks+1)
			}
			return nil
		})
		if id, ok := tryConnID(nb, "anfed-node-store"); ok && nb.Server().DisconnectClientByID(id) == nil {
			kicks++
		}
	}
	close(stop)
	acceptedA, acceptedB := doneA(), doneB()
	t.Logf("%d kicks; accepted A %d, B %d", kicks, len(acceptedA), len(acceptedB))

	s := settled(t, nb, got, len(acceptedA), acceptedA, acceptedB)
	seqs, ids := got.get()
	checkAnnounced(t, "kicked", s, seqs, ids)
	assert.Equal(t, uint64(1), seqs[0])
	assert.Equal(t, s.top, seqs[len(seqs)-1])
	assert.NoError(t, nb.Err())
}

// TestConditionFeedDuplicatesAndDroppedGaps: a signal published again
// (stored as a duplicate: PubAck.Duplicate, its old sequence) changes
// nothing, and a write whose answer was lost after it is still read from
// the stream: the duplicate leaves nothing behind in the feed that would
// keep it waiting. Signals the store's byte bound drops before the feed
// read them (the feed holding a gap at them, or about to) are passed
// over: the next write is applied, nothing waits, nothing is applied
// twice, and what the stream still holds is in the table.
func TestConditionFeedDuplicatesAndDroppedGaps(t *testing.T) {
	cfg := baseConfig(t, "op-a")
	cfg.Storage.MaxBytes = config.MinStorageBytes // the smallest: its signal share fills fast
	n := startNode(t, cfg)
	got := watchAnnounced(t, n)
	nc, err := n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	ev := func(id, res string) *signal.Event { return congestionOn("op-a", id, res) }
	announcedAt := func(id string) uint64 {
		seqs, ids := got.get()
		for i := range ids {
			if ids[i] == id {
				return seqs[i]
			}
		}
		return 0
	}
	waitAnnounced := func(id string) uint64 {
		t.Helper()
		waitFor(t, 15*time.Second, func() error {
			if announcedAt(id) == 0 {
				return fmt.Errorf("%s not announced", id)
			}
			return nil
		})
		return announcedAt(id)
	}

	first := ev("dup-1", "ic-1")
	require.Equal(t, signal.StatusAccepted, publish(t, nc, first).Status)
	require.Equal(t, uint64(1), waitAnnounced("dup-1"))
	for range 3 {
		require.Equal(t, signal.StatusDuplicate, publish(t, nc, first).Status)
	}
	lost := storeBehindTheFeed(t, n, "congestion", ev("lost-2", "ic-2"))
	require.Equal(t, uint64(2), lost, "the duplicates took no sequence")
	require.Equal(t, signal.StatusAccepted, publish(t, nc, ev("after-3", "ic-3")).Status)
	assert.Equal(t, uint64(3), waitAnnounced("after-3"))
	assert.Equal(t, uint64(2), announcedAt("lost-2"))

	// Fill the signal share behind the feed (answers lost) until the
	// bound has dropped the first of them, then write one the feed hears of.
	st, ctx := signalStream(t, nc)
	pad := strings.Repeat("x", 8<<10)
	var firstBehind uint64
	for i := 0; ; i++ {
		e := ev(fmt.Sprintf("bulk-%d", i), fmt.Sprintf("bulk-%d", i))
		e.Data = json.RawMessage(`{"pad":"` + pad + `"}`)
		seq := storeBehindTheFeed(t, n, "congestion", e)
		if firstBehind == 0 {
			firstBehind = seq
		}
		info, err := st.Info(ctx)
		require.NoError(t, err)
		if info.State.FirstSeq > firstBehind {
			break
		}
		require.Less(t, i, 2000, "the store's bound never dropped a signal")
	}
	z := publish(t, nc, ev("after-bound", "ic-z"))
	require.Equal(t, signal.StatusAccepted, z.Status)
	waitAnnounced("after-bound")

	s := readSignals(t, n)
	seqs, ids := got.get()
	for i := range seqs {
		if i > 0 && seqs[i] <= seqs[i-1] {
			t.Fatalf("announcement %d is seq %d after %d: each stored signal once, in stream order", i, seqs[i], seqs[i-1])
		}
		if want, ok := s.ids[seqs[i]]; ok && want != ids[i] {
			t.Fatalf("seq %d announced as %q, the stream holds %q there", seqs[i], ids[i], want)
		}
	}
	assert.Equal(t, s.top, seqs[len(seqs)-1], "the last write is the last announced")
	held := map[string]uint64{}
	for _, c := range tableView(n) {
		held[c.subj] = c.seq
	}
	for subj, seq := range s.last {
		assert.Equal(t, seq, held[subj], "%s: what the stream still holds is in the table", subj)
	}
	t.Logf("the bound dropped up to seq %d; %d announced, stream holds %d..%d", firstBehind, len(seqs), s.top-uint64(len(s.ids))+1, s.top)
}
