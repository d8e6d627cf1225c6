package conditions

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// kinds renders changes as "kind subject" for timeline checks.
func kinds(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Kind)+" "+c.Condition.Peer+" "+c.Condition.Subject)
	}
	return out
}

// tick is one Tick of a timeline: at offset at, the changes wanted.
type tick struct {
	at   time.Duration
	want []string
}

func runTicks(t *testing.T, tbl *Table, ticks []tick) {
	t.Helper()
	for _, tk := range ticks {
		assert.Equal(t, tk.want, kinds(tbl.Tick(t0.Add(tk.at))), "tick at %v", tk.at)
	}
}

func TestTickExpiry(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
		ticks []tick
		len   int
	}{
		{
			name: "expires at its expiry time",
			steps: []step{
				{ev: withExpiry(sig("b", "s/1", "e1", signal.Raised), t0.Add(10*time.Second)), seq: 1, wantKind: Upsert},
				{ev: sig("b", "s/2", "e2", signal.Raised), seq: 2, wantKind: Upsert},
			},
			ticks: []tick{{at: 9 * time.Second}, {at: 10 * time.Second, want: []string{"expire b s/1"}}, {at: time.Hour}},
			len:   1,
		},
		{
			name: "an update moves the expiry",
			steps: []step{
				{ev: withExpiry(sig("b", "s/1", "e1", signal.Raised), t0.Add(10*time.Second)), seq: 1, wantKind: Upsert},
				{at: 5 * time.Second, ev: withExpiry(sig("b", "s/1", "e2", signal.Updated), t0.Add(20*time.Second)), seq: 2, wantKind: Upsert},
			},
			ticks: []tick{{at: 10 * time.Second}, {at: 20 * time.Second, want: []string{"expire b s/1"}}},
		},
		{
			name: "an update without expiry removes it",
			steps: []step{
				{ev: withExpiry(sig("b", "s/1", "e1", signal.Raised), t0.Add(10*time.Second)), seq: 1, wantKind: Upsert},
				{ev: sig("b", "s/1", "e2", signal.Updated), seq: 2, wantKind: Upsert},
			},
			ticks: []tick{{at: time.Hour}},
			len:   1,
		},
		{
			name: "expiries come out in time order, then by key",
			steps: []step{
				{ev: withExpiry(sig("b", "s/3", "e1", signal.Raised), t0.Add(2*time.Second)), seq: 1, wantKind: Upsert},
				{ev: withExpiry(sig("b", "s/2", "e2", signal.Raised), t0.Add(time.Second)), seq: 2, wantKind: Upsert},
				{peer: "a", ev: withExpiry(sig("a", "s/9", "e3", signal.Raised), t0.Add(time.Second)), seq: 3, wantKind: Upsert},
			},
			ticks: []tick{{at: time.Minute, want: []string{"expire a s/9", "expire b s/2", "expire b s/3"}}},
		},
		{
			name: "a cleared condition does not expire",
			steps: []step{
				{ev: withExpiry(sig("b", "s/1", "e1", signal.Raised), t0.Add(10*time.Second)), seq: 1, wantKind: Upsert},
				{ev: sig("b", "s/1", "e2", signal.Cleared), seq: 2, wantKind: Clear},
			},
			ticks: []tick{{at: 10 * time.Second}, {at: time.Hour}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			tbl := New(WithClock(clk.Now))
			runSteps(t, tbl, clk, tt.steps)
			runTicks(t, tbl, tt.ticks)
			assert.Equal(t, tt.len, tbl.Len(""))
		})
	}
}

