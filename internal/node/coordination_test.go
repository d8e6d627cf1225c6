package node_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/trace"
)

// coordStar is op-a, whose interconnects op-b and op-c both act on, and
// the two of them, each linked to op-a: every link carries the action
// class both ways. op-a's policy accepts reroutes from both for an hour.
type coordStar struct {
	nodes   map[string]*node.Node
	clients map[string]*coordination.Client
	conns   map[string]*nats.Conn
}

func startCoordStar(t *testing.T, edit func(c *config.Config)) *coordStar {
	t.Helper()
	act := []string{"action"}
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Coordination = &config.Coordination{
		HoldDown:   config.Duration(time.Minute),
		AutoAccept: []config.CoordinationRule{{From: []string{"op-b", "op-c"}, Kinds: []string{"reroute"}}},
	}
	for _, p := range []string{"op-b", "op-c"} {
		a.Peers = append(a.Peers, config.Peer{ID: p, Accept: &config.Accept{User: p, Password: "secret-" + p + "-123"},
			Export: config.ExportPolicy{Classes: act, Services: []string{"*"}}, Import: config.ImportPolicy{Classes: act}, SigningKey: pub(t, p)})
	}
	if edit != nil {
		edit(a)
	}
	s := &coordStar{nodes: map[string]*node.Node{}, clients: map[string]*coordination.Client{}, conns: map[string]*nats.Conn{}}
	s.nodes["op-a"] = startNode(t, a)
	for _, id := range []string{"op-b", "op-c"} {
		c := baseConfig(t, id)
		c.Coordination = &config.Coordination{}
		c.Peers = []config.Peer{{ID: "op-a", Dial: &config.Dial{URL: s.nodes["op-a"].LeafURL(), User: id, Password: "secret-" + id + "-123"},
			Export: config.ExportPolicy{Classes: act, Services: []string{"*"}}, Import: config.ImportPolicy{Classes: act}, SigningKey: pub(t, "op-a")}}
		if edit != nil {
			edit(c)
		}
		s.nodes[id] = startNode(t, c)
	}
	waitFor(t, 15*time.Second, func() error {
		for _, id := range []string{"op-b", "op-c"} {
			if !s.nodes["op-a"].LinkUp(id) || !s.nodes[id].LinkUp("op-a") {
				return fmt.Errorf("%s link not up", id)
			}
		}
		return nil
	})
	for id, n := range s.nodes {
		nc, err := n.Connect()
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		s.conns[id] = nc
		s.clients[id] = coordination.NewClient(nc, id, "closed-loop")
	}
	return s
}

func reroute(id, resource string, d time.Duration) coordination.Proposal {
	return coordination.Proposal{ActionID: id, Kind: "reroute", Resources: []coordination.Resource{{ID: resource, Type: "interconnect"}},
		Services: []string{"vpn-acme"}, Affected: []string{"op-a"},
		Causes:         []coordination.Cause{{Source: "anfed://op-a/assurance", ID: "cong-" + resource, Class: "congestion"}},
		ExpectedEffect: "utilisation of " + resource + " below 80%", Duration: d}
}

// leasesOn is what n's view holds on resource at now.
func leasesOn(t *testing.T, n *node.Node, resource string, now time.Time) []coordination.LeaseRecord {
	t.Helper()
	ls, err := n.Coordination().Leases(context.Background(), now)
	require.NoError(t, err)
	var out []coordination.LeaseRecord
	for _, l := range ls {
		if l.Resource == resource {
			out = append(out, l)
		}
	}
	return out
}

