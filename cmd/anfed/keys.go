package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/peering"
)

const keysUsage = `Usage:
  anfed keys init --dir DIR        make this operator's signing key, DIR/signing.nk; print its public key
  anfed keys show --config FILE    print the public signing key of the policy's operator
`

// signingKeyName is the file `anfed keys init` writes in its --dir.
const signingKeyName = "signing.nk"

func runKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return exitUsage
	}
	switch args[0] {
	case "init":
		return runKeysInit(args[1:], stdout, stderr)
	case "show":
		return runKeysShow(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, keysUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "anfed keys: unknown command %q\n\n%s", args[0], keysUsage)
	return exitUsage
}

func runKeysInit(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keys init", stderr)
	dir := fs.String("dir", "", "directory for the key file "+signingKeyName+" (made if missing)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed keys init: want --dir DIR and nothing else")
		return exitUsage
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fmt.Fprintln(stderr, "anfed keys init:", err)
		return exitFail
	}
	kp, err := origin.NewSigningKey()
	if err != nil {
		fmt.Fprintln(stderr, "anfed keys init:", err)
		return exitFail
	}
	path := filepath.Join(*dir, signingKeyName)
	if err := origin.WriteSigningKey(path, kp); err != nil {
		fmt.Fprintln(stderr, "anfed keys init:", err)
		return exitFail
	}
	pub, err := kp.PublicKey()
	if err != nil {
		fmt.Fprintln(stderr, "anfed keys init:", err)
		return exitFail
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	fmt.Fprintln(stdout, pub)
	fmt.Fprintf(stderr, "wrote %s: keep it secret, it is the operator's identity.\n"+
		"Set operator.signing_key_file: %s in the policy (or a path relative to the policy file);\n"+
		"peers pin the public key above.\n", path, path)
	return exitOK
}

func runKeysShow(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keys show", stderr)
	file := fs.String("config", "", "the node's policy file (YAML)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed keys show: want --config FILE and nothing else")
		return exitUsage
	}
	pub, err := publicKey(*file)
	if err != nil {
		fmt.Fprintln(stderr, "anfed keys show:", err)
		return exitFail
	}
	fmt.Fprintln(stdout, pub)
	return exitOK
}

// publicKey reads the policy at file, which may still await pinned keys,
// and returns its operator's public signing key.
func publicKey(file string) (string, error) {
	p, err := peering.OpenPolicy(file)
	if err != nil {
		return "", err
	}
	cfg, _, err := p.Load()
	if err != nil {
		return "", err
	}
	if cfg.Operator.SigningKeyFile == "" {
		return "", errors.New("operator.signing_key_file is not set (create a key with `anfed keys init --dir DIR`)")
	}
	kp, err := origin.LoadSigningKey(cfg.Operator.SigningKeyFile)
	if err != nil {
		return "", err
	}
	return kp.PublicKey()
}
