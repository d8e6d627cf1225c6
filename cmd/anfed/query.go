package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/node"
)

// serverFlags name a running node and a local user of it.
type serverFlags struct {
	url, user, password *string
	asJSON              *bool
}

func addServerFlags(fs interface {
	String(string, string, string) *string
	Bool(string, bool, string) *bool
}) serverFlags {
	return serverFlags{
		url:      fs.String("server", "nats://127.0.0.1:4222", "the node's client URL"),
		user:     fs.String("user", "", "a local user of the node (nats.users)"),
		password: fs.String("password", "", "that user's password"),
		asJSON:   fs.Bool("json", false, "print JSON, for scripts"),
	}
}

func (s serverFlags) request(ctx context.Context, subj string, body []byte) ([]byte, error) {
	nc, err := s.connect()
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := nc.RequestWithContext(rctx, subj, body)
	if err != nil {
		return nil, fmt.Errorf("ask the node (%s): %w", subj, err)
	}
	return m.Data, nil
}

func runConditions(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("conditions", stderr)
	sf := addServerFlags(fs)
	var f conditions.Filter
	fs.StringVar(&f.Peer, "peer", "", "only conditions told by this peer (\"local\" for our own)")
	fs.StringVar(&f.Origin, "origin", "", "only this origin operator")
	fs.StringVar(&f.Class, "class", "", "only this signal class")
	fs.StringVar(&f.Service, "service", "", "only this service")
	fs.BoolVar(&f.IncludeStale, "stale", false, "include stale conditions (peer link down past its grace time)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	body, _ := json.Marshal(f)
	b, err := sf.request(ctx, node.APIConditions, body)
	if err != nil {
		fmt.Fprintln(stderr, "anfed conditions:", err)
		return exitFail
	}
	var cs []conditions.Condition
	if err := json.Unmarshal(b, &cs); err != nil {
		fmt.Fprintf(stderr, "anfed conditions: the node answered %q\n", b)
		return exitFail
	}
	if *sf.asJSON {
		out, _ := json.MarshalIndent(cs, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PEER\tORIGIN\tCLASS\tSUBJECT\tSTATUS\tSTATE\tSEVERITY\tSINCE\tUPDATED\tDAMPENING")
	for _, c := range cs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.Peer, c.Origin, c.Class, c.Subject, c.Status, c.State, c.Severity,
			stamp(c.Raised), stamp(c.Updated), dampening(c))
	}
	w.Flush()
	fmt.Fprintf(stdout, "%d condition(s)\n", len(cs))
	return exitOK
}

// stamp is t in RFC 3339, or "-" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// dampening says whether flap dampening holds the condition's signals.
func dampening(c conditions.Condition) string {
	if !c.Suppressed {
		return "-"
	}
	s := fmt.Sprintf("suppressed: penalty %.0f, reuse %s", c.Penalty, c.ReuseAt.Format(time.RFC3339))
	if c.Held != "" {
		s += ", holding " + string(c.Held)
	}
	return s
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peers", stderr)
	sf := addServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	b, err := sf.request(ctx, node.APIPeers, nil)
	if err != nil {
		fmt.Fprintln(stderr, "anfed peers:", err)
		return exitFail
	}
	var ps []node.PeerState
	if err := json.Unmarshal(b, &ps); err != nil {
		fmt.Fprintf(stderr, "anfed peers: the node answered %q\n", b)
		return exitFail
	}
	if *sf.asJSON {
		out, _ := json.MarshalIndent(ps, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PEER\tNAME\tDIRECTION\tLINK\tBACKLOG\tCONDITIONS")
	for _, p := range ps {
		link := "down"
		if p.Up {
			link = "up"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\n", p.ID, p.Name, p.Direction, link, p.Backlog, p.Conditions)
	}
	w.Flush()
	for _, p := range ps {
		if p.Advisory != nil {
			fmt.Fprintln(stdout, p.Advisory.String())
		}
	}
	return exitOK
}
