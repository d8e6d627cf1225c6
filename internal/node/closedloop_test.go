package node_test

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
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
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// runClosedLoop runs a closedloop at n until the test ends, on its own
// connection, and returns once its durable consumer exists.
func runClosedLoop(t *testing.T, n *node.Node, opts closedloop.Options, h closedloop.Handler) *closedloop.Loop {
	t.Helper()
	nc, err := n.Connect(nats.Name("closed-loop-" + opts.Name))
	require.NoError(t, err)
	opts.Log = zerolog.New(zerolog.NewTestWriter(t)).Level(testLogLevel)
	l := closedloop.New(nc, opts, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Errorf("closed loop %s did not stop", opts.Name)
		}
		nc.Close()
	})
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, func() error {
		_, err := js.Consumer(ctx, store.SignalStream, opts.Name)
		return err
	})
	return l
}

// loopBacklog is what the closed loop name at n has not acknowledged yet.
func loopBacklog(t *testing.T, n *node.Node, name string) uint64 {
	t.Helper()
	nc, err := n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	c, err := js.Consumer(context.Background(), store.SignalStream, name)
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info.NumPending + uint64(info.NumAckPending)
}

// builtWithRace reports whether the test binary runs the race detector.
func builtWithRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// percentile is the q-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(i, 0)]
}

