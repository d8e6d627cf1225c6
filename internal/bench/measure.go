package bench

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// meter reads the process's CPU time (getrusage, user+sys, all threads),
// Go allocations (runtime.MemStats.Mallocs) and the runtime's tail
// metrics (runtail.go) at the start of a row.
type meter struct {
	start  time.Time
	cpu    time.Duration
	allocs uint64
	rt     runtimeSample
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startMeter() meter {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return meter{start: time.Now(), cpu: cpuTime(), allocs: ms.Mallocs, rt: readRuntime()}
}

// per returns CPU microseconds and allocations per signal since the start.
func (m meter) per(n int) (cpuUs, allocs float64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu := cpuTime() - m.cpu
	if n <= 0 {
		return 0, 0
	}
	return float64(cpu.Microseconds()) / float64(n), float64(ms.Mallocs-m.allocs) / float64(n)
}

// flow drives one row: a producer publishes signals while at most window
// of them are unfinished; each one finishes when it arrives (or is
// acknowledged, for the durable rows) or fails. Latency is from the time
// stamped in the signal to its arrival.
type flow struct {
	start   int64 // unix ns: signals stamped before belong to an earlier flow
	burst   bool  // count-bound: its elapsed time is a drain time
	tokens  chan struct{}
	mu      sync.Mutex
	lat     []int64 // ns
	arrived atomic.Int64
	failed  atomic.Int64
	last    atomic.Int64 // unix ns of the last arrival
	sent    int64
}

func newFlow(window int) *flow {
	return &flow{start: time.Now().UnixNano(), tokens: make(chan struct{}, window), lat: make([]int64, 0, 1<<16)}
}

// arrive records a signal stamped at ts (unix ns) as arrived now. A
// signal stamped before the flow started was sent by an earlier one (a
// probe that came late, say): it is not counted here.
func (f *flow) arrive(ts int64) {
	if ts > 0 && ts < f.start {
		return
	}
	now := time.Now().UnixNano()
	f.mu.Lock()
	if ts > 0 {
		f.lat = append(f.lat, now-ts)
	}
	f.mu.Unlock()
	f.arrived.Add(1)
	f.last.Store(now)
	select {
	case <-f.tokens:
	default:
	}
}

// fail records a signal that will not arrive (refused).
func (f *flow) fail() {
	f.failed.Add(1)
	select {
	case <-f.tokens:
	default:
	}
}

// stallAfter: a window that does not move for this long ends the row.
const stallAfter = 15 * time.Second

// drive publishes until d has passed or count signals were sent (count
// wins when set), at rate signals/s (0: as fast as the window lets). It
// does not wait for the unfinished ones (wait does).
func (f *flow) drive(ctx context.Context, d time.Duration, count, rate int, publish func() error) error {
	start := time.Now()
	deadline := start.Add(d)
	var interval time.Duration
	if rate > 0 {
		interval = time.Second / time.Duration(rate)
	}
	stall := time.NewTimer(stallAfter)
	defer stall.Stop()
	for i := 0; ; i++ {
		if count > 0 {
			if i >= count {
				break
			}
		} else if !time.Now().Before(deadline) {
			break
		}
		if interval > 0 {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				time.Sleep(wait)
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		select {
		case f.tokens <- struct{}{}:
		default:
			// The window is full: wait for room, at most stallAfter.
			// One timer for the whole flow (a time.After per signal
			// was the harness's own two allocations in every row).
			stall.Reset(stallAfter)
			select {
			case f.tokens <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			case <-stall.C:
				return fmt.Errorf("no signal finished for %v (%d sent, %d arrived, %d failed)", stallAfter, f.sent, f.arrived.Load(), f.failed.Load())
			}
		}
		if err := publish(); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		f.sent++
	}
	return nil
}

// wait waits until every sent signal finished, or nothing moved for
// stallAfter.
func (f *flow) wait(ctx context.Context) error {
	lastDone, lastMove := int64(-1), time.Now()
	for {
		done := f.arrived.Load() + f.failed.Load()
		if done >= f.sent {
			return nil
		}
		if done != lastDone {
			lastDone, lastMove = done, time.Now()
		} else if time.Since(lastMove) > stallAfter {
			return nil // reported as lost
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// snapshot is what a flow measured up to one moment: the end of a
// duration-bound row (signals still in flight then are waited for, and
// checked for loss, but not counted), or the last arrival of a count-bound
// one.
type snapshot struct {
	arrived        int
	elapsed        time.Duration
	cpuUs, allocs  float64
	p50, p99, p999 float64
	rt             runtimeTail // the runtime's view of the same span
	rate           int         // the row's pace, signals/s (0: not paced)
}

func (f *flow) snapshot(m meter, end time.Time) snapshot {
	n := int(f.arrived.Load())
	s := snapshot{arrived: n, elapsed: end.Sub(m.start)}
	s.cpuUs, s.allocs = m.per(n)
	s.rt = readRuntime().since(m.rt)
	f.mu.Lock()
	s.p50, s.p99, s.p999 = percentiles(f.lat)
	f.mu.Unlock()
	return s
}

// row fills the measured columns of r.
func (f *flow) row(r *Row, s snapshot) {
	r.Signals = s.arrived
	r.Failed = int(f.failed.Load())
	r.Lost = int(f.sent - f.arrived.Load() - f.failed.Load())
	if el := s.elapsed.Seconds(); s.arrived > 0 && el > 0 {
		r.PerSec = float64(s.arrived) / el
	}
	r.CPUPerSignal, r.AllocsPerSignal = s.cpuUs, s.allocs
	r.Cores = r.CPUPerSignal * r.PerSec / 1e6
	r.P50, r.P99, r.P999 = s.p50, s.p99, s.p999
	r.Window, r.Rate = cap(f.tokens), s.rate
	r.SchedP99, r.SchedMax = s.rt.schedP99, s.rt.schedMax
	r.GCPauseP99, r.GCPauseMax, r.GCCycles = s.rt.pauseP99, s.rt.pauseMax, s.rt.gcCycles
	if f.burst {
		r.DrainMs = float64(s.elapsed) / 1e6
	}
}

// percentiles returns p50, p99 and p99.9 of ns latencies, in microseconds.
func percentiles(lat []int64) (p50, p99, p999 float64) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(lat)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s)-1) + 0.5)
		return float64(s[i]) / 1e3
	}
	return at(0.50), at(0.99), at(0.999)
}
