package conditions

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injected clock that moves only when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t0.Add(d)
	return c.now
}

// sig is a signal from origin about subject.
func sig(origin, subject, id string, st signal.State) *signal.Event {
	return &signal.Event{
		ID:      id,
		Source:  "anfed://" + origin + "/assurance",
		Type:    "net.anfed.congestion.v1",
		Subject: subject,
		Time:    t0,
		Origin:  origin,
		State:   st,
		Data:    []byte(`{}`),
	}
}

func withExpiry(ev *signal.Event, at time.Time) *signal.Event { ev.ExpiryTime = at; return ev }

func withSeverity(ev *signal.Event, n int) *signal.Event { ev.SeverityNumber = n; return ev }

// step is one Apply in a scripted scenario, at clock offset at.
type step struct {
	at       time.Duration
	peer     string
	ev       *signal.Event
	seq      uint64
	wantKind ChangeKind
	wantErr  error
	check    func(t *testing.T, c Change)
}

func runSteps(t *testing.T, tbl *Table, clk *clock, steps []step) {
	t.Helper()
	for i, s := range steps {
		clk.Set(s.at)
		peer := s.peer
		if peer == "" {
			peer = "b"
		}
		c, err := tbl.Apply(peer, "congestion", s.ev, s.seq)
		if s.wantErr != nil {
			require.ErrorIs(t, err, s.wantErr, "step %d", i)
		} else {
			require.NoError(t, err, "step %d", i)
		}
		require.Equal(t, s.wantKind, c.Kind, "step %d", i)
		if s.wantKind == "" {
			assert.Equal(t, Change{}, c, "step %d: no change must be the zero Change", i)
		}
		if s.check != nil {
			s.check(t, c)
		}
	}
}