// A closed loop at B that stops acknowledging for a while (its handler
// blocks) loses nothing and sees nothing twice, and another closed loop at
// B on another class keeps its latency meanwhile: JetStream holds the
// paused loop's backlog, MaxInFlight bounds what the loop holds, and the
// loop's heartbeats keep what it holds from being redelivered.
func TestClosedLoopPausedLosesNothingOthersUnaffected(t *testing.T) {
	pause := 3 * time.Second
	if *longFaults {
		pause = 30 * time.Second
	}
	na, nb, _ := linked(t)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()

	// The paused loop, on congestion. AckWait is short so that, without
	// its heartbeats, what it holds would be redelivered during the pause.
	var paused atomic.Bool
	resume := make(chan struct{})
	led := newLedger()
	var maxDelivered atomic.Uint64
	slow := runClosedLoop(t, nb, closedloop.Options{Name: "paused", Filter: "an.sig.*.congestion.>", AckWait: 2 * time.Second},
		func(ctx context.Context, ev *signal.Event, d closedloop.Delivery) error {
			if paused.Load() {
				select {
				case <-resume:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			for m := maxDelivered.Load(); d.NumDelivered > m && !maxDelivered.CompareAndSwap(m, d.NumDelivered); m = maxDelivered.Load() {
			}
			led.add(&nats.Msg{Data: ev.Encode()})
			return nil
		})

	// The other loop, on faults: latency from the fault's time (set at
	// publication at A) to its handler at B.
	type sample struct {
		sent time.Time
		lat  time.Duration
	}
	var smu sync.Mutex
	var samples []sample
	got := map[string]int{}
	runClosedLoop(t, nb, closedloop.Options{Name: "steady", Filter: "an.sig.*.fault.>"},
		func(_ context.Context, ev *signal.Event, _ closedloop.Delivery) error {
			lat := time.Since(ev.Time)
			smu.Lock()
			samples = append(samples, sample{ev.Time, lat})
			got[ev.ID]++
			smu.Unlock()
			return nil
		})

	// Congestion signals/s (4 sources) and faults/s. Under the race
	// detector on a shared two-core machine the two nodes handle far less.
	rate, faultRate := 200, 100
	if builtWithRace() {
		rate, faultRate = 20, 10
	}
	stop := make(chan struct{})
	done := stream(t, pa, 4, rate, stop)
	var faultsSent atomic.Int64
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		tick := time.NewTicker(time.Second / time.Duration(faultRate))
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ev := faultEvent("op-a", "f-"+strconv.Itoa(i))
			ev.Time = time.Now()
			ev.Sequence = fmt.Sprintf("%020d", i)
			m, err := pa.Request("an.pub", ev.Encode(), 5*time.Second)
			if err != nil {
				t.Errorf("fault %d: %v", i, err)
				return
			}
			if a, err := signal.ParseAnswer(m.Data); err != nil || !a.OK() {
				t.Errorf("fault %d not accepted: %v %v", i, a, err)
				return
			}
			faultsSent.Add(1)
		}
	}()

	time.Sleep(5 * time.Second) // steady state before the pause
	pauseStart := time.Now()
	paused.Store(true)
	time.Sleep(pause)
	handledAtResume := led.count()
	heldBack := loopBacklog(t, nb, "paused")
	paused.Store(false)
	close(resume)
	pauseEnd := time.Now()
	waitFor(t, 60*time.Second, func() error {
		if n := led.count(); n < handledAtResume+int(heldBack) {
			return fmt.Errorf("paused loop: %d of the %d held back handled", n-handledAtResume, heldBack)
		}
		return nil
	})
	drained := time.Since(pauseEnd)
	time.Sleep(time.Second) // the stream goes on after the drain
	close(stop)
	<-faultsDone
	accepted := done()

	waitFor(t, 60*time.Second, func() error {
		if n := led.count(); n < len(accepted) {
			return fmt.Errorf("paused loop handled %d of %d", n, len(accepted))
		}
		smu.Lock()
		defer smu.Unlock()
		if n := len(got); n < int(faultsSent.Load()) {
			return fmt.Errorf("steady loop handled %d of %d", n, faultsSent.Load())
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // nothing more comes

	led.mu.Lock()
	lost, dups := 0, 0
	for _, k := range accepted {
		switch led.seen[k] {
		case 0:
			lost++
		case 1:
		default:
			dups++
		}
	}
	handled, order := led.n, len(led.order)
	led.mu.Unlock()

	smu.Lock()
	var before, during, after []time.Duration
	warm := pauseStart.Add(-4 * time.Second) // the first second is warm-up
	for _, s := range samples {
		switch {
		case s.sent.Before(warm):
		case s.sent.Before(pauseStart):
			before = append(before, s.lat)
		case s.sent.Before(pauseEnd):
			during = append(during, s.lat)
		default:
			after = append(after, s.lat)
		}
	}
	faultDups := 0
	for _, n := range got {
		if n > 1 {
			faultDups++
		}
	}
	smu.Unlock()

	st := slow.Stats()
	t.Logf("pause %v at %d congestion/s: accepted %d, handled %d, lost %d, duplicates %d, order violations %d; held back at resume %d, handled within %v of resume; max deliveries %d, naks %d",
		pause, rate, len(accepted), handled, lost, dups, order, heldBack, drained.Round(time.Millisecond), maxDelivered.Load(), st.Naked)
	t.Logf("steady loop latency (faults at %d/s): before p50 %v p99 %v (n=%d); during p50 %v p99 %v (n=%d); after p50 %v p99 %v (n=%d); duplicates %d", faultRate,
		percentile(before, .5).Round(10*time.Microsecond), percentile(before, .99).Round(10*time.Microsecond), len(before),
		percentile(during, .5).Round(10*time.Microsecond), percentile(during, .99).Round(10*time.Microsecond), len(during),
		percentile(after, .5).Round(10*time.Microsecond), percentile(after, .99).Round(10*time.Microsecond), len(after), faultDups)

	assert.Zero(t, lost, "lost")
	assert.Zero(t, dups, "duplicates")
	assert.Zero(t, order, "order violations")
	assert.Equal(t, len(accepted), handled, "nothing handled that was not accepted")
	assert.Greater(t, heldBack, uint64(rate), "the pause held back more than a second of signals")
	assert.EqualValues(t, 1, maxDelivered.Load(), "nothing redelivered: the heartbeats covered the pause")
	assert.Zero(t, faultDups)
	require.NotEmpty(t, before)
	require.NotEmpty(t, during)
	// Under the race detector there are fewer than 100 samples per phase,
	// so their p99 is their maximum: one scheduling hiccup of a shared
	// machine. There the bound applies to p90.
	q := .99
	if builtWithRace() {
		q = .9
	}
	// This is an isolation check, not a speed measurement (the latencies
	// are logged above): were the steady loop held behind the paused one,
	// its latency would grow towards the pause itself (held samples wait
	// up to the whole 3 s, their p90 near 2.7 s). Half the pause leaves
	// room for a loaded machine's scheduling (884 ms once in CI with
	// other test runs on the machine).
	pb, pd := percentile(before, q), percentile(during, q)
	assert.Less(t, pd, max(5*pb, pause/2), "the steady loop's p%.0f during the pause: %v, before: %v: it waited behind the paused loop", q*100, pd, pb)
}
