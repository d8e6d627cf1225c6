package dampening_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound/dampening"
	"github.com/anfed/anfed/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func key(res string) dampening.Key {
	return dampening.Key{Peer: "op-a", Origin: "op-a", Class: "fault", Subject: "vpn/" + res}
}

func ev(id string, st signal.State, sev int) *signal.Event {
	return &signal.Event{Source: "anfed://op-a/x", ID: id, State: st, SeverityNumber: sev}
}

func minutes(n float64) time.Duration { return time.Duration(n * float64(time.Minute)) }

// RFC 2439 defaults: 1000 per change, half-life 15m, suppress 2000,
// reuse 750, max suppress 60m.
func TestDefaultsSuppressAtTheThirdQuickChange(t *testing.T) {
	d := dampening.New(config.Dampening{})
	k := key("r1")
	dec := d.Signal(k, ev("1", signal.Raised, 13), t0)
	assert.False(t, dec.Hold)
	assert.InDelta(t, 1000, dec.Penalty, 1e-9)
	dec = d.Signal(k, ev("2", signal.Cleared, 13), t0.Add(time.Minute))
	assert.False(t, dec.Hold, "1000·2^(-1/15)+1000 ≈ 1955 < 2000")
	assert.InDelta(t, 1000*math.Exp2(-1.0/15)+1000, dec.Penalty, 1e-6)
	dec = d.Signal(k, ev("3", signal.Raised, 13), t0.Add(2*time.Minute))
	require.True(t, dec.Hold)
	assert.True(t, dec.Suppressed)
	assert.False(t, dec.Superseding)
	// Release when the penalty decays to 750: log2(p/750) half-lives.
	p := dec.Penalty
	want := t0.Add(2*time.Minute + time.Duration(math.Log2(p/750)*float64(15*time.Minute)))
	assert.WithinDuration(t, want, dec.ReuseAt, time.Millisecond)
	assert.Empty(t, d.Due(want.Add(-time.Second)))
	rel := d.Due(want.Add(time.Second))
	require.Len(t, rel, 1)
	assert.Equal(t, "decayed", rel[0].Why)
	assert.Equal(t, "anfed://op-a/x 3", rel[0].Held)
	assert.Equal(t, signal.Raised, rel[0].State)
	_, s, _ := d.Counts()
	assert.Equal(t, 0, s)
}

func TestWhatCountsAsAChange(t *testing.T) {
	d := dampening.New(config.Dampening{})
	k := key("r1")
	at := t0
	next := func() time.Time { at = at.Add(time.Millisecond); return at }
	assert.InDelta(t, 1000, d.Signal(k, ev("1", signal.Raised, 13), next()).Penalty, 1)
	assert.InDelta(t, 1000, d.Signal(k, ev("2", signal.Updated, 13), next()).Penalty, 1, "same severity: no change")
	assert.InDelta(t, 2000, d.Signal(k, ev("3", signal.Updated, 17), next()).Penalty, 1, "severity changed")
	// An update of a condition the damper never saw is not a change.
	assert.InDelta(t, 0, d.Signal(key("r2"), ev("4", signal.Updated, 17), next()).Penalty, 1)
}

func TestHeldSignalsAndSuperseding(t *testing.T) {
	d := dampening.New(config.Dampening{})
	k := key("r1")
	for i, st := range []signal.State{signal.Raised, signal.Cleared} {
		require.False(t, d.Signal(k, ev(fmt.Sprint(i), st, 13), t0).Hold)
	}
	a := d.Signal(k, ev("a", signal.Raised, 13), t0)
	require.True(t, a.Hold && a.Suppressed && !a.Superseding)
	b := d.Signal(k, ev("b", signal.Updated, 13), t0.Add(time.Second))
	require.True(t, b.Hold && !b.Suppressed && b.Superseding, "an update without a change is held too")
	again := d.Signal(k, ev("b", signal.Updated, 13), t0.Add(2*time.Second))
	require.True(t, again.Hold)
	assert.InDelta(t, b.Penalty*math.Exp2(-1.0/(15*60)), again.Penalty, 1e-6, "the held signal again adds nothing")
	snap := d.Snapshot(t0.Add(2 * time.Second))
	require.Len(t, snap, 1)
	assert.Equal(t, k, snap[0].Key)
	assert.Equal(t, signal.Updated, snap[0].Held)
	assert.Equal(t, t0, snap[0].SuppressedAt)
}

