// Package bench measures anfed against its ceilings, side by side, in one
// process and one run, on loopback: raw NATS core pub/sub through the same
// leaf topology, anfed's layers over that same link (validated, then
// signed: measurements of what each layer costs, not modes a node has —
// see layers.go), anfed's cross-operator path as it is (validated, signed,
// durable) and its ceiling (a JetStream stream sourced by hand across the
// same link, with and without an ed25519 signature: ceiling.go), the
// ed25519 sign+verify ceiling on the same signals, anfed's
// intake against raw JetStream async publish with the same sync policy, and
// an HTTP webhook delivery of the same signals (the telecom status quo).
// Each row reports throughput, latency p50/p99/p99.9, CPU time and
// allocations per signal; the targets of the benchmark issue are checked as
// ratios measured in the same run. `anfed bench` prints it.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
)

// Row names.
const (
	RowRawNATS = "raw-nats-leaf"
	RowCross   = "anfed-cross"
	RowLossy   = "anfed-cross-lossy"
	// RowStream is telemetry in stream delivery (export.delivery:
	// stream): an.tel at op-a, checked and signed, the link, checked at
	// op-b and published to its local subscriber; stored nowhere.
	RowStream = "anfed-stream"
	// RowNoAudit is anfed-cross with the audit trail off (audit.off) at
	// both nodes: anfed-cross less it is the trail's cost per signal.
	RowNoAudit    = "anfed-cross-no-audit"
	RowSignVerify = "sign+verify"
	RowRawJS      = "raw-jetstream"
	RowIntake     = "anfed-intake"
	RowWebhook    = "webhook-http"
)

// ModestRate is the rate of a second paced row: the default per-peer
// import rate limit (peers[].import.max_rate).
const ModestRate = 1000

// Paced is the name of row paced at rate signals/s.
func Paced(row string, rate int) string { return fmt.Sprintf("%s@%d/s", row, rate) }

// RowPaced is the name of the cross path paced at rate signals/s.
func RowPaced(rate int) string { return Paced(RowCross, rate) }

// Rows are the names of a run's rows, in table order, with the paced rows
// at rate.
func Rows(rate int) []string {
	rows := []string{RowRawNATS, RowLink, RowSigned, Paced(RowSigned, rate), RowCross, RowPaced(rate)}
	if rate != ModestRate {
		rows = append(rows, RowPaced(ModestRate))
	}
	return append(rows, Burst(RowCross), RowNoAudit, RowLossy, RowStream, Paced(RowStream, rate), RowRawSourcing, RowRawSourcingSigned, Burst(RowRawSourcingSigned), RowSignVerify, RowRawJS, RowIntake, RowWebhook)
}

// Burst is the name of row's burst: Options.Burst signals published at
// once, drained.
func Burst(row string) string { return row + "-burst" }

// burst is the spec of a burst row: n signals, all unfinished at once,
// no warm-up (the probe alone, so that interest has crossed the link).
func burst(n int) spec { return spec{count: n, window: n} }

// Options configure a run.
type Options struct {
	// Duration each row is measured for (after a warm-up).
	Duration time.Duration
	// Size of each signal as the producer encodes it, in bytes.
	Size int
	// Sync is storage.sync of every node ("" is the node's default,
	// always); raw JetStream runs on the same server, so with it too.
	Sync string
	// Rate of the paced latency row, signals/s.
	Rate int
	// Window bounds the signals unfinished at once in the saturated rows.
	Window int
	// Burst is how many signals the burst rows publish at once (0: no
	// burst rows): anfed-cross and its ceiling each drain the same burst.
	Burst int
	// Rounds is how many times anfed-cross and raw-sourcing-signed are
	// measured again, alternately, on pairs running side by side (0: not):
	// the throughput and CPU targets take the median of the rounds'
	// ratios, so that a disk whose flush rate drifts between two rows
	// minutes apart does not decide them (paired.go).
	Rounds int
	// Scale adds the scaling runs (peers, conditions, payload size).
	Scale bool
	// Quick shortens the scaling runs' steps.
	Quick bool
	// Progress receives a line per step (nil: none).
	Progress io.Writer
	// CPUProfile receives a CPU profile of the row named ProfileRow
	// (nil: none).
	CPUProfile io.Writer
	// Trace receives a runtime/trace execution trace of the measured
	// part of the row named ProfileRow (nil: none).
	Trace io.Writer
	// ProfileRow names the profiled (and traced) row, one of Rows but
	// sign+verify ("": anfed-cross).
	ProfileRow string
	// Log receives the nodes' logs (default: none).
	Log zerolog.Logger
}

