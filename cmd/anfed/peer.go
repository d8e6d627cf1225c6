package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/peering"
)

const peerUsage = `Usage:
  anfed peer invite --config FILE PEER [--name NAME] [--leaf-url URL] [--expires TIME] [-o|--out FILE] [--signing-key KEY] [--csr FILE]
                       issue credentials to PEER: add it to the policy (accept) and write its bundle,
                       with its client certificate when the leaf listener asks for one (mutual TLS)
  anfed peer csr --config FILE ISSUER [-o|--out FILE]
                       make our key for dialling ISSUER and a certificate request for ISSUER to sign
                       (anfed peer invite --csr); the key stays here
  anfed peer add --config FILE BUNDLE
                       add the peer that issued BUNDLE to us (dial), pinning its signing key
  anfed peer pin --config FILE [--force] PEER KEY
                       pin PEER's public signing key (O...; "anfed keys show" prints it on PEER's side)
  anfed peer export --config FILE PEER [--classes C,...] [--services GLOB,...]
  anfed peer import --config FILE PEER [--classes C,...]
                       set what we send PEER, or take from it; without flags, print it
  anfed peer list --config FILE
                       the peers of the policy
  anfed peer disable --config FILE PEER --reason TEXT / anfed peer enable --config FILE PEER
                       hold the peering administratively down (PEER is told the reason, its link is
                       held down, its conditions withdrawn), or bring it back; the running node
                       reloads the policy (see anfed peer disable -h)
  anfed peer refresh PEER [--inbound|--outbound] (and the flags of anfed peers)
                       ask the running node for a refresh of its session with PEER: --inbound asks
                       PEER to re-state its conditions, --outbound re-states ours to PEER (both
                       by default); each ends with End-of-RIB, which withdraws what is not re-stated

Every command checks the edited policy and writes it back only if it is
valid, apart from peers whose key is not pinned yet.
`

func runPeer(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, peerUsage)
		return exitUsage
	}
	switch args[0] {
	case "invite":
		return runPeerInvite(args[1:], stdout, stderr)
	case "add":
		return runPeerAdd(args[1:], stdout, stderr)
	case "pin":
		return runPeerPin(args[1:], stdout, stderr)
	case "csr":
		return runPeerCSR(args[1:], stdout, stderr)
	case "export", "import":
		return runPeerRules(args[0], args[1:], stdout, stderr)
	case "list":
		return runPeerList(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, peerUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "anfed peer: unknown command %q\n\n%s", args[0], peerUsage)
	return exitUsage
}

// parseInterleaved parses fs's flags wherever they stand among args, so
// that "invite op-b --out f" and "invite --out f op-b" both work, and
// returns the other arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

// openPolicy opens the policy at file for editing and loads it; a
// policy with problems other than keys not pinned yet is refused.
func openPolicy(file string) (*peering.Policy, *config.Config, error) {
	if file == "" {
		return nil, nil, errors.New("--config FILE is required")
	}
	p, err := peering.OpenPolicy(file)
	if err != nil {
		return nil, nil, err
	}
	cfg, _, err := p.Load()
	if err != nil {
		return nil, nil, err
	}
	return p, cfg, nil
}

// savePolicy writes p back and returns the peers that still await a
// pinned key.
func savePolicy(p *peering.Policy) ([]string, error) {
	pending, err := p.Save()
	if err != nil {
		return nil, fmt.Errorf("%s left as it was: %w", p.File, err)
	}
	return pending, nil
}

// notePending says which peers still await a pinned key.
func notePending(stdout io.Writer, file string, pending []string) {
	for _, id := range pending {
		fmt.Fprintf(stdout, "note: %s's signing key is not pinned yet: the node will not start until it is (anfed peer pin --config %s %s KEY)\n",
			id, file, id)
	}
}

