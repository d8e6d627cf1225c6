package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/internal/trace"
)

// runTrace prints the causation chain of a signal (or of a correlation
// id, such as an action's) from what a running node stored.
func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("trace", stderr)
	setUsage(fs, "Usage:\n  anfed trace ID [flags]   ID: a signal's id, or a correlation id (an action's)\n")
	sf := addServerFlags(fs)
	if len(args) < 1 || strings.HasPrefix(args[0], "-") {
		fs.Usage()
		return exitUsage
	}
	id := args[0]
	if err := fs.Parse(args[1:]); err != nil {
		return flagExit(err)
	}
	b, err := sf.request(ctx, subject.APITrace, []byte(id))
	if err != nil {
		fmt.Fprintln(stderr, "anfed trace:", err)
		return exitFail
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		fmt.Fprintln(stderr, "anfed trace:", e.Error)
		return exitFail
	}
	var tr trace.Trace
	if err := json.Unmarshal(b, &tr); err != nil {
		fmt.Fprintf(stderr, "anfed trace: the node answered %q\n", b)
		return exitFail
	}
	if *sf.asJSON {
		out, _ := json.MarshalIndent(tr, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DEPTH\tORIGIN\tVIA\tCLASS\tSTATE\tSUBJECT\tID\tCAUSED BY\tSTORED")
	for _, h := range tr.Hops {
		via := "local"
		if len(h.Path) > 0 {
			via = strings.Join(h.Path, ">")
		}
		fmt.Fprintf(w, "%+d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Depth, h.Origin, via, h.Class, h.State, h.Subject, h.ID, orDash(h.CausationID), stamp(h.Stored))
	}
	w.Flush()
	partial := ""
	if tr.Partial {
		partial = " (the most recent; older ones not read)"
	}
	fmt.Fprintf(stdout, "%d signal(s) in the chain, %d stored signals read%s\n", len(tr.Hops), tr.Scanned, partial)
	return exitOK
}
