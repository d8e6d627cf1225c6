package closedloop_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/closedloop"
	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// startNode starts a node without peers, JetStream in t.TempDir(), and
// returns an in-process connection to its operations account.
func startNode(t *testing.T) *nats.Conn {
	t.Helper()
	n := nodetest.Start(t, new(nodetest.Keys), nodetest.BaseConfig(t, "op-a"), node.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
	nc, err := n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// congestion is a congestion signal of op-a on vpn-acme/<res>, now.
func congestion(id, res string, st signal.State) *signal.Event {
	ev := nodetest.Congestion("op-a", id)
	ev.Subject, ev.State, ev.Time = "vpn-acme/"+res, st, time.Now().UTC()
	return ev
}

// fault is a raised fault of op-a on vpn-acme/<res>, now.
func fault(id, res string) *signal.Event {
	ev := nodetest.Fault("op-a", id)
	ev.Subject, ev.Time = "vpn-acme/"+res, time.Now().UTC()
	return ev
}

// publish stores ev through intake and fails the test unless accepted.
func publish(t *testing.T, nc *nats.Conn, ev *signal.Event) {
	t.Helper()
	require.NoError(t, tryPublish(nc, ev))
}

// tryPublish is publish where the test may not stop (a goroutine).
func tryPublish(nc *nats.Conn, ev *signal.Event) error {
	a, err := nodetest.TryPublish(nc, ev)
	if err == nil && a.Status != signal.StatusAccepted {
		err = fmt.Errorf("%s: %s: %s %s", ev.ID, a.Status, a.Reason, a.Error)
	}
	return err
}

// call is one handler call.
type call struct {
	id    string
	key   string // the event's subject attribute: <service>/<resource>
	state signal.State
	d     closedloop.Delivery
	at    time.Time
}

type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) add(ev *signal.Event, d closedloop.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{id: ev.ID, key: ev.Subject, state: ev.State, d: d, at: time.Now()})
}

func (r *recorder) snapshot() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *recorder) ids() []string {
	var out []string
	for _, c := range r.snapshot() {
		out = append(out, c.id)
	}
	return out
}

func (r *recorder) waitN(t *testing.T, n int) []call {
	t.Helper()
	natstest.WaitFor(t, 20*time.Second, func() error {
		if got := len(r.snapshot()); got < n {
			return fmt.Errorf("%d of %d handler calls", got, n)
		}
		return nil
	})
	return r.snapshot()
}

// startLoop runs a loop until the test ends (or stop is called) and
// returns once its consumer exists: signals stored from then on are live.
func startLoop(t *testing.T, nc *nats.Conn, opts closedloop.Options, h closedloop.Handler) (*closedloop.Loop, func()) {
	t.Helper()
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	l := closedloop.New(nc, opts, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	natstest.WaitFor(t, 10*time.Second, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("Run returned early: %v", err)
		default:
		}
		_, err := js.Consumer(context.Background(), store.SignalStream, opts.Name)
		return err
	})
	return l, stop
}