func runPeerInvite(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer invite", stderr)
	file := fs.String("config", "", "the node's policy file (YAML)")
	leafURL := fs.String("leaf-url", "", "where PEER dials us, tls://host:port (default: from nats.leafnodes.listen, if it names a host)")
	expires := fs.String("expires", "", "when the credentials stop working, RFC 3339 (e.g. 2027-01-01T00:00:00Z); default never")
	out := outFlag(fs, "bundle file to write (default PEER.peering.yaml)")
	key := fs.String("signing-key", "", "PEER's public signing key, if you have it already (else pin it later)")
	name := fs.String("name", "", "PEER's display name in the policy (default: its id)")
	caKey := fs.String("ca-key", "", "the private key of nats.leafnodes.tls.ca, to issue PEER's client certificate (default: the CA file's name with -key.pem, as anfed init writes it)")
	csrFile := fs.String("csr", "", "sign PEER's certificate request (anfed peer csr on its side) instead of making its key; a regular file of at most "+boundedfile.Size(boundedfile.MaxSize))
	noClientCert := fs.Bool("no-client-cert", false, "issue no client certificate: PEER gets one from your own PKI")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "anfed peer invite: name one peer: anfed peer invite --config FILE PEER")
		return exitUsage
	}
	peer := pos[0]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "anfed peer invite %s: %v\n", peer, err)
		return exitFail
	}
	var exp *time.Time
	if *expires != "" {
		t, err := time.Parse(time.RFC3339, *expires)
		if err != nil {
			fmt.Fprintf(stderr, "anfed peer invite: --expires %q: want an RFC 3339 time, e.g. 2027-01-01T00:00:00Z\n", *expires)
			return exitUsage
		}
		exp = &t
	}
	if *key != "" && !origin.ValidPublicKey(*key) {
		fmt.Fprintf(stderr, "anfed peer invite: --signing-key %q: want an operator public key (56 characters, starting with \"O\")\n", *key)
		return exitUsage
	}
	p, cfg, err := openPolicy(*file)
	if err != nil {
		return fail(err)
	}
	if *leafURL == "" {
		if *leafURL, err = defaultLeafURL(cfg); err != nil {
			return fail(err)
		}
	}
	in := peering.Invite{Peer: peer, LeafURL: *leafURL, Expires: exp}
	if t := cfg.NATS.LeafNodes.TLS; t != nil && t.CA != "" && !*noClientCert {
		// The listener verifies client certificates (mutual TLS): the
		// bundle is complete only with one.
		if in.CA, in.CSR, err = clientCertIssuer(t.CA, *caKey, *csrFile); err != nil {
			return fail(err)
		}
	}
	b, err := peering.NewInvite(cfg, in)
	if err != nil {
		return fail(err)
	}
	if err := p.AddInvited(b, *name, *key); err != nil {
		return fail(err)
	}
	// Check before writing anything, so that a refused policy leaves no
	// bundle behind.
	if _, _, err := p.Load(); err != nil {
		return fail(fmt.Errorf("%s left as it was: %w", p.File, err))
	}
	if *out == "" {
		*out = peer + ".peering.yaml"
	}
	if err := b.Write(*out); err != nil {
		return fail(err)
	}
	pending, err := savePolicy(p)
	if err != nil {
		os.Remove(*out)
		return fail(err)
	}
	fmt.Fprintf(stdout, "invited %s: added it to %s (accept, user %s) and wrote %s\n", peer, p.File, b.User, *out)
	switch {
	case b.ClientKeyPEM != "":
		fmt.Fprintf(stdout, "the bundle holds %s's client certificate and its key, issued by %s\n", peer, cfg.NATS.LeafNodes.TLS.CA)
	case b.ClientCertPEM != "":
		fmt.Fprintf(stdout, "the bundle holds %s's client certificate, signed from its request %s\n", peer, *csrFile)
	case b.CAPEM != "":
		fmt.Fprintf(stdout, "note: the listener asks for a client certificate, and the bundle holds none: %s needs one signed by %s (CN %s)\n",
			peer, cfg.NATS.LeafNodes.TLS.CA, peer)
	}
	fmt.Fprintf(stdout, "next:\n  - send %s to %s over a channel fit for a password; %s runs: anfed peer add --config FILE %s\n",
		*out, peer, peer, filepath.Base(*out))
	if *key == "" {
		fmt.Fprintf(stdout, "  - pin %s's signing key (it prints it with anfed keys show): anfed peer pin --config %s %s KEY\n", peer, p.File, peer)
	}
	fmt.Fprintf(stdout, "  - say what crosses: nothing does yet (anfed peer export --config %s %s --classes C,... ; anfed peer import ... likewise)\n", p.File, peer)
	notePending(stdout, p.File, pending)
	return exitOK
}

