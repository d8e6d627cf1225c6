package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/anfed/anfed/internal/bench"
)

// runBench is `anfed bench`: anfed against its ceilings, side by side, on
// loopback in this process (see docs/benchmarks.md).
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("bench", stderr)
	quick := fs.Bool("quick", false, "short rows (the whole run in about 30 s on 2 cores), as CI runs it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dur := fs.Duration("duration", 0, "how long each row is measured (default 5s, 1.5s with --quick)")
	size := fs.Int("size", bench.Defaults.Size, "bytes per signal, as the producer encodes it")
	syncPolicy := fs.String("sync", "always", "storage.sync of the nodes and of raw JetStream: always, or an interval such as 2m")
	rate := fs.Int("rate", bench.Defaults.Rate, "signals/s of the paced latency row")
	window := fs.Int("window", bench.Defaults.Window, "signals unfinished at once in the saturated rows")
	burst := fs.Int("burst", -1, "signals the burst rows publish at once (default 100000, 10000 with --quick; 0: no burst rows)")
	rounds := fs.Int("rounds", bench.Defaults.Rounds, "paired rounds of anfed-cross and raw-sourcing-signed measured alternately (0: none); the throughput and CPU targets take their median")
	scale := fs.Bool("scale", false, "add the scaling runs: peers 1→64, active conditions 1k→1M, payload 256 B (asked; the smallest valid signal, 505 B, is sent) →16 KB")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of one row (--profile-row) to this file")
	traceFile := fs.String("trace", "", "write a runtime/trace execution trace of the measured part of one row (--profile-row) to this file; read it with go tool trace")
	profileRow := fs.String("profile-row", bench.RowCross, "the row --cpuprofile and --trace take, e.g. "+bench.RowLink+", "+bench.RowSigned+" or "+bench.Paced(bench.RowStream, bench.Defaults.Rate))
	lf := addLogFlags(fs, "error")
	*lf.format = "console"
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "anfed bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "anfed bench:", err)
		return exitUsage
	}
	o := bench.Defaults
	if *quick {
		o = bench.Quick
	}
	if *dur > 0 {
		o.Duration = *dur
	}
	o.Size, o.Sync, o.Rate, o.Window, o.Scale = *size, *syncPolicy, *rate, *window, *scale
	if *burst >= 0 {
		o.Burst = *burst
	}
	o.Rounds = *rounds
	o.Progress, o.Log, o.ProfileRow = stderr, log, *profileRow
	if err := bench.CheckProfileRow(o.ProfileRow, o.Rate); err != nil {
		fmt.Fprintln(stderr, "anfed bench: --profile-row:", err)
		return exitUsage
	}
	// The CPU profile and the execution trace, each to its file if asked.
	for _, out := range []struct {
		name string
		to   *io.Writer
	}{{*cpuprofile, &o.CPUProfile}, {*traceFile, &o.Trace}} {
		if out.name == "" {
			continue
		}
		f, err := os.Create(out.name)
		if err != nil {
			fmt.Fprintln(stderr, "anfed bench:", err)
			return exitUsage
		}
		defer f.Close()
		*out.to = f
	}
	rep, runErr := bench.Run(ctx, o)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "anfed bench:", err)
			return exitFail
		}
	} else if err := rep.WriteTable(stdout); err != nil {
		fmt.Fprintln(stderr, "anfed bench:", err)
		return exitFail
	}
	if runErr != nil {
		fmt.Fprintln(stderr, "anfed bench:", runErr)
		return exitFail
	}
	return exitOK
}
