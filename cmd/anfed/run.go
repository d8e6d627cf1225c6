package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/demo"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/node"
)

const usage = `anfed — the federation bus for autonomous networks

Usage:
  anfed demo [--duration 20s] [--http ADDR]   three operators in one process, signals crossing; dashboards on ADDR
  anfed init --id OP [--dir DIR]       a new operator: policy, signing key, CA, leaf certificate, ingest token
  anfed serve --config FILE            run a node from its policy file (SIGHUP: reload it)
  anfed reload --config FILE           check the policy file, then apply it to the running node
  anfed drain --config FILE --for 10m  tell the peers the node restarts and is back within 10m
  anfed validate FILE...               check policy files (.yaml) and signal files (.json); same as policy check
  anfed policy check|explain|asyncapi  every problem with its line; who receives a signal and why; a peer's AsyncAPI document
  anfed natsconf --config FILE [-o|--out FILE]   the NATS configuration an existing cluster needs (nats.external)
  anfed keys init|show                 make or show this operator's signing key
  anfed peer invite|add|csr|pin|export|import|list   make peerings: issue and add bundles, pin keys, say what crosses
  anfed peer disable|enable PEER --reason TEXT      hold a peering administratively down (the peer is told why), or bring it back
  anfed peers [--server URL --user U --password P]        peers of a running node: link, backlog
  anfed conditions [--peer P --class C --service S ...]   a running node's active conditions
  anfed intents [list|show ID|create FILE|delete ID]      a running node's TMF921 intents (HTTP API)
  anfed actions [--pending]            a running node's coordinated actions and the leases it sees
  anfed action accept|decline ID [--reason R]   decide a proposal the coordination policy left to a person
  anfed trace ID                       the causation chain of a signal (or an action) across operators, from what a node stored
  anfed audit [--peer P --since T] [--verify]   what was sent to which peer and who decided on actions (JSON Lines); check the hash chains
  anfed tail [--origin O --class C --service GLOB --json]  follow a node's signals live (--rejects: refusals)
  anfed publish --file F | --origin O --class C ...       validate signals, then publish them to a node
  anfed bench [--quick] [--json] [--duration D] [--size BYTES]   anfed against raw NATS, JetStream, ed25519, a webhook
  anfed version                        print versions

Run "anfed COMMAND -h" for a command's flags.
`

// exit codes
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "demo":
		return runDemo(ctx, rest, stdout, stderr)
	case "init":
		return runInit(rest, stdout, stderr)
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "reload":
		return runReload(ctx, rest, stdout, stderr)
	case "drain":
		return runDrain(ctx, rest, stdout, stderr)
	case "validate":
		return runPolicyCheck("validate", rest, stdout, stderr)
	case "policy":
		return runPolicy(rest, stdout, stderr)
	case "natsconf":
		return runNatsconf(rest, stdout, stderr)
	case "keys":
		return runKeys(ctx, rest, stdout, stderr)
	case "peer":
		if len(rest) > 0 && rest[0] == "refresh" {
			return runPeerRefresh(ctx, rest[1:], stdout, stderr)
		}
		if len(rest) > 0 && (rest[0] == "disable" || rest[0] == "enable") {
			return runPeerAdmin(ctx, rest[0], rest[1:], stdout, stderr)
		}
		return runPeer(rest, stdout, stderr)
	case "conditions":
		return runConditions(ctx, rest, stdout, stderr)
	case "peers":
		return runPeers(ctx, rest, stdout, stderr)
	case "intents":
		return runIntents(ctx, rest, stdout, stderr)
	case "actions":
		return runActions(ctx, rest, stdout, stderr)
	case "action":
		return runAction(ctx, rest, stdout, stderr)
	case "trace":
		return runTrace(ctx, rest, stdout, stderr)
	case "audit":
		return runAudit(ctx, rest, stdout, stderr)
	case "tail":
		return runTail(ctx, rest, stdout, stderr)
	case "publish":
		return runPublish(ctx, rest, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "version", "--version":
		return runVersion(stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "anfed: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// logFlags adds --log-format and --log-level to fs.
type logFlags struct {
	format, level *string
}

func addLogFlags(fs *flag.FlagSet, level string) logFlags {
	return logFlags{
		format: fs.String("log-format", "json", "log format: json or console"),
		level:  fs.String("log-level", level, "log level: trace, debug, info, warn, error"),
	}
}

func (l logFlags) logger(w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(*l.level)
	if err != nil || *l.level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", *l.level)
	}
	switch *l.format {
	case "json":
	case "console":
		// Colour only on a terminal: a file or a pipe gets plain text.
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !isTerminal(w)}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: want json or console", *l.format)
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
}

// newFlagSet is the flag set of command name. Every command's help has
// one format: its usage text (see setUsage), then "Flags:" and the flags;
// -h exits 0 (flagExit). The standard flag package with these helpers is
// the whole CLI layer: it takes -x and --x alike, and a library (cobra,
// kong) would add dependencies and rewrite twenty commands for nothing a
// user would see.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("anfed "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, "Usage:\n  anfed "+name+" [flags]\n")
	return fs
}

