package bench

import (
	"context"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The durable ceiling's rows carry every signal from op-a's stream across
// the real leaf link into op-b's stream and to its subscriber, and a
// signature that does not verify at op-b fails the signed row instead of
// giving it a number.
func TestCeilingRows(t *testing.T) {
	ctx := context.Background()
	e, tpl := testEnv(t)
	bp, err := e.startSourcingPair(ctx)
	require.NoError(t, err)
	defer bp.stop()
	keys, err := newSourcingKeys()
	require.NoError(t, err)
	sp := spec{count: 300, window: 64}

	r, err := rawSourcing(ctx, bp, tpl, RowRawSourcing, nil, sp)
	require.NoError(t, err)
	assert.Equal(t, 300, r.Signals)
	assert.Positive(t, r.PerSec)
	assert.Positive(t, r.CPUPerSignal)
	r, err = rawSourcing(ctx, bp, tpl, RowRawSourcingSigned, &keys, sp)
	require.NoError(t, err)
	assert.Equal(t, 300, r.Signals)
	assert.Positive(t, r.PerSec)

	t.Run("bad signature", func(t *testing.T) {
		other, err := newSourcingKeys()
		require.NoError(t, err)
		wrong := sourcingKeys{priv: keys.priv, pub: other.pub} // op-b pins another key
		_, err = rawSourcing(ctx, bp, tpl, RowRawSourcingSigned, &wrong, sp)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "op-b: bad signature")
	})
}

// testEnv is an env with sync 2m (removed at cleanup) and the 1 KB
// template.
func testEnv(t *testing.T) (*env, *template) {
	t.Helper()
	e, err := newEnv("2m", zerolog.Nop())
	require.NoError(t, err)
	t.Cleanup(e.close)
	tpl, err := newTemplate(1024)
	require.NoError(t, err)
	return e, tpl
}

// testPair is testEnv and an anfed pair started on it (stopped at
// cleanup).
func testPair(t *testing.T) (*env, *template, *pair) {
	t.Helper()
	e, tpl := testEnv(t)
	p, err := e.startPair(context.Background(), 0)
	require.NoError(t, err)
	t.Cleanup(p.stop)
	return e, tpl, p
}

// The ceiling's targets divide anfed-cross by raw-sourcing-signed of the
// same report.
func TestCeilingTargets(t *testing.T) {
	rep := &Report{Rows: []Row{
		{Name: RowCross, PerSec: 1600, CPUPerSignal: 600, AllocsPerSignal: 480},
		{Name: RowRawSourcingSigned, PerSec: 2000, CPUPerSignal: 300, AllocsPerSignal: 60},
	}}
	ts := ceilingTargets(rep, Options{Sync: "always"})
	require.Len(t, ts, 4)
	assert.InDelta(t, 0.8, ts[0].Measured, 1e-9)
	assert.True(t, ts[0].Met)
	assert.InDelta(t, 2.0, ts[1].Measured, 1e-9)
	assert.False(t, ts[1].Met)
	assert.InDelta(t, 480, ts[2].Measured, 1e-9)
	assert.False(t, ts[2].Met)
	assert.Contains(t, ts[0].Name, "sync always")
	assert.InDelta(t, 1600, ts[3].Measured, 1e-9, "sustained: the saturated row")
	assert.False(t, ts[3].Met)

	// With a sync interval, the p99 of the row paced at the rate; and the
	// burst rows' drain times.
	rep.Rows = append(rep.Rows,
		Row{Name: Paced(RowCross, 5000), PerSec: 4990, P99: 4200},
		Row{Name: Burst(RowCross), Signals: 1000, DrainMs: 1100},
		Row{Name: Burst(RowRawSourcingSigned), Signals: 1000, DrainMs: 1000})
	ts = ceilingTargets(rep, Options{Sync: "2m", Rate: 5000})
	require.Len(t, ts, 5)
	assert.Contains(t, ts[3].Name, "burst of 1000 signals")
	assert.InDelta(t, 1.1, ts[3].Measured, 1e-9)
	assert.True(t, ts[3].Met)
	assert.Contains(t, ts[4].Name, "p99 at 5000 signals/s, sync 2m")
	assert.InDelta(t, 4200, ts[4].Measured, 1e-9)
	assert.True(t, ts[4].Met)
	rep.Rows[2].PerSec = 3000
	assert.False(t, ceilingTargets(rep, Options{Sync: "2m", Rate: 5000})[4].Met, "a rate not sustained misses the target")
	assert.Empty(t, ceilingTargets(&Report{Rows: rep.Rows[:1]}, Options{}), "no ceiling row, no target")
}

// With paired rounds, the throughput and CPU targets take the median of
// the rounds' ratios, not the table's rows measured minutes apart.
func TestCeilingTargetsPaired(t *testing.T) {
	rep := &Report{Rows: []Row{
		{Name: RowCross, PerSec: 1000, CPUPerSignal: 600},
		{Name: RowRawSourcingSigned, PerSec: 2000, CPUPerSignal: 300},
	}, Paired: []Round{
		{Cross: 1900, Ceiling: 2000, Ratio: 0.95, CPURatio: 1.2},
		{Cross: 700, Ceiling: 1000, Ratio: 0.70, CPURatio: 1.6},
		{Cross: 1700, Ceiling: 2000, Ratio: 0.85, CPURatio: 1.4},
	}}
	ts := ceilingTargets(rep, Options{Sync: "always"})
	assert.InDelta(t, 0.85, ts[0].Measured, 1e-9, "the median round, not the rows' 0.5")
	assert.True(t, ts[0].Met)
	assert.Contains(t, ts[0].Note, "median of 3 paired rounds (1900÷2000, 700÷1000, 1700÷2000 signals/s); the table's rows: 0.500")
	assert.InDelta(t, 1.4, ts[1].Measured, 1e-9)
	assert.True(t, ts[1].Met)
	rep.Paired = rep.Paired[:2]
	assert.InDelta(t, 0.825, ceilingTargets(rep, Options{Sync: "always"})[0].Measured, 1e-9, "an even count: the mean of the middle two")
}

// The rounds alternate which side goes first and measure both on the
// running pairs.
func TestRunRounds(t *testing.T) {
	e, tpl, p := testPair(t)
	rs, err := runRounds(context.Background(), e, p, tpl, 2, spec{count: 200, window: 64}, func(string, ...any) {})
	require.NoError(t, err)
	require.Len(t, rs, 2)
	assert.Equal(t, RowRawSourcingSigned, rs[0].First)
	assert.Equal(t, RowCross, rs[1].First)
	for _, r := range rs {
		assert.Positive(t, r.Cross)
		assert.Positive(t, r.Ceiling)
		assert.InDelta(t, r.Cross/r.Ceiling, r.Ratio, 1e-9)
		assert.InDelta(t, r.CrossCPU/r.CeilingCPU, r.CPURatio, 1e-9)
	}
}
