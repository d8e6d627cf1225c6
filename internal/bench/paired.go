package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Round is one interleaved measurement of anfed-cross and its ceiling,
// raw-sourcing-signed, on pairs that run side by side: the two rows of a
// round are seconds apart, where the table's rows are minutes apart, and
// with storage.sync always both are bound by the disk's flush rate,
// which drifts (on the 2-core CI machines, 2× within minutes).
type Round struct {
	Round int `json:"round"`
	// First is the row measured first: the rounds alternate, so a drift
	// in one direction favours each side as often.
	First      string  `json:"first"`
	Cross      float64 `json:"cross_per_s"`
	Ceiling    float64 `json:"ceiling_per_s"`
	CrossCPU   float64 `json:"cross_cpu_us"`
	CeilingCPU float64 `json:"ceiling_cpu_us"`
	Ratio      float64 `json:"ratio"`     // Cross ÷ Ceiling
	CPURatio   float64 `json:"cpu_ratio"` // CrossCPU ÷ CeilingCPU
}

// runRounds measures n rounds on the running anfed pair p and a sourcing
// pair of its own, started here and stopped at the end.
func runRounds(ctx context.Context, e *env, p *pair, tpl *template, n int, sat spec, say func(string, ...any)) ([]Round, error) {
	say("paired rounds: %s and %s alternately, %d rounds (the sourcing pair runs beside the anfed pair)", RowCross, RowRawSourcingSigned, n)
	bp, err := e.startSourcingPair(ctx)
	if err != nil {
		return nil, err
	}
	defer bp.stop()
	keys, err := newSourcingKeys()
	if err != nil {
		return nil, err
	}
	sat.profile, sat.trace = nil, nil
	var rounds []Round
	for i := range n {
		var x, c Row
		measure := []func() error{
			func() (err error) { c, err = rawSourcing(ctx, bp, tpl, RowRawSourcingSigned, &keys, sat); return err },
			func() (err error) { x, err = cross(ctx, e, p, tpl, RowCross, sat); return err },
		}
		first := RowRawSourcingSigned
		if i%2 == 1 {
			slices.Reverse(measure)
			first = RowCross
		}
		for _, m := range measure {
			if err := m(); err != nil {
				return rounds, fmt.Errorf("paired round %d: %w", i+1, err)
			}
		}
		r := Round{Round: i + 1, First: first, Cross: x.PerSec, Ceiling: c.PerSec, CrossCPU: x.CPUPerSignal, CeilingCPU: c.CPUPerSignal}
		if c.PerSec > 0 {
			r.Ratio = x.PerSec / c.PerSec
		}
		if c.CPUPerSignal > 0 {
			r.CPURatio = x.CPUPerSignal / c.CPUPerSignal
		}
		say("paired round %d: %s %.0f signals/s %.1f µs/signal, %s %.0f signals/s %.1f µs/signal: %.3f, CPU %.2f×",
			r.Round, RowCross, r.Cross, r.CrossCPU, RowRawSourcingSigned, r.Ceiling, r.CeilingCPU, r.Ratio, r.CPURatio)
		rounds = append(rounds, r)
	}
	return rounds, nil
}

// pairedMedians are the medians of the rounds' throughput and CPU ratios,
// and a note listing each round's; ok is false without rounds.
func pairedMedians(rs []Round) (ratio, cpu float64, note string, ok bool) {
	if len(rs) == 0 {
		return 0, 0, "", false
	}
	var ratios, cpus []float64
	var each []string
	for _, r := range rs {
		ratios, cpus = append(ratios, r.Ratio), append(cpus, r.CPURatio)
		each = append(each, fmt.Sprintf("%.0f÷%.0f", r.Cross, r.Ceiling))
	}
	return median(ratios), median(cpus), fmt.Sprintf("median of %d paired rounds (%s signals/s)", len(rs), strings.Join(each, ", ")), true
}

// median of v (v is sorted in place).
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}