// A loop that starts late gets the last signal of each condition key first
// (a cleared one included: it says the condition is no longer active), each
// marked Current, then the live signals; the filter keeps other classes out.
// MaxInFlight 1 makes the handler order the stream order.
func TestLateStartGetsCurrentStateThenLive(t *testing.T) {
	nc := startNode(t)
	for _, ev := range []*signal.Event{
		congestion("r1-raised", "ic-1", signal.Raised),
		congestion("r2-raised", "ic-2", signal.Raised),
		congestion("r3-raised", "ic-3", signal.Raised),
		fault("f1-raised", "ic-1"),
		congestion("r2-cleared", "ic-2", signal.Cleared),
		congestion("r3-updated", "ic-3", signal.Updated),
	} {
		publish(t, nc, ev)
	}

	rec := &recorder{}
	l, stop := startLoop(t, nc, closedloop.Options{Name: "late", Filter: "an.sig.*.congestion.>", MaxInFlight: 1},
		func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
			rec.add(ev, d)
			return nil
		})
	calls := rec.waitN(t, 3)
	for _, ev := range []*signal.Event{
		congestion("r1-updated", "ic-1", signal.Updated),
		congestion("r4-raised", "ic-4", signal.Raised),
		fault("f2-raised", "ic-2"),
		congestion("r2-raised-again", "ic-2", signal.Raised),
	} {
		publish(t, nc, ev)
	}
	calls = rec.waitN(t, 6)
	time.Sleep(200 * time.Millisecond) // nothing more comes
	calls = rec.snapshot()
	stop()

	require.Len(t, calls, 6)
	assert.Equal(t, []string{"r1-raised", "r2-cleared", "r3-updated", "r1-updated", "r4-raised", "r2-raised-again"}, rec.ids())
	for i, c := range calls {
		assert.Equal(t, i < 3, c.d.Current, "%s: Current", c.id)
		assert.EqualValues(t, 1, c.d.NumDelivered, c.id)
		if i > 0 {
			assert.Greater(t, c.d.Seq, calls[i-1].d.Seq, "stream order")
		}
	}
	assert.Equal(t, signal.Cleared, calls[1].state, "a cleared last signal is delivered: the key is not active")
	st := l.Stats()
	assert.Equal(t, closedloop.Stats{Delivered: 6, Current: 3, Acked: 6}, st)
}

