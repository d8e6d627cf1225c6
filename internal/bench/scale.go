package bench

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/signal"
)

// ScaleReport holds the scaling runs.
type ScaleReport struct {
	// Peers: the anfed-cross row with op-a holding N peers, the signals
	// exported to one (op-b); the N-1 others' export policy excludes
	// them (class maintenance only) and they never connect.
	Peers []Row `json:"peers"`
	// Payload: raw-nats-leaf and anfed-cross per signal size.
	Payload []Row `json:"payload"`
	// Conditions: the condition table's heap per active condition.
	Conditions []CondRow `json:"conditions"`
}

// CondRow is the heap an active condition costs in a table of N.
type CondRow struct {
	N                 int     `json:"n"`
	BytesPerCondition float64 `json:"bytes_per_condition"`
	HeapBytes         int64   `json:"heap_bytes"`
}

func runScale(ctx context.Context, e *env, o Options, say func(string, ...any)) (*ScaleReport, error) {
	sc := &ScaleReport{}
	peers := []int{1, 2, 4, 8, 16, 32, 64}
	sizes := []int{256, 1024, 4096, 16384}
	conds := []int{1_000, 10_000, 100_000, 1_000_000}
	if o.Quick {
		peers, sizes, conds = []int{1, 8, 64}, []int{256, 16384}, []int{1_000, 100_000}
	}
	sat := spec{d: o.Duration, window: o.Window, warm: o.warm()}

	// Conditions first: the table alone, on a quiet heap.
	for _, n := range conds {
		c := conditionMemory(n)
		sc.Conditions = append(sc.Conditions, c)
		say("conditions=%-8d %6.0f bytes/condition", n, c.BytesPerCondition)
		if err := ctx.Err(); err != nil {
			return sc, err
		}
	}

	tpl, err := newTemplate(o.Size)
	if err != nil {
		return sc, err
	}
	for _, n := range peers {
		p, err := e.startPair(ctx, n-1)
		if err != nil {
			return sc, fmt.Errorf("peers=%d: %w", n, err)
		}
		// What the node costs with no traffic at all (its senders'
		// timers, JetStream's housekeeping) is part of CPU per signal:
		// measure it apart, so the table shows what is per signal.
		idle := idleCPU(ctx, time.Second)
		r, err := cross(ctx, e, p, tpl, fmt.Sprintf("peers=%d", n), sat)
		r.IdleCPU = idle
		p.stop()
		if err != nil {
			return sc, err
		}
		if len(sc.Peers) > 0 && sc.Peers[0].CPUPerSignal > 0 {
			r.Ceiling, r.Ratio = sc.Peers[0].Name+" (CPU per signal)", r.CPUPerSignal/sc.Peers[0].CPUPerSignal
		}
		sc.Peers = append(sc.Peers, r)
		say("%-22s %9.0f signals/s  CPU %5.1f µs/signal  %5.1f allocs/signal  idle CPU %.1f ms/s", r.Name, r.PerSec, r.CPUPerSignal, r.AllocsPerSignal, r.IdleCPU)
	}

	for _, size := range sizes {
		t, err := newTemplate(size)
		if err != nil {
			return sc, err
		}
		bp, err := e.startBarePair(ctx)
		if err != nil {
			return sc, err
		}
		raw, err := rawNATS(ctx, bp, t, sat)
		bp.stop()
		if err != nil {
			return sc, err
		}
		raw.Name, raw.Bytes = fmt.Sprintf("size=%d %s", len(t.body), RowRawNATS), len(t.body)
		p, err := e.startPair(ctx, 0)
		if err != nil {
			return sc, err
		}
		r, err := cross(ctx, e, p, t, fmt.Sprintf("size=%d %s", len(t.body), RowCross), sat)
		p.stop()
		if err != nil {
			return sc, err
		}
		r.Bytes = len(t.body)
		if raw.PerSec > 0 {
			r.Ceiling, r.Ratio = raw.Name, r.PerSec/raw.PerSec
		}
		sc.Payload = append(sc.Payload, raw, r)
		say("%-22s raw %9.0f/s  anfed %9.0f/s  ratio %.3f", fmt.Sprintf("size=%d", len(t.body)), raw.PerSec, r.PerSec, r.Ratio)
	}
	return sc, nil
}

// conditionMemory measures the heap n active conditions take in a
// conditions.Table, as internal/conditions' TestMemoryPerCondition does:
// a few peers, origins and classes; a distinct subject and a 36-byte id per
// condition; an expiry, so the schedule is counted too. The inputs are
// built first and live through both readings, so only the table's own
// copies are in the delta.
func conditionMemory(n int) CondRow {
	subjects := make([]string, n)
	ids := make([]string, n)
	for i := range n {
		subjects[i] = fmt.Sprintf("vpn-%d/link-%d", i%50, i)
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
	}
	t0 := time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	tbl := conditions.New(conditions.WithClock(func() time.Time { return t0 }))
	peers := []string{"op-b", "op-c", "op-d", "local"}
	classes := []string{"fault", "congestion", "sla-risk"}
	ev := &signal.Event{Source: "anfed://op-b/assurance", Origin: "op-b", State: signal.Raised, SeverityNumber: 9, ExpiryTime: t0.Add(time.Hour)}
	for i := range n {
		ev.ID, ev.Subject = ids[i], subjects[i]
		_, _ = tbl.Apply(peers[i%len(peers)], classes[i%len(classes)], ev, uint64(i+1))
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	held := tbl.Len("")
	runtime.KeepAlive(subjects)
	runtime.KeepAlive(ids)
	runtime.KeepAlive(tbl)
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	return CondRow{N: held, HeapBytes: heap, BytesPerCondition: float64(heap) / float64(max(held, 1))}
}

// idleCPU is the process's CPU time per second of wall time, in ms, over d
// of no traffic (after a moment to settle).
func idleCPU(ctx context.Context, d time.Duration) float64 {
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(500 * time.Millisecond):
	}
	c0, t0 := cpuTime(), time.Now()
	select {
	case <-ctx.Done():
		return 0
	case <-time.After(d):
	}
	return float64((cpuTime() - c0).Microseconds()) / 1e3 / time.Since(t0).Seconds()
}
