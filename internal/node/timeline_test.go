package node_test

// Timeline acceptance tests, alertmanager-style: a script of pushes at
// given offsets and of expectations on what each real node's local
// consumers (a subscriber on an.sig.>) and dead-letter stream (an.dlq.>)
// see, and when. Offsets are from the start of the script; arrival times
// are recorded by the subscribers themselves.
//
//	tlRun(t, fed,
//		at(0, push("op-a", ev)),
//		want("op-b", "e-1", between(0, 2*time.Second)),
//		wantNothing("op-c", "e-1", until(3*time.Second)),
//	)

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
)

// tlWindow is a span of the timeline, from its start.
type tlWindow struct{ from, to time.Duration }

func between(from, to time.Duration) tlWindow { return tlWindow{from, to} }
func until(to time.Duration) tlWindow         { return tlWindow{0, to} }

func (w tlWindow) String() string { return fmt.Sprintf("[%s, %s]", w.from, w.to) }

// tlAction is something done at a point of the timeline.
type tlAction struct {
	name string
	do   func(t *testing.T, tl *timeline)
}

// tlItem is a step or an expectation of a script.
type tlItem interface{ tlItem() }

type tlStep struct {
	at      time.Duration
	actions []tlAction
}

type tlExpect struct {
	node, id string
	w        tlWindow
	nothing  bool
	reason   string // "": on an.sig; else refused (dead letter) with this reason
	count    int    // 0: at least once; else exactly this many times by w.to
	checks   []tlCheck
}

// tlCheck checks the signal as it arrived.
type tlCheck struct {
	name string
	f    func(ev *signal.Event) error
}

func (tlStep) tlItem()   {}
func (tlExpect) tlItem() {}

// at runs actions at offset d.
func at(d time.Duration, actions ...tlAction) tlItem { return tlStep{at: d, actions: actions} }

// push publishes ev on node's intake and requires it accepted.
func push(nodeID string, ev *signal.Event) tlAction {
	return tlAction{name: "push " + ev.ID + " to " + nodeID, do: func(t *testing.T, tl *timeline) {
		a := publish(t, tl.conns[nodeID], ev)
		require.True(t, a.OK(), "push %s to %s: %+v", ev.ID, nodeID, a)
	}}
}

// pushAll publishes each event in turn, as fast as intake answers.
func pushAll(nodeID string, evs ...*signal.Event) tlAction {
	return tlAction{name: fmt.Sprintf("push %d signals to %s", len(evs), nodeID), do: func(t *testing.T, tl *timeline) {
		for _, ev := range evs {
			a := publish(t, tl.conns[nodeID], ev)
			require.True(t, a.OK(), "push %s to %s: %+v", ev.ID, nodeID, a)
		}
	}}
}

// do runs f at that point of the timeline.
func do(name string, f func(t *testing.T, tl *timeline)) tlAction { return tlAction{name: name, do: f} }

// want expects the signal id on node's an.sig.> within w, and not before.
func want(nodeID, id string, w tlWindow, checks ...tlCheck) tlItem {
	return tlExpect{node: nodeID, id: id, w: w, checks: checks}
}

// wantN expects the signal id exactly n times on node's an.sig.> by w.to.
func wantN(nodeID, id string, n int, w tlWindow) tlItem {
	return tlExpect{node: nodeID, id: id, w: w, count: n}
}

// wantNothing expects the signal id not to reach node's an.sig.> in w.
func wantNothing(nodeID, id string, w tlWindow) tlItem {
	return tlExpect{node: nodeID, id: id, w: w, nothing: true}
}

// wantRefused expects node to dead-letter the signal id with reason in w.
func wantRefused(nodeID, id, reason string, w tlWindow) tlItem {
	return tlExpect{node: nodeID, id: id, w: w, reason: reason}
}

// where checks the arrived signal.
func where(name string, f func(ev *signal.Event) error) tlCheck { return tlCheck{name, f} }

// tlArrival is one message a node's subscriber saw.
type tlArrival struct {
	at     time.Duration
	ev     *signal.Event
	reason string // dead letters
	detail string
}

// timeline is a running script over real nodes.
type timeline struct {
	nodes map[string]*node.Node
	conns map[string]*nats.Conn
	start time.Time

	mu  sync.Mutex
	got map[string]map[string][]tlArrival // node -> id -> arrivals, in order
	dlq map[string]map[string][]tlArrival // node -> id -> dead letters
}

