package node_test

// Attacks on the stream mode's in-process hand-off (handTelemetry,
// outbound.TelemetryFeed): an.telsig is published only while a local
// loop listens, asked per signal; a stream peer removed by a reload
// leaves the feed.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// telemetryFlow publishes op-a's telemetry on an.tel through nc as fast
// as it is answered, until stop is closed; it returns how many were
// accepted.
func telemetryFlow(nc *nats.Conn, prefix string, stop <-chan struct{}) func() int {
	done := make(chan int, 1)
	go func() {
		ok := 0
		defer func() { done <- ok }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			m, err := nc.Request(subject.TelemetryIntakePrefix, congestion("op-a", fmt.Sprintf("%s-%d", prefix, i)).Encode(), 10*time.Second)
			if err != nil {
				return
			}
			if a, err := signal.ParseAnswer(m.Data); err == nil && a.Status == signal.StatusAccepted {
				ok++
			}
		}
	}()
	return func() int { return <-done }
}

// streaming is op-a streaming to op-b, a producer's connection to op-a,
// and what op-b's local loops get of op-a's telemetry, which crosses.
func streaming(t *testing.T) (na *node.Node, pa *nats.Conn, atB *arrivals) {
	t.Helper()
	na, nb, _ := linkedEdit(t, streamPeer)
	pa, err := na.Connect()
	require.NoError(t, err)
	t.Cleanup(pa.Close)
	atB = watchTelemetry(t, nb, "op-a")
	untilTelemetryCrosses(t, pa, atB, "warmup")
	return na, pa, atB
}

// opsPublishes is how many messages n's operations connection has
// published (the server's count of what it received from it): intake's
// answers, and an.telsig when a local loop listens.
func opsPublishes(t *testing.T, n *node.Node) int64 {
	t.Helper()
	cz, err := n.Server().Connz(&server.ConnzOptions{Limit: 1024})
	require.NoError(t, err)
	for _, c := range cz.Conns {
		if c.Name == "anfed-node-ops" {
			return c.InMsgs
		}
	}
	t.Fatal("no connection named anfed-node-ops")
	return 0
}

