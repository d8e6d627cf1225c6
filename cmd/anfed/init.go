package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/peering"
)

// The files anfed init writes in its directory.
const (
	initPolicy   = "policy.yaml"
	initCA       = "ca.pem"
	initCAKey    = "ca-key.pem" // defaultCAKey(initCA)
	initLeaf     = "leaf.pem"
	initLeafKey  = "leaf-key.pem"
	initToken    = "ingest.token"
	initUser     = "ops"
	initDataDir  = "data"
	initTokenLen = 32 // random bytes, base64url
)

var policyTemplate = template.Must(template.New("policy").Parse(`# The policy of {{.ID}}, made by anfed init on {{.Date}}.
# One file for the node: who we are, where we listen, who our peers are and
# what crosses to them. Every key is in docs/configuration.md. After an
# edit, check it: anfed validate {{.Policy}}
# Run the node: anfed serve --config {{.Policy}}

operator:
  id: {{.ID}}
  name: {{.Name}}
  # Signs every signal we originate; peers pin its public key (anfed keys
  # show). Keep it secret: it is this operator's identity.
  signing_key_file: signing.nk

nats:
  client:
    listen: {{.Client}}  # local producers, consumers and tools
  leafnodes:
    # Peers dial here (anfed peer invite issues what they need).
    listen: {{.Leaf}}
    # Mutual TLS: the listener presents leaf.pem, and a peer must present a
    # client certificate signed by ca.pem (anfed peer invite issues it with
    # ca-key.pem, which never leaves this directory).
    tls:
      cert: leaf.pem
      key: leaf-key.pem
      ca: ca.pem
  users:
    # A local user for producers and tools (anfed tail, peers, conditions,
    # publish): --user {{.User}} and the password from ANFED_PASSWORD or a file.
    - name: {{.User}}
      password: {{.Password}}

http:
  listen: {{.HTTP}}  # health, metrics, JSON API, dashboard
  # The bearer token of the CloudEvents ingest (POST /v1/events).
  token_file: {{.Token}}

storage:
  dir: {{.Data}}  # JetStream's files, relative to this file
  max_age: 72h
  max_bytes: 1GiB

# Peers: anfed peer invite (they dial us) or anfed peer add (we dial them);
# then anfed peer export and anfed peer import say what crosses.
peers: []
`))

type initParams struct {
	ID, Name, Date, Policy      string
	Client, Leaf, HTTP          string
	User, Password, Token, Data string
}