// With a publisher running while the loop starts, every condition key's
// signals reach the handler as one contiguous run — from the key's state
// when the loop started to its last signal — in order, none twice; Current
// marks only a key's first signal, and only one stored before the start.
func TestLateStartNoGapNoDuplicateWithConcurrentPublisher(t *testing.T) {
	nc := startNode(t)
	const nkeys = 5
	var (
		mu        sync.Mutex
		published = map[string][]string{} // key -> ids in store order
		preRun    = map[string]int{}      // key -> index of its last signal stored before Run
		running   atomic.Bool
	)
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			default:
			}
			res := fmt.Sprintf("ic-%d", i%nkeys)
			st := signal.Updated
			if i < nkeys {
				st = signal.Raised
			}
			ev := congestion(fmt.Sprintf("s-%d", i), res, st)
			if err := tryPublish(nc, ev); err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			mu.Lock()
			published[ev.Subject] = append(published[ev.Subject], ev.ID)
			if !running.Load() {
				preRun[ev.Subject] = len(published[ev.Subject]) - 1
			}
			mu.Unlock()
			if i%50 == 0 {
				time.Sleep(time.Millisecond) // let the loop breathe under -race
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)

	rec := &recorder{}
	running.Store(true)
	l, stop := startLoop(t, nc, closedloop.Options{Name: "busy"},
		func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
			rec.add(ev, d)
			return nil
		})
	time.Sleep(700 * time.Millisecond)
	close(stopPub)
	<-pubDone

	mu.Lock()
	defer mu.Unlock()
	natstest.WaitFor(t, 20*time.Second, func() error {
		last := map[string]string{}
		for _, c := range rec.snapshot() {
			last[c.key] = c.id
		}
		for k, ids := range published {
			if last[k] != ids[len(ids)-1] {
				return fmt.Errorf("%s: last handled %q, last published %q", k, last[k], ids[len(ids)-1])
			}
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	calls := rec.snapshot()
	stop()

	byKey := map[string][]call{}
	seen := map[string]int{}
	var maxCurrent, minLive uint64 = 0, ^uint64(0)
	for _, c := range calls {
		byKey[c.key] = append(byKey[c.key], c)
		seen[c.id]++
		if c.d.Current {
			maxCurrent = max(maxCurrent, c.d.Seq)
		} else {
			minLive = min(minLive, c.d.Seq)
		}
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "%s handled %d times", id, n)
	}
	assert.Less(t, maxCurrent, minLive, "every Current signal was stored before every live one")
	total, current := 0, 0
	for k, ids := range published {
		got := byKey[k]
		require.NotEmpty(t, got, k)
		start := slices.Index(ids, got[0].id)
		require.GreaterOrEqual(t, start, 0, "%s: first handled %s was published", k, got[0].id)
		assert.GreaterOrEqual(t, start, preRun[k], "%s: the key's state when the loop started, or later: nothing superseded", k)
		var gotIDs []string
		for i, c := range got {
			gotIDs = append(gotIDs, c.id)
			if c.d.Current {
				current++
				assert.Zero(t, i, "%s: only the first signal of a key can be Current", k)
			}
		}
		assert.Equal(t, ids[start:], gotIDs, "%s: contiguous from the start state, in order: no gap, no duplicate", k)
		total += len(ids)
	}
	assert.Positive(t, current, "the keys' state at start came as Current")
	t.Logf("published %d signals on %d keys, %d before the loop started; handled %d, %d of them Current",
		total, nkeys, func() int {
			n := 0
			for _, i := range preRun {
				n += i + 1
			}
			return n
		}(), len(calls), current)
	assert.EqualValues(t, len(calls), l.Stats().Acked)
}

// A failing handler's signal is redelivered after each BackOff delay, with
// NumDelivered counting up, and dead-lettered after MaxDeliver; the key's
// later signal waits for it, other keys do not.
func TestNakRedeliversAfterBackOffThenDeadLetter(t *testing.T) {
	nc := startNode(t)
	dlq := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe(subject.DLQPrefix+".loop-retry.>", dlq)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()

	rec := &recorder{}
	backoff := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond}
	l, stop := startLoop(t, nc, closedloop.Options{Name: "retry", BackOff: backoff, MaxDeliver: 3},
		func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
			rec.add(ev, d)
			if ev.ID == "bad" {
				return errors.New("actuator unreachable")
			}
			return nil
		})
	publish(t, nc, congestion("bad", "ic-1", signal.Raised))
	publish(t, nc, congestion("after", "ic-1", signal.Updated))
	publish(t, nc, congestion("other", "ic-2", signal.Raised))

	var m *nats.Msg
	select {
	case m = <-dlq:
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	calls := rec.waitN(t, 5)
	stop()

	var bad []call
	var badAt []int
	pos := map[string]int{}
	for i, c := range calls {
		pos[c.id] = i
		if c.id == "bad" {
			bad = append(bad, c)
			badAt = append(badAt, i)
		}
	}
	require.Len(t, bad, 3)
	for i, c := range bad {
		assert.EqualValues(t, i+1, c.d.NumDelivered)
		assert.Equal(t, bad[0].d.Seq, c.d.Seq)
	}
	gap1, gap2 := bad[1].at.Sub(bad[0].at), bad[2].at.Sub(bad[1].at)
	t.Logf("redelivered after %v and %v (BackOff %v)", gap1.Round(time.Millisecond), gap2.Round(time.Millisecond), backoff)
	assert.GreaterOrEqual(t, gap1, backoff[0]-20*time.Millisecond)
	assert.Less(t, gap1, backoff[0]+time.Second)
	assert.GreaterOrEqual(t, gap2, backoff[1]-20*time.Millisecond)
	assert.Less(t, gap2, backoff[1]+time.Second)
	require.Len(t, badAt, 3)
	assert.Less(t, pos["other"], badAt[1], "another key does not wait for the retries")
	assert.Greater(t, pos["after"], badAt[2], "the key's next signal waits until its predecessor is decided")

	assert.Equal(t, "an.dlq.loop-retry.max-deliver", m.Subject)
	assert.Equal(t, closedloop.ReasonMaxDeliver, m.Header.Get(store.HeaderReason))
	assert.Equal(t, "actuator unreachable", m.Header.Get(store.HeaderError))
	assert.Equal(t, "3", m.Header.Get(closedloop.HeaderDeliveries))
	ev, err := signal.DecodeStructured(m.Data)
	require.NoError(t, err)
	assert.Equal(t, "bad", ev.ID)
	st := l.Stats()
	assert.EqualValues(t, 2, st.Naked)
	assert.EqualValues(t, 1, st.DeadLettered)
	assert.EqualValues(t, 2, st.Acked)
}

