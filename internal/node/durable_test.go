package node_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// Invariant 4, "nothing lost": a producer is told when no durable path
// exists, duplicates are removed by source+id, and per-source order holds
// across a receiver restart.

// streamMsgs is how many messages stream holds at n ("" subj: all).
func streamMsgs(t *testing.T, n *node.Node, stream, subj string) uint64 {
	t.Helper()
	c, err := streamCount(n, stream, subj)
	require.NoError(t, err)
	return c
}

// streamCount is streamMsgs for any goroutine.
func streamCount(n *node.Node, stream, subj string) (uint64, error) {
	nc, err := n.Connect()
	if err != nil {
		return 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	var opts []jetstream.StreamInfoOpt
	if subj != "" {
		opts = append(opts, jetstream.WithSubjectFilter(subj))
	}
	info, err := s.Info(ctx, opts...)
	if err != nil {
		return 0, err
	}
	if subj == "" {
		return info.State.Msgs, nil
	}
	var total uint64
	for _, c := range info.State.Subjects {
		total += c
	}
	return total, nil
}

// lazyFlush sets storage.sync to NATS's default interval where the
// policy has that setting: a stop or a process kill loses nothing the
// store wrote, flushed or not (only power loss does), and a store that
// flushes every write takes far less than 1,000 signals/s on a slow disk.
// By reflection, so that this file builds whether or not the setting is
// there.
func lazyFlush(c *config.Config) {
	if f := reflect.ValueOf(&c.Storage).Elem().FieldByName("Sync"); f.IsValid() && f.Kind() == reflect.String {
		f.SetString("2m")
	}
}

// request publishes ev to an.pub and returns the answer.
func request(t *testing.T, nc *nats.Conn, ev *signal.Event) signal.Answer {
	t.Helper()
	m, err := nc.Request(subject.IntakePrefix, ev.Encode(), 5*time.Second)
	require.NoError(t, err, "every request to an.pub gets an answer")
	a, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	assert.Equal(t, a.Status, m.Header.Get(signal.HeaderStatus))
	return a
}

// noDurablePath is a node (no peers) with a live subscriber on an.sig.>,
// a counting observer and a first signal already stored.
func noDurablePath(t *testing.T) (*node.Node, *nats.Conn, *collector, *tally) {
	tl := newTally()
	n := startNode(t, baseConfig(t, "op-a"), node.WithObserver(tl))
	nc, err := n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	got := &collector{}
	_, err = nc.Subscribe(subject.Signals, got.add)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	require.Equal(t, signal.StatusAccepted, request(t, nc, congestion("op-a", "before")).Status)
	waitFor(t, 5*time.Second, func() error {
		if got.n() != 1 {
			return fmt.Errorf("%d live signals", got.n())
		}
		return nil
	})
	return n, nc, got, tl
}

// With no JetStream, or no signal stream, a request to an.pub is answered
// rejected/unavailable and nothing is published on an.sig.>; a plain
// publish (no reply) is counted as an unavailable rejection. It is not
// dead-lettered: the dead-letter stream is JetStream too, and the refusal
// is about the node, not the signal. A fire-and-forget producer's signal
// is therefore gone, counted and logged; only a request learns of it.
func TestPublishWithoutDurablePathIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(t *testing.T, n *node.Node, nc *nats.Conn)
		dlq  bool // the dead-letter stream is still there to look into
	}{
		{"jetstream disabled", func(t *testing.T, n *node.Node, _ *nats.Conn) {
			require.NoError(t, n.Server().DisableJetStream())
		}, false},
		{"signal stream deleted", func(t *testing.T, n *node.Node, nc *nats.Conn) {
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			require.NoError(t, js.DeleteStream(context.Background(), store.SignalStream))
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, nc, got, tl := noDurablePath(t)
			var dlqBefore uint64
			if tc.dlq {
				dlqBefore = streamMsgs(t, n, store.DLQStream, "")
			}
			tc.cut(t, n, nc)

			a := request(t, nc, congestion("op-a", "no-path-1"))
			assert.Equal(t, signal.StatusRejected, a.Status)
			assert.Equal(t, string(reject.Unavailable), a.Reason)
			assert.Contains(t, a.Error, "retry with the same id")
			assert.Equal(t, 1, tl.rejections(observe.Local, reject.Unavailable))

			// A plain publish has nobody to answer: it is counted.
			require.NoError(t, nc.Publish(subject.IntakePrefix, congestion("op-a", "no-path-2").Encode()))
			waitFor(t, 5*time.Second, func() error {
				if r := tl.rejections(observe.Local, reject.Unavailable); r != 2 {
					return fmt.Errorf("%d unavailable rejections counted", r)
				}
				return nil
			})
			// And intake still answers the next one: nothing is stuck.
			assert.Equal(t, string(reject.Unavailable), request(t, nc, congestion("op-a", "no-path-3")).Reason)
			time.Sleep(200 * time.Millisecond)
			assert.Equal(t, 1, got.n(), "nothing reached an.sig.> after the break")
			if tc.dlq {
				assert.Equal(t, dlqBefore, streamMsgs(t, n, store.DLQStream, ""),
					"an unavailable refusal is not dead-lettered")
			}
			t.Logf("%s: requests answered rejected/unavailable, plain publish counted (unavailable=%d), live signals after the break: %d",
				tc.name, tl.rejections(observe.Local, reject.Unavailable), got.n()-1)
		})
	}
}