func TestApply(t *testing.T) {
	key := Key{Peer: "b", Origin: "b", Class: "congestion", Subject: "vpn-1/link-7"}
	tests := []struct {
		name    string
		steps   []step
		wantLen int
	}{
		{
			name: "raised, updated, cleared",
			steps: []step{
				{at: 0, ev: withSeverity(sig("b", "vpn-1/link-7", "e1", signal.Raised), 9), seq: 1, wantKind: Upsert, check: func(t *testing.T, c Change) {
					assert.Equal(t, Condition{
						Key: key, Status: StatusActive, State: signal.Raised,
						Source: "anfed://b/assurance", ID: "e1", Seq: 1, Severity: 9,
						Raised: t0, Updated: t0, Changes: 1,
					}, c.Condition)
				}},
				{at: time.Second, ev: withSeverity(sig("b", "vpn-1/link-7", "e2", signal.Updated), 17), seq: 2, wantKind: Upsert, check: func(t *testing.T, c Change) {
					assert.Equal(t, StatusActive, c.Condition.Status)
					assert.Equal(t, signal.Updated, c.Condition.State)
					assert.Equal(t, 17, c.Condition.Severity)
					assert.Equal(t, t0, c.Condition.Raised, "raised stays the first raise")
					assert.Equal(t, t0.Add(time.Second), c.Condition.Updated)
					assert.Equal(t, 2, c.Condition.Changes)
				}},
				{at: 2 * time.Second, ev: sig("b", "vpn-1/link-7", "e3", signal.Cleared), seq: 3, wantKind: Clear, check: func(t *testing.T, c Change) {
					assert.Equal(t, key, c.Condition.Key)
					assert.Equal(t, StatusCleared, c.Condition.Status)
					assert.Equal(t, signal.Cleared, c.Condition.State)
					assert.Equal(t, "e3", c.Condition.ID)
					assert.Equal(t, 3, c.Condition.Changes)
				}},
			},
			wantLen: 0,
		},
		{
			name:  "cleared of an unknown key changes nothing",
			steps: []step{{ev: sig("b", "vpn-1/link-7", "e1", signal.Cleared), seq: 1}},
		},
		{
			name: "lower seq is refused as stale",
			steps: []step{
				{ev: sig("b", "vpn-1/link-7", "e5", signal.Raised), seq: 5, wantKind: Upsert},
				{ev: sig("b", "vpn-1/link-7", "e3", signal.Updated), seq: 3, wantErr: ErrStale},
				{ev: sig("b", "vpn-1/link-7", "e4", signal.Cleared), seq: 4, wantErr: ErrStale},
				{ev: sig("b", "vpn-1/link-7", "e5b", signal.Updated), seq: 5, wantErr: ErrStale},
			},
			wantLen: 1,
		},
		{
			name: "same source and id is a no-op, whatever its seq",
			steps: []step{
				{ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 1, wantKind: Upsert},
				{ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 9},
				{ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 1},
				{ev: sig("b", "vpn-1/link-7", "e2", signal.Updated), seq: 2, wantKind: Upsert, check: func(t *testing.T, c Change) {
					assert.Equal(t, 2, c.Condition.Changes, "the no-ops did not count")
				}},
			},
			wantLen: 1,
		},
		{
			name: "an older raise after a clear is refused by the tombstone",
			steps: []step{
				{ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 1, wantKind: Upsert},
				{ev: sig("b", "vpn-1/link-7", "e3", signal.Cleared), seq: 3, wantKind: Clear},
				{ev: sig("b", "vpn-1/link-7", "e2", signal.Updated), seq: 2, wantErr: ErrStale},
				{ev: sig("b", "vpn-1/link-7", "e3", signal.Cleared), seq: 3},
			},
		},
		{
			name: "a raise after a clear is a new raise that keeps the change count",
			steps: []step{
				{ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 1, wantKind: Upsert},
				{ev: sig("b", "vpn-1/link-7", "e2", signal.Cleared), seq: 2, wantKind: Clear},
				{at: time.Minute, ev: sig("b", "vpn-1/link-7", "e3", signal.Raised), seq: 3, wantKind: Upsert, check: func(t *testing.T, c Change) {
					assert.Equal(t, 3, c.Condition.Changes)
					assert.Equal(t, t0.Add(time.Minute), c.Condition.Raised)
				}},
			},
			wantLen: 1,
		},
		{
			name: "seq 0 is unordered",
			steps: []step{
				{ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 7, wantKind: Upsert},
				{ev: sig("b", "vpn-1/link-7", "e2", signal.Updated), seq: 0, wantKind: Upsert},
				{ev: sig("b", "vpn-1/link-7", "e3", signal.Updated), seq: 1, wantKind: Upsert},
			},
			wantLen: 1,
		},
		{
			name: "a signal void on arrival expires what is held and is otherwise ignored",
			steps: []step{
				{at: time.Hour, ev: withExpiry(sig("b", "vpn-1/link-7", "e1", signal.Raised), t0), seq: 1},
				{at: time.Hour, ev: sig("b", "vpn-1/link-7", "e2", signal.Raised), seq: 2, wantKind: Upsert},
				{at: time.Hour, ev: withExpiry(sig("b", "vpn-1/link-7", "e3", signal.Updated), t0.Add(time.Hour)), seq: 3, wantKind: Expire, check: func(t *testing.T, c Change) {
					assert.Equal(t, StatusExpired, c.Condition.Status)
				}},
			},
		},
		{
			name: "keys differ by peer, origin and subject",
			steps: []step{
				{peer: "b", ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 1, wantKind: Upsert},
				{peer: "c", ev: sig("b", "vpn-1/link-7", "e1", signal.Raised), seq: 1, wantKind: Upsert},
				{peer: "b", ev: sig("d", "vpn-1/link-7", "e1", signal.Raised), seq: 2, wantKind: Upsert},
				{peer: "b", ev: sig("b", "vpn-1/link-8", "e9", signal.Raised), seq: 3, wantKind: Upsert},
			},
			wantLen: 4,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			tbl := New(WithClock(clk.Now))
			runSteps(t, tbl, clk, tt.steps)
			assert.Equal(t, tt.wantLen, tbl.Len(""))
			assert.Len(t, tbl.Snapshot(Filter{IncludeStale: true}), tt.wantLen)
		})
	}
}

func TestApplyInvalid(t *testing.T) {
	good := func() *signal.Event { return sig("b", "vpn-1/link-7", "e1", signal.Raised) }
	tests := []struct {
		name        string
		peer, class string
		ev          *signal.Event
	}{
		{"nil event", "b", "congestion", nil},
		{"no peer", "", "congestion", good()},
		{"no class", "b", "", good()},
		{"no origin", "b", "congestion", func() *signal.Event { e := good(); e.Origin = ""; return e }()},
		{"no subject", "b", "congestion", func() *signal.Event { e := good(); e.Subject = ""; return e }()},
		{"no id", "b", "congestion", func() *signal.Event { e := good(); e.ID = ""; return e }()},
		{"unknown state", "b", "congestion", func() *signal.Event { e := good(); e.State = "open"; return e }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl := New()
			c, err := tbl.Apply(tt.peer, tt.class, tt.ev, 1)
			require.ErrorIs(t, err, ErrInvalid)
			assert.Equal(t, Change{}, c)
			assert.Zero(t, tbl.Len(""))
		})
	}
}

