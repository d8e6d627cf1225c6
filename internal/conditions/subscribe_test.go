package conditions

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// replay applies a change to a consumer's view, as a closed loop would.
func replay(view map[Key]Condition, c Change) {
	switch c.Kind {
	case Upsert, Fresh, Stale:
		view[c.Condition.Key] = c.Condition
	case Clear, Expire, Withdraw:
		delete(view, c.Condition.Key)
	}
}

func TestSnapshotAndSubscribeConcurrent(t *testing.T) {
	tests := []struct {
		name string
		f    Filter
	}{
		{"everything", Filter{IncludeStale: true}},
		{"one peer", Filter{Peer: "p1", IncludeStale: true}},
		{"one class and service", Filter{Class: "fault", Service: "svc-1", IncludeStale: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const writers, perWriter = 8, 2000
			tbl := New(WithTombstoneTTL(time.Hour))
			var seq atomic.Uint64
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					<-start
					for i := range perWriter {
						peer := fmt.Sprintf("p%d", rng.IntN(3))
						class := []string{"fault", "congestion"}[rng.IntN(2)]
						ev := sig(peer, fmt.Sprintf("svc-%d/r-%d", rng.IntN(2), rng.IntN(20)), fmt.Sprintf("w%d-%d", w, i), []signal.State{signal.Raised, signal.Updated, signal.Cleared}[rng.IntN(3)])
						// Ordered and refused (ErrStale) outcomes are both fine here.
						_, _ = tbl.Apply(peer, class, ev, seq.Add(1))
					}
				}()
			}
			close(start)
			// Subscribe while the writers run.
			for tbl.Len("") < 10 {
				time.Sleep(time.Millisecond)
			}
			snap, ch, cancel := tbl.SnapshotAndSubscribe(tt.f, writers*perWriter)
			defer cancel()
			wg.Wait()

			view := make(map[Key]Condition)
			last := make(map[Key]uint64)
			for _, c := range snap {
				view[c.Key] = c
				last[c.Key] = c.Seq
			}
			// Every Apply sent its change before returning, so all are buffered.
			for n := len(ch); n > 0; n-- {
				c := <-ch
				k := c.Condition.Key
				require.True(t, tt.f.match(k), "change outside the filter: %+v", c)
				require.Greater(t, c.Condition.Seq, last[k], "duplicate or out of order for %v", k)
				last[k] = c.Condition.Seq
				replay(view, c)
			}
			want := make(map[Key]Condition)
			for _, c := range tbl.Snapshot(tt.f) {
				want[c.Key] = c
			}
			assert.Equal(t, want, view, "snapshot + stream must equal the final table")
			assert.Zero(t, tbl.Dropped())
		})
	}
}

func TestSlowSubscriberDropped(t *testing.T) {
	tbl := New()
	slow, cancelSlow := tbl.Subscribe(2)
	fast, cancelFast := tbl.Subscribe(100)
	defer cancelFast()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			_, err := tbl.Apply("b", "fault", sig("b", "s/1", fmt.Sprint("e", i), signal.Updated), uint64(i+1))
			assert.NoError(t, err)
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Apply blocked on a slow subscriber")
	}

	var got int
	for range slow {
		got++
	}
	assert.Equal(t, 2, got, "the slow subscriber keeps what fit, then its channel is closed")
	assert.Equal(t, 1, tbl.Dropped())
	assert.Len(t, fast, 10, "the fast subscriber missed nothing")
	cancelSlow() // after a drop: harmless

	// It resyncs from a snapshot.
	snap, ch, cancel := tbl.SnapshotAndSubscribe(Filter{}, 1)
	defer cancel()
	require.Len(t, snap, 1)
	assert.Equal(t, "e9", snap[0].ID)
	assert.Empty(t, ch)
}

func TestSubscribeCancel(t *testing.T) {
	tbl := New()
	ch, cancel := tbl.Subscribe(0)
	cancel()
	cancel()
	_, ok := <-ch
	assert.False(t, ok, "cancel closes the channel")
	_, err := tbl.Apply("b", "fault", sig("b", "s/1", "e1", signal.Raised), 1)
	require.NoError(t, err)
	assert.Zero(t, tbl.Dropped(), "a cancelled subscriber is not sent to")
	tbl.mu.Lock()
	assert.Empty(t, tbl.subs)
	tbl.mu.Unlock()
}

func TestSubscribeFilter(t *testing.T) {
	tbl := New()
	_, ch, cancel := tbl.SnapshotAndSubscribe(Filter{Origin: "c"}, 10)
	defer cancel()
	for i, origin := range []string{"b", "c", "b", "c"} {
		_, err := tbl.Apply(origin, "fault", sig(origin, fmt.Sprintf("s/%d", i), "e", signal.Raised), 1)
		require.NoError(t, err)
	}
	require.Len(t, ch, 2)
	assert.Equal(t, "s/1", (<-ch).Condition.Subject)
	assert.Equal(t, "s/3", (<-ch).Condition.Subject)
}