// Defaults of a run; Quick is what `anfed bench --quick` uses.
var (
	Defaults = Options{Duration: 5 * time.Second, Size: 1024, Rate: 5000, Window: 1024, Burst: 100_000, Rounds: 3}
	Quick    = Options{Duration: 1500 * time.Millisecond, Size: 1024, Rate: 5000, Window: 1024, Burst: 10_000, Rounds: 3, Quick: true}
)

// StageTime is one stage's time per signal (side/name: intake,
// outbound or inbound, and the stage's name).
type StageTime struct {
	Stage           string  `json:"stage"`
	MicrosPerSignal float64 `json:"us_per_signal"`
}

// Row is one measured path.
type Row struct {
	Name    string `json:"name"`
	What    string `json:"what"`
	Latency string `json:"latency"` // from what to what
	Signals int    `json:"signals"`
	Failed  int    `json:"refused,omitempty"`
	Lost    int    `json:"lost,omitempty"`
	Bytes   int    `json:"bytes,omitempty"` // encoded signal size, where it varies
	// Window is the most signals unfinished at once (windowFor).
	Window int `json:"window,omitempty"`
	// IdleCPU is the process's CPU in ms per second with the same
	// topology and no traffic (scaling runs: peers).
	IdleCPU float64 `json:"idle_cpu_ms_per_s,omitempty"`
	// Refused is what the nodes refused on the way while the row ran
	// (warm-up included), "node/reason=count" words: link retries such as
	// out-of-order show here.
	Refused string `json:"refused_on_the_way,omitempty"`

	PerSec          float64 `json:"signals_per_s"`
	P50             float64 `json:"p50_us"`
	P99             float64 `json:"p99_us"`
	P999            float64 `json:"p999_us"`
	CPUPerSignal    float64 `json:"cpu_us_per_signal"`
	AllocsPerSignal float64 `json:"allocs_per_signal"`
	// DrainMs is, for a burst row, the time from the first publish to
	// the last arrival, in milliseconds.
	DrainMs float64 `json:"drain_ms,omitempty"`
	// Cores is the CPU the process used while the row ran, in cores
	// (CPU time over wall time): well under GOMAXPROCS, the row waited
	// on something other than this process's CPU (a disk flush, a
	// timer, other processes on the machine).
	Cores float64 `json:"cores"`
	// The Go runtime's view of the measured part (runtime/metrics,
	// runtail.go), in µs: SchedP99 and SchedMax are how long goroutines
	// waited runnable before they ran (p99, and the top of the highest
	// non-empty bucket), GCPauseP99 and GCPauseMax the GC's
	// stop-the-world pauses, GCCycles the collections that ended.
	SchedP99   float64 `json:"sched_p99_us"`
	SchedMax   float64 `json:"sched_max_us"`
	GCPauseP99 float64 `json:"gc_pause_p99_us"`
	GCPauseMax float64 `json:"gc_pause_max_us"`
	GCCycles   uint64  `json:"gc_cycles"`
	// Rate is the pace of a paced row, signals/s (0: not paced).
	Rate int `json:"rate,omitempty"`
	// Stages is, for a layer row and anfed-cross, the time of each stage of the node's
	// stage lists per signal: one signal at a time, no NATS.
	Stages []StageTime `json:"stages,omitempty"`

	// Ceiling names the row this one is measured against; Ratio is this
	// row's throughput over the ceiling's (empty, 0: this is a ceiling or
	// a baseline).
	Ceiling string  `json:"ceiling,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
}

// Target is one of the benchmark issue's targets, checked on this run.
type Target struct {
	Name     string  `json:"name"`
	Want     string  `json:"want"`
	Measured float64 `json:"measured"`
	Unit     string  `json:"unit"`
	Met      bool    `json:"met"`
	Measure  bool    `json:"measured_in_run"` // false: not part of this run (--scale)
	Note     string  `json:"note,omitempty"`
}

// Machine says where the run ran.
type Machine struct {
	GoVersion  string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	// LoadBefore and LoadAfter are /proc/loadavg's 1-minute load when
	// the run started and ended: other work on the machine shows here.
	LoadBefore float64 `json:"load_before"`
	LoadAfter  float64 `json:"load_after"`
}

// loadAvg is the 1-minute load average (0 where /proc/loadavg is absent).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var l float64
	_, _ = fmt.Sscanf(string(b), "%f", &l)
	return l
}

// Report is a run's result.
type Report struct {
	Machine  Machine       `json:"machine"`
	Started  time.Time     `json:"started"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Duration time.Duration `json:"row_duration_ns"`
	Size     int           `json:"signal_bytes"`
	Sync     string        `json:"sync"`
	Window   int           `json:"window"`
	Rows     []Row         `json:"rows"`
	Paired   []Round       `json:"paired,omitempty"`
	Targets  []Target      `json:"targets"`
	Scale    *ScaleReport  `json:"scale,omitempty"`
}