func TestMaxPerPeer(t *testing.T) {
	clk := newClock()
	tbl := New(WithClock(clk.Now), WithMaxPerPeer(2))
	runSteps(t, tbl, clk, []step{
		{ev: sig("b", "s/1", "e1", signal.Raised), seq: 1, wantKind: Upsert},
		{ev: sig("b", "s/2", "e2", signal.Raised), seq: 2, wantKind: Upsert},
		{ev: sig("b", "s/3", "e3", signal.Raised), seq: 3, wantErr: ErrLimit},
		{ev: sig("b", "s/1", "e4", signal.Updated), seq: 4, wantKind: Upsert},
		{peer: "c", ev: sig("c", "s/3", "e3", signal.Raised), seq: 1, wantKind: Upsert},
		{ev: sig("b", "s/2", "e5", signal.Cleared), seq: 5, wantKind: Clear},
		{ev: sig("b", "s/3", "e6", signal.Raised), seq: 6, wantKind: Upsert},
		{ev: sig("b", "s/2", "e7", signal.Raised), seq: 7, wantErr: ErrLimit},
	})
	assert.Equal(t, 2, tbl.Len("b"))
	assert.Equal(t, 1, tbl.Len("c"))
	assert.Equal(t, 3, tbl.Len(""))
	assert.Zero(t, tbl.Len("nobody"))
}

func TestSnapshot(t *testing.T) {
	clk := newClock()
	tbl := New(WithClock(clk.Now))
	for i, a := range []struct{ peer, origin, class, subject string }{
		{"local", "a", "fault", "vpn-2/pe-1"},
		{"c", "c", "congestion", "vpn-1/link-1"},
		{"b", "b", "fault", "vpn-1/pe-9"},
		{"b", "b", "congestion", "vpn-2/link-3"},
		{"b", "d", "congestion", "vpn-1/link-2"},
		{"b", "b", "congestion", "vpn-1/link-1"},
	} {
		_, err := tbl.Apply(a.peer, a.class, sig(a.origin, a.subject, "e", signal.Raised), uint64(i+1))
		require.NoError(t, err)
	}
	tbl.LinkDown("c", t0, 0, time.Hour)
	require.Len(t, tbl.Tick(t0), 1)

	key := func(c Condition) string { return c.Peer + " " + c.Origin + " " + c.Class + " " + c.Subject }
	tests := []struct {
		name string
		f    Filter
		want []string
	}{
		{"all active, sorted", Filter{}, []string{
			"b b congestion vpn-1/link-1", "b b congestion vpn-2/link-3", "b b fault vpn-1/pe-9",
			"b d congestion vpn-1/link-2", "local a fault vpn-2/pe-1",
		}},
		{"with stale", Filter{IncludeStale: true}, []string{
			"b b congestion vpn-1/link-1", "b b congestion vpn-2/link-3", "b b fault vpn-1/pe-9",
			"b d congestion vpn-1/link-2", "c c congestion vpn-1/link-1", "local a fault vpn-2/pe-1",
		}},
		{"by peer", Filter{Peer: "b"}, []string{
			"b b congestion vpn-1/link-1", "b b congestion vpn-2/link-3", "b b fault vpn-1/pe-9", "b d congestion vpn-1/link-2",
		}},
		{"by origin", Filter{Origin: "d"}, []string{"b d congestion vpn-1/link-2"}},
		{"by class", Filter{Class: "fault"}, []string{"b b fault vpn-1/pe-9", "local a fault vpn-2/pe-1"}},
		{"by service", Filter{Service: "vpn-1", IncludeStale: true}, []string{
			"b b congestion vpn-1/link-1", "b b fault vpn-1/pe-9", "b d congestion vpn-1/link-2", "c c congestion vpn-1/link-1",
		}},
		{"all fields", Filter{Peer: "b", Origin: "b", Class: "congestion", Service: "vpn-2"}, []string{"b b congestion vpn-2/link-3"}},
		{"stale peer without stale", Filter{Peer: "c"}, nil},
		{"unknown peer", Filter{Peer: "x"}, nil},
		{"service is the whole first token", Filter{Service: "vpn"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, c := range tbl.Snapshot(tt.f) {
				got = append(got, key(c))
			}
			assert.Equal(t, tt.want, got)
		})
	}
}
