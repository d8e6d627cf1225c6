package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/bench"
)

// `anfed bench --quick --json` with short rows measures every path, each
// with positive numbers, nothing refused or lost, the ratios filled in,
// and every target of the issue checked (or said to need --scale).
func TestBenchQuickReportsEveryRow(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every benchmark row for 0.3 s")
	}
	code, stdout, stderr := runCmd("bench", "--quick", "--json", "--duration", "300ms")
	require.Equal(t, exitOK, code, "stderr:\n%s", stderr)
	assert.Contains(t, stderr, "bench: "+bench.RowCross, "progress goes to stderr")

	var rep bench.Report
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	want := []string{bench.RowRawNATS, bench.RowCross, bench.RowPaced(bench.Quick.Rate), bench.RowPaced(bench.ModestRate), bench.RowLossy, bench.RowSignVerify, bench.RowRawJS, bench.RowIntake, bench.RowWebhook}
	var got []string
	for _, r := range rep.Rows {
		got = append(got, r.Name)
	}
	require.Equal(t, want, got)
	for _, r := range rep.Rows {
		assert.Positive(t, r.Signals, r.Name)
		assert.Positive(t, r.PerSec, r.Name)
		assert.Positive(t, r.P50, r.Name)
		assert.GreaterOrEqual(t, r.P99, r.P50, r.Name)
		assert.GreaterOrEqual(t, r.P999, r.P99, r.Name)
		assert.Positive(t, r.CPUPerSignal, r.Name)
		assert.Positive(t, r.AllocsPerSignal, r.Name)
		assert.Positive(t, r.Cores, r.Name)
		assert.Zero(t, r.Lost, r.Name)
		assert.Zero(t, r.Failed, r.Name)
	}
	assert.Equal(t, bench.RowRawNATS, rep.Row(bench.RowCross).Ceiling)
	assert.Positive(t, rep.Row(bench.RowCross).Ratio)
	assert.Equal(t, bench.RowRawJS, rep.Row(bench.RowIntake).Ceiling)
	assert.Positive(t, rep.Row(bench.RowIntake).Ratio)
	assert.Equal(t, 1024, rep.Size)

	require.Len(t, rep.Targets, 7)
	for _, tg := range rep.Targets[:5] {
		assert.True(t, tg.Measure, tg.Name)
		assert.Positive(t, tg.Measured, tg.Name)
	}
	for _, tg := range rep.Targets[5:] {
		assert.False(t, tg.Measure, "%s needs --scale", tg.Name)
	}

	// The table names every row and every target.
	var table strings.Builder
	require.NoError(t, rep.WriteTable(&table))
	for _, n := range want {
		assert.Contains(t, table.String(), n)
	}
	for _, tg := range rep.Targets {
		assert.Contains(t, table.String(), tg.Name)
	}
}

func TestBenchRefusesBadFlags(t *testing.T) {
	code, _, stderr := runCmd("bench", "extra")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "unexpected argument")
	code, _, _ = runCmd("bench", "--duration", "soon")
	assert.Equal(t, exitUsage, code)
}
