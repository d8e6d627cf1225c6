package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/subject"
)

// runActions prints the actions a running node has seen, its decisions
// and the leases that hold as it sees them (docs/coordination.md).
func runActions(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("actions", stderr)
	sf := addServerFlags(fs)
	pending := fs.Bool("pending", false, "only the proposals waiting for our decision")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	b, err := sf.request(ctx, subject.APIActions, nil)
	if err != nil {
		fmt.Fprintln(stderr, "anfed actions:", err)
		return exitFail
	}
	var v node.ActionsView
	if err := json.Unmarshal(b, &v); err != nil {
		fmt.Fprintf(stderr, "anfed actions: the node answered %q\n", b)
		return exitFail
	}
	if v.Error != "" {
		fmt.Fprintln(stderr, "anfed actions:", v.Error)
		return exitFail
	}
	if *pending {
		v.Actions = slices.DeleteFunc(v.Actions, func(r coordination.Record) bool { return !r.Pending })
	}
	if *sf.asJSON {
		out, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ACTION\tPROPOSER\tKIND\tRESOURCES\tPHASE\tDECISIONS\tUPDATED")
	for _, r := range v.Actions {
		var res []string
		for _, x := range r.Resources {
			res = append(res, x.ID)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ActionID, r.Proposer, r.Kind, list(res), r.Phase, decisions(v.Self, r), stamp(r.Updated))
	}
	w.Flush()
	fmt.Fprintf(stdout, "%d action(s)\n", len(v.Actions))
	if len(v.Leases) > 0 {
		w = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "RESOURCE\tGRANTOR\tHOLDER\tACTION\tUNTIL\tREVISION")
		for _, l := range v.Leases {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", l.Resource, l.Grantor, l.Holder, l.ActionID, stamp(l.Until), l.Revision)
		}
		w.Flush()
	}
	fmt.Fprintf(stdout, "%d lease(s) held\n", len(v.Leases))
	return exitOK
}

// decisions is one cell: each affected operator's step and rule, and
// "waiting for us" when our policy left it to a person.
func decisions(self string, r coordination.Record) string {
	var out []string
	ops := make([]string, 0, len(r.Decisions))
	for op := range r.Decisions {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		d := r.Decisions[op]
		s := op + ":" + string(d.Phase)
		if d.Conflict != nil {
			s += " (held by " + d.Conflict.Holder + " until " + stamp(d.Conflict.Until) + ")"
		} else if d.Rule != "" {
			s += " (" + d.Rule + ")"
		}
		out = append(out, s)
	}
	if r.Pending {
		out = append(out, self+": waiting for a decision ("+r.PendingRule+"): anfed action accept|decline "+r.ActionID)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ", ")
}

// runAction decides a proposal our policy left to a person.
func runAction(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("action", stderr)
	setUsage(fs, "Usage:\n  anfed action accept|decline ID [--reason TEXT] [--by NAME] [--counter PT10M]\n")
	sf := addServerFlags(fs)
	reason := fs.String("reason", "", "why (shown to the proposer)")
	by := fs.String("by", "", "who decides (default $USER)")
	counter := fs.String("counter", "", "decline with a counter-offer of this ISO 8601 duration (e.g. PT10M)")
	if len(args) < 2 || args[0] != "accept" && args[0] != "decline" || strings.HasPrefix(args[1], "-") {
		fs.Usage()
		return exitUsage
	}
	verb, id := args[0], args[1]
	if err := fs.Parse(args[2:]); err != nil {
		return flagExit(err)
	}
	if *by == "" {
		*by = os.Getenv("USER")
	}
	req := node.DecideRequest{ID: id, Accept: verb == "accept", Reason: *reason, By: *by}
	if *counter != "" {
		if verb == "accept" {
			fmt.Fprintln(stderr, "anfed action: --counter goes with decline")
			return exitUsage
		}
		if _, err := coordination.ParseDuration(*counter); err != nil {
			fmt.Fprintln(stderr, "anfed action: --counter:", err)
			return exitUsage
		}
		req.Counter = *counter
	}
	body, _ := json.Marshal(req)
	b, err := sf.request(ctx, subject.APIActionDecide, body)
	if err != nil {
		fmt.Fprintln(stderr, "anfed action:", err)
		return exitFail
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		fmt.Fprintln(stderr, "anfed action:", e.Error)
		return exitFail
	}
	var r coordination.Record
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(stderr, "anfed action: the node answered %q\n", b)
		return exitFail
	}
	if *sf.asJSON {
		out, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: %s\n", r.ActionID, decisions("", r))
	return exitOK
}