// A Poison error sends the signal straight to the dead-letter subject with
// the reason attached; it is stored in ANFED_DLQ and the next signals keep
// flowing.
func TestPoisonGoesToDeadLetter(t *testing.T) {
	nc := startNode(t)
	dlq := make(chan *nats.Msg, 8)
	sub, err := nc.ChanSubscribe(subject.DLQPrefix+".loop-p.>", dlq)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()

	rec := &recorder{}
	l, stop := startLoop(t, nc, closedloop.Options{Name: "p"},
		func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
			rec.add(ev, d)
			if ev.ID == "poison" {
				return closedloop.Poison(errors.New("resource ic-1 is not ours"))
			}
			return nil
		})
	publish(t, nc, congestion("poison", "ic-1", signal.Raised))
	publish(t, nc, congestion("next-same-key", "ic-1", signal.Updated))
	publish(t, nc, congestion("next-other-key", "ic-2", signal.Raised))

	var m *nats.Msg
	select {
	case m = <-dlq:
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	rec.waitN(t, 3)
	time.Sleep(200 * time.Millisecond)
	stop()

	assert.Equal(t, []string{"poison", "next-same-key", "next-other-key"}, sortedByFirst(rec.ids(), "poison", "next-same-key"))
	assert.Equal(t, "an.dlq.loop-p.poison", m.Subject)
	assert.Equal(t, closedloop.ReasonPoison, m.Header.Get(store.HeaderReason))
	assert.Equal(t, "resource ic-1 is not ours", m.Header.Get(store.HeaderError))
	assert.Equal(t, "loop-p", m.Header.Get(store.HeaderFrom))
	assert.Equal(t, "an.sig.op-a.congestion.vpn-acme.ic-1", m.Header.Get(closedloop.HeaderSubject))
	assert.Empty(t, m.Header.Get("Nats-Msg-Id"), "the original's JetStream directives are dropped")
	ev, err := signal.DecodeStructured(m.Data)
	require.NoError(t, err)
	assert.Equal(t, "poison", ev.ID)

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	s, err := js.Stream(context.Background(), store.DLQStream)
	require.NoError(t, err)
	stored, err := s.GetLastMsgForSubject(context.Background(), "an.dlq.loop-p.poison")
	require.NoError(t, err)
	assert.Equal(t, m.Data, stored.Data, "the dead letter is stored")

	st := l.Stats()
	assert.Equal(t, closedloop.Stats{Delivered: 3, Acked: 2, DeadLettered: 1}, st)
	for _, c := range rec.snapshot() {
		assert.EqualValues(t, 1, c.d.NumDelivered, "%s: not redelivered", c.id)
	}
}

// sortedByFirst checks that a comes before b in ids and returns ids with
// the remaining element last (the order across keys is free).
func sortedByFirst(ids []string, a, b string) []string {
	ia, ib := slices.Index(ids, a), slices.Index(ids, b)
	if ia < 0 || ib < 0 || ia > ib {
		return ids
	}
	var rest []string
	for _, id := range ids {
		if id != a && id != b {
			rest = append(rest, id)
		}
	}
	return append([]string{a, b}, rest...)
}