// clientCertIssuer loads the CA that issues client certificates for the
// leaf listener, whose certificate is caFile, and the CSR to sign, if any.
func clientCertIssuer(caFile, keyFile, csrFile string) (*peering.CA, []byte, error) {
	if keyFile == "" {
		keyFile = defaultCAKey(caFile)
		if _, err := os.Stat(keyFile); err != nil {
			return nil, nil, fmt.Errorf("the leaf listener asks for client certificates (nats.leafnodes.tls.ca), and the CA's key is not at %s: "+
				"name it with --ca-key FILE, or pass --no-client-cert if the peer gets its certificate from your own PKI", keyFile)
		}
	}
	ca, err := peering.LoadCA(caFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	if csrFile == "" {
		return ca, nil, nil
	}
	csr, err := boundedfile.Read(csrFile, boundedfile.MaxSize)
	if err != nil {
		return nil, nil, fmt.Errorf("--csr: %w", err)
	}
	return ca, csr, nil
}

// defaultCAKey is where anfed init puts the key of the CA in caFile:
// ca.pem's key is ca-key.pem.
func defaultCAKey(caFile string) string {
	return strings.TrimSuffix(caFile, filepath.Ext(caFile)) + "-key.pem"
}

// defaultLeafURL is where peers dial the listener, when its address
// names one host.
func defaultLeafURL(cfg *config.Config) (string, error) {
	l := cfg.NATS.LeafNodes
	if l == nil {
		return "", errors.New("the policy has no nats.leafnodes listener to dial")
	}
	host, port, err := net.SplitHostPort(l.Listen)
	if err != nil {
		return "", fmt.Errorf("nats.leafnodes.listen %q: %w", l.Listen, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() || port == "0" {
		return "", fmt.Errorf("--leaf-url is required: the leaf listener %s does not say where peers reach it (e.g. --leaf-url tls://leaf.%s.example:7422)",
			l.Listen, cfg.Operator.ID)
	}
	scheme := "nats-leaf"
	if l.TLS != nil {
		scheme = "tls"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

func runPeerAdd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer add", stderr)
	file := fs.String("config", "", "the node's policy file (YAML)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "anfed peer add: name one bundle: anfed peer add --config FILE BUNDLE")
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "anfed peer add:", err)
		return exitFail
	}
	b, err := peering.Read(pos[0])
	if err != nil {
		return fail(err)
	}
	p, cfg, err := openPolicy(*file)
	if err != nil {
		return fail(err)
	}
	self := cfg.Operator.ID
	switch {
	case b.Peer != self:
		return fail(fmt.Errorf("%s was issued by %s to %s, and %s is the policy of %s: ask %s for a bundle issued to %s",
			pos[0], b.Issuer, b.Peer, p.File, self, b.Issuer, self))
	case b.Issuer == self:
		return fail(fmt.Errorf("%s was issued by this operator, %s: it is for %s to add", pos[0], self, b.Peer))
	}
	exists, accept := p.HasPeer(b.Issuer)
	switch {
	case exists && accept:
		// We accept the issuer already: take its key, not its credentials.
		return completePeer(p, cfg, b, stdout, stderr)
	case exists:
		return fail(fmt.Errorf("%s is already a peer in %s: remove its entry to replace it", b.Issuer, p.File))
	}
	dir := filepath.Dir(p.File)
	var tls config.TLS
	var wrote []string
	undo := func() {
		for _, f := range wrote {
			os.Remove(f)
		}
	}
	write := func(name, text string, mode os.FileMode) error {
		made, err := writeOnce(filepath.Join(dir, name), text, mode)
		if made {
			wrote = append(wrote, filepath.Join(dir, name))
		}
		return err
	}
	if b.CAPEM != "" {
		tls.CA = b.Issuer + "-ca.pem"
		if err := write(tls.CA, b.CAPEM, 0o644); err != nil {
			return fail(err)
		}
	}
	if b.ClientCertPEM != "" {
		tls.Cert, tls.Key = b.Issuer+"-client.pem", b.Issuer+"-client-key.pem"
		if b.ClientKeyPEM != "" {
			err = write(tls.Key, b.ClientKeyPEM, 0o600)
		} else {
			// Signed from our request: the key is the one anfed peer csr
			// left beside the policy.
			err = checkOwnKey(filepath.Join(dir, tls.Key), b)
		}
		if err == nil {
			err = write(tls.Cert, b.ClientCertPEM, 0o644)
		}
		if err != nil {
			undo()
			return fail(err)
		}
	}
	if err := p.AddDialing(b, tls); err != nil {
		undo()
		return fail(err)
	}
	pending, err := savePolicy(p)
	if err != nil {
		undo()
		return fail(err)
	}
	defer notePending(stdout, p.File, pending)
	fmt.Fprintf(stdout, "added %s to %s: we dial %s as %s, and pinned its signing key %s\n", b.Issuer, p.File, b.LeafURL, b.User, b.SigningKey)
	switch {
	case tls.Cert != "":
		fmt.Fprintf(stdout, "wrote %s's CA certificate to %s (dial.tls.ca) and our client certificate to %s (dial.tls.cert, dial.tls.key %s)\n",
			b.Issuer, filepath.Join(dir, tls.CA), filepath.Join(dir, tls.Cert), filepath.Join(dir, tls.Key))
	case tls.CA != "":
		fmt.Fprintf(stdout, "wrote %s's CA certificate to %s (dial.tls.ca); if %s asks for a client certificate, set dial.tls.cert and dial.tls.key\n",
			b.Issuer, filepath.Join(dir, tls.CA), b.Issuer)
	}
	fmt.Fprintf(stdout, "next: send %s your public signing key (anfed keys show --config %s) to pin, and say what crosses (anfed peer export|import --config %s %s --classes C,...)\n",
		b.Issuer, p.File, p.File, b.Issuer)
	return exitOK
}

// completePeer pins the signing key from b for a peer we already accept.
func completePeer(p *peering.Policy, cfg *config.Config, b *peering.Bundle, stdout, stderr io.Writer) int {
	cur, _ := cfg.Peer(b.Issuer)
	if cur.SigningKey != "" && cur.SigningKey != b.SigningKey {
		fmt.Fprintf(stderr, "anfed peer add: %s's pinned signing key %s differs from the bundle's %s: if %s changed its key, run anfed peer pin --force\n",
			b.Issuer, cur.SigningKey, b.SigningKey, b.Issuer)
		return exitFail
	}
	if _, err := p.Pin(b.Issuer, b.SigningKey); err != nil {
		fmt.Fprintln(stderr, "anfed peer add:", err)
		return exitFail
	}
	pending, err := savePolicy(p)
	if err != nil {
		fmt.Fprintln(stderr, "anfed peer add:", err)
		return exitFail
	}
	defer notePending(stdout, p.File, pending)
	fmt.Fprintf(stdout, "%s already dials us (accept): pinned its signing key %s in %s; the bundle's credentials are not used\n",
		b.Issuer, b.SigningKey, p.File)
	return exitOK
}

// checkOwnKey checks that the key file at path, made by anfed peer csr,
// is the key of the client certificate in b.
func checkOwnKey(path string, b *peering.Bundle) error {
	key, err := boundedfile.Read(path, boundedfile.MaxSize)
	if err != nil {
		return fmt.Errorf("the bundle's client certificate was signed from a request, and its key is not at %s (anfed peer csr writes it there): %w", path, err)
	}
	if err := peering.CheckClientCert([]byte(b.CAPEM), []byte(b.ClientCertPEM), key); err != nil {
		return fmt.Errorf("client certificate and %s: %w", path, err)
	}
	return nil
}

// writeOnce writes a file that goes with the policy (a peer's CA, our
// client certificate and key) with mode. An identical file is kept; a
// different one is never overwritten. It reports whether it made the file.
func writeOnce(path, text string, mode os.FileMode) (bool, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		old, rerr := boundedfile.Read(path, int64(len(text)))
		switch {
		case rerr == nil && bytes.Equal(old, []byte(text)):
			return false, nil
		case errors.Is(rerr, boundedfile.ErrNotRegular):
			return false, fmt.Errorf("write %s: %w; name another file", path, rerr)
		}
		return false, fmt.Errorf("write %s: a different file is there; move it away first", path)
	}
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}

func runPeerPin(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer pin", stderr)
	file := fs.String("config", "", "the node's policy file (YAML)")
	force := fs.Bool("force", false, "replace a key that is already pinned")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "anfed peer pin: want a peer and its key: anfed peer pin --config FILE PEER KEY")
		return exitUsage
	}
	peer, key := pos[0], pos[1]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "anfed peer pin %s: %v\n", peer, err)
		return exitFail
	}
	if !origin.ValidPublicKey(key) {
		return fail(fmt.Errorf("%q is not an operator public key (56 characters, starting with \"O\"; anfed keys show prints it)", key))
	}
	p, cfg, err := openPolicy(*file)
	if err != nil {
		return fail(err)
	}
	if own, err := publicKey(*file); err == nil && own == key {
		return fail(errors.New("that is this operator's own key: pin the key that the peer's anfed keys show prints"))
	}
	cur, ok := cfg.Peer(peer)
	if !ok {
		return fail(fmt.Errorf("no peer %s in %s", peer, p.File))
	}
	switch {
	case cur.SigningKey == key:
		fmt.Fprintf(stdout, "%s's signing key %s is already pinned in %s\n", peer, key, p.File)
		return exitOK
	case cur.SigningKey != "" && !*force:
		return fail(fmt.Errorf("%s is already pinned: replace a pinned key only when %s tells you it changed, with --force", cur.SigningKey, peer))
	}
	if _, err := p.Pin(peer, key); err != nil {
		return fail(err)
	}
	pending, err := savePolicy(p)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(stdout, "pinned %s's signing key %s in %s\n", peer, key, p.File)
	notePending(stdout, p.File, pending)
	return exitOK
}

