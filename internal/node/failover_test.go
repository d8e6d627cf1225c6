//go:build !race

// Race-hostile: under -race on a loaded 2-core machine each R3 store write of
// a receiver can take 50 ms and the peer's resends after a takeover queue
// behind them past the session hold time; the lease package's tests run
// under -race, and this test ran clean of data races with it (see
// docs/reliability.md).

package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/lease"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/store"
)

// tenureLog is every op-a process's tenure of the link to op-b: from the
// lease taken to the lease given up, or to the process's crash, whichever
// came first (a crashed process sends nothing: its connections are gone).
type tenureLog struct {
	mu      sync.Mutex
	open    map[string]time.Time // instance -> since
	terms   map[string]uint64
	crashed map[string]time.Time
	done    []tenureSpan
	takes   []time.Time // when each tenure began
}

type tenureSpan struct {
	instance   string
	term       uint64
	start, end time.Time
}

func newTenureLog() *tenureLog {
	return &tenureLog{open: map[string]time.Time{}, terms: map[string]uint64{}, crashed: map[string]time.Time{}}
}

func (l *tenureLog) event(e lease.Event) {
	if e.Key != "link.op-b" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Held {
		l.open[e.Holder], l.terms[e.Holder] = e.At, e.Term
		l.takes = append(l.takes, e.At)
		return
	}
	start, ok := l.open[e.Holder]
	if !ok {
		return
	}
	delete(l.open, e.Holder)
	end := e.At
	if c, ok := l.crashed[e.Holder]; ok && c.Before(end) {
		end = c
	}
	l.done = append(l.done, tenureSpan{instance: e.Holder, term: e.Term, start: start, end: end})
}

func (l *tenureLog) crash(instance string, at time.Time) {
	l.mu.Lock()
	l.crashed[instance] = at
	l.mu.Unlock()
}

// holder is the instance holding the link now ("" none), and since when.
func (l *tenureLog) holder() (string, time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for in, at := range l.open {
		if _, dead := l.crashed[in]; !dead {
			return in, at
		}
	}
	return "", time.Time{}
}

// spans is every tenure, those still open ending now.
func (l *tenureLog) spans() []tenureSpan {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.done)
	for in, at := range l.open {
		end := time.Now()
		if c, ok := l.crashed[in]; ok {
			end = c
		}
		out = append(out, tenureSpan{instance: in, term: l.terms[in], start: at, end: end})
	}
	return out
}

// condWatch counts what a node announces of its conditions, by kind.
type condWatch struct {
	mu    sync.Mutex
	kinds map[conditions.ChangeKind]int
}