func newTimeline(t *testing.T, nodes ...*node.Node) *timeline {
	t.Helper()
	tl := &timeline{nodes: map[string]*node.Node{}, conns: map[string]*nats.Conn{},
		got: map[string]map[string][]tlArrival{}, dlq: map[string]map[string][]tlArrival{}}
	for _, n := range nodes {
		id := n.ID()
		tl.nodes[id] = n
		tl.got[id] = map[string][]tlArrival{}
		tl.dlq[id] = map[string][]tlArrival{}
		nc, err := n.Connect()
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		tl.conns[id] = nc
		_, err = nc.Subscribe("an.sig.>", func(m *nats.Msg) { tl.record(id, m, false) })
		require.NoError(t, err)
		_, err = nc.Subscribe("an.dlq.>", func(m *nats.Msg) { tl.record(id, m, true) })
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
	}
	return tl
}

func (tl *timeline) record(id string, m *nats.Msg, dead bool) {
	now := time.Now()
	ev, err := signal.Decode(m.Header, m.Data)
	if err != nil {
		if !dead {
			return
		}
		// A dead letter of a link message carries the link's headers:
		// try the body alone.
		if ev, err = signal.DecodeStructured(m.Data); err != nil {
			return
		}
	}
	a := tlArrival{ev: ev}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.start.IsZero() {
		return // before the script: setup traffic
	}
	a.at = now.Sub(tl.start)
	if dead {
		a.reason = m.Header.Get("Anfed-Reason")
		if a.reason == "" {
			a.reason = m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		}
		a.detail = m.Header.Get("Anfed-Error")
		tl.dlq[id][ev.ID] = append(tl.dlq[id][ev.ID], a)
		return
	}
	tl.got[id][ev.ID] = append(tl.got[id][ev.ID], a)
}

// tlRun runs the script over nodes and fails t with every unmet
// expectation and the timeline of what arrived.
func tlRun(t *testing.T, nodes []*node.Node, script ...tlItem) {
	t.Helper()
	tl := newTimeline(t, nodes...)
	if fails := tl.run(t, script...); len(fails) > 0 {
		t.Errorf("timeline: %d unmet expectation(s):\n  %s\n%s", len(fails), strings.Join(fails, "\n  "), tl.dump())
	}
}

