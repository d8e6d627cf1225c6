package conditions

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// uuidLike is a 36-character id shaped like the UUIDs CloudEvents SDKs use.
func uuidLike(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// TestMemoryPerCondition measures the heap a held condition costs: realistic
// keys (few peers, origins and classes; a distinct subject and a 36-byte id
// per condition) and an expiry, so the schedule is counted too.
func TestMemoryPerCondition(t *testing.T) {
	const n = 100_000
	// Build the inputs first, then let go of everything the table does not keep.
	subjects := make([]string, n)
	ids := make([]string, n)
	for i := range n {
		subjects[i] = fmt.Sprintf("vpn-%d/link-%d", i%50, i)
		ids[i] = uuidLike(i)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)

	tbl := New(WithClock(func() time.Time { return t0 }))
	peers := []string{"op-b", "op-c", "op-d", "local"}
	classes := []string{"fault", "congestion", "sla-risk"}
	for i := range n {
		ev := &signal.Event{
			ID: ids[i], Source: "anfed://op-b/assurance", Subject: subjects[i], Origin: "op-b",
			State: signal.Raised, SeverityNumber: 9, ExpiryTime: t0.Add(time.Hour),
		}
		_, err := tbl.Apply(peers[i%len(peers)], classes[i%len(classes)], ev, uint64(i+1))
		require.NoError(t, err)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Equal(t, n, tbl.Len(""))

	perCond := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
	t.Logf("%d conditions: %.0f bytes/condition (heap alloc delta after GC)", n, perCond)
	// The inputs live through both readings, so only the table's own
	// copies of subjects and ids are in the delta.
	runtime.KeepAlive(subjects)
	runtime.KeepAlive(ids)
	runtime.KeepAlive(tbl)
	require.LessOrEqual(t, perCond, 2048.0, "bytes per held condition")
}

func BenchmarkApply(b *testing.B) {
	const keys = 10_000
	subjects := make([]string, keys)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("vpn-%d/link-%d", i%50, i)
	}
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = uuidLike(i)
	}

	b.Run("update", func(b *testing.B) {
		tbl := New(WithClock(func() time.Time { return t0 }))
		ev := &signal.Event{Source: "anfed://op-b/assurance", Origin: "op-b", State: signal.Updated, SeverityNumber: 9, ExpiryTime: t0.Add(time.Hour)}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ev.Subject, ev.ID = subjects[i%keys], ids[i%len(ids)]
			if _, err := tbl.Apply("op-b", "fault", ev, uint64(i+1)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	b.Run("raise-clear", func(b *testing.B) {
		tbl := New(WithClock(func() time.Time { return t0 }))
		ev := &signal.Event{Source: "anfed://op-b/assurance", Origin: "op-b", SeverityNumber: 9}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ev.Subject, ev.ID = subjects[i%keys], ids[i%len(ids)]
			ev.State = signal.Raised
			if i/keys%2 == 1 {
				ev.State = signal.Cleared
			}
			if _, err := tbl.Apply("op-b", "fault", ev, uint64(i+1)); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})

	b.Run("duplicate", func(b *testing.B) {
		tbl := New(WithClock(func() time.Time { return t0 }))
		ev := &signal.Event{Source: "anfed://op-b/assurance", Origin: "op-b", State: signal.Raised, Subject: subjects[0], ID: ids[0]}
		_, err := tbl.Apply("op-b", "fault", ev, 1)
		require.NoError(b, err)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tbl.Apply("op-b", "fault", ev, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
}
