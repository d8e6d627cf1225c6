package bench

import (
	"math"
	"runtime/metrics"
)

// The Go runtime's view of a row's tail (runtime/metrics, read before
// and after the measured part): how long goroutines waited runnable
// before they ran, how long the world was stopped for the collector, and
// how many collections there were.
const (
	metricSched    = "/sched/latencies:seconds"
	metricGCPause  = "/sched/pauses/total/gc:seconds"
	metricGCPause0 = "/gc/pauses:seconds" // before Go 1.22
	metricGCCycles = "/gc/cycles/total:gc-cycles"
)

// gcPauseMetric is the GC stop-the-world pause histogram this Go has.
var gcPauseMetric = func() string {
	for _, d := range metrics.All() {
		if d.Name == metricGCPause {
			return metricGCPause
		}
	}
	return metricGCPause0
}()

// runtimeSample is one read of the runtime's tail metrics.
type runtimeSample struct {
	sched, pause *metrics.Float64Histogram
	cycles       uint64
}

func readRuntime() runtimeSample {
	s := []metrics.Sample{{Name: metricSched}, {Name: gcPauseMetric}, {Name: metricGCCycles}}
	metrics.Read(s)
	var r runtimeSample
	if s[0].Value.Kind() == metrics.KindFloat64Histogram {
		r.sched = s[0].Value.Float64Histogram()
	}
	if s[1].Value.Kind() == metrics.KindFloat64Histogram {
		r.pause = s[1].Value.Float64Histogram()
	}
	if s[2].Value.Kind() == metrics.KindUint64 {
		r.cycles = s[2].Value.Uint64()
	}
	return r
}

// runtimeTail is what the runtime saw between two samples, in µs.
type runtimeTail struct {
	schedP99, schedMax float64
	pauseP99, pauseMax float64
	gcCycles           uint64
}

// since is the tail from s0 to s.
func (s runtimeSample) since(s0 runtimeSample) runtimeTail {
	var t runtimeTail
	if d := histDiff(s0.sched, s.sched); d != nil {
		t.schedP99, t.schedMax = histQuantile(d, 0.99)*1e6, histMax(d)*1e6
	}
	if d := histDiff(s0.pause, s.pause); d != nil {
		t.pauseP99, t.pauseMax = histQuantile(d, 0.99)*1e6, histMax(d)*1e6
	}
	t.gcCycles = s.cycles - s0.cycles
	return t
}

// histDiff is the histogram of what b counted since a (both cumulative,
// same buckets); nil if either is missing or their buckets differ.
func histDiff(a, b *metrics.Float64Histogram) *metrics.Float64Histogram {
	if a == nil || b == nil || len(a.Counts) != len(b.Counts) || len(a.Buckets) != len(b.Buckets) {
		return nil
	}
	d := &metrics.Float64Histogram{Counts: make([]uint64, len(b.Counts)), Buckets: b.Buckets}
	for i := range b.Counts {
		if b.Counts[i] > a.Counts[i] {
			d.Counts[i] = b.Counts[i] - a.Counts[i]
		}
	}
	return d
}

// histQuantile is the upper bound of the bucket holding the q quantile
// (its lower bound if the bucket is unbounded above); 0 if h is empty.
// Bucket i holds values in [Buckets[i], Buckets[i+1]).
func histQuantile(h *metrics.Float64Histogram, q float64) float64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank == 0 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			return bucketTop(h, i)
		}
	}
	return bucketTop(h, len(h.Counts)-1)
}

// histMax is the upper bound of the highest non-empty bucket (as
// histQuantile); 0 if h is empty.
func histMax(h *metrics.Float64Histogram) float64 {
	for i := len(h.Counts) - 1; i >= 0; i-- {
		if h.Counts[i] > 0 {
			return bucketTop(h, i)
		}
	}
	return 0
}

func bucketTop(h *metrics.Float64Histogram, i int) float64 {
	if top := h.Buckets[i+1]; !math.IsInf(top, 1) {
		return top
	}
	return h.Buckets[i]
}