// run plays the steps at their offsets, waits until every expectation can
// be decided, and returns the unmet ones.
func (tl *timeline) run(t *testing.T, script ...tlItem) []string {
	t.Helper()
	var steps []tlStep
	var expects []tlExpect
	for _, it := range script {
		switch x := it.(type) {
		case tlStep:
			steps = append(steps, x)
		case tlExpect:
			expects = append(expects, x)
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].at < steps[j].at })
	tl.mu.Lock()
	tl.start = time.Now()
	tl.mu.Unlock()
	for _, s := range steps {
		time.Sleep(time.Until(tl.start.Add(s.at)))
		for _, a := range s.actions {
			t.Logf("timeline %6s: %s", time.Since(tl.start).Round(time.Millisecond), a.name)
			a.do(t, tl)
		}
	}
	// Wait until each expectation is decided: a want met (or its window
	// over), a wantNothing's window over.
	for {
		pending := false
		for _, e := range expects {
			if time.Since(tl.start) <= e.w.to && (e.nothing || e.count > 0 || tl.check(e) != nil) {
				pending = true
			}
		}
		if !pending {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var fails []string
	for _, e := range expects {
		if err := tl.check(e); err != nil {
			fails = append(fails, err.Error())
		}
	}
	return fails
}

// check decides one expectation against what arrived so far.
func (tl *timeline) check(e tlExpect) error {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	src := tl.got[e.node]
	what := "on an.sig"
	if e.reason != "" {
		src, what = tl.dlq[e.node], "dead-lettered as "+e.reason
	}
	if src == nil {
		return fmt.Errorf("%s: no such node in the timeline", e.node)
	}
	var in, before []tlArrival
	for _, a := range src[e.id] {
		if e.reason != "" && a.reason != e.reason {
			continue
		}
		switch {
		case a.at < e.w.from:
			before = append(before, a)
		case a.at <= e.w.to:
			in = append(in, a)
		}
	}
	switch {
	case e.nothing:
		if len(in) > 0 {
			return fmt.Errorf("%s: %s wanted nothing %s in %s, got it at %s", e.node, e.id, what, e.w, in[0].at.Round(time.Millisecond))
		}
		return nil
	case len(before) > 0:
		return fmt.Errorf("%s: %s wanted %s in %s, got it early at %s", e.node, e.id, what, e.w, before[0].at.Round(time.Millisecond))
	case len(in) == 0:
		if all := src[e.id]; len(all) > 0 {
			return fmt.Errorf("%s: %s wanted %s in %s, got it late at %s", e.node, e.id, what, e.w, all[0].at.Round(time.Millisecond))
		}
		return fmt.Errorf("%s: %s wanted %s in %s, never got it", e.node, e.id, what, e.w)
	case e.count > 0 && len(in) != e.count:
		return fmt.Errorf("%s: %s wanted %d times %s in %s, got it %d times", e.node, e.id, e.count, what, e.w, len(in))
	}
	for _, c := range e.checks {
		if err := c.f(in[0].ev); err != nil {
			return fmt.Errorf("%s: %s arrived at %s but %s: %v", e.node, e.id, in[0].at.Round(time.Millisecond), c.name, err)
		}
	}
	return nil
}

// dump is the timeline of arrivals, for failure messages.
func (tl *timeline) dump() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	type line struct {
		at time.Duration
		s  string
	}
	var lines []line
	for n, m := range tl.got {
		for id, as := range m {
			for _, a := range as {
				lines = append(lines, line{a.at, fmt.Sprintf("%s got %s (%s, path %v)", n, id, a.ev.State, a.ev.Path)})
			}
		}
	}
	for n, m := range tl.dlq {
		for id, as := range m {
			for _, a := range as {
				lines = append(lines, line{a.at, fmt.Sprintf("%s dead-lettered %s: %s: %s", n, id, a.reason, a.detail)})
			}
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].at < lines[j].at })
	const maxLines = 60
	var b strings.Builder
	b.WriteString("timeline of arrivals:\n")
	for i, l := range lines {
		if i == maxLines {
			fmt.Fprintf(&b, "  ... %d more\n", len(lines)-maxLines)
			break
		}
		fmt.Fprintf(&b, "  %8s  %s\n", l.at.Round(time.Millisecond), l.s)
	}
	return b.String()
}

// star starts op-a, accepting op-b and op-c, which dial it. Every link
// exports and imports all classes and services, without transit; edit
// changes a node's config (by id) before it starts.
func star(t *testing.T, edit map[string]func(*config.Config)) (na, nb, nc *node.Node) {
	t.Helper()
	return starWith(t, edit, nil)
}

// starWith is star with node options by id (a logger, say).
func starWith(t *testing.T, edit map[string]func(*config.Config), opts map[string][]node.Option) (na, nb, nc *node.Node) {
	t.Helper()
	ns := hubWith(t, "op-a", []string{"op-b", "op-c"}, edit, opts)
	return ns[0], ns[1], ns[2]
}

// hub starts center, accepting each of leaves, which dial it, and returns
// the nodes in that order once every link is up. Every link exports and
// imports all classes and services, without transit; edit changes a
// node's config (by id) before it starts.
func hub(t *testing.T, center string, leaves []string, edit map[string]func(*config.Config)) []*node.Node {
	t.Helper()
	return hubWith(t, center, leaves, edit, nil)
}