// Row returns the row named name, or nil.
func (r *Report) Row(name string) *Row {
	for i := range r.Rows {
		if r.Rows[i].Name == name {
			return &r.Rows[i]
		}
	}
	return nil
}

func (o *Options) fill() {
	if o.Duration <= 0 {
		o.Duration = Defaults.Duration
	}
	if o.Size <= 0 {
		o.Size = Defaults.Size
	}
	if o.Rate <= 0 {
		o.Rate = Defaults.Rate
	}
	if o.Window <= 0 {
		o.Window = Defaults.Window
	}
	if o.Sync == "" {
		o.Sync = "always" // the node's default (config: storage.sync)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.ProfileRow == "" {
		o.ProfileRow = RowCross
	}
}

// spec is base with the CPU profile and the execution trace attached if
// row is the profiled one.
func (o *Options) spec(row string, base spec) spec {
	if row == o.ProfileRow {
		base.profile, base.trace = o.CPUProfile, o.Trace
	}
	return base
}

// CheckProfileRow says whether row can be profiled or traced: every row but
// sign+verify, which does not run through the measured flow.
func CheckProfileRow(row string, rate int) error {
	for _, r := range Rows(rate) {
		if r == row && r != RowSignVerify {
			return nil
		}
	}
	return fmt.Errorf("no row %q to profile: one of %v but %s", row, Rows(rate), RowSignVerify)
}

// warm is how long each row warms up before it is measured.
func (o *Options) warm() time.Duration { return max(o.Duration/4, 250*time.Millisecond) }

