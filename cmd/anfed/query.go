package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/expiry"
	"github.com/anfed/anfed/internal/metrics"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/peering"
	"github.com/anfed/anfed/internal/subject"
)

// serverFlags name a running node and a local user of it. The password
// comes from a file or the environment, never from the command line
// (where ps shows it): --password-file, ANFED_PASSWORD, or the policy
// itself with --config.
type serverFlags struct {
	url, user, password, passwordFile, config *string
	asJSON                                    *bool
	fs                                        *flag.FlagSet
}

// maxPasswordFile bounds --password-file: a password is a line.
const maxPasswordFile = 4 << 10

// defaultServer is --server's default.
const defaultServer = "nats://127.0.0.1:4222"

func addServerFlags(fs *flag.FlagSet) serverFlags {
	return serverFlags{
		url:          fs.String("server", defaultServer, "the node's client URL (default with --config: its nats.client.listen)"),
		user:         fs.String("user", "", "a local user of the node (nats.users); default $ANFED_USER, or with --config the policy's first"),
		passwordFile: fs.String("password-file", "", "a file holding that user's password, a regular file of at most "+boundedfile.Size(maxPasswordFile)+" (default $ANFED_PASSWORD, or with --config the policy's)"),
		password:     fs.String("password", "", "deprecated: shows in ps; use --password-file or $ANFED_PASSWORD"),
		config:       fs.String("config", "", "the node's policy file: connect to its client listener as its user"),
		asJSON:       fs.Bool("json", false, "print JSON, for scripts"),
		fs:           fs,
	}
}

