package node_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// TestPlannedRestartKeepsConditions: op-b holds op-a's conditions with a
// grace of 1 s and a withdraw time of 1 s. op-a announces a planned
// restart (back within 20 s), stops, stays away 4 s — twice the grace and
// withdraw times — and comes back: op-b never withdrew or staled one of
// op-a's conditions, kept them marked planned-down meanwhile, and counts
// a planned down, not a failure. Then op-a stops without a notice (as a
// kill looks to its peer): op-b's normal grace runs, the conditions go
// stale and are withdrawn.
func TestPlannedRestartKeepsConditions(t *testing.T) {
	l := newSessionLab(t, nil, func(c *config.Config) {
		c.Peers[0].Import.Grace = config.Duration(time.Second)
		c.Peers[0].Import.WithdrawAfter = config.Duration(time.Second)
	})
	for i := range 5 {
		l.publish("congestion", fmt.Sprintf("ic-%d", i), fmt.Sprintf("c%d", i), signal.Raised)
	}
	want := map[string]string{}
	for i := range 5 {
		want[fmt.Sprintf("congestion vpn-acme/ic-%d", i)] = "active"
	}
	l.waitHeld(want)
	nb, err := l.nb.Connect()
	require.NoError(t, err)
	defer nb.Close()
	// Every change of op-a's conditions at op-b, by kind.
	var mu sync.Mutex
	kinds := map[string]int{}
	_, err = nb.Subscribe(subject.CondPrefix+".*.op-a.>", func(m *nats.Msg) {
		mu.Lock()
		kinds[strings.Split(m.Subject, ".")[2]]++
		mu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, nb.Flush())
	count := func(kind string) int {
		require.NoError(t, nb.Flush())
		mu.Lock()
		defer mu.Unlock()
		return kinds[kind]
	}

	told := l.na.Drain(context.Background(), 20*time.Second)
	assert.Equal(t, 1, told)
	l.pa.Close()
	l.na.Stop()
	waitFor(t, 10*time.Second, func() error {
		if l.nb.LinkUp("op-a") {
			return fmt.Errorf("op-b's link still up")
		}
		return nil
	})
	down := time.Now()
	s := l.nb.Session("op-a")
	assert.True(t, s.PlannedDown(time.Now()), "op-b shows op-a planned-down: %+v", s)
	assert.Contains(t, s.PlannedText, "back within 20s")
	time.Sleep(4 * time.Second) // past grace (1 s) + withdraw (1 s), twice
	assert.Equal(t, want, l.held(), "op-b kept op-a's conditions active through the planned restart")
	for _, c := range l.nb.Conditions(conditions.Filter{Peer: "op-a"}) {
		assert.False(t, c.PlannedUntil.IsZero(), "%s is marked planned", c.Subject)
	}
	eor := l.eors()
	l.startA()
	l.refreshed(eor)
	t.Logf("planned restart: op-a away %s, back and refreshed", time.Since(down))
	assert.Equal(t, want, l.held(), "no condition lost")
	assert.Zero(t, count("withdraw"), "op-b withdrew none of op-a's conditions")
	assert.Zero(t, count("stale"), "op-b staled none of op-a's conditions")
	s = l.nb.Session("op-a")
	assert.Equal(t, 1, s.Downs[node.CausePlanned], "%+v", s.Downs)
	assert.Zero(t, s.Downs[node.CauseFailed], "%+v", s.Downs)
	for _, c := range l.nb.Conditions(conditions.Filter{Peer: "op-a"}) {
		assert.True(t, c.PlannedUntil.IsZero(), "back: %s no longer marked", c.Subject)
	}

	// A failure (no notice): the normal grace.
	l.pa.Close()
	l.na.Stop()
	failed := time.Now()
	waitFor(t, 10*time.Second, func() error {
		if n := len(l.nb.Conditions(conditions.Filter{Peer: "op-a", IncludeStale: true})); n != 0 {
			return fmt.Errorf("op-b still holds %d of op-a's conditions", n)
		}
		return nil
	})
	t.Logf("failure: op-b withdrew op-a's conditions %s after the stop (grace 1 s + withdraw 1 s)", time.Since(failed))
	// The table changes first; its announcements follow on their own
	// goroutine (under load, after the test looked).
	waitFor(t, 10*time.Second, func() error {
		if n := count("withdraw"); n != 5 {
			return fmt.Errorf("%d withdrawals announced, want 5", n)
		}
		return nil
	})
	assert.Equal(t, 1, l.nb.Session("op-a").Downs[node.CauseFailed])
}

// TestDrainWithoutRestartReopens: op-a announces a planned restart
// (back within 3 s) and does not restart; its link is cut and restored
// meanwhile. The session stays down, op-b keeps op-a's conditions marked
// planned; once the time is up the session opens again by itself and the
// mark goes.
func TestDrainWithoutRestartReopens(t *testing.T) {
	l := newSessionLab(t, nil, func(c *config.Config) {
		c.Peers[0].Import.Grace = config.Duration(500 * time.Millisecond)
		c.Peers[0].Import.WithdrawAfter = config.Duration(500 * time.Millisecond)
	})
	l.publish("congestion", "ic-1", "c1", signal.Raised)
	want := map[string]string{"congestion vpn-acme/ic-1": "active"}
	l.waitHeld(want)
	start := time.Now()
	require.Equal(t, 1, l.na.Drain(context.Background(), 3*time.Second))
	l.proxy.Cut()
	waitFor(t, 10*time.Second, func() error {
		if l.nb.LinkUp("op-a") || l.na.LinkUp("op-b") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	l.proxy.Restore()
	waitFor(t, 10*time.Second, func() error {
		if !l.nb.LinkUp("op-a") || !l.na.LinkUp("op-b") {
			return fmt.Errorf("link not back")
		}
		return nil
	})
	s := l.nb.Session("op-a")
	require.Less(t, time.Since(start), 3*time.Second, "the premise: still within the announced time")
	assert.True(t, s.PlannedDown(time.Now()), "op-b: %+v", s)
	assert.Equal(t, want, l.held(), "kept through the cut")
	l.established()
	assert.GreaterOrEqual(t, time.Since(start), 3*time.Second, "the session stayed quiet until the announced time")
	assert.True(t, l.nb.Session("op-a").PlannedUntil.IsZero(), "back: no longer planned")
	assert.Equal(t, want, l.held())
}