// No more than MaxInFlight handlers run at once, and JetStream holds no
// more than MaxInFlight signals unacknowledged.
func TestMaxInFlight(t *testing.T) {
	nc := startNode(t)
	const limit, n = 4, 20
	var cur, peak atomic.Int64
	release := make(chan struct{})
	rec := &recorder{}
	_, stop := startLoop(t, nc, closedloop.Options{Name: "bounded", MaxInFlight: limit},
		func(ctx context.Context, ev *signal.Event, d closedloop.Delivery) error {
			c := cur.Add(1)
			defer cur.Add(-1)
			for p := peak.Load(); c > p && !peak.CompareAndSwap(p, c); p = peak.Load() {
			}
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			rec.add(ev, d)
			return nil
		})
	for i := range n {
		publish(t, nc, congestion(fmt.Sprintf("k-%d", i), fmt.Sprintf("ic-%d", i), signal.Raised))
	}
	natstest.WaitFor(t, 10*time.Second, func() error {
		if c := cur.Load(); c < limit {
			return fmt.Errorf("%d handlers running", c)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // room for more, if the bound leaked
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	cons, err := js.Consumer(context.Background(), store.SignalStream, "bounded")
	require.NoError(t, err)
	info, err := cons.Info(context.Background())
	require.NoError(t, err)
	assert.LessOrEqual(t, info.NumAckPending, limit)
	assert.EqualValues(t, limit, peak.Load())
	close(release)
	rec.waitN(t, n)
	stop()
	assert.EqualValues(t, limit, peak.Load(), "never more than MaxInFlight handlers at once")
	t.Logf("peak %d handlers, %d unacknowledged at the server while blocked", peak.Load(), info.NumAckPending)
}

// Cancelling the context returns Run promptly even with handlers blocked and
// signals queued; what was not handled is nakked, so the next run of the
// durable loop gets it at once rather than after AckWait. TestMain checks
// that no goroutine is left.
func TestCancelReturnsAndHandsBackHeldSignals(t *testing.T) {
	nc := startNode(t)
	var started atomic.Int64
	_, stop := startLoop(t, nc, closedloop.Options{Name: "stopper", MaxInFlight: 8},
		func(ctx context.Context, ev *signal.Event, d closedloop.Delivery) error {
			started.Add(1)
			<-ctx.Done()
			return ctx.Err()
		})
	for i := range 6 {
		// Two keys: two handlers block, four signals queue behind them.
		publish(t, nc, congestion(fmt.Sprintf("c-%d", i), fmt.Sprintf("ic-%d", i%2), signal.Updated))
	}
	natstest.WaitFor(t, 10*time.Second, func() error {
		if started.Load() < 2 {
			return fmt.Errorf("%d handlers started", started.Load())
		}
		return nil
	})
	t0 := time.Now()
	stop()
	took := time.Since(t0)
	t.Logf("Run returned %v after cancel", took.Round(time.Millisecond))
	assert.Less(t, took, 6*time.Second)
	assert.EqualValues(t, 2, started.Load(), "one handler per key at a time")

	rec := &recorder{}
	t1 := time.Now()
	startLoop(t, nc, closedloop.Options{Name: "stopper", MaxInFlight: 8, AckWait: time.Minute},
		func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
			rec.add(ev, d)
			return nil
		})
	calls := rec.waitN(t, 6)
	assert.Less(t, time.Since(t1), 10*time.Second, "handed back, not left to AckWait")
	perKey := map[string][]string{}
	for _, c := range calls {
		perKey[c.key] = append(perKey[c.key], c.id)
		assert.False(t, c.d.Current, "stored after the consumer was created")
	}
	assert.Equal(t, []string{"c-0", "c-2", "c-4"}, perKey["vpn-acme/ic-0"])
	assert.Equal(t, []string{"c-1", "c-3", "c-5"}, perKey["vpn-acme/ic-1"])
}

func TestOptionsNeedAName(t *testing.T) {
	err := closedloop.Run(context.Background(), nil, closedloop.Options{}, nil)
	assert.ErrorContains(t, err, "Name is required")
	err = closedloop.Run(context.Background(), nil, closedloop.Options{Name: "a.b"}, nil)
	assert.ErrorContains(t, err, "durable name")
}

// After a kill -9 of the node, JetStream may deliver again signals whose
// acks it had not yet written to disk. Here the consumer's whole state is
// lost (deleted: the worst case of that), so the server delivers every
// handled signal again: the loop acks them again without calling the
// handler, and handles only what is new.
func TestRedeliveryOfAckedSignalsReachesNoHandler(t *testing.T) {
	nc := startNode(t)
	for i := range 10 {
		publish(t, nc, congestion(fmt.Sprintf("first-%d", i), fmt.Sprintf("ic-%d", i), signal.Raised))
	}
	rec := &recorder{}
	h := func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
		rec.add(ev, d)
		return nil
	}
	opts := closedloop.Options{Name: "forgetful", Filter: "an.sig.*.congestion.>"}
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	l := closedloop.New(nc, opts, h)
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		return func() { cancel(); require.NoError(t, <-done) }
	}
	stop := run()
	rec.waitN(t, 10)
	natstest.WaitFor(t, 5*time.Second, func() error {
		if st := l.Stats(); st.Acked != 10 {
			return fmt.Errorf("acked %d", st.Acked)
		}
		return nil
	})
	stop()

	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, js.DeleteConsumer(ctx, "ANFED_SIGNALS", "forgetful"))
	publish(t, nc, congestion("second", "ic-new", signal.Raised))

	stop = run()
	defer stop()
	natstest.WaitFor(t, 10*time.Second, func() error {
		if st := l.Stats(); st.AckedAgain != 10 || len(rec.snapshot()) < 11 {
			return fmt.Errorf("acked again %d, handled %d", st.AckedAgain, len(rec.snapshot()))
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // nothing more comes
	ids := rec.ids()
	require.Len(t, ids, 11, "each signal handled once: %v", ids)
	assert.Equal(t, "second", ids[10])
	st := l.Stats()
	assert.EqualValues(t, 11, st.Delivered)
	assert.EqualValues(t, 10, st.AckedAgain)
}

// TestLifecycleReachesTheLoop: the condition table's changes that no
// signal carries reach the loop's Lifecycle: a congestion raised with a
// short expiry is seen upserted, then expired, in order; one of another
// class (outside the filter) is not seen.
func TestLifecycleReachesTheLoop(t *testing.T) {
	nc := startNode(t)
	var mu sync.Mutex
	var got []string
	opts := closedloop.Options{Name: "life", Filter: "an.sig.*.congestion.>",
		Lifecycle: func(_ context.Context, c conditions.Change) {
			mu.Lock()
			got = append(got, string(c.Kind)+" "+c.Condition.Subject)
			mu.Unlock()
		}}
	startLoop(t, nc, opts, func(context.Context, *signal.Event, closedloop.Delivery) error { return nil })
	ev := congestion("l1", "ic-1", signal.Raised)
	ev.ExpiryTime = time.Now().Add(time.Second).UTC()
	publish(t, nc, ev)
	publish(t, nc, fault("f1", "pe-1"))
	want := []string{"upsert vpn-acme/ic-1", "expire vpn-acme/ic-1"}
	natstest.WaitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Equal(got, want) {
			return fmt.Errorf("lifecycle seen: %v, want %v", got, want)
		}
		return nil
	})
}