// credentials returns the URL, user and password to connect with.
func (s serverFlags) credentials() (url, user, password string, err error) {
	url, user = *s.url, *s.user
	if user == "" {
		user = os.Getenv("ANFED_USER")
	}
	switch {
	case *s.password != "":
		fmt.Fprintln(s.fs.Output(), "warning: --password shows in ps and in shell history: use --password-file FILE or ANFED_PASSWORD")
		password = *s.password
	case *s.passwordFile != "":
		b, err := boundedfile.Read(*s.passwordFile, maxPasswordFile)
		if err != nil {
			return "", "", "", fmt.Errorf("--password-file: %w", err)
		}
		password = strings.TrimSpace(string(b))
	default:
		password = os.Getenv("ANFED_PASSWORD")
	}
	if *s.config == "" {
		return url, user, password, nil
	}
	p, err := peering.OpenPolicy(*s.config)
	if err != nil {
		return "", "", "", err
	}
	cfg, _, err := p.Load()
	if err != nil {
		return "", "", "", err
	}
	if url == defaultServer {
		if cfg.NATS.Client.Listen == "" {
			return "", "", "", fmt.Errorf("%s has no nats.client.listen to connect to: name the node with --server", *s.config)
		}
		url = "nats://" + cfg.NATS.Client.Listen
	}
	for _, u := range cfg.NATS.Users {
		if user == "" || u.Name == user {
			if user == "" {
				user = u.Name
			}
			if password == "" {
				password = u.Password
			}
			break
		}
	}
	return url, user, password, nil
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
	b, err := sf.request(ctx, subject.APIConditions, body)
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
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Peer, c.Origin, c.Class, c.Subject, c.Status, c.State, severityText(c.Severity),
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

// severityText is a condition's severity number, blank when it has none
// (as on the dashboard).
func severityText(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peers", stderr)
	sf := addServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	b, err := sf.request(ctx, subject.APIPeers, nil)
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
	fmt.Fprintln(w, "PEER\tNAME\tDIRECTION\tLINK\tHOLDER\tSESSION\tSINCE\tFLAPS\tBACKLOG\tCONDITIONS\tEXPIRES")
	for _, p := range ps {
		link := "down"
		if p.Up {
			link = "up"
		}
		state, since, flaps := "-", "-", 0
		if s := p.Session; s != nil {
			state, since, flaps = string(s.State), stamp(s.Since), s.Flaps
		}
		if p.Disabled != "" {
			state = "admin-down"
		}
		if s := p.Session; s != nil && s.PlannedDown(time.Now()) {
			state = metrics.PlannedDown
		}
		holder := p.Holder
		if holder == "" {
			holder = "none" // between two holders
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", p.ID, p.Name, p.Direction, link, holder, state, since, flaps, p.Backlog, p.Conditions, soonest(p.Expiry))
	}
	w.Flush()
	for _, p := range ps {
		if !p.HeldHere && p.Holder != "" {
			fmt.Fprintf(stdout, "%s: answered by %s; the link's session and counts are its holder's, %s\n", p.ID, p.Answered, p.Holder)
		}
		if p.Disabled != "" {
			fmt.Fprintf(stdout, "%s: disabled here (peers[].disabled): %s\n", p.ID, p.Disabled)
		}
		if s := p.Session; s != nil && s.PlannedDown(time.Now()) {
			fmt.Fprintf(stdout, "%s: planned restart, due back by %s (%s): its conditions are kept until then\n", p.ID, stamp(s.PlannedUntil), s.PlannedText)
		}
		if s := p.Session; s != nil {
			if s.LastDown != "" {
				fmt.Fprintf(stdout, "%s: session last down at %s: %s\n", p.ID, stamp(s.LastDownAt), s.LastDown)
			}
			if n := s.Negotiated; n != nil {
				fmt.Fprintf(stdout, "%s: %s, hold %s, sends it %s, it accepts %s\n", p.ID, n.Version, n.Hold,
					list(n.Sendable), list(n.PeerImport.Classes))
			}
		}
		if p.Advisory != nil {
			fmt.Fprintln(stdout, p.Advisory.String())
		}
		for _, e := range p.Expiry {
			if e.Warning != "" {
				fmt.Fprintf(stdout, "%s: %s: %s left, at %s\n", p.ID, e.Item.String(), left(e.SecondsLeft), stamp(e.NotAfter))
			}
		}
	}
	return exitOK
}

// soonest is the soonest end the peer's link depends on: how long it has
// and what it is, "-" for none.
func soonest(es []expiry.Status) string {
	if len(es) == 0 {
		return "-"
	}
	e := slices.MinFunc(es, func(a, b expiry.Status) int { return cmp.Compare(a.SecondsLeft, b.SecondsLeft) })
	return left(e.SecondsLeft) + " (" + e.Name + ")"
}

// left says how long is left: days, hours, or "expired".
func left(secs int64) string {
	switch {
	case secs <= 0:
		return "expired"
	case secs >= 86400:
		return strconv.FormatInt(secs/86400, 10) + "d"
	}
	return strconv.FormatInt(max(secs/3600, 1), 10) + "h"
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ",")
}

func runPeerRefresh(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer refresh", stderr)
	sf := addServerFlags(fs)
	in := fs.Bool("inbound", false, "ask the peer to re-state its conditions to us")
	out := fs.Bool("outbound", false, "re-state our conditions to the peer")
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(rest) != 1 {
		fmt.Fprintln(stderr, "anfed peer refresh: want one PEER (anfed peers lists them)")
		return exitUsage
	}
	body, _ := json.Marshal(node.RefreshRequest{Peer: rest[0], Inbound: *in, Outbound: *out})
	b, err := sf.request(ctx, subject.APIPeerRefresh, body)
	if err != nil {
		fmt.Fprintln(stderr, "anfed peer refresh:", err)
		return exitFail
	}
	var ans struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &ans) != nil || !ans.OK {
		msg := ans.Error
		if msg == "" {
			msg = fmt.Sprintf("the node answered %q", b)
		}
		fmt.Fprintln(stderr, "anfed peer refresh:", msg)
		return exitFail
	}
	fmt.Fprintf(stdout, "refresh with %s asked: anfed peers shows its End-of-RIB\n", rest[0])
	return exitOK
}
