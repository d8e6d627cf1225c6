package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
)

// adminFlags name a running node's HTTP server and its administrative
// token: from the policy file (http.listen, http.admin_token_file), or
// --url with --token-file or $ANFED_ADMIN_TOKEN.
type adminFlags struct {
	config, url, tokenFile *string
}

func addAdminFlags(fs *flag.FlagSet) adminFlags {
	return adminFlags{
		config:    fs.String("config", "", "the node's policy file: its http.listen and http.admin_token_file"),
		url:       fs.String("url", "", "the node's HTTP server, e.g. http://127.0.0.1:8440 (default with --config: its http.listen)"),
		tokenFile: fs.String("token-file", "", "a file holding the node's admin token (default $ANFED_ADMIN_TOKEN, or with --config its http.admin_token_file)"),
	}
}

// target is the node's base URL and admin token.
func (a adminFlags) target() (base, token string, err error) {
	base = *a.url
	if *a.config != "" {
		cfg, err := config.Load(*a.config)
		if err != nil {
			return "", "", fmt.Errorf("%w\nnothing was sent to the node: fix the file first", err)
		}
		if base == "" {
			if cfg.HTTP.Listen == "" {
				return "", "", fmt.Errorf("%s has no http.listen: the node serves no HTTP; name it with --url", *a.config)
			}
			base = "http://" + cfg.HTTP.Listen
		}
		if *a.tokenFile == "" {
			*a.tokenFile = cfg.HTTP.AdminTokenFile
		}
	}
	if base == "" {
		return "", "", errors.New("name the node: --config FILE, or --url http://HOST:PORT")
	}
	switch {
	case *a.tokenFile != "":
		if token, err = config.ReadToken(*a.tokenFile); err != nil {
			return "", "", fmt.Errorf("admin token: %w", err)
		}
	default:
		token = os.Getenv("ANFED_ADMIN_TOKEN")
	}
	if token == "" {
		return "", "", errors.New("no admin token: set http.admin_token_file in the policy (and restart the node), then pass --config FILE, --token-file FILE or $ANFED_ADMIN_TOKEN")
	}
	return strings.TrimRight(base, "/"), token, nil
}