// Two operators propose conflicting actions on op-a's interconnect at the
// same moment, again and again: each time op-a, the single decider,
// grants exactly one lease, the other proposal is declined naming its
// holder, and all three nodes' views hold that one lease — the same
// holder, action and revision.
func TestCoordinationRaceOneLeaseEverywhere(t *testing.T) {
	s := startCoordStar(t, nil)
	runs := 100
	if testing.Short() {
		runs = 20
	}
	// ANFED_RACE_RUNS sets the runs: the issue asks for hundreds
	// (docs/coordination.md#measured has a run of 300).
	if v := os.Getenv("ANFED_RACE_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "ANFED_RACE_RUNS=%q: want a number of runs", v)
		require.Positive(t, n, "ANFED_RACE_RUNS")
		runs = n
	}
	wins := map[string]int{}
	start := time.Now()
	for i := range runs {
		res := fmt.Sprintf("ic-race-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var wg sync.WaitGroup
		got := map[string]*coordination.Action{}
		var mu sync.Mutex
		gate := make(chan struct{})
		for _, id := range []string{"op-b", "op-c"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				a, err := s.clients[id].Propose(ctx, reroute(fmt.Sprintf("%s-%d", id, i), res, time.Hour))
				assert.NoError(t, err, "run %d %s", i, id)
				mu.Lock()
				got[id] = a
				mu.Unlock()
			}()
		}
		close(gate)
		wg.Wait()
		cancel()
		require.Len(t, got, 2, "run %d", i)
		var winner, loser string
		for id, a := range got {
			require.NotNil(t, a, "run %d %s", i, id)
			if a.Accepted() {
				require.Empty(t, winner, "run %d: both accepted", i)
				winner = id
			} else {
				loser = id
			}
		}
		require.NotEmpty(t, winner, "run %d: neither accepted", i)
		require.NotEmpty(t, loser, "run %d: both accepted", i)
		wins[winner]++
		dec := got[loser].Decisions["op-a"]
		require.Equal(t, coordination.Declined, dec.Phase, "run %d", i)
		require.Equal(t, "lease-held", dec.Rule, "run %d", i)
		require.NotNil(t, dec.Conflict, "run %d", i)
		assert.Equal(t, winner, dec.Conflict.Holder, "run %d: the decline names the holder", i)
		lease := got[winner].Decisions["op-a"].Lease
		// Every node's view: exactly that one lease.
		waitFor(t, 10*time.Second, func() error {
			now := time.Now()
			for id, n := range s.nodes {
				ls := leasesOn(t, n, res, now)
				if len(ls) != 1 {
					return fmt.Errorf("run %d: %s sees %d leases on %s", i, id, len(ls), res)
				}
				if ls[0].Holder != winner || ls[0].Revision != lease.Revision || ls[0].Grantor != "op-a" {
					return fmt.Errorf("run %d: %s sees %+v, want %s at revision %d", i, id, ls[0], winner, lease.Revision)
				}
			}
			return nil
		})
	}
	t.Logf("%d races in %s: op-b won %d, op-c won %d; every run one lease on all three nodes", runs, time.Since(start).Round(time.Millisecond), wins["op-b"], wins["op-c"])
}