// With the node down, a producer's request fails with an error, never a
// silent success; its retry with the same id once the node is back is
// stored exactly once.
func TestPublishToStoppedNodeFails(t *testing.T) {
	cfg := baseConfig(t, "op-a")
	cfg.NATS.Client.Listen = natstest.FreeAddr(t)
	cfg.NATS.Users = []config.User{{Name: "assurance", Password: "assurance-pass-1"}}
	n := startNode(t, cfg)
	url := n.ClientURL()
	nc, err := nats.Connect(url, nats.UserInfo("assurance", "assurance-pass-1"),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(t, err)
	defer nc.Close()
	require.Equal(t, signal.StatusAccepted, request(t, nc, congestion("op-a", "up-1")).Status)

	n.Stop()
	ev := congestion("op-a", "down-1")
	_, err = nc.Request(subject.IntakePrefix, ev.Encode(), time.Second)
	require.Error(t, err, "a request to a stopped node must fail")
	t.Logf("request while the node is down: %v", err)
	_, err = nats.Connect(url, nats.UserInfo("assurance", "assurance-pass-1"), nats.Timeout(time.Second))
	require.Error(t, err, "connecting to a stopped node must fail")

	n2 := startNode(t, cfg) // same storage
	waitFor(t, 10*time.Second, func() error {
		if !nc.IsConnected() {
			return errors.New("producer not reconnected")
		}
		return nil
	})
	// The failed request may have reached the node from the client's
	// reconnect buffer: the retry is then a duplicate, never a second copy.
	a := request(t, nc, ev)
	assert.True(t, a.OK(), "retry: %+v", a)
	assert.Equal(t, uint64(2), streamMsgs(t, n2, store.SignalStream, ""), "up-1 and down-1, once each")
}

// The same signal published three times at A is answered accepted,
// duplicate, duplicate, stored once at A and at B, and reaches the core
// subscribers of each once.
func TestDuplicatesRemovedBySourceAndID(t *testing.T) {
	tb := newTally()
	na, nb := pair(t, []string{"congestion"}, []string{"congestion"}, node.WithObserver(tb))
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	gotA, gotB := &collector{}, &collector{}
	_, err = pa.Subscribe("an.sig.op-a.>", gotA.add)
	require.NoError(t, err)
	require.NoError(t, pa.Flush())
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	_, err = cb.Subscribe("an.sig.op-a.>", gotB.add)
	require.NoError(t, err)
	require.NoError(t, cb.Flush())

	ev := congestion("op-a", "dup-1")
	var statuses []string
	for range 3 {
		statuses = append(statuses, request(t, pa, ev).Status)
	}
	assert.Equal(t, []string{signal.StatusAccepted, signal.StatusDuplicate, signal.StatusDuplicate}, statuses)
	// A later signal: the link is ordered, so once it is at B everything
	// before it was decided.
	require.Equal(t, signal.StatusAccepted, request(t, pa, congestion("op-a", "after-1")).Status)
	waitFor(t, 10*time.Second, func() error {
		if gotB.n() < 2 {
			return fmt.Errorf("B received %d", gotB.n())
		}
		if n, err := na.Backlog(context.Background(), "op-b"); err != nil || n != 0 {
			return fmt.Errorf("backlog %d %v", n, err)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, 2, gotA.n(), "A's core subscribers: dup-1 once, after-1")
	assert.Equal(t, 2, gotB.n(), "B's core subscribers: dup-1 once, after-1")
	assert.Equal(t, uint64(2), streamMsgs(t, na, store.SignalStream, ""), "A's store")
	assert.Equal(t, uint64(2), streamMsgs(t, nb, store.SignalStream, ""), "B's store")
	tb.mu.Lock()
	assert.Equal(t, 2, tb.crossed)
	tb.mu.Unlock()
}

// loopLedger is a closed loop on a JetStream durable consumer. It
// acknowledges each delivery synchronously. A delivery whose ack was not
// confirmed (the node went away) may be redelivered: that redelivery is
// not a duplicate signal. A delivery of a signal whose earlier delivery
// was acknowledged, confirmed, is one.
type loopLedger struct {
	mu        sync.Mutex
	delivered map[string]int  // source+id -> deliveries
	confirmed map[string]bool // source+id -> a delivery's ack was confirmed
	last      map[string]int  // source -> last sequence delivered
	order     []string        // per-source order violations
	dups      int             // deliveries after a confirmed ack
	redeliv   int             // redeliveries after an unconfirmed ack
	ackFailed int
	n         int
}

func newLoopLedger() *loopLedger {
	return &loopLedger{delivered: map[string]int{}, confirmed: map[string]bool{}, last: map[string]int{}}
}

func (l *loopLedger) handle(m jetstream.Msg) {
	ev, err := signal.DecodeStructured(m.Data())
	if err != nil {
		_ = m.Term()
		return
	}
	seq, _ := strconv.Atoi(ev.Sequence)
	k := ev.Key()
	l.mu.Lock()
	l.n++
	switch {
	case l.confirmed[k]:
		l.dups++
	case l.delivered[k] > 0:
		l.redeliv++
	case seq <= l.last[ev.Source]:
		l.order = append(l.order, fmt.Sprintf("%s: %d after %d", ev.Source, seq, l.last[ev.Source]))
	}
	l.delivered[k]++
	l.last[ev.Source] = max(l.last[ev.Source], seq)
	l.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err = m.DoubleAck(ctx)
	l.mu.Lock()
	if err != nil {
		l.ackFailed++
	} else {
		l.confirmed[k] = true
	}
	l.mu.Unlock()
}

func (l *loopLedger) has(keys []string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, k := range keys {
		if l.delivered[k] > 0 {
			n++
		}
	}
	return n
}

// closedLoop consumes an.sig.op-a.> from n's signal stream through the
// durable consumer "closed-loop", created if missing. It keeps one signal
// in flight: with more, JetStream redelivers a signal whose ack was lost
// (the loop stopped, the node went away) after later ones, and the loop
// would see its source out of order.
func closedLoop(t *testing.T, n *node.Node, l *loopLedger) (stop func()) {
	t.Helper()
	nc, err := n.Connect()
	require.NoError(t, err)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(ctx, store.SignalStream, jetstream.ConsumerConfig{
		Durable:       "closed-loop",
		FilterSubject: "an.sig.op-a.>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Second,
		MaxAckPending: 1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	require.NoError(t, err)
	cc, err := cons.Consume(l.handle, jetstream.PullExpiry(2*time.Second))
	require.NoError(t, err)
	return func() { cc.Stop(); nc.Close() }
}

// B is stopped mid-stream and a new node started in its place with the
// same policy and storage: every signal A accepted reaches B's closed
// loop once, in per-source order, and B's store holds each once, in order.
func TestOrderAcrossReceiverRestart(t *testing.T) {
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		c.Peers[0].Import.MaxRate = 100000
		lazyFlush(c)
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	led := newLoopLedger()
	stopLoop := closedLoop(t, nb, led)

	const rate = 1000
	stop := make(chan struct{})
	done := stream(t, pa, 4, rate, stop)
	time.Sleep(time.Second)
	stopLoop()
	stopping := time.Now()
	nb.Stop()
	stoppedAt := time.Now()
	// What A holds now, B must hold soon after its restart.
	atRestart := streamMsgs(t, na, store.SignalStream, "")
	nb2 := startNode(t, nb.Config())
	restarted := time.Now()
	t.Logf("B stopped in %v, restarted in %v", stoppedAt.Sub(stopping), restarted.Sub(stoppedAt))
	stopLoop = closedLoop(t, nb2, led)
	defer func() { stopLoop() }()
	caught := make(chan time.Duration, 1)
	go func() {
		for deadline := restarted.Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if c, err := streamCount(nb2, store.SignalStream, "an.sig.op-a.>"); err == nil && c >= atRestart {
				caught <- time.Since(restarted)
				return
			}
		}
		caught <- 0
	}()
	time.Sleep(time.Until(restarted.Add(time.Second)))
	close(stop)
	accepted := done()
	caughtUp := <-caught
	// Poll without failing: on a loss, the counts below say where it was lost.
	for deadline := time.Now().Add(20 * time.Second); led.has(accepted) < len(accepted) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}

	// B's store, read in order: each accepted signal once, per-source order.
	nc, err := nb2.Connect()
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	oc, err := js.OrderedConsumer(ctx, store.SignalStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"an.sig.op-a.>"}})
	require.NoError(t, err)
	stored := map[string]int{}
	lastStored := map[string]int{}
	var storeOrder []string
	total := int(streamMsgs(t, nb2, store.SignalStream, "an.sig.op-a.>"))
	for i := 0; i < total; i++ {
		m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
		require.NoError(t, err)
		ev, err := signal.DecodeStructured(m.Data())
		require.NoError(t, err)
		stored[ev.Key()]++
		seq, _ := strconv.Atoi(ev.Sequence)
		if seq <= lastStored[ev.Source] {
			storeOrder = append(storeOrder, fmt.Sprintf("%s: %d after %d", ev.Source, seq, lastStored[ev.Source]))
		}
		lastStored[ev.Source] = seq
	}

	led.mu.Lock()
	defer led.mu.Unlock()
	lost, notStored := 0, 0
	for _, k := range accepted {
		if led.delivered[k] == 0 {
			lost++
			if lost <= 5 {
				t.Logf("lost: %s (in B's store %d times)", k, stored[k])
			}
		}
		if stored[k] != 1 {
			notStored++
		}
	}
	t.Logf("receiver restart at %d signals/s: sent %d, received %d, lost %d, duplicates %d, redelivered (ack unconfirmed) %d, order violations %d; "+
		"B's store: %d signals, %d not stored exactly once, %d out of order; B had A's %d signals %v after its restart",
		rate, len(accepted), led.n, lost, led.dups, led.redeliv, len(led.order),
		total, notStored, len(storeOrder), atRestart, caughtUp.Round(time.Millisecond))
	assert.NotZero(t, caughtUp, "B did not catch up within 15 s of its restart")
	assert.Zero(t, lost)
	assert.Zero(t, led.dups)
	assert.Empty(t, led.order)
	assert.Zero(t, notStored)
	assert.Empty(t, storeOrder)
	assert.Equal(t, len(accepted), total, "B stored nothing that A did not accept")
}

// A receiver that has just started (after a restart, or on a new sender
// epoch) knows nothing of the link. If the first link message it gets is
// not the sender's front (its first unanswered signal: the front itself
// was dropped while the link's interest was not yet there), a resend of
// the front must still be stored: a receiver never answers OK for a
// signal it does not hold, or the sender forgets it.
func TestFreshReceiverNeverDropsAnOlderSignal(t *testing.T) {
	b := baseConfig(t, "op-b")
	b.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	b.Peers = []config.Peer{{
		ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-a-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000}, SigningKey: pub(t, "op-a"),
	}}
	nb := startNode(t, b)
	// op-a as raw NATS on the real link, with op-a's credentials and key,
	// speaking the link protocol as outbound.Sender does.
	rogue := natstest.StartRogueLeaf(t, nb.LeafURL(), "op-a", "secret-a-123", nats.CustomInboxPrefix("an.ack.op-a"))
	send := func(id string, seq, prev uint64, front bool) signal.Answer {
		ev := congestion("op-a", id)
		ev.Sequence = fmt.Sprintf("%020d", seq)
		signAs(t, "op-a", ev)
		ev.Path = []string{"op-a"}
		m := nats.NewMsg(mustLink("op-a", subject.Key{Origin: "op-a", Class: "congestion", Service: ev.Service(), Resource: ev.Resource()}))
		m.Data = ev.Encode()
		m.Header.Set(link.HeaderSeq, strconv.FormatUint(seq, 10))
		m.Header.Set(link.HeaderPrev, strconv.FormatUint(prev, 10))
		m.Header.Set(link.HeaderEpoch, "epoch-1")
		if front {
			m.Header.Set(link.HeaderFront, "1")
		}
		var ans signal.Answer
		waitFor(t, 5*time.Second, func() error { // the link's interest may take a moment
			r, err := rogue.Conn.RequestMsg(m, time.Second)
			if err != nil {
				return err
			}
			ans, err = signal.ParseAnswer(r.Data)
			return err
		})
		return ans
	}
	held := func() map[string]bool {
		ids := map[string]bool{}
		nc, err := nb.Connect()
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		c, err := js.OrderedConsumer(context.Background(), store.SignalStream, jetstream.OrderedConsumerConfig{})
		require.NoError(t, err)
		for range streamMsgs(t, nb, store.SignalStream, "") {
			m, err := c.Next(jetstream.FetchMaxWait(2 * time.Second))
			require.NoError(t, err)
			ev, err := signal.DecodeStructured(m.Data())
			require.NoError(t, err)
			ids[ev.ID] = true
		}
		return ids
	}
	type step struct {
		id          string
		seq, prev   uint64
		front       bool
		ans         signal.Answer
		heldAfterOK bool
	}
	// The sender had 11 (its front) and 12 in flight; 11 was dropped on
	// the way. Then it resends from its front, as outbound.Sender does.
	steps := []*step{{id: "r-12", seq: 12, prev: 11}, {id: "r-11", seq: 11, prev: 10, front: true}, {id: "r-12", seq: 12, prev: 11}}
	for _, st := range steps {
		st.ans = send(st.id, st.seq, st.prev, st.front)
		st.heldAfterOK = !st.ans.OK() || held()[st.id]
		t.Logf("fresh receiver: seq %d (prev %d, front %v) answered %s %s", st.seq, st.prev, st.front, st.ans.Status, st.ans.Reason)
	}
	for _, st := range steps {
		assert.True(t, st.heldAfterOK, "seq %d answered %s, so the sender forgets it: B must hold it", st.seq, st.ans.Status)
	}
	h := held()
	assert.True(t, h["r-11"] && h["r-12"], "B holds both once the sender resent from its front: %v", h)
}