// A stream that lost its last writes (a machine crash, not a process's)
// gives their sequences to new signals. The loop remembers what it handled
// by identity, so a new signal at a sequence it handled before reaches the
// handler. Here the stream is recreated: every sequence is reused.
func TestReusedSequencesReachTheHandler(t *testing.T) {
	_, js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: store.SignalStream, Subjects: []string{subject.Signals}}
	_, err := js.CreateStream(ctx, cfg)
	require.NoError(t, err)
	nc := js.Conn()
	store5 := func(prefix string) {
		for i := range 5 {
			ev := congestion(fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("ic-%d", i), signal.Raised)
			ack, err := js.Publish(ctx, "an.sig.op-a.congestion.vpn-acme."+fmt.Sprintf("ic-%d", i), ev.Encode())
			require.NoError(t, err)
			require.EqualValues(t, i+1, ack.Sequence)
		}
	}
	rec := &recorder{}
	l := closedloop.New(nc, closedloop.Options{Name: "reused", Filter: "an.sig.*.congestion.>"},
		func(_ context.Context, ev *signal.Event, d closedloop.Delivery) error {
			rec.add(ev, d)
			return nil
		})
	run := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- l.Run(ctx) }()
		return func() { cancel(); require.NoError(t, <-done) }
	}
	store5("before")
	stop := run()
	rec.waitN(t, 5)
	stop()

	require.NoError(t, js.DeleteStream(ctx, store.SignalStream))
	_, err = js.CreateStream(ctx, cfg)
	require.NoError(t, err)
	store5("after") // sequences 1 to 5 again, other signals

	stop = run()
	defer stop()
	rec.waitN(t, 10)
	assert.Zero(t, l.Stats().AckedAgain, "a new signal at a reused sequence was acked unhandled")
	assert.ElementsMatch(t, []string{"before-0", "before-1", "before-2", "before-3", "before-4",
		"after-0", "after-1", "after-2", "after-3", "after-4"}, rec.ids())
}
