package node_test

// Timelines of flap dampening (import.dampening, RFC 2439 style), with
// half-lives of a second or two so that suppression and release happen
// within a test.

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// flaps returns n signals of one condition (resource res) alternating
// raised and cleared, ids prefix-1 … prefix-n.
func flaps(prefix, res string, n int) []*signal.Event {
	var out []*signal.Event
	for i := range n {
		st := signal.Raised
		if i%2 == 1 {
			st = signal.Cleared
		}
		out = append(out, condEv("op-a", fmt.Sprintf("%s-%d", prefix, i+1), res, st))
	}
	return out
}

// TestDampeningTimeline: op-b dampens op-a's conditions (half-life 1 s,
// penalty 1000, suppress 2000, reuse 750); op-c does not. A condition
// that flaps six times is suppressed at its third change: the first two
// reach op-b's closed loops, the next three never do (each is superseded
// while held and dead-lettered as dampened), and the last — a clear — is
// delivered once the penalty decayed below reuse, signed by op-a. A
// stable condition of op-a keeps flowing meanwhile, and op-c gets every
// signal as it comes. While suppressed, the condition shows in op-b's
// condition view (node, an.api.conditions), its peer state and its log.
func TestDampeningTimeline(t *testing.T) {
	logB := &atkLog{}
	na, nb, nc := starWith(t, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			peerOf(c, "op-a").Import.Dampening = &config.Dampening{HalfLife: config.Duration(time.Second), MaxSuppress: config.Duration(20 * time.Second)}
		},
	}, map[string][]node.Option{"op-b": {node.WithLogger(zerolog.New(logB).Level(zerolog.InfoLevel))}})
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	const s = time.Second
	v, err := origin.NewVerifier(map[string]string{"op-a": pub(t, "op-a")})
	require.NoError(t, err)
	fl := flaps("fl", "flappy", 6) // raised, cleared, raised, cleared, raised, cleared
	stable := func(id string, st signal.State, sev int) *signal.Event {
		ev := condEv("op-a", id, "stable", st)
		ev.SeverityNumber = sev
		return ev
	}
	items := []tlItem{
		at(ms(250), push("op-a", stable("st-1", signal.Raised, 13))),
		at(ms(450), push("op-a", stable("st-2", signal.Updated, 13))),
		at(2*s, push("op-a", stable("st-3", signal.Updated, 17))),
		want("op-b", "st-1", between(ms(250), 2*s)),
		want("op-b", "st-2", between(ms(450), 2*s)),
		want("op-b", "st-3", between(2*s, 4*s)),
		want("op-b", "fl-1", until(2*s)),
		want("op-b", "fl-2", between(ms(100), 2*s)),
		wantNothing("op-b", "fl-3", until(8*s)),
		wantNothing("op-b", "fl-4", until(8*s)),
		wantNothing("op-b", "fl-5", until(8*s)),
		wantRefused("op-b", "fl-3", string(reject.Dampened), between(ms(300), 3*s)),
		wantRefused("op-b", "fl-4", string(reject.Dampened), between(ms(400), 3*s)),
		wantRefused("op-b", "fl-5", string(reject.Dampened), between(ms(500), 3*s)),
		// The penalty after six changes 100 ms apart is about 5,100: it
		// decays to 750 in about 2.8 half-lives after the last one.
		want("op-b", "fl-6", between(2500*ms(1), 7*s),
			where("op-a's signature verifies", func(ev *signal.Event) error { return v.Verify(ev) }),
			where("a clear", func(ev *signal.Event) error {
				if ev.State != signal.Cleared {
					return fmt.Errorf("state %s", ev.State)
				}
				return nil
			})),
		wantN("op-b", "fl-6", 1, until(8*s)),
	}
	for i, ev := range fl {
		items = append(items, at(ms(100*i), push("op-a", ev)), want("op-c", ev.ID, between(ms(100*i), 3*s)))
	}
	// While suppressed: the condition view, the API and the peer state
	// say so.
	items = append(items, at(1500*ms(1), do("op-b's view of the suppressed condition", func(t *testing.T, tl *timeline) {
		cs := nb.Conditions(conditions.Filter{Peer: "op-a"})
		var flappy, st *conditions.Condition
		for i := range cs {
			switch cs[i].Subject {
			case "vpn-acme/flappy":
				flappy = &cs[i]
			case "vpn-acme/stable":
				st = &cs[i]
			}
		}
		require.NotNil(t, flappy, "%+v", cs)
		assert.True(t, flappy.Suppressed)
		assert.Equal(t, conditions.StatusSuppressed, flappy.Status, "its last delivered state is a clear")
		assert.Equal(t, signal.Cleared, flappy.Held, "fl-6, a clear, is held at 1.5 s")
		assert.Greater(t, flappy.Penalty, 750.0)
		assert.True(t, flappy.ReuseAt.After(time.Now()), "released later: %s", flappy.ReuseAt)
		require.NotNil(t, st)
		assert.False(t, st.Suppressed)
		assert.Equal(t, conditions.StatusActive, st.Status)

		m, err := tl.conns["op-b"].Request(subject.APIConditions, []byte(`{"Peer":"op-a","Service":"vpn-acme"}`), 5*time.Second)
		require.NoError(t, err)
		var api []conditions.Condition
		require.NoError(t, json.Unmarshal(m.Data, &api))
		found := false
		for _, c := range api {
			if c.Subject == "vpn-acme/flappy" {
				found = c.Suppressed && c.Penalty > 0 && !c.ReuseAt.IsZero()
			}
		}
		assert.True(t, found, "an.api.conditions shows the suppression: %s", m.Data)
		ps := peerState(t, nb, "op-a")
		assert.Equal(t, 1, ps.Suppressed)
		assert.Equal(t, 0, peerState(t, nc, "op-a").Suppressed)
	})))
	tl := newTimeline(t, na, nb, nc)
	fails := tl.run(t, items...)
	require.Empty(t, fails, "%s", tl.dump())

	// Released: the table holds the stable condition only, nothing is
	// held, and four signals were held in all (fl-3 … fl-6).
	waitFor(t, 5*time.Second, func() error {
		cs := nb.Conditions(conditions.Filter{Peer: "op-a"})
		if len(cs) != 1 || cs[0].Subject != "vpn-acme/stable" || cs[0].Suppressed || cs[0].Severity != 17 {
			return fmt.Errorf("op-b's conditions from op-a: %+v", cs)
		}
		if n := streamMsgs(t, nb, store.HeldStream, ""); n != 0 {
			return fmt.Errorf("%d signals still held", n)
		}
		return nil
	})
	ps := peerState(t, nb, "op-a")
	assert.Equal(t, 0, ps.Suppressed)
	assert.Equal(t, uint64(4), ps.Dampened)

	// The log says when it was suppressed and released, and why.
	var suppressed, released int
	for _, l := range logB.since(0) {
		switch atkStr(l, "message") {
		case "dampening: condition suppressed: its signals are held until it is released":
			suppressed++
			assert.Equal(t, "vpn-acme/flappy", atkStr(l, "subject"))
			assert.Equal(t, "op-a", atkStr(l, "peer"))
		case "dampening: condition released: its latest signal is delivered":
			released++
			assert.Equal(t, "decayed", atkStr(l, "why"))
			assert.Equal(t, "fl-6", atkStr(l, "id"))
		}
	}
	assert.Equal(t, 1, suppressed)
	assert.Equal(t, 1, released)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t.Logf("fl-6 (the final clear) reached op-b at %s; op-c got it at %s",
		tl.got["op-b"]["fl-6"][0].at.Round(time.Millisecond), tl.got["op-c"]["fl-6"][0].at.Round(time.Millisecond))
}

