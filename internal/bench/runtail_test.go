package bench

import (
	"math"
	"runtime/metrics"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The runtime's tail of a row is the difference of two cumulative
// histograms: what was counted before the row does not count, the p99
// is the top of the bucket the 99th percentile falls in, the max the top
// of the highest bucket counted in the row.
func TestRuntimeTailHistogram(t *testing.T) {
	buckets := []float64{math.Inf(-1), 0, 10e-6, 100e-6, 1e-3, 10e-3, math.Inf(1)}
	before := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{0, 500, 100, 0, 0, 7}}
	// In the row: 980 under 10 µs, 15 in [10, 100) µs, 4 in [100 µs,
	// 1 ms), 1 in [1, 10) ms; none above 10 ms (the 7 there are older).
	after := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{0, 1480, 115, 4, 1, 7}}
	d := histDiff(before, after)
	require.NotNil(t, d)
	assert.Equal(t, []uint64{0, 980, 15, 4, 1, 0}, d.Counts)
	assert.InDelta(t, 100e-6, histQuantile(d, 0.99), 1e-12, "the 990th of 1,000 is in [10, 100) µs")
	assert.InDelta(t, 10e-6, histQuantile(d, 0.50), 1e-12)
	assert.InDelta(t, 1e-3, histQuantile(d, 0.999), 1e-12, "the 999th is in [100 µs, 1 ms)")
	assert.InDelta(t, 10e-3, histMax(d), 1e-12, "the one in [1, 10) ms")
	assert.InDelta(t, 10e-3, histMax(after), 1e-12, "not in the difference: the older ones above 10 ms")

	// Unbounded above: the bucket's lower bound, not +Inf.
	over := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{0, 0, 0, 0, 0, 3}}
	assert.InDelta(t, 10e-3, histMax(over), 1e-12)
	assert.InDelta(t, 10e-3, histQuantile(over, 0.99), 1e-12)

	empty := histDiff(before, before)
	assert.Zero(t, histQuantile(empty, 0.99))
	assert.Zero(t, histMax(empty))
	assert.Nil(t, histDiff(before, &metrics.Float64Histogram{Buckets: buckets[:3], Counts: []uint64{1, 2}}), "different buckets")

	// Through since, in µs, with the GC cycles counted in between.
	tail := runtimeSample{sched: after, pause: after, cycles: 9}.since(runtimeSample{sched: before, pause: before, cycles: 4})
	assert.InDelta(t, 100, tail.schedP99, 1e-6)
	assert.InDelta(t, 10_000, tail.pauseMax, 1e-6)
	assert.EqualValues(t, 5, tail.gcCycles)

	// The runtime has the metrics the row reads, in this Go.
	s := readRuntime()
	assert.NotNil(t, s.sched, metricSched)
	assert.NotNil(t, s.pause, gcPauseMetric)
}