// setUsage makes text, then the flags, the help of fs.
func setUsage(fs *flag.FlagSet, text string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprint(w, strings.TrimRight(text, "\n")+"\n\nFlags:\n")
		fs.PrintDefaults()
	}
}

// flagExit is the exit code after fs.Parse failed: 0 for -h/--help
// (the help was printed), 2 for a usage error.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// outFlag adds the output file flag every command that writes a file
// has: --out FILE, or -o FILE.
func outFlag(fs *flag.FlagSet, usage string) *string {
	out := fs.String("out", "", usage)
	fs.StringVar(out, "o", "", "short for --out")
	return out
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("demo", stderr)
	dur := fs.Duration("duration", 0, "end after this long (default: run until Ctrl-C)")
	interval := fs.Duration("interval", 250*time.Millisecond, "time between two synthetic assurance signals in op-a")
	httpBase := fs.String("http", config.DefaultHTTPListen, `serve each operator's dashboard, metrics and API from this address on (op-a on its port, op-b on the next, op-c after); port 0: free ports; "": none`)
	lf := addLogFlags(fs, "error")
	*lf.format = "console"
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "anfed demo:", err)
		return exitUsage
	}
	dh, err := newDemoHTTP(*httpBase, stdout, log)
	if err != nil {
		fmt.Fprintln(stderr, "anfed demo:", err)
		return exitUsage
	}
	s, err := demo.Run(ctx, demo.Options{Duration: *dur, Interval: *interval, Out: stdout, Log: log,
		NodeOptions: dh.nodeOptions, Started: dh.started})
	if err != nil {
		fmt.Fprintln(stderr, "anfed demo:", err)
		fmt.Fprintln(stdout, s)
		return exitFail
	}
	if s.Lost != 0 {
		return exitFail
	}
	return exitOK
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr)
	file := fs.String("config", "", "the node's policy file (YAML)")
	stopTimeout := fs.Duration("stop-timeout", node.DefaultStopTimeout, "on SIGTERM, drain for at most this long, then give the rest up and exit 1")
	restartWithin := fs.Duration("restart-within", node.DefaultRestartWithin, "on SIGTERM, tell the peers the node is back within this long (a planned restart): they keep its conditions until then; 0: tell them nothing (a stop for good)")
	lf := addLogFlags(fs, "info")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" {
		fmt.Fprintln(stderr, "anfed serve: --config FILE is required (see examples/ for policy files)")
		return exitUsage
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "anfed serve:", err)
		return exitUsage
	}
	cfg, err := config.LoadAll(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	for _, w := range cfg.Warnings() {
		log.Warn().Str("config", w.Error()).Msg("policy warning")
	}
	if err := checkPorts(cfg); err != nil {
		fmt.Fprintf(stderr, "anfed serve: cannot start:\n%v\n", err)
		return exitFail
	}
	// SIGHUP reloads the policy file once the node runs (the node logs
	// what it changed, or why it changed nothing); one before is kept.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	opts := []node.Option{node.WithLogger(log)}
	var hs *httpapi.Server
	if cfg.HTTP.Listen != "" {
		hs = httpapi.New(httpapi.Options{Listen: cfg.HTTP.Listen, TokenFile: cfg.HTTP.TokenFile, AdminTokenFile: cfg.HTTP.AdminTokenFile, Log: log})
		opts = append(opts, node.WithObserver(hs.Observer()))
	}
	var view *intent.View
	if cfg.Intents != nil {
		view = intent.NewView()
		opts = append(opts, node.WithIntents(view))
	}
	n := node.New(cfg, opts...)
	if err := n.Start(ctx); err != nil {
		log.Error().Err(err).Msg("node did not start")
		return exitFail
	}
	var br *bridge.Bridges
	var in *intent.Service
	if hs != nil {
		srv := hs
		br, err = bridge.New(ctx, bridge.Deps{Node: n, Config: cfg.Bridges, HTTP: cfg.HTTP, Metrics: hs.Metrics().Registry(), Log: log,
			BaseURL: func() string { return "http://" + srv.Addr() }})
		if err != nil {
			log.Error().Err(err).Msg("node did not start")
			n.Stop()
			return exitFail
		}
		br.Mount(hs)
		peers := make([]string, 0, len(cfg.Peers))
		for _, p := range cfg.Peers {
			peers = append(peers, p.ID)
		}
		in, err = intent.New(ctx, intent.Deps{Node: n, Config: cfg.Intents, HTTP: cfg.HTTP, Metrics: hs.Metrics().Registry(), Log: log,
			BaseURL: func() string { return "http://" + srv.Addr() }, Peers: peers,
			View: view, Refresh: func(ctx context.Context, peer string) error { return n.RefreshPeer(ctx, peer, false, true) }})
		if err != nil {
			log.Error().Err(err).Msg("node did not start")
			br.Stop()
			n.Stop()
			return exitFail
		}
		in.Mount(hs)
		if hs, err = startHTTP(hs, n, cfg.HTTP.Listen, log); err != nil {
			log.Error().Err(err).Msg("node did not start")
			in.Stop()
			br.Stop()
			n.Stop()
			return exitFail
		}
		if hs != nil {
			br.Start()
			in.Start()
		}
	}
	code := exitOK
	for code == exitOK {
		select {
		case <-ctx.Done():
			// A stop we were asked for: the peers are told when we are
			// back (unless drained already for longer).
			n.Drain(context.Background(), *restartWithin)
			return stopServe(n, hs, br, in, *stopTimeout, log, code)
		case <-hup:
			log.Info().Str("file", *file).Msg("SIGHUP: reloading the policy")
			_, _ = n.ReloadFile(ctx, *file)
		case <-n.Failed():
			log.Error().Err(n.Err()).Msg("stopping: the node failed")
			code = exitFail
		}
	}
	return stopServe(n, hs, br, in, *stopTimeout, log, code)
}