func TestTombstone(t *testing.T) {
	clk := newClock()
	tbl := New(WithClock(clk.Now), WithTombstoneTTL(time.Minute))
	runSteps(t, tbl, clk, []step{
		{ev: withExpiry(sig("b", "s/1", "e1", signal.Raised), t0.Add(time.Second)), seq: 1, wantKind: Upsert},
	})
	runTicks(t, tbl, []tick{{at: time.Second, want: []string{"expire b s/1"}}})
	// A redelivery of the expired signal is recognised while the tombstone lives.
	runSteps(t, tbl, clk, []step{{at: 30 * time.Second, ev: sig("b", "s/1", "e1", signal.Raised), seq: 1}})
	// Once forgotten, the key is new again.
	runTicks(t, tbl, []tick{{at: 61 * time.Second}})
	runSteps(t, tbl, clk, []step{{at: 62 * time.Second, ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert, check: func(t *testing.T, c Change) {
		assert.Equal(t, 1, c.Condition.Changes, "history went with the tombstone")
	}}})

	t.Run("off", func(t *testing.T) {
		clk := newClock()
		tbl := New(WithClock(clk.Now), WithTombstoneTTL(0))
		runSteps(t, tbl, clk, []step{
			{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
			{ev: sig("b", "s/1", "e2", signal.Cleared), seq: 2, wantKind: Clear},
			{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
		})
		assert.Empty(t, tbl.due)
	})
}

func TestLinkDown(t *testing.T) {
	const grace, withdraw = 30 * time.Second, time.Minute
	tests := []struct {
		name  string
		ticks []tick
		stale []string // Snapshot of b with IncludeStale after the ticks
	}{
		{
			name: "stale after grace, withdrawn after grace+withdraw",
			ticks: []tick{
				{at: grace - time.Nanosecond},
				{at: grace, want: []string{"stale b s/1", "stale b s/2"}},
				{at: grace + time.Second},
				{at: grace + withdraw - time.Nanosecond},
				{at: grace + withdraw, want: []string{"withdraw b s/1", "withdraw b s/2"}},
				{at: time.Hour},
			},
		},
		{
			name: "a late tick reports stale then withdraw",
			ticks: []tick{
				{at: time.Hour, want: []string{"stale b s/1", "stale b s/2", "withdraw b s/1", "withdraw b s/2"}},
			},
		},
		{
			name:  "stale conditions are held but not active",
			ticks: []tick{{at: grace, want: []string{"stale b s/1", "stale b s/2"}}},
			stale: []string{"s/1", "s/2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			var seen []Change
			tbl := New(WithClock(clk.Now))
			ch, cancel := tbl.Subscribe(100)
			defer cancel()
			runSteps(t, tbl, clk, []step{
				{ev: sig("b", "s/2", "e2", signal.Raised), seq: 2, wantKind: Upsert},
				{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
				{peer: "c", ev: sig("c", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
			})
			tbl.LinkDown("b", t0, grace, withdraw)
			tbl.LinkDown("b", t0.Add(10*time.Second), grace, withdraw) // still down: keeps the first time
			var all []string
			for _, tk := range tt.ticks {
				cs := tbl.Tick(t0.Add(tk.at))
				assert.Equal(t, tk.want, kinds(cs), "tick at %v", tk.at)
				all = append(all, kinds(cs)...)
			}
			for len(ch) > 0 {
				seen = append(seen, <-ch)
			}
			assert.Equal(t, append([]string{"upsert b s/2", "upsert b s/1", "upsert c s/1"}, all...), kinds(seen), "subscribers see the same changes")

			var held []string
			for _, c := range tbl.Snapshot(Filter{Peer: "b", IncludeStale: true}) {
				assert.Equal(t, StatusStale, c.Status)
				held = append(held, c.Subject)
			}
			assert.Equal(t, tt.stale, held)
			assert.Empty(t, tbl.Snapshot(Filter{Peer: "b"}))
			assert.Equal(t, len(tt.stale), tbl.Len("b"))
			assert.Equal(t, 1, tbl.Len("c"), "another peer is untouched")
		})
	}
}

func TestLinkUp(t *testing.T) {
	const grace, withdraw = 30 * time.Second, time.Minute
	setup := func(t *testing.T) (*Table, *clock) {
		clk := newClock()
		tbl := New(WithClock(clk.Now))
		runSteps(t, tbl, clk, []step{
			{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
			{ev: sig("b", "s/2", "e2", signal.Raised), seq: 2, wantKind: Upsert},
		})
		tbl.LinkDown("b", t0, grace, withdraw)
		return tbl, clk
	}

	t.Run("link up freshens nothing the peer did not re-state", func(t *testing.T) {
		// A regression: LinkUp made every stale condition active again
		// without the peer saying a word about it.
		tbl, clk := setup(t)
		runTicks(t, tbl, []tick{{at: grace, want: []string{"stale b s/1", "stale b s/2"}}})
		tbl.LinkUp("b")
		assert.Empty(t, tbl.Snapshot(Filter{Peer: "b"}), "stale until re-stated")
		tbl.BeginRefresh("b")
		c, need := tbl.Restate("b", "congestion", sig("b", "s/1", "e1", signal.Raised))
		assert.False(t, need, "held as re-stated: nothing to store")
		assert.Equal(t, []string{"fresh b s/1"}, kinds([]Change{c}))
		assert.Equal(t, StatusActive, c.Condition.Status)
		// s/2 is not re-stated: End-of-RIB withdraws it.
		assert.Equal(t, []string{"withdraw b s/2"}, kinds(tbl.EndRefresh("b")))
		assert.Nil(t, tbl.EndRefresh("b"), "a second End-of-RIB changes nothing")
		runTicks(t, tbl, []tick{{at: time.Hour}})
		assert.Equal(t, 1, tbl.Len("b"))
		runSteps(t, tbl, clk, []step{
			{at: time.Hour, ev: sig("b", "s/1", "e1", signal.Raised), seq: 1},
			{at: time.Hour, ev: sig("b", "s/1", "e3", signal.Cleared), seq: 3, wantKind: Clear},
		})
		assert.Equal(t, 0, tbl.Len("b"))
	})

	t.Run("a peer without refresh is freshened once its link is up", func(t *testing.T) {
		tbl, _ := setup(t)
		runTicks(t, tbl, []tick{{at: grace, want: []string{"stale b s/1", "stale b s/2"}}})
		assert.Nil(t, tbl.Freshen("b"), "not while the link is down")
		tbl.LinkUp("b")
		assert.Equal(t, []string{"fresh b s/1", "fresh b s/2"}, kinds(tbl.Freshen("b")))
		runTicks(t, tbl, []tick{{at: grace + withdraw}})
		assert.Equal(t, 2, tbl.Len("b"))
	})

	t.Run("link up without a refresh withdraws at the withdraw time", func(t *testing.T) {
		tbl, _ := setup(t)
		runTicks(t, tbl, []tick{{at: grace, want: []string{"stale b s/1", "stale b s/2"}}})
		tbl.LinkUp("b")
		runTicks(t, tbl, []tick{{at: grace + withdraw, want: []string{"withdraw b s/1", "withdraw b s/2"}}})
	})

	t.Run("before grace changes nothing", func(t *testing.T) {
		tbl, _ := setup(t)
		runTicks(t, tbl, []tick{{at: grace - time.Second}})
		tbl.LinkUp("b")
		runTicks(t, tbl, []tick{{at: time.Hour}})
		assert.Len(t, tbl.Snapshot(Filter{}), 2)
	})

	t.Run("after withdraw has nothing to restore", func(t *testing.T) {
		tbl, clk := setup(t)
		runTicks(t, tbl, []tick{{at: grace + withdraw, want: []string{"stale b s/1", "stale b s/2", "withdraw b s/1", "withdraw b s/2"}}})
		tbl.LinkUp("b")
		// The resend after a withdraw raises them again: no tombstone held them.
		runSteps(t, tbl, clk, []step{{at: time.Hour, ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert}})
	})

	t.Run("a signal while stale is active until the next tick", func(t *testing.T) {
		tbl, clk := setup(t)
		runTicks(t, tbl, []tick{{at: grace, want: []string{"stale b s/1", "stale b s/2"}}})
		runSteps(t, tbl, clk, []step{{at: grace, ev: sig("b", "s/1", "e3", signal.Updated), seq: 3, wantKind: Upsert, check: func(t *testing.T, c Change) {
			assert.Equal(t, StatusActive, c.Condition.Status)
		}}})
		runTicks(t, tbl, []tick{
			{at: grace + time.Second, want: []string{"stale b s/1"}},
			{at: grace + withdraw, want: []string{"withdraw b s/1", "withdraw b s/2"}},
		})
	})

	t.Run("unknown peer", func(t *testing.T) {
		tbl, _ := setup(t)
		tbl.LinkUp("x")
		tbl.LinkDown("x", t0, 0, 0)
		runTicks(t, tbl, []tick{{at: time.Hour, want: []string{"stale b s/1", "stale b s/2", "withdraw b s/1", "withdraw b s/2"}}})
		tbl.LinkUp("x")
		tbl.mu.Lock()
		assert.NotContains(t, tbl.peers, "x", "an empty peer with its link up is forgotten")
		tbl.mu.Unlock()
	})
}

func TestLinkDownDuringUpdate(t *testing.T) {
	// Tick must not corrupt the schedule when an entry it withdraws has an expiry.
	clk := newClock()
	tbl := New(WithClock(clk.Now))
	runSteps(t, tbl, clk, []step{
		{ev: withExpiry(sig("b", "s/1", "e1", signal.Raised), t0.Add(time.Hour)), seq: 1, wantKind: Upsert},
		{ev: withExpiry(sig("b", "s/2", "e2", signal.Raised), t0.Add(2*time.Hour)), seq: 2, wantKind: Upsert},
	})
	tbl.LinkDown("b", t0, time.Second, time.Second)
	runTicks(t, tbl, []tick{
		{at: 2 * time.Second, want: []string{"stale b s/1", "stale b s/2", "withdraw b s/1", "withdraw b s/2"}},
		{at: 3 * time.Hour},
	})
	require.Empty(t, tbl.due)
}

func TestTimeBounds(t *testing.T) {
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		expiry     time.Time
		wantKind   ChangeKind
		wantExpiry time.Time
	}{
		{"far future is clamped, not wrapped", far, Upsert, maxTime.UTC()},
		{"far past is void", time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC), "", time.Time{}},
		{"the epoch is a time, not none", time.Unix(0, 0), "", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			tbl := New(WithClock(clk.Now))
			c, err := tbl.Apply("b", "fault", withExpiry(sig("b", "s/1", "e1", signal.Raised), tt.expiry), 1)
			require.NoError(t, err)
			assert.Equal(t, tt.wantKind, c.Kind)
			assert.Equal(t, tt.wantExpiry, c.Condition.Expiry)
			assert.Empty(t, tbl.Tick(t0.Add(100*365*24*time.Hour)))
			held := tbl.Len("")
			assert.Len(t, tbl.Tick(far), held, "past int64 time everything held expires")
			assert.Zero(t, tbl.Len(""))
		})
	}
}

func TestRefresh(t *testing.T) {
	clk := newClock()
	tbl := New(WithClock(clk.Now))
	runSteps(t, tbl, clk, []step{
		{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
		{ev: sig("b", "s/2", "e2", signal.Raised), seq: 2, wantKind: Upsert},
		{ev: sig("b", "s/3", "e3", signal.Raised), seq: 3, wantKind: Upsert},
		{ev: sig("b", "s/4", "e4", signal.Raised), seq: 4, wantKind: Upsert},
		{peer: "c", ev: sig("c", "s/1", "c1", signal.Raised), seq: 5, wantKind: Upsert},
	})
	assert.Nil(t, tbl.EndRefresh("b"), "End-of-RIB without a begin changes nothing")
	tbl.BeginRefresh("b")
	// s/1 re-stated as held; s/2 re-stated with a signal we never got
	// (to store); s/3 changed by a live signal during the refresh, then
	// re-stated with an older one (kept newer); s/4 not re-stated (a
	// ghost); s/5 new (to store).
	_, need := tbl.Restate("b", "congestion", sig("b", "s/1", "e1", signal.Raised))
	assert.False(t, need)
	_, need = tbl.Restate("b", "congestion", sig("b", "s/2", "e2b", signal.Updated))
	assert.True(t, need)
	runSteps(t, tbl, clk, []step{{ev: sig("b", "s/3", "e3b", signal.Updated), seq: 6, wantKind: Upsert}})
	_, need = tbl.Restate("b", "congestion", sig("b", "s/3", "e3a", signal.Updated))
	assert.False(t, need, "a signal during the refresh is newer than the refresh's")
	_, need = tbl.Restate("b", "congestion", sig("b", "s/5", "e5", signal.Raised))
	assert.True(t, need)
	assert.Equal(t, []string{"withdraw b s/4"}, kinds(tbl.EndRefresh("b")))
	got := map[string]string{}
	for _, c := range tbl.Snapshot(Filter{}) {
		got[c.Peer+" "+c.Subject] = c.ID
	}
	assert.Equal(t, map[string]string{"b s/1": "e1", "b s/2": "e2", "b s/3": "e3b", "c s/1": "c1"}, got,
		"the re-stated signal to store is applied by the caller; another peer is untouched")
}

// TestWithdrawKey: one live condition is withdrawn (the import policy no
// longer passes it); a cleared one, an unknown one and another peer's
// are not.
func TestWithdrawKey(t *testing.T) {
	clk := newClock()
	tbl := New(WithClock(clk.Now), WithTombstoneTTL(time.Minute))
	runSteps(t, tbl, clk, []step{
		{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
		{ev: sig("b", "s/2", "e2", signal.Raised), seq: 2, wantKind: Upsert},
		{ev: sig("b", "s/2", "e2c", signal.Cleared), seq: 3, wantKind: Clear},
		{peer: "c", ev: sig("c", "s/1", "c1", signal.Raised), seq: 4, wantKind: Upsert},
	})
	for _, tc := range []struct {
		name string
		k    Key
		want string
	}{
		{"live", Key{Peer: "b", Origin: "b", Class: "congestion", Subject: "s/1"}, "withdraw b s/1"},
		{"again", Key{Peer: "b", Origin: "b", Class: "congestion", Subject: "s/1"}, ""},
		{"cleared", Key{Peer: "b", Origin: "b", Class: "congestion", Subject: "s/2"}, ""},
		{"other class", Key{Peer: "b", Origin: "b", Class: "fault", Subject: "s/1"}, ""},
		{"no peer", Key{Peer: "z", Origin: "z", Class: "congestion", Subject: "s/1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := tbl.WithdrawKey(tc.k)
			assert.Equal(t, tc.want != "", ok)
			if ok {
				assert.Equal(t, []string{tc.want}, kinds([]Change{c}))
				assert.Equal(t, StatusWithdrawn, c.Condition.Status)
			}
		})
	}
	assert.Equal(t, 0, tbl.Len("b"))
	assert.Equal(t, 1, tbl.Len("c"), "another peer's condition of the same subject is untouched")
}

// TestCut: after Cut(b, 10), b's signals stored up to 10 that reach Apply
// are refused as stale (on their way when the peering went down); later
// ones, re-statements (seq 0) and other peers' are taken.
func TestCut(t *testing.T) {
	tbl := New(WithClock(newClock().Now))
	_, err := tbl.Apply("b", "fault", sig("op-b", "svc/r1", "e1", signal.Raised), 4)
	require.NoError(t, err)
	tbl.Cut("b", 10)
	tbl.Cut("b", 7) // a lower cut does not lower the floor
	for _, tc := range []struct {
		peer, subj string
		seq        uint64
		stale      bool
	}{
		{"b", "svc/r2", 9, true},
		{"b", "svc/r3", 10, true},
		{"b", "svc/r4", 11, false},
		{"b", "svc/r5", 0, false},
		{"c", "svc/r6", 5, false},
	} {
		_, err := tbl.Apply(tc.peer, "fault", sig("op-"+tc.peer, tc.subj, "id-"+tc.subj, signal.Raised), tc.seq)
		if tc.stale {
			assert.ErrorIs(t, err, ErrStale, "%s seq %d", tc.subj, tc.seq)
		} else {
			assert.NoError(t, err, "%s seq %d", tc.subj, tc.seq)
		}
	}
	assert.Equal(t, 3, tbl.Len("b"), "r1 (applied before the cut), r4, r5")
}