func runPeerList(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer list", stderr)
	file := fs.String("config", "", "the node's policy file (YAML)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed peer list: want --config FILE and nothing else")
		return exitUsage
	}
	_, cfg, err := openPolicy(*file)
	if err != nil {
		fmt.Fprintln(stderr, "anfed peer list:", err)
		return exitFail
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tLINK\tURL/USER\tSIGNING KEY\tEXPIRES\tEXPORT\tIMPORT")
	now := time.Now()
	for _, p := range cfg.Peers {
		link, where := "", ""
		switch {
		case p.Accept != nil:
			link, where = "accept", p.Accept.User
		case p.Dial != nil:
			link, where = "dial", strings.Join(p.Dial.Addresses(), ",")+" as "+p.Dial.User
		}
		key := "(not pinned)"
		if k := p.SigningKey; len(k) > 12 {
			key = k[:8] + "..." + k[len(k)-4:]
		}
		exp := "-"
		if p.Expires != nil {
			exp = p.Expires.Format(time.RFC3339)
			if !now.Before(*p.Expires) {
				exp += " (expired)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, orDash(p.Name), link, where, key, exp,
			classes(p.Export.Classes), classes(p.Import.Classes))
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintln(stderr, "anfed peer list:", err)
		return exitFail
	}
	return exitOK
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func classes(cs []string) string {
	if len(cs) == 0 {
		return "(none)"
	}
	return strings.Join(cs, ",")
}

func runPeerCSR(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer csr", stderr)
	setUsage(fs, "Usage:\n  anfed peer csr --config FILE ISSUER [-o|--out FILE]\n\n"+
		"Makes our key for dialling ISSUER's leaf listener, beside the policy (ISSUER-client-key.pem,\n"+
		"0600), and a certificate request for ISSUER to sign: anfed peer invite --csr FILE on its side.\n"+
		"anfed peer add then finds the key.\n")
	file := fs.String("config", "", "the node's policy file (YAML)")
	out := outFlag(fs, "the certificate request to write (default OUR-ID.csr)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintln(stderr, "anfed peer csr: name the peer that will sign it: anfed peer csr --config FILE ISSUER")
		return exitUsage
	}
	issuer := pos[0]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "anfed peer csr %s: %v\n", issuer, err)
		return exitFail
	}
	if !config.ValidID(issuer) {
		return fail(errors.New("not an operator id"))
	}
	p, cfg, err := openPolicy(*file)
	if err != nil {
		return fail(err)
	}
	self := cfg.Operator.ID
	csr, key, err := peering.NewCSR(self)
	if err != nil {
		return fail(err)
	}
	if *out == "" {
		*out = self + ".csr"
	}
	keyFile := filepath.Join(filepath.Dir(p.File), issuer+"-client-key.pem")
	if _, err := writeOnce(keyFile, string(key), 0o600); err != nil {
		return fail(err)
	}
	if _, err := writeOnce(*out, string(csr), 0o644); err != nil {
		os.Remove(keyFile)
		return fail(err)
	}
	fmt.Fprintf(stdout, "wrote our key %s (keep it here) and the certificate request %s\nnext: send %s to %s, who runs: anfed peer invite --config FILE %s --csr %s\n",
		keyFile, *out, *out, issuer, self, filepath.Base(*out))
	return exitOK
}