// stopServe stops what serve started, within bound: past it, it logs what
// it abandoned and returns exitFail, whatever state the store is in.
func stopServe(n *node.Node, hs *httpapi.Server, br *bridge.Bridges, in *intent.Service, bound time.Duration, log zerolog.Logger, code int) int {
	log.Info().Stringer("bound", bound).Msg("stopping: draining intake and links")
	ctx, cancel := context.WithTimeoutCause(context.Background(), bound, fmt.Errorf("--stop-timeout %v passed", bound))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		if hs != nil {
			hs.Stop()
		}
		if br != nil {
			br.Stop()
		}
		in.Stop()
		done <- n.Shutdown(ctx)
	}()
	// Shutdown returns at the bound; the second more covers an HTTP
	// server or bridge that does not stop.
	var err error
	select {
	case err = <-done:
	case <-time.After(bound + time.Second):
		err = fmt.Errorf("stop abandoned while stopping the HTTP server and bridges (%w)", context.Cause(ctx))
	}
	if err != nil {
		log.Error().Err(err).Msg("exiting without a clean stop")
		return exitFail
	}
	return code
}

func runVersion(stdout io.Writer) int {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(stdout, "anfed %s\nnats-server %s\n%s %s/%s\n", v, server.VERSION, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}

// isSignalFile tells a signal file (JSON) from a policy file (YAML).
func isSignalFile(name string, data []byte) bool {
	if strings.HasSuffix(name, ".json") {
		return true
	}
	if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return false
	}
	t := strings.TrimSpace(string(data))
	return strings.HasPrefix(t, "{")
}