// A's sender had signals in flight, unanswered (the link was cut), when A
// stopped. After A restarts on the same storage, B must get them, before
// the signals A accepts after its restart: nothing lost, per-source order
// kept. This is what the kill -9 of the sending node in cmd/anfed runs
// into when a signal was taken by the sender but had not reached op-b.
//
// JetStream redelivers the export consumer's pending signals only once
// their AckWait (outbound.ConsumerConfig: 1 min) has passed since their first
// delivery, and delivers newer ones at once. The new sender makes no order
// claim for its first signal (Prev 0), B takes it and moves its link
// sequence past the pending ones, and when these come back B answers them
// duplicate by sequence: A acknowledges them in its store, B never has
// them.
func TestNothingLostAcrossSenderRestart(t *testing.T) {
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: natstest.FreeAddr(t)} // the same after the restart
	a.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, SigningKey: pub(t, "op-b"),
	}}
	na := startNode(t, a)
	proxy := natstest.StartProxy(t, a.NATS.LeafNodes.Listen)
	b := baseConfig(t, "op-b")
	b.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: "nats-leaf://" + proxy.Addr(), User: "op-b", Password: "secret-b-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000}, SigningKey: pub(t, "op-a"),
	}}
	nb := startNode(t, b)
	linkUp := func(na *node.Node) {
		waitFor(t, 10*time.Second, func() error {
			if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
				return errors.New("link not up")
			}
			return nil
		})
	}
	linkUp(na)
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	got := newLedger()
	sub, err := cb.Subscribe("an.sig.op-a.>", got.add)
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	require.NoError(t, cb.Flush())

	seq := 0
	publishSome := func(n *node.Node, count int) {
		nc, err := n.Connect()
		require.NoError(t, err)
		defer nc.Close()
		for range count {
			seq++
			ev := congestion("op-a", fmt.Sprintf("r-%d", seq))
			ev.Sequence = fmt.Sprintf("%020d", seq)
			require.Equal(t, signal.StatusAccepted, publish(t, nc, ev).Status)
		}
	}
	publishSome(na, 5) // B has decided these: its receiver knows the link
	waitFor(t, 10*time.Second, func() error {
		if got.count() != 5 {
			return fmt.Errorf("B received %d of 5", got.count())
		}
		return nil
	})

	proxy.Cut()
	publishSome(na, 20)
	// A's sender has taken the 20 from its store and waits for answers.
	waitFor(t, 10*time.Second, func() error {
		nc, err := na.Connect()
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		c, err := js.Consumer(context.Background(), store.SignalStream, outbound.ConsumerName("op-b"))
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending < 20 {
			return fmt.Errorf("%d in flight to op-b, %d waiting", info.NumAckPending, info.NumPending)
		}
		return nil
	})
	na.Stop()
	na2 := startNode(t, a)
	proxy.Restore()
	restarted := time.Now()
	linkUp(na2)
	publishSome(na2, 5)

	for deadline := time.Now().Add(10 * time.Second); got.count() < seq && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	var missing []int
	for i := 1; i <= seq; i++ {
		if got.seen[fmt.Sprintf("anfed://op-a/assurance r-%d", i)] == 0 {
			missing = append(missing, i)
		}
	}
	t.Logf("sender restart with 20 signals in flight: sent %d, B received %d within %v of the restart, missing %v, order violations %v",
		seq, got.n, time.Since(restarted).Round(time.Millisecond), missing, got.order)
	assert.Empty(t, missing, "signals A accepted that never reached B")
	assert.Empty(t, got.order, "per-source order at B")
}