// Run measures every row, then the scaling runs if asked, and checks the
// targets. A row that fails ends the run with an error; the report holds
// the rows measured so far.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.fill()
	rep := &Report{
		Machine: Machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), LoadBefore: loadAvg()},
		Started: time.Now().UTC(), Duration: o.Duration, Size: o.Size, Sync: o.Sync, Window: o.Window,
	}
	defer func() { rep.Elapsed, rep.Machine.LoadAfter = time.Since(rep.Started), loadAvg() }()
	e, err := newEnv(o.Sync, o.Log)
	if err != nil {
		return rep, err
	}
	defer e.close()
	tpl, err := newTemplate(o.Size)
	if err != nil {
		return rep, err
	}
	rep.Size = len(tpl.body)
	say := func(format string, a ...any) { fmt.Fprintf(o.Progress, "bench: "+format+"\n", a...) }
	say("%d-byte signals, %v per row, storage.sync %s, window %d, %d CPUs", rep.Size, o.Duration, o.Sync, o.Window, runtime.NumCPU())
	sat := spec{d: o.Duration, window: o.Window, warm: o.warm()}
	paced := spec{d: o.Duration, rate: o.Rate, window: o.Window, warm: o.warm()}
	modest := paced
	modest.rate = ModestRate
	add := func(r Row, err error) error {
		if err != nil {
			return err
		}
		rep.Rows = append(rep.Rows, r)
		say("%-22s %9.0f signals/s  p50 %7.0f µs  p99 %7.0f µs  CPU %5.1f µs/signal  %5.1f allocs/signal  window %d %s%s",
			r.Name, r.PerSec, r.P50, r.P99, r.CPUPerSignal, r.AllocsPerSignal, r.Window, r.Refused, r.runtimeNote(" "))
		return nil
	}

	// 1. The ceiling: core NATS across the same leaf topology.
	say("starting the ceiling's NATS servers (op-a <-> op-b leaf link, natsconf's accounts)")
	bp, err := e.startBarePair(ctx)
	if err != nil {
		return rep, err
	}
	err = add(rawNATS(ctx, bp, tpl, o.spec(RowRawNATS, sat)))
	// 1b. anfed's layers over the same servers and link: validated
	// (unsigned), then signed, saturated and paced; no store.
	if err == nil {
		err = add(layer(ctx, e, bp, tpl, RowLink, false, o.spec(RowLink, sat)))
	}
	if err == nil {
		err = add(layer(ctx, e, bp, tpl, RowSigned, true, o.spec(RowSigned, sat)))
	}
	if err == nil {
		name := Paced(RowSigned, o.Rate)
		err = add(layer(ctx, e, bp, tpl, name, true, o.spec(name, paced)))
	}
	bp.stop()
	if err != nil {
		return rep, err
	}
	// 2. The signature ceiling.
	if err := add(signVerify(ctx, e, tpl, sat)); err != nil {
		return rep, err
	}
	// 3. The webhook baseline.
	if err := add(webhook(ctx, tpl, o.spec(RowWebhook, spec{d: o.Duration, warm: o.warm()}))); err != nil {
		return rep, err
	}
	// 4. anfed across operators, saturated and then paced.
	say("starting anfed nodes op-a and op-b, linked")
	p, err := e.startPair(ctx, 0)
	if err != nil {
		return rep, err
	}
	err = add(cross(ctx, e, p, tpl, RowCross, o.spec(RowCross, sat)))
	if err == nil {
		err = crossStages(e, p, tpl, rep.Row(RowCross))
	}
	if err == nil {
		err = add(cross(ctx, e, p, tpl, RowPaced(o.Rate), o.spec(RowPaced(o.Rate), paced)))
	}
	if err == nil && o.Rate != ModestRate {
		err = add(cross(ctx, e, p, tpl, RowPaced(ModestRate), o.spec(RowPaced(ModestRate), modest)))
	}
	if err == nil && o.Burst > 0 {
		say("%s: %d signals at once", Burst(RowCross), o.Burst)
		err = add(cross(ctx, e, p, tpl, Burst(RowCross), o.spec(Burst(RowCross), burst(o.Burst))))
	}
	if err == nil && o.Rounds > 0 {
		rep.Paired, err = runRounds(ctx, e, p, tpl, o.Rounds, sat, say)
	}
	p.stop()
	if err != nil {
		return rep, err
	}
	// 4a. The same with the audit trail off: what its records cost.
	say("starting anfed nodes op-a and op-b, linked, audit.off")
	if p, err = e.startPairEdit(ctx, 0, func(a, b *config.Config) { a.Audit.Off, b.Audit.Off = true, true }); err != nil {
		return rep, err
	}
	err = add(cross(ctx, e, p, tpl, RowNoAudit, o.spec(RowNoAudit, sat)))
	p.stop()
	if err != nil {
		return rep, err
	}
	// 4b. The same with the link lossy (export.delivery: lossy): still
	// validated, signed and stored at both ends, but sent over core NATS
	// with no export consumer, no link answers and no resend. Then
	// telemetry in stream delivery: intake's checks and signature, the
	// link fire and forget, the receiver's checks, no store at either end.
	for _, d := range []struct{ row, delivery string }{{RowLossy, config.DeliveryLossy}, {RowStream, config.DeliveryStream}} {
		say("starting anfed nodes op-a and op-b, linked, export.delivery %s", d.delivery)
		if p, err = e.startPairWith(ctx, 0, d.delivery); err != nil {
			return rep, err
		}
		err = add(cross(ctx, e, p, tpl, d.row, o.spec(d.row, sat)))
		if err == nil && d.row == RowStream {
			name := Paced(RowStream, o.Rate)
			err = add(cross(ctx, e, p, tpl, name, o.spec(name, paced)))
		}
		p.stop()
		if err != nil {
			return rep, err
		}
	}
	// 4c. The durable path's ceiling: JetStream sourcing across the
	// leaf link by hand, unsigned and signed (ceiling.go).
	if err := runCeiling(ctx, e, tpl, &o, sat, say, add); err != nil {
		return rep, err
	}
	// 5. The durable path: raw JetStream, then intake, on one node.
	say("starting anfed node op-a alone (durable path)")
	n, err := e.startSolo(ctx)
	if err != nil {
		return rep, err
	}
	err = add(rawJetStream(ctx, n, tpl, o.spec(RowRawJS, sat)))
	if err == nil {
		err = add(intake(ctx, n, tpl, o.spec(RowIntake, sat)))
	}
	n.Stop()
	if err != nil {
		return rep, err
	}
	rep.order(o.Rate)
	if o.Scale {
		sc, err := runScale(ctx, e, o, say)
		rep.Scale = sc
		if err != nil {
			rep.Targets = targets(rep, o)
			return rep, err
		}
	}
	rep.Targets = targets(rep, o)
	return rep, nil
}