// runPeerRules sets or prints a peer's export or import lists.
func runPeerRules(section string, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("peer "+section, stderr)
	what := map[string]string{"export": "what we send PEER", "import": "what we take from PEER"}[section]
	setUsage(fs, fmt.Sprintf("Usage:\n  anfed peer %s --config FILE PEER [--classes C,...]%s\n\n"+
		"Sets %s: the lists replace the policy's (default-deny: an empty list lets\n"+
		"nothing cross, \"*\" lets all). Without flags, prints them. The edited policy is\n"+
		"checked as anfed validate checks it, and written only if it passes.\n",
		section, map[string]string{"export": " [--services GLOB,...]"}[section], what))
	file := fs.String("config", "", "the node's policy file (YAML)")
	var classes, services stringList
	fs.Var(&classes, "classes", "the signal classes, comma-separated or repeated (congestion, fault, ...; \"*\": all)")
	if section == "export" {
		fs.Var(&services, "services", "the services whose signals cross, path globs, comma-separated or repeated (\"vpn-*\")")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "anfed peer %s: name one peer: anfed peer %s --config FILE PEER --classes C,...\n", section, section)
		return exitUsage
	}
	peer := pos[0]
	fail := func(err error) int {
		fmt.Fprintf(stderr, "anfed peer %s %s: %v\n", section, peer, err)
		return exitFail
	}
	p, cfg, err := openPolicy(*file)
	if err != nil {
		return fail(err)
	}
	pc, ok := cfg.Peer(peer)
	if !ok {
		return fail(fmt.Errorf("no peer %s in %s (anfed peer list shows them)", peer, p.File))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["classes"] && !set["services"] {
		if section == "export" {
			fmt.Fprintf(stdout, "export to %s: classes %s, services %s\n", peer, listText(pc.Export.Classes), listText(pc.Export.Services))
		} else {
			fmt.Fprintf(stdout, "import from %s: classes %s\n", peer, listText(pc.Import.Classes))
		}
		return exitOK
	}
	if set["classes"] {
		if err := p.SetList(peer, section, "classes", splitList(classes)); err != nil {
			return fail(err)
		}
	}
	if set["services"] {
		if err := p.SetList(peer, section, "services", splitList(services)); err != nil {
			return fail(err)
		}
	}
	pending, err := savePolicy(p)
	if err != nil {
		return fail(err)
	}
	_, cfg, err = openPolicy(p.File)
	if err != nil {
		return fail(err)
	}
	pc, _ = cfg.Peer(peer)
	if section == "export" {
		fmt.Fprintf(stdout, "%s: export to %s: classes %s, services %s\n", p.File, peer, listText(pc.Export.Classes), listText(pc.Export.Services))
	} else {
		fmt.Fprintf(stdout, "%s: import from %s: classes %s\n", p.File, peer, listText(pc.Import.Classes))
	}
	notePending(stdout, p.File, pending)
	return exitOK
}

// splitList splits comma-separated flag values.
func splitList(vs []string) []string {
	out := []string{}
	for _, v := range vs {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func listText(cs []string) string {
	if len(cs) == 0 {
		return "[] (nothing)"
	}
	return "[" + strings.Join(cs, ", ") + "]"
}
