package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteTable prints the report for people: the rows, the targets, and the
// scaling runs if any.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "anfed bench: %d-byte signals, %v per row, storage.sync %s, %s %s/%s, %d CPUs (GOMAXPROCS %d), load average %.1f before, %.1f after\n\n",
		r.Size, r.Duration, r.Sync, r.Machine.GoVersion, r.Machine.OS, r.Machine.Arch, r.Machine.CPUs, r.Machine.GOMAXPROCS, r.Machine.LoadBefore, r.Machine.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "path\tsignals\tsignals/s\tp50 µs\tp99 µs\tp99.9 µs\tCPU µs/signal\tcores\tallocs/signal\tvs ceiling\tlatency\t\n"
	writeRows(tw, header, r.Rows)
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Row(RowLink) != nil || r.Row(RowSigned) != nil {
		fmt.Fprintf(w, "\n%s and %s are layers of the node's path, not modes a node has: every signal is signed (DESIGN invariant 2)\n"+
			"and stored before it crosses; they run the node's checks, policies and signature on the ceiling's servers and link, with no store.\n",
			RowLink, RowSigned)
		for _, x := range r.Rows {
			if len(x.Stages) == 0 {
				continue
			}
			fmt.Fprintf(w, "stages of %s, µs per signal (one at a time, no NATS):", x.Name)
			for _, st := range x.Stages {
				fmt.Fprintf(w, " %s %.2f", st.Stage, st.MicrosPerSignal)
			}
			fmt.Fprintln(w)
		}
	}
	if x := r.Row(RowCross); x != nil && len(x.Stages) > 0 {
		fmt.Fprintln(w, x.stageBudget(r.Row(RowRawSourcingSigned)))
	}
	for _, p := range r.Paired {
		fmt.Fprintf(w, "paired round %d (%s first): %s %.0f signals/s %.1f µs/signal, %s %.0f signals/s %.1f µs/signal: %.3f, CPU %.2f×\n",
			p.Round, p.First, RowCross, p.Cross, p.CrossCPU, RowRawSourcingSigned, p.Ceiling, p.CeilingCPU, p.Ratio, p.CPURatio)
	}
	for _, x := range r.Rows {
		if n := x.runtimeNote(""); n != "" {
			fmt.Fprintf(w, "runtime during %s (measured part): %s\n", x.Name, n)
		}
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "target\twant\tmeasured\tmet\tnote\n")
	for _, t := range r.Targets {
		m, met := fmt.Sprintf("%s %s", num(t.Measured), t.Unit), yes(t.Met)
		if !t.Measure {
			m, met = "not measured", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.Want, m, met, t.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if sc := r.Scale; sc != nil {
		fmt.Fprintln(w, "\nscaling: peers (signals exported to 1 peer; the others' policy excludes them)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		writeRows(tw, header, sc.Peers)
		_ = tw.Flush()
		for _, x := range sc.Peers {
			fmt.Fprintf(w, "  %s: idle (no traffic) CPU %.1f ms/s\n", x.Name, x.IdleCPU)
		}
		fmt.Fprintln(w, "\nscaling: payload size")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		writeRows(tw, header, sc.Payload)
		_ = tw.Flush()
		fmt.Fprintln(w, "\nscaling: active conditions (conditions.Table, heap after GC)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "conditions\theap bytes\tbytes/condition\t\n")
		for _, c := range sc.Conditions {
			fmt.Fprintf(tw, "%d\t%d\t%.0f\t\n", c.N, c.HeapBytes, c.BytesPerCondition)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// runtimeNote is, for a paced row, what the Go runtime saw while it was
// measured (runtail.go), after prefix; "" for other rows.
func (x *Row) runtimeNote(prefix string) string {
	if x.Rate == 0 {
		return ""
	}
	return fmt.Sprintf("%srunnable-wait p99 %.0f µs max %.0f µs, GC pause p99 %.0f µs max %.0f µs, %d GC cycles",
		prefix, x.SchedP99, x.SchedMax, x.GCPauseP99, x.GCPauseMax, x.GCCycles)
}

func writeRows(tw io.Writer, header string, rows []Row) {
	fmt.Fprint(tw, header)
	for _, x := range rows {
		vs := "-"
		if x.Ceiling != "" {
			vs = fmt.Sprintf("%.3f of %s", x.Ratio, strings.Fields(x.Ceiling)[0])
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.2f\t%.1f\t%s\t%s\t\n",
			x.Name, x.Signals, x.PerSec, x.P50, x.P99, x.P999, x.CPUPerSignal, x.Cores, x.AllocsPerSignal, vs, x.Latency)
	}
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "NO"
}

// stageBudget says, for the durable row, how much of its CPU per signal
// its stages are (timed one at a time, without NATS) and how much is not
// in a stage — NATS deliveries, the two store writes and their flushes,
// the condition feeds, answers and acks, the runtime — beside the
// ceiling's CPU per signal if there is one.
func (x *Row) stageBudget(ceiling *Row) string {
	var in float64
	for _, st := range x.Stages {
		in += st.MicrosPerSignal
	}
	s := fmt.Sprintf("%s per signal: %.1f µs CPU, of which its stages %.1f µs (sign and verify among them) and not a stage %.1f µs "+
		"(NATS deliveries, the two store writes, the condition feeds, answers and acks, the runtime)",
		x.Name, x.CPUPerSignal, in, x.CPUPerSignal-in)
	if ceiling != nil {
		s += fmt.Sprintf("; %s: %.1f µs CPU in all", ceiling.Name, ceiling.CPUPerSignal)
	}
	return s
}