// The lifecycle on real nodes: proposed → accepted (lease) → active →
// renewed → completed → released, each step crossing the links, and
// every node's view following it.
func TestCoordinationLifecycle(t *testing.T) {
	s := startCoordStar(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := s.clients["op-b"]
	a, err := b.Propose(ctx, reroute("b-life-1", "ic-life", 10*time.Minute))
	require.NoError(t, err)
	require.True(t, a.Accepted(), "%+v", a.Decisions)
	dec := a.Decisions["op-a"]
	assert.Equal(t, "coordination.auto_accept[0]", dec.Rule)
	assert.Equal(t, "b-life-1", dec.ActionID)
	assert.Equal(t, []coordination.Resource{{ID: "ic-life", Type: "interconnect"}}, dec.Resources)
	first := a.Until()
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), first, 30*time.Second)
	require.NoError(t, b.Start(ctx, a))
	require.NoError(t, b.Renew(ctx, a, 20*time.Minute))
	assert.True(t, a.Until().After(first), "renewed: %s after %s", a.Until(), first)
	waitFor(t, 10*time.Second, func() error {
		for id, n := range s.nodes {
			if id == "op-c" {
				continue // op-c's view: below
			}
			ls := leasesOn(t, n, "ic-life", time.Now())
			if len(ls) != 1 || !ls[0].Until.Equal(a.Until()) {
				return fmt.Errorf("%s sees %+v, want one lease until %s", id, ls, a.Until())
			}
		}
		return nil
	})
	// op-c was told of op-a's decisions too: the same lease.
	waitFor(t, 10*time.Second, func() error {
		ls := leasesOn(t, s.nodes["op-c"], "ic-life", time.Now())
		if len(ls) != 1 || ls[0].Holder != "op-b" {
			return fmt.Errorf("op-c sees %+v", ls)
		}
		return nil
	})
	require.NoError(t, b.Release(ctx, a, coordination.Completed, "utilisation back at 62%"))
	assert.Equal(t, coordination.Released, a.Decisions["op-a"].Phase)
	waitFor(t, 10*time.Second, func() error {
		for id, n := range s.nodes {
			if ls := leasesOn(t, n, "ic-life", time.Now()); len(ls) != 0 {
				return fmt.Errorf("%s still sees %+v", id, ls)
			}
		}
		return nil
	})
	// the record on op-a: the proposer's last step and op-a's release
	v, err := s.nodes["op-a"].Actions(ctx)
	require.NoError(t, err)
	var rec *coordination.Record
	for i := range v.Actions {
		if v.Actions[i].ActionID == "b-life-1" {
			rec = &v.Actions[i]
		}
	}
	require.NotNil(t, rec)
	assert.Equal(t, coordination.Completed, rec.Phase)
	assert.Equal(t, coordination.Released, rec.Decisions["op-a"].Phase)
	// a new proposal on the released resource is granted
	a2, err := s.clients["op-c"].Propose(ctx, reroute("c-life-2", "ic-life", time.Minute))
	require.NoError(t, err)
	assert.True(t, a2.Accepted())
}