// hubWith is hub with node options by id.
func hubWith(t *testing.T, center string, leaves []string, edit map[string]func(*config.Config), opts map[string][]node.Option) []*node.Node {
	t.Helper()
	all := func() (config.ExportPolicy, config.ImportPolicy) {
		return config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, config.ImportPolicy{Classes: []string{"*"}}
	}
	a := baseConfig(t, center)
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	for _, id := range leaves {
		x, i := all()
		a.Peers = append(a.Peers, config.Peer{ID: id, Accept: &config.Accept{User: id, Password: "secret-" + id + "-123"},
			Export: x, Import: i, SigningKey: pub(t, id)})
	}
	if f := edit[center]; f != nil {
		f(a)
	}
	nodes := []*node.Node{startNode(t, a, opts[center]...)}
	for _, id := range leaves {
		c := baseConfig(t, id)
		x, i := all()
		c.Peers = []config.Peer{{ID: center, Dial: &config.Dial{URL: nodes[0].LeafURL(), User: id, Password: "secret-" + id + "-123"},
			Export: x, Import: i, SigningKey: pub(t, center)}}
		if f := edit[id]; f != nil {
			f(c)
		}
		nodes = append(nodes, startNode(t, c, opts[id]...))
	}
	waitFor(t, 15*time.Second, func() error {
		for i, id := range leaves {
			if !nodes[0].LinkUp(id) {
				return fmt.Errorf("%s: link to %s not up", center, id)
			}
			if !nodes[i+1].LinkUp(center) {
				return fmt.Errorf("%s: link to %s not up", id, center)
			}
		}
		return nil
	})
	return nodes
}

// peerOf edits the policy towards peer in a config.
func peerOf(c *config.Config, peer string) *config.Peer {
	for i := range c.Peers {
		if c.Peers[i].ID == peer {
			return &c.Peers[i]
		}
	}
	panic("no peer " + peer + " in " + c.Operator.ID)
}

// TestTimelineBaseline: a signal of op-a reaches op-b and op-c; a class
// op-c does not import never reaches it; op-b's signal does not transit
// op-a to op-c.
func TestTimelineBaseline(t *testing.T) {
	na, nb, nc := star(t, map[string]func(*config.Config){
		"op-c": func(c *config.Config) { peerOf(c, "op-a").Import.Classes = []string{"congestion"} },
	})
	tlRun(t, []*node.Node{na, nb, nc},
		at(0, push("op-a", congestion("op-a", "tl-1"))),
		at(200*time.Millisecond, push("op-a", faultEvent("op-a", "tl-2"))),
		at(400*time.Millisecond, push("op-b", congestion("op-b", "tl-3"))),
		want("op-a", "tl-1", until(time.Second)),
		wantN("op-b", "tl-1", 1, until(3*time.Second)),
		want("op-c", "tl-1", until(2*time.Second), where("path is [op-a]", func(ev *signal.Event) error {
			if len(ev.Path) != 1 || ev.Path[0] != "op-a" {
				return fmt.Errorf("path %v", ev.Path)
			}
			return nil
		})),
		want("op-b", "tl-2", between(200*time.Millisecond, 2*time.Second)),
		wantNothing("op-c", "tl-2", until(3*time.Second)),
		wantRefused("op-c", "tl-2", "not-imported", between(200*time.Millisecond, 2*time.Second)),
		want("op-a", "tl-3", between(400*time.Millisecond, 2*time.Second)),
		wantNothing("op-c", "tl-3", until(3*time.Second)),
	)
}

// TestTimelineCanFail: the harness reports unmet expectations — late,
// early, never, unwanted and miscounted arrivals — rather than passing
// whatever happens.
func TestTimelineCanFail(t *testing.T) {
	na, nb := pair(t, []string{"congestion"}, []string{"congestion"})
	tl := newTimeline(t, na, nb)
	fails := tl.run(t,
		at(0, push("op-a", congestion("op-a", "tf-1"))),
		at(300*time.Millisecond, push("op-a", faultEvent("op-a", "tf-2"))),
		want("op-b", "tf-1", between(0, 2*time.Second)),                                                                      // met
		want("op-b", "tf-1", between(time.Second, 2*time.Second)),                                                            // early
		wantNothing("op-b", "tf-1", until(2*time.Second)),                                                                    // unwanted
		want("op-b", "tf-2", until(time.Second)),                                                                             // never (not exported)
		wantN("op-a", "tf-1", 2, until(time.Second)),                                                                         // miscounted
		want("op-b", "tf-1", until(time.Second), where("impossible", func(*signal.Event) error { return fmt.Errorf("no") })), // check fails
	)
	t.Logf("expected failures:\n  %s\n%s", strings.Join(fails, "\n  "), tl.dump())
	require.Len(t, fails, 5, "%v", fails)
	for i, want := range []string{"got it early", "wanted nothing", "never got it", "wanted 2 times", "impossible"} {
		require.Contains(t, fails[i], want)
	}
}