// post sends body (nil: none) to the node's path and returns its status
// and answer.
func (a adminFlags) post(ctx context.Context, path string, body any) (int, []byte, error) {
	base, token, err := a.target()
	if err != nil {
		return 0, nil, err
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("ask the node (%s): %w", base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

// answerError is the node's error in an answer's body.
func answerError(code int, b []byte) string {
	var ans struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &ans) == nil && ans.Error != "" {
		return ans.Error
	}
	return fmt.Sprintf("the node answered %d: %q", code, b)
}

const reloadUsage = `Usage:
  anfed reload --config FILE [--url URL] [--token-file FILE]

Checks the policy file, then asks the running node to read it again and
apply it (POST /v1/reload, with the node's http.admin_token_file): a new
peer gets its account, users and link; a removed peer is cut and its
conditions withdrawn; a changed export or import policy is refreshed with
the peer. Peers the change does not touch are not disturbed. A file with a
problem, or a change a reload cannot make (storage, a listener's address),
changes nothing. SIGHUP to anfed serve does the same.
`

func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("reload", stderr)
	setUsage(fs, reloadUsage)
	af := addAdminFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	code, b, err := af.post(ctx, "/v1/reload", nil)
	if err != nil {
		fmt.Fprintln(stderr, "anfed reload:", err)
		return exitFail
	}
	var res node.ReloadResult
	if code != http.StatusOK || json.Unmarshal(b, &res) != nil {
		fmt.Fprintln(stderr, "anfed reload:", answerError(code, b))
		return exitFail
	}
	if res.Unchanged() {
		fmt.Fprintln(stdout, "reloaded: the policy is unchanged")
	} else {
		fmt.Fprintf(stdout, "reloaded in %s\n", res.Took.Round(time.Millisecond))
	}
	for _, id := range res.Added {
		fmt.Fprintf(stdout, "  peer %s added\n", id)
	}
	for _, id := range res.Removed {
		fmt.Fprintf(stdout, "  peer %s removed: cut, its conditions withdrawn\n", id)
	}
	for _, id := range slices.Sorted(maps.Keys(res.Changed)) {
		fmt.Fprintf(stdout, "  peer %s changed: %s\n", id, strings.Join(res.Changed[id], ", "))
	}
	if len(res.Node) > 0 {
		fmt.Fprintf(stdout, "  node: %s\n", strings.Join(res.Node, ", "))
	}
	if len(res.Restart) > 0 {
		fmt.Fprintf(stdout, "  not applied until the next start: %s\n", strings.Join(res.Restart, ", "))
	}
	return exitOK
}

const peerDisableUsage = `Usage:
  anfed peer disable --config FILE PEER --reason TEXT [--no-reload]
  anfed peer enable --config FILE PEER [--no-reload]

disable holds the peering with PEER administratively down (RFC 8203): it
sets peers[].disabled.reason in the policy file, then reloads the running
node (as anfed reload does), which tells PEER the reason over the session,
cuts the link, holds it down and withdraws PEER's conditions. enable
clears it: the link comes back, the session opens and both ends refresh.
Other peers never notice. --no-reload only edits the file.
`

// runPeerAdmin is anfed peer disable and enable.
func runPeerAdmin(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer "+verb, stderr)
	setUsage(fs, peerDisableUsage)
	af := addAdminFlags(fs)
	reason := fs.String("reason", "", "why (disable): sent to the peer and shown at both ends; at most 255 bytes")
	noReload := fs.Bool("no-reload", false, "only edit the policy file")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 || *af.config == "" {
		fmt.Fprintf(stderr, "anfed peer %s: name the policy and one peer: anfed peer %s --config FILE PEER\n", verb, verb)
		return exitUsage
	}
	peer := pos[0]
	if verb == "disable" && strings.TrimSpace(*reason) == "" {
		fmt.Fprintln(stderr, "anfed peer disable: --reason TEXT is required: the peer is told why")
		return exitUsage
	}
	if verb == "enable" {
		*reason = ""
	}
	p, _, err := openPolicy(*af.config)
	if err != nil {
		fmt.Fprintf(stderr, "anfed peer %s %s: %v\n", verb, peer, err)
		return exitFail
	}
	was, err := p.SetDisabled(peer, strings.TrimSpace(*reason))
	if err == nil {
		_, err = savePolicy(p)
	}
	if err != nil {
		fmt.Fprintf(stderr, "anfed peer %s %s: %v\n", verb, peer, err)
		return exitFail
	}
	switch {
	case verb == "disable":
		fmt.Fprintf(stdout, "%s: %s disabled: %s\n", *af.config, peer, *reason)
	case was == "":
		fmt.Fprintf(stdout, "%s: %s was not disabled\n", *af.config, peer)
	default:
		fmt.Fprintf(stdout, "%s: %s enabled (it was disabled: %s)\n", *af.config, peer, was)
	}
	if *noReload {
		fmt.Fprintln(stdout, "the running node is unchanged until it reloads (anfed reload, SIGHUP)")
		return exitOK
	}
	return runReload(ctx, adminArgs(af), stdout, stderr)
}

// adminArgs are af's flags as anfed reload takes them.
func adminArgs(af adminFlags) []string {
	var out []string
	for _, f := range []struct {
		name string
		v    *string
	}{{"config", af.config}, {"url", af.url}, {"token-file", af.tokenFile}} {
		if *f.v != "" {
			out = append(out, "--"+f.name, *f.v)
		}
	}
	return out
}

const drainUsage = `Usage:
  anfed drain --config FILE --for 10m [--url URL] [--token-file FILE]

Tells the running node's peers that it restarts and is back within the
given time (a graceful-shutdown notice over each session, POST /v1/drain):
they keep its conditions, marked planned-down, until then, instead of
letting them go stale after their grace time. Restart the node within it.
SIGTERM to anfed serve sends the same notice (--restart-within).
`

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("drain", stderr)
	setUsage(fs, drainUsage)
	af := addAdminFlags(fs)
	within := fs.Duration("for", 0, "how long until the node is back, e.g. 10m (at most "+node.MaxPlannedRestart.String()+")")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *within <= 0 {
		fmt.Fprintln(stderr, "anfed drain: --for DURATION is required: how long until the node is back, e.g. --for 10m")
		return exitUsage
	}
	code, b, err := af.post(ctx, "/v1/drain", map[string]string{"for": within.String()})
	if err != nil {
		fmt.Fprintln(stderr, "anfed drain:", err)
		return exitFail
	}
	var ans struct {
		Told  int       `json:"told"`
		Until time.Time `json:"until"`
	}
	if code != http.StatusOK || json.Unmarshal(b, &ans) != nil {
		fmt.Fprintln(stderr, "anfed drain:", answerError(code, b))
		return exitFail
	}
	fmt.Fprintf(stdout, "%d peers told: planned restart, back by %s; restart the node now\n", ans.Told, ans.Until.Format(time.RFC3339))
	return exitOK
}
