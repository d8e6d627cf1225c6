package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/audit"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/subject"
)

// runAudit prints a running node's audit trail as JSON Lines (what was
// sent to which peer, who decided on actions), or checks its chains.
// It reads the ANFED_AUDIT stream itself, so an export of any size
// streams out; --verify also asks each of the operator's processes for
// the head of the chain it writes, so records removed from a chain's end
// show too.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("audit", stderr)
	setUsage(fs, "Usage:\n  anfed audit [--peer P] [--kind sent|action] [--since T] [flags]   the records, as JSON Lines\n  anfed audit --verify [flags]                                       check every chain's hashes and links\n")
	sf := addServerFlags(fs)
	peer := fs.String("peer", "", "only records about this peer: what was sent to it, and its action steps")
	kind := fs.String("kind", "", "only this kind: sent (signals sent to peers) or action (proposals and decisions)")
	sinceFlag := fs.String("since", "", "only records since: a time in RFC 3339, or a duration back from now (24h)")
	verify := fs.Bool("verify", false, "check every chain of the trail instead; exit 1 when one is broken, naming the record")
	_ = fs.Bool("jsonl", true, "print JSON Lines, one record a line (the default)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	since, err := audit.ParseSince(*sinceFlag, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "anfed audit: --since:", err)
		return exitUsage
	}
	if *kind != "" && *kind != audit.KindSent && *kind != audit.KindAction {
		fmt.Fprintf(stderr, "anfed audit: --kind %q: want %s or %s\n", *kind, audit.KindSent, audit.KindAction)
		return exitUsage
	}
	nc, err := sf.connect()
	if err != nil {
		fmt.Fprintln(stderr, "anfed audit:", err)
		return exitFail
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		fmt.Fprintln(stderr, "anfed audit:", err)
		return exitFail
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	f := audit.Filter{Peer: *peer, Kind: *kind, Since: since}
	if *verify {
		f = audit.Filter{} // every chain, whole
	}
	if !*verify {
		enc := json.NewEncoder(stdout)
		if err := audit.Each(rctx, js, f, func(r audit.Stored) error { return enc.Encode(r) }); err != nil {
			fmt.Fprintln(stderr, "anfed audit:", err)
			return exitFail
		}
		return exitOK
	}
	recs, err := audit.Read(rctx, js, f)
	if err != nil {
		fmt.Fprintln(stderr, "anfed audit:", err)
		return exitFail
	}
	rep := audit.Verify(recs, heads(ctx, nc))
	if *sf.asJSON {
		out, _ := json.MarshalIndent(struct {
			OK bool `json:"ok"`
			audit.Report
		}{rep.OK(), rep}, "", "  ")
		fmt.Fprintln(stdout, string(out))
	} else {
		fmt.Fprint(stdout, rep.Text())
	}
	if !rep.OK() {
		return exitFail
	}
	return exitOK
}

// heads asks every process of the node's operator for the chain it
// writes and that chain's last number (an.api.audit), taking answers
// until none came for 300 ms.
func heads(ctx context.Context, nc *nats.Conn) map[string]uint64 {
	out := map[string]uint64{}
	inbox := nats.NewInbox()
	ch := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return out
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(subject.APIAudit, inbox, nil); err != nil {
		return out
	}
	wait := 2 * time.Second // for the first answer
	for {
		select {
		case m := <-ch:
			var a node.AuditHeadsAnswer
			if json.Unmarshal(m.Data, &a) == nil {
				for c, n := range a.Heads {
					out[c] = n
				}
			}
			wait = 300 * time.Millisecond
		case <-time.After(wait):
			return out
		case <-ctx.Done():
			return out
		}
	}
}