// TestDampeningMaxSuppress: a condition that never stops flapping is
// still released at max_suppress (4 s here, half-life 2 s): op-b gets its
// latest state once per max_suppress while it flaps, and the final state
// when it stops — never the flaps in between.
func TestDampeningMaxSuppress(t *testing.T) {
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.Dampening = &config.Dampening{HalfLife: config.Duration(2 * time.Second), MaxSuppress: config.Duration(4 * time.Second)}
		}
	})
	const n = 36 // every 200 ms for 7 s
	fl := flaps("mx", "forever", n)
	var items []tlItem
	for i, ev := range fl {
		items = append(items, at(time.Duration(i)*200*time.Millisecond, push("op-a", ev)))
	}
	last := fl[n-1].ID
	items = append(items,
		want("op-b", "mx-1", until(2*time.Second)),
		want("op-b", "mx-2", until(2*time.Second)),
		// Suppressed from the third change at about 0.4 s; the final
		// state is held from 7 s and released at the second max_suppress,
		// about 8.6 s.
		want("op-b", last, between(7*time.Second, 13*time.Second)),
	)
	tl := newTimeline(t, na, nb)
	fails := tl.run(t, items...)
	require.Empty(t, fails, "%s", tl.dump())
	time.Sleep(time.Second) // anything late would show now
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var during []string
	delivered, dead := 0, 0
	for _, ev := range fl {
		got, dl := tl.got["op-b"][ev.ID], tl.dlq["op-b"][ev.ID]
		delivered += len(got)
		dead += len(dl)
		require.LessOrEqual(t, len(got)+len(dl), 1, "%s delivered %d times and dead-lettered %d times", ev.ID, len(got), len(dl))
		for _, a := range got {
			if a.at > 1500*time.Millisecond && ev.ID != last {
				during = append(during, fmt.Sprintf("%s at %s", ev.ID, a.at.Round(time.Millisecond)))
			}
		}
	}
	t.Logf("released while flapping: %v; delivered %d, dead-lettered as dampened %d of %d", during, delivered, dead, n)
	// One release at the first max_suppress (about 4.4 s) while the
	// flapping goes on.
	require.Len(t, during, 1, "one release while flapping, at max_suppress")
	require.Equal(t, n, delivered+dead, "every flap delivered or dead-lettered as superseded")
	require.Equal(t, 4, delivered, "mx-1, mx-2, the state at the first max_suppress, the final one")
}

