package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
)

// runNatsconf writes the configuration an existing NATS cluster needs to
// carry a node in external mode (nats.external), derived from its policy
// exactly as the embedded server's is.
func runNatsconf(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("natsconf", stderr)
	file := fs.String("config", "", "the node's policy file (YAML), with nats.external")
	out := outFlag(fs, "write the configuration to this file (default: standard output)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed natsconf: want --config FILE [-o|--out FILE] and nothing else")
		return exitUsage
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	if cfg.NATS.External == nil {
		fmt.Fprintf(stderr, "anfed natsconf: %s has no nats.external: an embedded server derives its own configuration at each start; "+
			"to run against an existing cluster, add nats.external with urls and credentials_dir (see docs/external-nats.md)\n", *file)
		return exitFail
	}
	created, err := natsconf.EnsureSecrets(cfg)
	for _, f := range created {
		fmt.Fprintf(stderr, "created %s (the node's NKey user seed: keep it secret)\n", f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "anfed natsconf:", err)
		return exitFail
	}
	sec, err := natsconf.LoadSecrets(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "anfed natsconf:", err)
		return exitFail
	}
	conf := natsconf.External(cfg, sec, time.Now())
	// What we write must be what nats-server reads.
	if err := (&server.Options{}).ProcessConfigString(conf); err != nil {
		fmt.Fprintln(stderr, "anfed natsconf: the derived configuration does not parse (a bug; please report it):", err)
		return exitFail
	}
	if *out == "" {
		fmt.Fprint(stdout, conf)
		return exitOK
	}
	// It holds the bcrypt hashes of the peers' leaf passwords.
	if err := os.WriteFile(*out, []byte(conf), 0o600); err != nil {
		fmt.Fprintln(stderr, "anfed natsconf:", err)
		return exitFail
	}
	fmt.Fprintf(stderr, "wrote %s: include it in each server's configuration and reload the servers (see docs/external-nats.md)\n", *out)
	return exitOK
}