func watchConditions(t *testing.T, nc *nats.Conn, peer string) *condWatch {
	w := &condWatch{kinds: map[conditions.ChangeKind]int{}}
	_, err := nc.Subscribe("an.cond.>", func(m *nats.Msg) {
		var c conditions.Change
		if json.Unmarshal(m.Data, &c) != nil || c.Condition.Peer != peer {
			return
		}
		w.mu.Lock()
		w.kinds[c.Kind]++
		w.mu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return w
}

func (w *condWatch) count(k conditions.ChangeKind) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kinds[k]
}

// TestLinkFailover runs op-a as several processes (in-process nodes, each
// with its own connections) on one three-server NATS cluster with R3
// streams, linked to op-b's embedded node. Signals stream both ways while
// the process holding the link to op-b crashes again and again (every
// connection closed at once, no goodbye, its lease left to run out) and a
// new process starts in its place. Each closed loop must get every
// accepted signal once and in per-source order; no two processes may ever
// hold the link at once; op-b must see its link stay up and none of op-a's
// conditions go stale or be withdrawn.
//
// ANFED_FAILOVER_TAKEOVERS (default 3) sets how many crashes;
// ANFED_FAILOVER_SOURCES (default 2 each way) and ANFED_FAILOVER_EVERY
// (default 50ms: each source waits that long, then for its answer) the
// load: 20 sources every 10ms is up to 2,000/s each way.
func TestLinkFailover(t *testing.T) {
	// The CI version: a light load (2 sources each way, 40 signals/s),
	// since each receiver stores one signal at a time and an R3 write
	// under -race on a loaded 2-core machine can take 50 ms.
	takeovers, sources, every := 3, 2, 50*time.Millisecond
	if v, err := strconv.Atoi(os.Getenv("ANFED_FAILOVER_TAKEOVERS")); err == nil && v > 0 {
		takeovers = v
	}
	if v, err := strconv.Atoi(os.Getenv("ANFED_FAILOVER_SOURCES")); err == nil && v > 0 {
		sources = v
	}
	if v, err := time.ParseDuration(os.Getenv("ANFED_FAILOVER_EVERY")); err == nil && v > 0 {
		every = v
	}
	// Renewals are writes to an R3 bucket: on a loaded 2-core machine
	// under -race they can take a second; 4 s leaves room for two missed.
	const ttl = 4 * time.Second
	testLogLevel = zerolog.WarnLevel
	defer func() { testLogLevel = zerolog.ErrorLevel }()

	nb, a := clusterAndPeer(t)
	cl := nodetest.StartCluster(t, a, nil)
	tl := newTenureLog()
	procs := map[string]*node.Node{}
	var seq int
	startProc := func() *node.Node {
		seq++
		name := fmt.Sprintf("a%d", seq)
		n := startNode(t, a, node.WithInstance(name), node.WithLeaseTTL(ttl), node.WithLeaseEvents(tl.event))
		procs[name] = n
		return n
	}
	for range 3 {
		startProc()
	}
	waitFor(t, 30*time.Second, func() error {
		if h, _ := tl.holder(); h == "" {
			return fmt.Errorf("nobody holds the link to op-b")
		}
		if !nb.LinkUp("op-a") {
			return fmt.Errorf("op-b's link down")
		}
		if s := nb.Session("op-a"); s == nil || s.State != "established" {
			return fmt.Errorf("op-b's session: %+v", s)
		}
		h, _ := tl.holder()
		if s := procs[h].Session("op-b"); s == nil || s.State != "established" {
			return fmt.Errorf("%s's session: %+v", h, s)
		}
		return nil
	})
	// The holder is named alike by every process.
	h, _ := tl.holder()
	for name, n := range procs {
		got, _, err := n.LinkHolder(context.Background(), "op-b")
		require.NoError(t, err)
		assert.Equal(t, h, got, "%s names the holder", name)
		for _, ps := range n.Peers(context.Background()) {
			assert.Equal(t, h, ps.Holder, "%s's peers view names the holder", name)
			assert.Equal(t, name == h, ps.HeldHere, "%s says whether it holds the link", name)
			if assert.NotNil(t, ps.Session, "%s shows the holder's session", name) {
				assert.Equal(t, "established", string(ps.Session.State))
			}
		}
	}

	loop, err := nats.Connect(a.NATS.External.URLs[0]+","+a.NATS.External.URLs[1]+","+a.NATS.External.URLs[2],
		nats.UserInfo("loop", "loop-pass-123"), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	require.NoError(t, err)
	defer loop.Close()
	js, err := jetstream.New(loop)
	require.NoError(t, err)

	// A local user cannot write a lease: the holder keeps it.
	pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
	_, err = js.Publish(pctx, "$KV.ANFED_LEASES.link.op-b", []byte(`{"holder":"intruder"}`))
	pcancel()
	require.Error(t, err, "a local user wrote the link's lease")
	got, _, err := procs[h].LinkHolder(context.Background(), "op-b")
	require.NoError(t, err)
	require.Equal(t, h, got)

	atB, atA := newTimedLedger(), newTimedLedger()
	bc, err := nb.Connect()
	require.NoError(t, err)
	defer bc.Close()
	sub, err := bc.Subscribe("an.sig.op-a.>", func(m *nats.Msg) { atB.add(m.Data) })
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	seenAtB := watchConditions(t, bc, "op-a")
	cctx, ccancel := context.WithCancel(context.Background())
	defer ccancel()
	oc, err := js.OrderedConsumer(cctx, store.SignalStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"an.sig.op-b.>"}})
	require.NoError(t, err)
	cc, err := oc.Consume(func(m jetstream.Msg) { atA.add(m.Data()) }, jetstream.PullExpiry(2*time.Second))
	require.NoError(t, err)
	defer cc.Stop()

	flapsBefore := nb.Session("op-a").Flaps
	var linkDownAtB time.Duration
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	var stopOnce sync.Once
	endWatch := func() { stopOnce.Do(func() { close(stopWatch) }); <-watchDone }
	t.Cleanup(endWatch) // before op-b stops, should the test end early
	go func() {
		defer close(watchDone)
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopWatch:
				return
			case <-tk.C:
				if !nb.LinkUp("op-a") {
					linkDownAtB += 50 * time.Millisecond
				}
			}
		}
	}()

	stop := make(chan struct{})
	var stopProducers sync.Once
	t.Cleanup(func() { stopProducers.Do(func() { close(stop) }) })
	pa, waitA := produce(t, loop, "op-a", sources, every, stop)
	pbConn, err := nb.Connect()
	require.NoError(t, err)
	defer pbConn.Close()
	pb, waitB := produce(t, pbConn, "op-b", sources, every, stop)
	waitFor(t, 20*time.Second, func() error {
		if atB.count() < 20 || atA.count() < 20 {
			return fmt.Errorf("flowing: %d at op-b, %d at op-a", atB.count(), atA.count())
		}
		return nil
	})

	// firstAfter: how long after t a signal accepted after t reached l.
	firstAfter := func(p *producer, l *timedLedger, after time.Time) func() error {
		return func() error {
			for k, at := range p.keys() {
				if at.After(after) && l.missing(map[string]time.Time{k: at}) == nil {
					return nil
				}
			}
			return fmt.Errorf("no signal accepted after the crash has crossed yet")
		}
	}
	var serverDown string
	var winding sync.WaitGroup
	defer winding.Wait()
	type failover struct{ moved, ab, ba time.Duration }
	var fos []failover
	for i := range takeovers {
		victim, _ := tl.holder()
		require.NotEmpty(t, victim)
		// The load as it stands: accepted in the last seconds, and what
		// waits to cross each way.
		blA, errA := procs[victim].Backlog(context.Background(), "op-b")
		blB, errB := nb.Backlog(context.Background(), "op-a")
		t.Logf("before takeover %d, over the last 3 s: accepted %.0f/s by op-a, %.0f/s by op-b; arrived %.0f/s at op-b's loop, %.0f/s at op-a's; backlog op-a→op-b %d %v, op-b→op-a %d %v",
			i+1, pa.rate(3*time.Second), pb.rate(3*time.Second), atB.rate(3*time.Second), atA.rate(3*time.Second), blA, errA, blB, errB)
		// Cut off at once; the rest of the crashed process winds down
		// beside the test (it may wait seconds for writes it had under
		// way), as a killed process would not hold the test up.
		procs[victim].Cut()
		crashed := time.Now()
		tl.crash(victim, crashed)
		winding.Add(1)
		go func(n *node.Node) { defer winding.Done(); n.Stop() }(procs[victim])
		delete(procs, victim)
		var fo failover
		waitFor(t, 30*time.Second, func() error {
			h, since := tl.holder()
			if h == "" || !since.After(crashed) {
				return fmt.Errorf("the link has not moved from %s yet", victim)
			}
			fo.moved = since.Sub(crashed)
			return nil
		})
		waitFor(t, 60*time.Second, firstAfter(pa, atB, crashed))
		fo.ab = time.Since(crashed)
		waitFor(t, 60*time.Second, firstAfter(pb, atA, crashed))
		fo.ba = time.Since(crashed)
		fos = append(fos, fo)
		h, _ := tl.holder()
		t.Logf("takeover %d: %s crashed, %s took the link after %v; op-a→op-b flowing again after %v, op-b→op-a after %v",
			i+1, victim, h, fo.moved.Round(time.Millisecond), fo.ab.Round(time.Millisecond), fo.ba.Round(time.Millisecond))
		startProc() // a new process in place of the crashed one
		if i == (takeovers-1)/2 {
			serverDown = shutServer(t, cl, js, func(down time.Time) {
				waitFor(t, 60*time.Second, firstAfter(pa, atB, down))
				waitFor(t, 60*time.Second, firstAfter(pb, atA, down))
			})
			t.Logf("after takeover %d: %s", i+1, serverDown)
		}
	}
	stopProducers.Do(func() { close(stop) })
	waitA()
	waitB()
	accA, accB := pa.keys(), pb.keys()
	waitFor(t, 60*time.Second, func() error { return allArrived(atA, atB, accA, accB) })
	endWatch()

	assert.Empty(t, atB.duplicates(), "delivered twice to op-b's loop")
	assert.Empty(t, atA.duplicates(), "delivered twice to op-a's loop")
	assert.Empty(t, atB.violations(), "order at op-b's loop")
	assert.Empty(t, atA.violations(), "order at op-a's loop")
	spans := tl.spans()
	for i, x := range spans {
		for _, y := range spans[i+1:] {
			if x.start.Before(y.end) && y.start.Before(x.end) {
				t.Errorf("%s (term %d, %s–%s) and %s (term %d, %s–%s) held the link at once", x.instance, x.term,
					x.start.Format("15:04:05.000"), x.end.Format("15:04:05.000"), y.instance, y.term, y.start.Format("15:04:05.000"), y.end.Format("15:04:05.000"))
			}
		}
	}
	assert.GreaterOrEqual(t, len(spans), takeovers+1)
	// What op-b saw: its link up throughout (the leaf connections are the
	// cluster servers', not the processes'), none of op-a's conditions
	// stale or withdrawn; a session that opened again at each takeover.
	assert.Zero(t, linkDownAtB, "op-b's link to op-a was down")
	assert.Zero(t, seenAtB.count(conditions.Stale), "op-a's conditions went stale at op-b")
	assert.Zero(t, seenAtB.count(conditions.Withdraw), "op-a's conditions were withdrawn at op-b")
	flaps := nb.Session("op-a").Flaps - flapsBefore

	moved := make([]time.Duration, 0, len(fos))
	flow := make([]time.Duration, 0, len(fos))
	for _, f := range fos {
		moved = append(moved, f.moved)
		flow = append(flow, max(f.ab, f.ba))
	}
	slices.Sort(moved)
	slices.Sort(flow)
	t.Logf("%d takeovers (lease TTL %s): link moved median %v worst %v; both ways flowing again median %v worst %v",
		len(fos), ttl, moved[len(moved)/2].Round(time.Millisecond), moved[len(moved)-1].Round(time.Millisecond),
		flow[len(flow)/2].Round(time.Millisecond), flow[len(flow)-1].Round(time.Millisecond))
	t.Logf("op-a→op-b %d signals (%d producer retries), op-b→op-a %d (%d retries): 0 lost, 0 twice, 0 out of order",
		len(accA), pa.retried(), len(accB), pb.retried())
	t.Logf("%s", serverDown)
	t.Logf("op-b saw: link down %v, session flaps %d, conditions stale %d, withdrawn %d", linkDownAtB, flaps,
		seenAtB.count(conditions.Stale), seenAtB.count(conditions.Withdraw))
}

// shutServer shuts down the server that leads the signal stream, waits
// (flowing) until signals accepted after that cross both ways on the two
// servers left, starts it again, and waits until they do with it back;
// it says how long each took.
func shutServer(t *testing.T, cl *nodetest.Cluster, js jetstream.JetStream, flowing func(since time.Time)) string {
	name := streamLeader(t, js, store.SignalStream)
	if cl.ByName(name) == nil {
		name = cl.Names[0]
	}
	cl.ByName(name).Shutdown() // returns once it is down: its clients cut off
	down := time.Now()
	flowing(down)
	again := time.Since(down)
	cl.Restart(name)
	back := time.Now()
	flowing(back)
	return fmt.Sprintf("NATS server %s (the signal stream's leader) shut down: both ways flowing again after %v; restarted (the cluster formed again with it) after %v, both ways flowing after that %v later",
		name, again.Round(time.Millisecond), back.Sub(down).Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
}