// TestTelemetryInterestAskedPerSignal: a local loop that subscribes to
// an.telsig.> while telemetry already flows gets it from then on (the
// node asks for interest per signal, not once at the start), and once it
// unsubscribes the node publishes (and encodes) no more an.telsig: its
// operations connection publishes one message per signal (intake's
// answer) instead of two.
func TestTelemetryInterestAskedPerSignal(t *testing.T) {
	na, pa, atB := streaming(t)
	const telsig = "an.telsig.op-a.congestion.vpn-acme.ic-paris-1"
	require.False(t, na.OpsInterest(telsig), "no local loop yet")

	stop := make(chan struct{})
	flowed := telemetryFlow(pa, "flow", stop)
	waitFor(t, 30*time.Second, func() error {
		if n := na.TelemetryAccepted(); n < 50 {
			return fmt.Errorf("%d telemetry accepted at op-a", n)
		}
		return nil
	})

	// A loop joins mid-flow.
	lc, err := na.Connect()
	require.NoError(t, err)
	defer lc.Close()
	var mu sync.Mutex
	got := map[string]int{}
	sub, err := lc.Subscribe(subject.Telemetry, func(m *nats.Msg) {
		if ev, err := signal.DecodeStructured(m.Data); err == nil {
			mu.Lock()
			got[ev.ID]++
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, lc.Flush())
	require.True(t, na.OpsInterest(telsig))
	late := publishTelemetry(t, pa, "late", 10)
	waitFor(t, 15*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range late {
			if got[id] != 1 {
				return fmt.Errorf("%s reached the late loop %d times", id, got[id])
			}
		}
		return nil
	})
	close(stop)
	mu.Lock()
	lateGot := len(got)
	mu.Unlock()
	t.Logf("%d telemetry flowed; the late loop got %d signals", flowed(), lateGot)

	// What a listened-to signal costs the operations connection, then an
	// unheard one.
	per := func(prefix string) float64 {
		time.Sleep(200 * time.Millisecond) // the flow's last answers are out
		before := opsPublishes(t, na)
		ids := publishTelemetry(t, pa, prefix, 50)
		atB.waitAll(t, ids) // still handed to the stream sender
		return float64(opsPublishes(t, na)-before) / float64(len(ids))
	}
	heard := per("heard")
	require.NoError(t, sub.Unsubscribe())
	require.NoError(t, lc.Flush())
	waitFor(t, 10*time.Second, func() error {
		if na.OpsInterest(telsig) {
			return fmt.Errorf("the loop's interest is still there")
		}
		return nil
	})
	mu.Lock()
	n := len(got)
	mu.Unlock()
	unheard := per("unheard")
	t.Logf("operations connection publishes per telemetry signal: %.2f with the loop, %.2f after it left", heard, unheard)
	assert.GreaterOrEqual(t, heard, 2.0, "answer and an.telsig")
	assert.Less(t, unheard, 1.2, "the answer only: no an.telsig with nobody listening")
	mu.Lock()
	assert.Equal(t, n, len(got), "the loop that left gets nothing more")
	mu.Unlock()
}

// TestStreamPeerRemovedByReloadWhileTelemetryFlows: op-a streams to op-b
// while a producer publishes telemetry at full rate; a reload removes
// op-b. op-a's stream sender leaves the feed (no hand-off to it), op-b
// gets nothing more, intake goes on answering, op-a does not fail, and
// the goroutines come back to where they were before op-b's link.
func TestStreamPeerRemovedByReloadWhileTelemetryFlows(t *testing.T) {
	na, pa, atB := streaming(t)
	require.Equal(t, 1, na.TelemetrySenders())
	baseline := runtime.NumGoroutine()

	stop := make(chan struct{})
	flowed := telemetryFlow(pa, "flow", stop)
	waitFor(t, 30*time.Second, func() error {
		if n := atB.count(); n < 100 {
			return fmt.Errorf("%d telemetry at op-b", n)
		}
		return nil
	})
	cfg := *na.Config()
	cfg.Peers = slices.DeleteFunc(slices.Clone(cfg.Peers), func(p config.Peer) bool { return p.ID == "op-b" })
	_, err := na.Reload(context.Background(), &cfg)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, func() error {
		if n := na.TelemetrySenders(); n != 0 {
			return fmt.Errorf("%d stream senders on the feed after op-b's removal", n)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // what was on its way lands
	atBefore := atB.count()
	after := publishTelemetry(t, pa, "after-removal", 20) // intake still answers accepted
	close(stop)
	t.Logf("%d telemetry flowed; op-b got %d", flowed(), atBefore)
	time.Sleep(300 * time.Millisecond)
	for _, id := range after {
		assert.False(t, atB.has(id), "%s reached the removed peer", id)
	}
	assert.Equal(t, atBefore, atB.count())
	assert.NoError(t, na.Err())
	select {
	case <-na.Failed():
		t.Fatal("op-a failed")
	default:
	}
	// No goroutine left behind: the flow's and the link's are gone.
	waitFor(t, 20*time.Second, func() error {
		if n := runtime.NumGoroutine(); n > baseline+5 {
			return fmt.Errorf("%d goroutines, %d before the flow and the removal", n, baseline)
		}
		return nil
	})
}

// TestAttackTelemetryFloodKeepsOwnDurable: op-b, with its real
// credentials, floods telemetry on its link at ~2,000/s, 20 times its
// import rate (a rate A's CPU keeps up with: at wire speed the flood
// fills op-b's receiver and its requests time out there, see
// docs/security.md), while it sends its durable signals, each resent on
// a "not now" answer or none as an anfed sender's window would (backoff
// up to a second). Every durable signal is taken within a generous
// bound (20 s each) and stored at A once, and A does not stop. Before
// checkRate kept half the burst from telemetry, the flood took every
// token and a durable signal was refused rate-limited at each resend
// (24 to 117 times in a row, 3 of 3 runs).
func TestAttackTelemetryFloodKeepsOwnDurable(t *testing.T) {
	e, rogue, bodies, telSubj := newTelemetryFlood(t) // op-b's import rate 100/s

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var sent atomic.Uint64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			n := sent.Add(1)
			if n%2 == 0 {
				time.Sleep(time.Millisecond) // at most ~2,000/s, 20 times op-b's import rate (see the doc comment)
			}
			m := atkTelemetryMsg(telSubj, bodies[n%uint64(len(bodies))], link.HeaderStreamEpoch, "flood", link.HeaderStreamSeq, strconv.FormatUint(n, 10))
			if rogue.Conn.PublishMsg(m) != nil {
				return
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, 10*time.Second, func() error {
		if n := sent.Load(); n < 1000 {
			return fmt.Errorf("%d telemetry sent", n)
		}
		return nil
	})

	// op-b's durable signals, each resent until A takes it.
	const durable = 10
	var delays []time.Duration
	tries, why := 0, map[string]int{}
	for i := range durable {
		subj, body := e.signedB(t, e.bSignal(fmt.Sprintf("durable-%d", i)))
		start, backoff := time.Now(), 50*time.Millisecond
		for {
			tries++
			require.Less(t, time.Since(start), 20*time.Second, "durable-%d not taken by A within 60 s of resends (%d tries in all; not taken: %v)", i, tries, why)
			m, err := rogue.Conn.RequestMsg(&nats.Msg{Subject: subj, Data: body}, 2*time.Second)
			if err == nil {
				a, err := signal.ParseAnswer(m.Data)
				require.NoError(t, err)
				if a.OK() {
					break
				}
				require.True(t, link.Retryable(a.Reason), "durable-%d refused for good: %+v", i, a)
				why[a.Reason]++
			} else {
				why[err.Error()]++
			}
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
		}
		delays = append(delays, time.Since(start))
	}
	t.Logf("%d durable signals taken while op-b flooded %d telemetry: %d tries (not taken: %v), delays %v", durable, sent.Load(), tries, why, delays)
	waitFor(t, 15*time.Second, func() error {
		for i := range durable {
			if n := e.fromB.count(fmt.Sprintf("durable-%d", i)); n != 1 {
				return fmt.Errorf("durable-%d stored and delivered at A %d times", i, n)
			}
		}
		return nil
	})
	assert.NoError(t, e.a.Err())
	assert.True(t, e.a.LinkUp("op-c"))
	e.opCFlows(t)
}