// Action dampening: op-c's reversal of op-b's reroute, within op-a's
// hold-down after op-b completed it, is declined (dampened); another
// action on the same resource is not.
func TestCoordinationReversalDampened(t *testing.T) {
	s := startCoordStar(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := s.clients["op-b"].Propose(ctx, reroute("b-damp-1", "ic-damp", 10*time.Minute))
	require.NoError(t, err)
	require.True(t, a.Accepted())
	require.NoError(t, s.clients["op-b"].Release(ctx, a, coordination.Completed, "done"))
	back := reroute("c-damp-back", "ic-damp", 10*time.Minute)
	back.Reverses = "b-damp-1"
	r, err := s.clients["op-c"].Propose(ctx, back)
	require.NoError(t, err)
	dec := r.Decisions["op-a"]
	require.Equal(t, coordination.Declined, dec.Phase, "%+v", dec)
	assert.Equal(t, "dampened", dec.Rule)
	assert.Contains(t, dec.Reason, "reverses action b-damp-1")
	other, err := s.clients["op-c"].Propose(ctx, reroute("c-damp-other", "ic-damp", time.Minute))
	require.NoError(t, err)
	assert.True(t, other.Accepted(), "%+v", other.Decisions)
}

// A node that dies holding a lease loses it at its expiry, not before:
// op-b takes a 6 s lease and stops; op-c's proposal before the end is
// declined naming op-b and the end; op-a expires the lease at its end,
// op-c's view drops it, and op-c's next proposal is granted.
func TestCoordinationDeadHolderLosesLeaseAtExpiry(t *testing.T) {
	s := startCoordStar(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := s.clients["op-b"].Propose(ctx, reroute("b-dead-1", "ic-dead", 6*time.Second))
	require.NoError(t, err)
	require.True(t, a.Accepted())
	until := a.Until()
	s.nodes["op-b"].Stop()

	r, err := s.clients["op-c"].Propose(ctx, reroute("c-dead-1", "ic-dead", time.Minute))
	require.NoError(t, err)
	decided := time.Now()
	dec := r.Decisions["op-a"]
	require.Equal(t, coordination.Declined, dec.Phase)
	require.NotNil(t, dec.Conflict)
	assert.Equal(t, "op-b", dec.Conflict.Holder)
	assert.True(t, dec.Conflict.Until.Equal(until), "names until when: %s, want %s", dec.Conflict.Until, until)
	require.True(t, decided.Before(until), "the test's decline came after the expiry: too slow to test anything")

	// op-a's expiry, seen on op-c: not before the lease's end.
	waitFor(t, 15*time.Second, func() error {
		if ls := leasesOn(t, s.nodes["op-c"], "ic-dead", time.Now()); len(ls) != 0 {
			return fmt.Errorf("op-c still sees %+v", ls)
		}
		return nil
	})
	var expired *coordination.Decision
	waitFor(t, 15*time.Second, func() error {
		v, err := s.nodes["op-c"].Actions(ctx)
		if err != nil {
			return err
		}
		for _, rec := range v.Actions {
			if d := rec.Decisions["op-a"]; rec.ActionID == "b-dead-1" && d.Phase == coordination.Expired {
				expired = &d
				return nil
			}
		}
		return fmt.Errorf("op-a has not told op-c that b-dead-1 expired")
	})
	require.Equal(t, coordination.Expired, expired.Phase, "op-a told op-c the lease expired")
	assert.False(t, expired.At.Before(until), "expired at %s, before the lease's end %s", expired.At, until)
	r, err = s.clients["op-c"].Propose(ctx, reroute("c-dead-2", "ic-dead", time.Minute))
	require.NoError(t, err)
	assert.True(t, r.Accepted(), "%+v", r.Decisions)
}

// What the policy leaves to people waits for them; deny and
// max_duration answer at once.
func TestCoordinationPolicyOutcomes(t *testing.T) {
	s := startCoordStar(t, func(c *config.Config) {
		if c.Operator.ID == "op-a" {
			c.Coordination.Deny = []config.CoordinationRule{{Kinds: []string{"restart"}}}
			c.Coordination.RequireHuman = []config.CoordinationRule{{Kinds: []string{"drain"}}}
			c.Coordination.AutoAccept = append(c.Coordination.AutoAccept, config.CoordinationRule{Kinds: []string{"rate-limit"}, MaxDuration: config.Duration(5 * time.Minute)})
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b := s.clients["op-b"]

	p := reroute("b-restart", "ic-pol", time.Minute)
	p.Kind = "restart"
	a, err := b.Propose(ctx, p)
	require.NoError(t, err)
	assert.Equal(t, coordination.Declined, a.Decisions["op-a"].Phase)
	assert.Equal(t, "coordination.deny[0]", a.Decisions["op-a"].Rule)

	p = reroute("b-limit", "ic-pol", time.Hour)
	p.Kind = "rate-limit"
	a, err = b.Propose(ctx, p)
	require.NoError(t, err)
	d := a.Decisions["op-a"]
	assert.Equal(t, coordination.Countered, d.Phase)
	require.NotNil(t, d.Counter)
	assert.Equal(t, "PT5M", d.Counter.Duration)

	// drain: pending until a person decides on op-a
	p = reroute("b-drain", "ic-pol", 10*time.Minute)
	p.Kind = "drain"
	done := make(chan *coordination.Action, 1)
	go func() {
		a, err := b.Propose(ctx, p)
		assert.NoError(t, err)
		done <- a
	}()
	waitFor(t, 10*time.Second, func() error {
		v, err := s.nodes["op-a"].Actions(ctx)
		if err != nil {
			return err
		}
		for _, r := range v.Actions {
			if r.ActionID == "b-drain" && r.Pending {
				assert.Equal(t, "coordination.require_human[0]", r.PendingRule)
				return nil
			}
		}
		return fmt.Errorf("b-drain not pending on op-a")
	})
	select {
	case <-done:
		t.Fatal("the proposal was answered before anyone decided")
	default:
	}
	rec, err := s.nodes["op-a"].DecideAction(ctx, node.DecideRequest{ID: "b-drain", Accept: true, By: "noc-alice"})
	require.NoError(t, err)
	assert.False(t, rec.Pending)
	a = <-done
	require.True(t, a.Accepted())
	assert.Equal(t, "human", a.Decisions["op-a"].Rule)
	assert.Equal(t, "noc-alice", a.Decisions["op-a"].DecidedBy)
	_, err = s.nodes["op-a"].DecideAction(ctx, node.DecideRequest{ID: "b-drain", Accept: true})
	assert.ErrorIs(t, err, coordination.ErrNotPending)

	// a closed loop on op-a decides what the policy leaves to people
	require.NoError(t, s.clients["op-a"].OnProposal(ctx, "loop-7", func(st coordination.Step) coordination.Answer {
		return coordination.Answer{Outcome: coordination.CounterOffer, Duration: 2 * time.Minute, Reason: "drains run 2 minutes at most"}
	}))
	p = reroute("b-drain-2", "ic-pol-2", 10*time.Minute)
	p.Kind = "drain"
	a, err = b.Propose(ctx, p)
	require.NoError(t, err)
	d = a.Decisions["op-a"]
	assert.Equal(t, coordination.Countered, d.Phase)
	assert.Equal(t, "loop-7", d.DecidedBy)
	require.NotNil(t, d.Counter)
	assert.Equal(t, "PT2M", d.Counter.Duration)
}

// A local producer cannot write the lease table: only the node decides.
func TestCoordinationTableNotWritableByLocalUsers(t *testing.T) {
	s := startCoordStar(t, func(c *config.Config) {
		if c.Operator.ID == "op-a" {
			nodetest.WithClient(c, "loop", "loop-password-1")
		}
	})
	nc, err := nats.Connect(s.nodes["op-a"].ClientURL(), nats.UserInfo("loop", "loop-password-1"))
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, coordination.Bucket)
	require.NoError(t, err, "reading the table is allowed")
	forged := `{"grantor":"op-a","resource":"ic-forged","holder":"op-c","actionId":"forged","until":"2099-01-01T00:00:00Z","granted":"2026-01-01T00:00:00Z","revision":1}`
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second) // a refused request goes unanswered
	defer cancelShort()
	_, err = kv.Put(short, "lease.aWMtZm9yZ2Vk", []byte(forged))
	require.Error(t, err, "a local user wrote a lease")
	err = js.DeleteStream(short, "KV_"+coordination.Bucket)
	require.Error(t, err)
	pctx, cancelP := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelP()
	a, err := s.clients["op-b"].Propose(pctx, reroute("b-forge", "ic-forged", time.Minute))
	require.NoError(t, err)
	assert.True(t, a.Accepted(), "no forged lease stands in the way: %+v", a.Decisions)
}

// An action that one affected operator accepts and another declines does
// not run, and the lease it got is given back at once, not held to its
// end: op-a proposes on what op-b and op-c are affected by; op-b's policy
// accepts, op-c's declines; op-b releases.
func TestCoordinationPartlyAcceptedIsGivenBack(t *testing.T) {
	s := startCoordStar(t, func(c *config.Config) {
		switch c.Operator.ID {
		case "op-b":
			c.Coordination.AutoAccept = []config.CoordinationRule{{From: []string{"op-a"}}}
		case "op-c":
			c.Coordination.Default = config.CoordinationDecline
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := reroute("a-both-1", "ic-both", time.Hour)
	p.Affected = []string{"op-b", "op-c"}
	a, err := s.clients["op-a"].Propose(ctx, p)
	require.NoError(t, err)
	require.False(t, a.Accepted())
	assert.Equal(t, coordination.Accepted, a.Decisions["op-b"].Phase)
	assert.Equal(t, coordination.Declined, a.Decisions["op-c"].Phase)
	assert.Equal(t, "coordination.default", a.Decisions["op-c"].Rule)
	waitFor(t, 10*time.Second, func() error {
		for _, id := range []string{"op-a", "op-b"} {
			if ls := leasesOn(t, s.nodes[id], "ic-both", time.Now()); len(ls) != 0 {
				return fmt.Errorf("%s still sees %+v", id, ls)
			}
		}
		return nil
	})
}

// The lease table is durable: op-a, the grantor, restarts, and op-b's
// lease still holds there — op-c's proposal is declined naming it.
func TestCoordinationLeaseSurvivesGrantorRestart(t *testing.T) {
	addr := natstest.FreeAddr(t)
	s := startCoordStar(t, func(c *config.Config) {
		if c.Operator.ID == "op-a" {
			c.NATS.LeafNodes.Listen = addr
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	a, err := s.clients["op-b"].Propose(ctx, reroute("b-durable-1", "ic-durable", time.Hour))
	require.NoError(t, err)
	require.True(t, a.Accepted())
	cfg := s.nodes["op-a"].Config()
	s.nodes["op-a"].Stop()
	na := startNode(t, cfg)
	// Generous: on a loaded machine the dialling peers' leaf reconnects
	// back off (1.6 s quiet, 31 s seen with the suite running beside it).
	waitFor(t, 60*time.Second, func() error {
		for _, id := range []string{"op-b", "op-c"} {
			if !na.LinkUp(id) || !s.nodes[id].LinkUp("op-a") {
				return fmt.Errorf("%s link not up again", id)
			}
		}
		return nil
	})
	ls := leasesOn(t, na, "ic-durable", time.Now())
	require.Len(t, ls, 1)
	assert.Equal(t, "op-b", ls[0].Holder)
	r, err := s.clients["op-c"].Propose(ctx, reroute("c-durable-1", "ic-durable", time.Minute))
	require.NoError(t, err)
	d := r.Decisions["op-a"]
	require.Equal(t, coordination.Declined, d.Phase, "%+v", d)
	require.NotNil(t, d.Conflict)
	assert.Equal(t, "op-b", d.Conflict.Holder)
}

// The propagation trace on real nodes: op-a's congestion crosses to op-b,
// op-b proposes a reroute for it, op-a accepts. op-b's trace of the
// congestion shows the chain across both operators — the congestion
// (op-a's, through op-a), op-b's proposal, op-a's decision — and op-a's
// trace of the action's id goes back to the congestion.
func TestTraceAcrossOperators(t *testing.T) {
	s := startCoordStar(t, func(c *config.Config) {
		c.Peers[0].Export.Classes = append(c.Peers[0].Export.Classes, "congestion")
		c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "congestion")
	})
	cong := congestion("op-a", "cong-trace-1")
	require.True(t, publish(t, s.conns["op-a"], cong).OK())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitFor(t, 10*time.Second, func() error {
		_, err := s.nodes["op-b"].Trace(ctx, "cong-trace-1")
		return err
	})
	p := reroute("b-trace-1", "ic-paris-1", time.Minute)
	p.Causes = []coordination.Cause{{Source: cong.Source, ID: cong.ID, Class: "congestion"}}
	a, err := s.clients["op-b"].Propose(ctx, p)
	require.NoError(t, err)
	require.True(t, a.Accepted())

	type hop struct {
		origin, class, via string
		depth              int
	}
	hops := func(n *node.Node, id string) []hop {
		tr, err := n.Trace(ctx, id)
		require.NoError(t, err)
		var out []hop
		for _, h := range tr.Hops {
			via := "local"
			if len(h.Path) > 0 {
				via = h.Path[len(h.Path)-1]
			}
			out = append(out, hop{h.Origin, h.Class, via, h.Depth})
		}
		return out
	}
	assert.Equal(t, []hop{{"op-a", "congestion", "op-a", 0}, {"op-b", "action", "local", 1}, {"op-a", "action", "op-a", 2}}, hops(s.nodes["op-b"], "cong-trace-1"))
	assert.Equal(t, []hop{{"op-a", "congestion", "local", -1}, {"op-b", "action", "op-b", 0}, {"op-a", "action", "local", 0}}, hops(s.nodes["op-a"], "b-trace-1"))
	_, err = s.nodes["op-c"].Trace(ctx, "cong-trace-1")
	assert.ErrorIs(t, err, trace.ErrNotFound, "op-c never stored it")
}