// TestMaxSuppressUnderContinuedFlapping: the penalty is capped at the
// ceiling (reuse·2^(max_suppress/half_life)), and max_suppress releases
// even while the condition keeps flapping.
func TestMaxSuppressUnderContinuedFlapping(t *testing.T) {
	d := dampening.New(config.Dampening{})
	k := key("r1")
	var rel []dampening.Release
	var at time.Time
	for i := 0; i < 600 && len(rel) == 0; i++ {
		at = t0.Add(time.Duration(i) * 10 * time.Second)
		st := signal.Raised
		if i%2 == 1 {
			st = signal.Cleared
		}
		dec := d.Signal(k, ev(fmt.Sprint(i), st, 13), at)
		assert.LessOrEqual(t, dec.Penalty, 12000.0+1e-6, "capped at 750·2^4")
		rel = d.Due(at)
	}
	require.Len(t, rel, 1)
	assert.Equal(t, "max-suppress", rel[0].Why)
	assert.Equal(t, time.Hour, at.Sub(rel[0].SuppressedAt).Round(10*time.Second))
	// The next change suppresses again at once: the penalty is high.
	dec := d.Signal(k, ev("next", signal.Raised, 13), at.Add(10*time.Second))
	assert.True(t, dec.Hold && dec.Suppressed)
}

// TestFailedRelease: a release that could not be stored is suppressed
// again and retried, unless a later signal of the condition came.
func TestFailedRelease(t *testing.T) {
	d := dampening.New(config.Dampening{HalfLife: config.Duration(time.Minute), MaxSuppress: config.Duration(10 * time.Minute)})
	suppress := func(k dampening.Key) {
		for i, st := range []signal.State{signal.Raised, signal.Cleared, signal.Raised} {
			d.Signal(k, ev(k.Subject+fmt.Sprint(i), st, 13), t0)
		}
	}
	k1, k2 := key("r1"), key("r2")
	suppress(k1)
	suppress(k2)
	later := t0.Add(time.Hour)
	rel := d.Due(later)
	require.Len(t, rel, 2)
	byKey := map[dampening.Key]dampening.Release{rel[0].Key: rel[0], rel[1].Key: rel[1]}
	// k2 gets a signal after its release was decided: it passes.
	require.False(t, d.Signal(k2, ev("fresh", signal.Cleared, 13), later).Hold)
	assert.True(t, d.Released(byKey[k1], false, later, time.Second), "k1: retried")
	assert.False(t, d.Released(byKey[k2], false, later, time.Second), "k2: obsolete, dropped")
	assert.Empty(t, d.Due(later.Add(500*time.Millisecond)), "not before the retry")
	again := d.Due(later.Add(time.Second))
	require.Len(t, again, 1)
	assert.Equal(t, k1, again[0].Key)
	assert.Equal(t, byKey[k1].Held, again[0].Held)
}

// TestBounded: the damper tracks at most MaxEntries conditions. At the
// bound it forgets one not suppressed; when it cannot, the signal passes
// untracked. Conditions whose penalty decayed below reuse/2 are forgotten.
func TestBounded(t *testing.T) {
	const bound = 50
	d := dampening.New(config.Dampening{MaxEntries: bound})
	// 10,000 conditions raised once each: tracked, never more than the bound.
	for i := range 10000 {
		d.Signal(key(fmt.Sprint("once-", i)), ev(fmt.Sprint("o", i), signal.Raised, 13), t0)
		tracked, _, _ := d.Counts()
		require.LessOrEqual(t, tracked, bound)
	}
	// 200 conditions flapping: at most the bound suppressed; the rest pass.
	passed := 0
	for i := range 200 {
		k := key(fmt.Sprint("flap-", i))
		for c, st := range []signal.State{signal.Raised, signal.Cleared, signal.Raised, signal.Cleared} {
			if !d.Signal(k, ev(fmt.Sprint("f", i, "-", c), st, 13), t0).Hold {
				passed++
			}
		}
	}
	tracked, suppressed, untracked := d.Counts()
	assert.Equal(t, bound, tracked)
	assert.Equal(t, bound, suppressed)
	assert.Positive(t, untracked)
	assert.Equal(t, 200*4-bound*2, passed, "the held: the third and fourth change of each suppressed condition")
	// Released and decayed: forgotten.
	rel := d.Due(t0.Add(3 * time.Hour))
	assert.Len(t, rel, bound)
	for _, r := range rel {
		d.Released(r, true, t0.Add(3*time.Hour), 0)
	}
	d.Due(t0.Add(3 * time.Hour))
	tracked, suppressed, _ = d.Counts()
	assert.Equal(t, 0, tracked)
	assert.Equal(t, 0, suppressed)
}

func TestRestore(t *testing.T) {
	d := dampening.New(config.Dampening{HalfLife: config.Duration(time.Minute), MaxSuppress: config.Duration(10 * time.Minute)})
	k := key("r1")
	d.Restore(k, ev("held", signal.Cleared, 13), 3000, t0, t0.Add(-time.Minute))
	assert.Empty(t, d.Due(t0.Add(time.Minute)), "1500 > 750")
	rel := d.Due(t0.Add(2*time.Minute + time.Second))
	require.Len(t, rel, 1)
	assert.Equal(t, "anfed://op-a/x held", rel[0].Held)
	assert.Equal(t, signal.Cleared, rel[0].State)
}