// order puts the rows in table order and fills their ratios.
func (r *Report) order(rate int) {
	var rows []Row
	for _, n := range Rows(rate) {
		if x := r.Row(n); x != nil {
			rows = append(rows, *x)
		}
	}
	r.Rows = rows
	ratio := func(name, ceiling string) {
		x, c := r.Row(name), r.Row(ceiling)
		if x != nil && c != nil && c.PerSec > 0 {
			x.Ceiling, x.Ratio = ceiling, x.PerSec/c.PerSec
		}
	}
	ratio(RowLink, RowRawNATS)
	ratio(RowSigned, RowSignVerify)
	ratio(RowCross, RowRawSourcingSigned)
	ratio(Burst(RowCross), Burst(RowRawSourcingSigned))
	ratio(RowLossy, RowRawNATS)
	ratio(RowStream, RowSignVerify)
	ratio(RowIntake, RowRawJS)
}

func targets(r *Report, o Options) []Target {
	var ts []Target
	ratio := func(name, ceiling string) float64 {
		x, c := r.Row(name), r.Row(ceiling)
		if x == nil || c == nil || c.PerSec == 0 {
			return 0
		}
		return x.PerSec / c.PerSec
	}
	add := func(name, want, unit string, measured float64, met bool, note string) {
		ts = append(ts, Target{Name: name, Want: want, Measured: measured, Unit: unit, Met: met, Measure: true, Note: note})
	}
	v := ratio(RowLink, RowRawNATS)
	add("link-authenticated validated path (anfed-link) vs raw NATS across the leaf", "≥ 0.25", "ratio", v, v >= 0.25,
		"a layer, not a mode: anfed has no unsigned path (every signal is signed, DESIGN invariant 2); same servers and link as the ceiling, no store")
	v = ratio(RowSigned, RowSignVerify)
	add("signed path (anfed-signed) vs sign+verify ceiling", "≥ 0.80", "ratio", v, v >= 0.80,
		"a layer, not a mode: anfed-link plus the signature and its verification, no store")
	v = ratio(RowIntake, RowRawJS)
	add("durable path (intake) vs raw JetStream, sync "+o.Sync, "≥ 0.50", "ratio", v, v >= 0.50, "")
	for _, p := range []struct{ row, what string }{
		{RowSigned, "signed path (anfed-signed, no store)"},
		{RowCross, "durable path (anfed-cross)"},
	} {
		x := r.Row(Paced(p.row, o.Rate))
		if x == nil {
			continue
		}
		sustained := x.PerSec >= 0.95*float64(o.Rate)
		note := fmt.Sprintf("sustained %.0f signals/s", x.PerSec)
		if !sustained {
			note += ": the rate was not sustained"
		}
		add(fmt.Sprintf("cross-operator p99 at %d signals/s, %s", o.Rate, p.what), "≤ 1000", "µs", x.P99, sustained && x.P99 <= 1000, note)
	}
	// The webhook delivers across a boundary: compared with anfed's
	// cross-operator rows (not intake, which stops at one node).
	best := ""
	for _, n := range []string{RowLink, RowSigned, RowCross, RowLossy, RowStream} {
		if x := r.Row(n); x != nil && (best == "" || x.PerSec > r.Row(best).PerSec) {
			best = n
		}
	}
	if best != "" {
		v = ratio(best, RowWebhook)
		add("best anfed path vs webhook baseline", "≥ 10", "×", v, v >= 10, "the fastest cross-operator row: "+best)
	}
	v = ratio(RowCross, RowWebhook)
	add("durable path (anfed-cross) vs webhook baseline", "≥ 10", "×", v, v >= 10, "")
	ts = append(ts, ceilingTargets(r, o)...)
	v = ratio(RowStream, RowSignVerify)
	add("stream mode (anfed-stream) vs sign+verify ceiling", "≥ 0.80", "ratio", v, v >= 0.80,
		"telemetry (export.delivery: stream): signed at op-a, verified and validated at op-b, no store at either end")
	v = ratio(RowStream, RowWebhook)
	add("stream mode (anfed-stream, signing) vs webhook baseline", "≥ 1.0", "×", v, v >= 1.0, "")
	if x := r.Row(Paced(RowStream, o.Rate)); x != nil {
		sustained := x.PerSec >= 0.95*float64(o.Rate)
		note := fmt.Sprintf("sustained %.0f signals/s", x.PerSec)
		if !sustained {
			note += ": the rate was not sustained"
		}
		add(fmt.Sprintf("stream mode (anfed-stream) p99 at %d signals/s", o.Rate), "≤ 1000", "µs", x.P99, sustained && x.P99 <= 1000, note)
	}
	peers := Target{Name: "per-signal CPU with peers it is not exported to (max peers / 1 peer)", Want: "≤ 1.20 (flat)", Unit: "ratio", Note: "--scale"}
	conds := Target{Name: "memory per active condition (largest table)", Want: "≤ 512", Unit: "bytes", Note: "--scale"}
	if sc := r.Scale; sc != nil {
		if len(sc.Peers) > 1 {
			first, last := sc.Peers[0], sc.Peers[len(sc.Peers)-1]
			if first.CPUPerSignal > 0 {
				peers.Measured = last.CPUPerSignal / first.CPUPerSignal
				peers.Met, peers.Measure = peers.Measured <= 1.20, true
				peers.Note = fmt.Sprintf("%s: %.1f µs/signal; %s: %.1f µs/signal", first.Name, first.CPUPerSignal, last.Name, last.CPUPerSignal)
			}
		}
		if len(sc.Conditions) > 0 {
			last := sc.Conditions[len(sc.Conditions)-1]
			conds.Measured, conds.Met, conds.Measure = last.BytesPerCondition, last.BytesPerCondition <= 512, true
			conds.Note = fmt.Sprintf("%d conditions", last.N)
		}
	}
	return append(ts, peers, conds)
}
