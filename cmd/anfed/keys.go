package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/peering"
	"github.com/anfed/anfed/internal/subject"
)

const keysUsage = `Usage:
  anfed keys init --dir DIR        make this operator's signing key, DIR/signing.nk; print its public key
  anfed keys show --config FILE    print the public signing key of the policy's operator
  anfed keys rotate [--overlap 24h] [--wait 5m] [server flags]
                                   rotate the running node's signing key: it makes the new key beside
                                   the old one, announces it to every peer over the session (signed by
                                   the old key), and signs with it once every peer confirmed it
  anfed keys status [server flags] the node's signing key, its rotation, each peer's pinned keys
`

// signingKeyName is the file `anfed keys init` writes in its --dir.
const signingKeyName = "signing.nk"

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, keysUsage)
		return exitUsage
	}
	switch args[0] {
	case "init":
		return runKeysInit(args[1:], stdout, stderr)
	case "show":
		return runKeysShow(args[1:], stdout, stderr)
	case "rotate":
		return runKeysRotate(ctx, args[1:], stdout, stderr)
	case "status":
		return runKeysStatus(ctx, args[1:], stdout, stderr)
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

func runKeysRotate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keys rotate", stderr)
	sf := addServerFlags(fs)
	overlap := fs.Duration("overlap", node.DefaultOverlap, "how long peers keep taking the old key after the switch (the node signs again with the new key what it sends after the switch: only what was on the wire then needs the old key)")
	wait := fs.Duration("wait", 0, "wait this long for the switch (every peer confirmed the new key); 0: do not wait")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed keys rotate: no arguments, only flags")
		return exitUsage
	}
	body, _ := json.Marshal(node.RotateRequest{Overlap: overlap.String()})
	b, err := sf.request(ctx, subject.APIKeysRotate, body)
	if err != nil {
		fmt.Fprintln(stderr, "anfed keys rotate:", err)
		return exitFail
	}
	var ans struct {
		node.OwnRotation
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.Error != "" || ans.Key == "" {
		msg := ans.Error
		if msg == "" {
			msg = fmt.Sprintf("the node answered %q", b)
		}
		fmt.Fprintln(stderr, "anfed keys rotate:", msg)
		return exitFail
	}
	fmt.Fprintf(stdout, "rotation %s: new key %s written to %s; announced to %s\n", ans.ID, ans.Key, ans.KeyFile, list(ans.Waiting))
	r := ans.OwnRotation
	for deadline := time.Now().Add(*wait); r.SwitchedAt.IsZero() && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return exitFail
		case <-time.After(500 * time.Millisecond):
		}
		st, err := keysState(ctx, sf)
		if err != nil {
			fmt.Fprintln(stderr, "anfed keys rotate:", err)
			return exitFail
		}
		if st.Rotation != nil {
			r = *st.Rotation
		}
	}
	printRotation(stdout, &r)
	if *wait > 0 && r.SwitchedAt.IsZero() {
		fmt.Fprintf(stderr, "anfed keys rotate: not switched after %s: waiting for %s (anfed keys status)\n", *wait, list(r.Waiting))
		return exitFail
	}
	return exitOK
}

func keysState(ctx context.Context, sf serverFlags) (node.KeysState, error) {
	var st node.KeysState
	b, err := sf.request(ctx, subject.APIKeys, nil)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("the node answered %q", b)
	}
	return st, nil
}

func printRotation(w io.Writer, r *node.OwnRotation) {
	switch {
	case r.Done:
		fmt.Fprintf(w, "rotation %s done: signing with %s since %s; peers retired %s. Set operator.signing_key_file: %s\n",
			r.ID, r.Key, stamp(r.SwitchedAt), r.Previous, r.KeyFile)
	case !r.SwitchedAt.IsZero():
		fmt.Fprintf(w, "rotation %s switched at %s: signing with %s; peers take %s until %s. Set operator.signing_key_file: %s\n",
			r.ID, stamp(r.SwitchedAt), r.Key, r.Previous, stamp(r.SwitchedAt.Add(time.Duration(r.OverlapSeconds)*time.Second)), r.KeyFile)
	default:
		fmt.Fprintf(w, "rotation %s announced at %s: signing with %s until every peer confirmed %s; waiting for %s\n",
			r.ID, stamp(r.Started), r.Previous, r.Key, list(r.Waiting))
	}
	for p, why := range r.Refused {
		fmt.Fprintf(w, "  %s refused it: %s\n", p, why)
	}
}

func runKeysStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keys status", stderr)
	sf := addServerFlags(fs)
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	st, err := keysState(ctx, sf)
	if err != nil {
		fmt.Fprintln(stderr, "anfed keys status:", err)
		return exitFail
	}
	if *sf.asJSON {
		out, _ := json.MarshalIndent(st, "", "  ")
		fmt.Fprintln(stdout, string(out))
		return exitOK
	}
	fmt.Fprintf(stdout, "signing key %s\n", st.SigningKey)
	if st.Rotation != nil {
		printRotation(stdout, st.Rotation)
	}
	ids := slices.Sorted(maps.Keys(st.Peers))
	for _, id := range ids {
		p := st.Peers[id]
		line := fmt.Sprintf("%s: pinned %s", id, strings.Join(p.Pinned, ", "))
		if r := p.Rotation; r != nil {
			line += fmt.Sprintf("; rotated %s → %s at %s", origin.ShortKey(r.Previous), origin.ShortKey(r.Key), stamp(r.AcceptedAt))
			if !r.SwitchedAt.IsZero() {
				line += fmt.Sprintf(", previous retired at %s", stamp(r.RetireAt()))
			}
		}
		if p.Refused > 0 {
			line += fmt.Sprintf("; %d rotation messages refused", p.Refused)
		}
		fmt.Fprintln(stdout, line)
	}
	return exitOK
}