// TestDampeningRestart: op-b restarts while a condition of op-a is
// suppressed. The held latest state survives in the held stream and is
// delivered after the restart, when the penalty has decayed, with op-a's
// signature; the intermediate state never is.
func TestDampeningRestart(t *testing.T) {
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		lazyFlush(c)
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.Dampening = &config.Dampening{HalfLife: config.Duration(2 * time.Second), MaxSuppress: config.Duration(time.Minute)}
		}
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	fl := flaps("rs", "restart", 5) // ends raised
	start := time.Now()
	for _, ev := range fl {
		require.True(t, publish(t, pa, ev).OK())
	}
	waitFor(t, 10*time.Second, func() error {
		if n := streamMsgs(t, nb, store.HeldStream, ""); n != 1 {
			return fmt.Errorf("%d signals held, want 1", n)
		}
		if ps := peerState(t, nb, "op-a"); ps.Dampened != 3 {
			return fmt.Errorf("%d held so far, want 3", ps.Dampened)
		}
		return nil
	})
	nb.Stop()
	nb2 := startNode(t, nb.Config())
	restarted := time.Since(start)
	cb, err := nb2.Connect()
	require.NoError(t, err)
	defer cb.Close()
	var (
		mu  sync.Mutex
		got = map[string]*signal.Event{}
		at  = map[string]time.Duration{}
	)
	_, err = cb.Subscribe("an.sig.op-a.>", func(m *nats.Msg) {
		ev, err := signal.DecodeStructured(m.Data)
		if err == nil {
			mu.Lock()
			got[ev.ID], at[ev.ID] = ev, time.Since(start)
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, cb.Flush())
	require.Equal(t, 1, peerState(t, nb2, "op-a").Suppressed, "the suppression is taken up after the restart")
	waitFor(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if got["rs-5"] == nil {
			return fmt.Errorf("rs-5 not delivered after the restart")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	v, err := origin.NewVerifier(map[string]string{"op-a": pub(t, "op-a")})
	require.NoError(t, err)
	require.NoError(t, v.Verify(got["rs-5"]), "op-a's signature verifies")
	for _, id := range []string{"rs-3", "rs-4"} {
		assert.Nil(t, got[id], "%s never delivered", id)
	}
	t.Logf("restarted at %s; rs-5 delivered at %s", restarted.Round(time.Millisecond), at["rs-5"].Round(time.Millisecond))
	// About 3,700 after five quick changes: 2.3 half-lives of 2 s.
	assert.Greater(t, at["rs-5"], 3*time.Second, "released when the penalty decayed, not at the restart")
	waitFor(t, 5*time.Second, func() error {
		if !nb2.Table().Active(conditions.Key{Peer: "op-a", Origin: "op-a", Class: "congestion", Subject: "vpn-acme/restart"}) {
			return fmt.Errorf("the final raise is not in op-b's table")
		}
		if n := streamMsgs(t, nb2, store.HeldStream, ""); n != 0 {
			return fmt.Errorf("%d held", n)
		}
		return nil
	})
}

// TestDampeningFloodIsBounded attacks dampening: op-a flaps 600
// conditions five times each, as fast as it can. op-b tracks at most
// max_entries (50) of them: at most 50 are suppressed and held at any
// time, the others pass undampened; op-b stays up, and every condition
// ends in op-b's table in its final state (raised): nothing is lost.
func TestDampeningFloodIsBounded(t *testing.T) {
	const keys, changes, bound = 600, 5, 50
	logB := &atkLog{}
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		lazyFlush(c)
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.Dampening = &config.Dampening{HalfLife: config.Duration(time.Second), MaxSuppress: config.Duration(3 * time.Second), MaxEntries: bound}
			c.Peers[0].Import.MaxRate = 100000
		}
	}, node.WithLogger(zerolog.New(logB).Level(zerolog.WarnLevel)))
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	stop := make(chan struct{})
	var maxSusp, maxHeld int
	var wg sync.WaitGroup
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			for _, p := range nb.Peers(context.Background()) {
				maxSusp = max(maxSusp, p.Suppressed)
			}
			if n, err := streamCount(nb, store.HeldStream, ""); err == nil {
				maxHeld = max(maxHeld, int(n))
			}
		}
	}()
	for k := range keys {
		for c := range changes {
			st := signal.Raised
			if c%2 == 1 {
				st = signal.Cleared
			}
			ev := condEv("op-a", fmt.Sprintf("fd-%d-%d", k, c), fmt.Sprintf("k%04d", k), st)
			require.NoError(t, pa.Publish("an.pub", ev.Encode())) // fire and forget, as a flood would
		}
	}
	require.NoError(t, pa.Flush())
	waitFor(t, 90*time.Second, func() error {
		if n := nb.Table().Len("op-a"); n != keys {
			return fmt.Errorf("op-b holds %d of op-a's %d conditions", n, keys)
		}
		if ps := peerState(t, nb, "op-a"); ps.Suppressed != 0 {
			return fmt.Errorf("%d still suppressed", ps.Suppressed)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	ps := peerState(t, nb, "op-a")
	t.Logf("flood of %d signals: at most %d suppressed and %d held at once; %d held in all; heap %d → %d KiB",
		keys*changes, maxSusp, maxHeld, ps.Dampened, before.HeapInuse>>10, after.HeapInuse>>10)
	require.LessOrEqual(t, maxSusp, bound)
	require.LessOrEqual(t, maxHeld, bound)
	require.Positive(t, ps.Dampened, "some conditions were dampened")
	require.Less(t, ps.Dampened, uint64(keys*(changes-2)), "not all: the bound let the others pass")
	require.True(t, nb.Server().Running())
	require.Equal(t, uint64(0), streamMsgs(t, nb, store.HeldStream, ""))
	for _, c := range nb.Conditions(conditions.Filter{Peer: "op-a"}) {
		require.Equal(t, signal.Raised, c.State, "%s ends raised", c.Subject)
	}
	untracked := logB.wait(time.Second, 0, func(m map[string]any) bool { return atkStr(m, "reason") == string(reject.Dampened) })
	require.NotEmpty(t, untracked, "the bound is logged")
}

// TestDampeningReleaseCountsAgainstMaxConditions: a held raise counts
// against import.max_conditions when it is released, not before: op-b
// takes one condition from op-a; while the flapping r1 is suppressed
// (its last delivered state a clear), r2 takes the one place, so r1's
// held raise is refused as too-many-conditions at its release and
// dead-lettered, never delivered.
func TestDampeningReleaseCountsAgainstMaxConditions(t *testing.T) {
	na, nb := pairWith(t, []string{"*"}, []string{"*"}, func(c *config.Config) {
		if c.Operator.ID == "op-b" {
			c.Peers[0].Import.MaxConditions = &config.MaxConditions{Limit: 1}
			c.Peers[0].Import.Dampening = &config.Dampening{HalfLife: config.Duration(time.Second), MaxSuppress: config.Duration(20 * time.Second)}
		}
	})
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	fl := flaps("mr", "r1", 3) // raised, cleared, raised (held)
	items := []tlItem{
		at(ms(400), push("op-a", condEv("op-a", "mr-other", "r2", signal.Raised))),
		want("op-b", "mr-1", until(2*time.Second)),
		want("op-b", "mr-2", until(2*time.Second)),
		want("op-b", "mr-other", between(ms(400), 2*time.Second)),
		wantNothing("op-b", "mr-3", until(6*time.Second)),
		// Penalty about 2,800 at 0.2 s: released about 1.9 half-lives later.
		wantRefused("op-b", "mr-3", string(reject.TooManyConditions), between(1500*time.Millisecond, 6*time.Second)),
	}
	for i, ev := range fl {
		items = append(items, at(ms(100*i), push("op-a", ev)))
	}
	tlRun(t, []*node.Node{na, nb}, items...)
	require.Equal(t, 1, nb.Table().Len("op-a"))
	require.Equal(t, 0, peerState(t, nb, "op-a").Suppressed)
}