func runInit(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("init", stderr)
	id := fs.String("id", "", "this operator's id: lowercase letters, digits and -, starting with a letter (required)")
	dir := fs.String("dir", ".", "the directory for the policy, keys and certificates (made if missing; must hold no policy yet)")
	name := fs.String("name", "", "the operator's display name (default: its id)")
	client := fs.String("client-listen", "127.0.0.1:4222", "nats.client.listen: where local producers and tools connect")
	leaf := fs.String("leaf-listen", "127.0.0.1:7422", "nats.leafnodes.listen: where peers dial (use 0.0.0.0:7422 and --host to be reached from elsewhere)")
	httpListen := fs.String("http-listen", config.DefaultHTTPListen, "http.listen: health, metrics, API, dashboard, ingest")
	var hosts stringList
	fs.Var(&hosts, "host", "a name or address peers dial the leaf listener by, for its certificate (repeat; default: the --leaf-listen host and localhost)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if *id == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "anfed init: want --id OP [--dir DIR] and flags only (anfed init -h lists them)")
		return exitUsage
	}
	if !config.ValidID(*id) {
		fmt.Fprintf(stderr, "anfed init: --id %q: want lowercase letters, digits and \"-\", starting with a letter, at most 32\n", *id)
		return exitUsage
	}
	for _, l := range []struct{ flag, v string }{{"client-listen", *client}, {"leaf-listen", *leaf}, {"http-listen", *httpListen}} {
		if _, _, err := net.SplitHostPort(l.v); err != nil {
			fmt.Fprintf(stderr, "anfed init: --%s %q: want host:port\n", l.flag, l.v)
			return exitUsage
		}
	}
	if len(hosts) == 0 {
		h, _, _ := net.SplitHostPort(*leaf)
		if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
			hosts = append(hosts, h)
		}
		hosts = append(hosts, "localhost")
	}
	if *name == "" {
		*name = *id
	}
	p := initParams{ID: *id, Name: *name, Date: time.Now().UTC().Format(time.DateOnly),
		Policy: filepath.Join(*dir, initPolicy), Client: *client, Leaf: *leaf, HTTP: *httpListen,
		User: initUser, Token: initToken, Data: initDataDir}
	pub, err := initDir(*dir, p, hosts)
	if err != nil {
		fmt.Fprintln(stderr, "anfed init:", err)
		return exitFail
	}
	fmt.Fprintf(stdout, `made %s in %s:
  %-14s the policy (0600: it holds the local user's password)
  %-14s the signing key; public key %s
  %-14s the CA of the leaf listener; %s (0600) issues peers' client certificates
  %-14s the leaf listener's certificate, for %s; %s (0600)
  %-14s the ingest's bearer token (0600)
next:
  anfed serve --config %s
  invite a peer:   anfed peer invite --config %s PEER
  or add a bundle: anfed peer add --config %s BUNDLE
`, *id, *dir, initPolicy, signingKeyName, pub, initCA, initCAKey, initLeaf, strings.Join(hosts, ", "), initLeafKey, initToken,
		p.Policy, p.Policy, p.Policy)
	return exitOK
}

// initDir writes the files of a new operator into dir and returns its
// public signing key. It writes nothing over an existing file, and removes
// what it wrote if a later step fails.
func initDir(dir string, p initParams, hosts []string) (pub string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	var made []string
	defer func() {
		if err != nil {
			for _, f := range made {
				os.Remove(f)
			}
		}
	}()
	write := func(name string, data []byte, mode os.FileMode) error {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: anfed init makes a new operator in an empty directory (choose another --dir)", path)
		}
		if err != nil {
			return err
		}
		made = append(made, path)
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		return f.Close()
	}
	// The policy goes first, so that an existing one stops everything.
	if p.Password, err = randomText(24); err != nil {
		return "", err
	}
	var policy bytes.Buffer
	if err := policyTemplate.Execute(&policy, p); err != nil {
		return "", fmt.Errorf("policy template: %w", err)
	}
	if err := write(initPolicy, policy.Bytes(), 0o600); err != nil {
		return "", err
	}
	kp, err := origin.NewSigningKey()
	if err != nil {
		return "", err
	}
	keyPath := filepath.Join(dir, signingKeyName)
	if err := origin.WriteSigningKey(keyPath, kp); err != nil {
		return "", err
	}
	made = append(made, keyPath)
	if pub, err = kp.PublicKey(); err != nil {
		return "", err
	}
	ca, err := peering.NewCA(p.ID)
	if err != nil {
		return "", err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return "", err
	}
	leafCert, leafKey, err := ca.IssueServer("leaf."+p.ID, hosts)
	if err != nil {
		return "", err
	}
	token, err := randomText(initTokenLen)
	if err != nil {
		return "", err
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{initCAKey, caKey, 0o600}, {initCA, ca.PEM, 0o644},
		{initLeafKey, leafKey, 0o600}, {initLeaf, leafCert, 0o644},
		{initToken, []byte(token + "\n"), 0o600},
	} {
		if err := write(f.name, f.data, f.mode); err != nil {
			return "", err
		}
	}
	// What init wrote must be what serve accepts.
	if _, err := config.Load(filepath.Join(dir, initPolicy)); err != nil {
		return "", fmt.Errorf("the policy made does not load (a bug in anfed init): %w", err)
	}
	return pub, nil
}

func randomText(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
