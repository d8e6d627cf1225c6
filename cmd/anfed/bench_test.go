package main

import (
	"encoding/json"
	"os"
	"path/filepath"
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
	prof, tr := filepath.Join(t.TempDir(), "link.pprof"), filepath.Join(t.TempDir(), "link.trace")
	code, stdout, stderr := runCmd("bench", "--quick", "--json", "--duration", "300ms", "--burst", "2000", "--cpuprofile", prof, "--trace", tr, "--profile-row", bench.RowLink)
	require.Equal(t, exitOK, code, "stderr:\n%s", stderr)
	assert.Contains(t, stderr, "bench: "+bench.RowCross, "progress goes to stderr")

	var rep bench.Report
	require.NoError(t, json.Unmarshal([]byte(stdout), &rep), stdout)
	want := []string{bench.RowRawNATS, bench.RowLink, bench.RowSigned, bench.Paced(bench.RowSigned, bench.Quick.Rate),
		bench.RowCross, bench.RowPaced(bench.Quick.Rate), bench.RowPaced(bench.ModestRate), bench.Burst(bench.RowCross), bench.RowNoAudit, bench.RowLossy,
		bench.RowStream, bench.Paced(bench.RowStream, bench.Quick.Rate), bench.RowRawSourcing, bench.RowRawSourcingSigned, bench.Burst(bench.RowRawSourcingSigned), bench.RowSignVerify, bench.RowRawJS, bench.RowIntake, bench.RowWebhook}
	require.Equal(t, want, bench.Rows(bench.Quick.Rate))
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
		if strings.Contains(r.Name, "@") {
			// A paced row says what the runtime saw: goroutines
			// waited runnable at least once in the measured part.
			assert.Positive(t, r.Rate, r.Name)
			assert.Positive(t, r.SchedMax, r.Name)
			assert.GreaterOrEqual(t, r.SchedMax, r.SchedP99, r.Name)
			assert.GreaterOrEqual(t, r.GCPauseMax, r.GCPauseP99, r.Name)
		} else {
			assert.Zero(t, r.Rate, r.Name)
		}
	}
	assert.Equal(t, bench.RowRawNATS, rep.Row(bench.RowLink).Ceiling)
	assert.Positive(t, rep.Row(bench.RowLink).Ratio)
	assert.Equal(t, bench.RowSignVerify, rep.Row(bench.RowSigned).Ceiling)
	assert.Positive(t, rep.Row(bench.RowSigned).Ratio)
	for _, n := range []string{bench.RowLink, bench.RowSigned, bench.Paced(bench.RowSigned, bench.Quick.Rate)} {
		assert.Contains(t, rep.Row(n).What, "not a mode", "a layer says it is not a mode")
	}
	assert.Equal(t, bench.RowRawSourcingSigned, rep.Row(bench.RowCross).Ceiling, "the durable path's honest ceiling")
	assert.Positive(t, rep.Row(bench.RowCross).Ratio)
	assert.Equal(t, bench.RowRawJS, rep.Row(bench.RowIntake).Ceiling)
	assert.Positive(t, rep.Row(bench.RowIntake).Ratio)
	assert.Equal(t, 1024, rep.Size)
	b, err := os.ReadFile(prof)
	require.NoError(t, err)
	require.Greater(t, len(b), 2)
	assert.Equal(t, []byte{0x1f, 0x8b}, b[:2], "a pprof profile (gzip)")
	b, err = os.ReadFile(tr)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(b), "go 1."), "a runtime/trace execution trace: %q", b[:min(len(b), 16)])
	assert.Greater(t, len(b), 1000, "the trace holds the row's events")

	require.Len(t, rep.Targets, 17)
	for _, tg := range rep.Targets[:15] {
		assert.True(t, tg.Measure, tg.Name)
		assert.Positive(t, tg.Measured, tg.Name)
	}
	assert.Contains(t, rep.Targets[0].Name, bench.RowLink)
	assert.Contains(t, rep.Targets[1].Name, bench.RowSigned)
	assert.Contains(t, rep.Targets[3].Name, bench.RowSigned)
	assert.Contains(t, rep.Targets[4].Name, bench.RowCross)
	assert.Contains(t, rep.Targets[5].Note, "anfed-", "names the row it took")
	for i, n := range []string{"vs " + bench.RowRawSourcingSigned, "CPU per signal", "allocations per signal"} {
		assert.Contains(t, rep.Targets[7+i].Name, n)
		assert.Contains(t, rep.Targets[7+i].Name, "sync always", "the ceiling's ratios name their sync")
	}
	assert.Contains(t, rep.Targets[10].Name, "burst of 2000 signals")
	assert.Equal(t, bench.Burst(bench.RowRawSourcingSigned), rep.Row(bench.Burst(bench.RowCross)).Ceiling)
	assert.Positive(t, rep.Row(bench.Burst(bench.RowCross)).DrainMs)
	assert.Contains(t, rep.Targets[11].Name, "sustains 5000 signals/s, sync always")
	assert.Contains(t, rep.Targets[12].Name, bench.RowStream)
	assert.Equal(t, bench.RowSignVerify, rep.Row(bench.RowStream).Ceiling)
	assert.Positive(t, rep.Row(bench.RowStream).Ratio)
	assert.Contains(t, rep.Targets[13].Name, "stream mode (anfed-stream, signing) vs webhook")
	assert.Contains(t, rep.Targets[14].Name, "stream mode (anfed-stream) p99 at 5000 signals/s")
	for _, tg := range rep.Targets[15:] {
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
	assert.Contains(t, table.String(), "not modes a node has", "the table says what the layer rows are")
}

func TestBenchRefusesBadFlags(t *testing.T) {
	code, _, stderr := runCmd("bench", "extra")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "unexpected argument")
	code, _, _ = runCmd("bench", "--duration", "soon")
	assert.Equal(t, exitUsage, code)
	code, _, stderr = runCmd("bench", "--profile-row", bench.RowSignVerify)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "no row")
}
