// Package peering makes peerings between operators: the bundle an
// accepting operator issues to a peer (where to dial, the credentials to
// dial with, the issuer's public signing key and CA), and the edits that
// put a peering into a policy file without losing the operator's comments.
package peering

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/origin"
)

// Format names the bundle's format and version.
const Format = "anfed-peering/v1"

// maxBundleSize bounds a bundle file; a real one is a few kilobytes.
const maxBundleSize = 1 << 20

// minPasswordLen is what the policy file asks of a password.
const minPasswordLen = 8

// Bundle is what an operator that accepts a peer gives it: a YAML
// document, so that a human can read what they are about to trust. It
// holds a password: send it over a channel you would send a password on.
type Bundle struct {
	Format     string // always Format
	Issuer     string // the accepting operator's id
	IssuerName string // its display name; may be ""
	Peer       string // the operator the bundle is issued to
	// LeafURL is where Peer dials: nats-leaf://host:port or tls://host:port.
	LeafURL string
	// User and Password are the credentials Issuer issued to Peer.
	User, Password string
	// SigningKey is Issuer's public signing key (an operator NKey, "O..."):
	// Peer pins it to verify Issuer's signals.
	SigningKey string
	// CAPEM is the CA certificate that verifies Issuer's leaf listener,
	// PEM; "" when Issuer has none to give.
	CAPEM string
	// ClientCertPEM is Peer's client certificate for Issuer's listener
	// (mutual TLS), signed by the CA in CAPEM; its common name is Peer.
	// ClientKeyPEM is its private key, "" when Issuer signed Peer's own
	// certificate request (Peer kept the key).
	ClientCertPEM, ClientKeyPEM string
	// Expires, when set, is when the credentials stop working.
	Expires *time.Time
}

// wire is a Bundle as written: ordered keys, expires as RFC 3339 text.
type wire struct {
	Format     string `yaml:"format"`
	Issuer     string `yaml:"issuer"`
	IssuerName string `yaml:"issuer_name,omitempty"`
	Peer       string `yaml:"peer"`
	LeafURL    string `yaml:"leaf_url"`
	User       string `yaml:"user"`
	Password   string `yaml:"password"`
	SigningKey string `yaml:"signing_key"`
	CAPEM      string `yaml:"ca_pem,omitempty"`
	ClientCert string `yaml:"client_cert_pem,omitempty"`
	ClientKey  string `yaml:"client_key_pem,omitempty"`
	Expires    string `yaml:"expires,omitempty"`
}

// Read reads and checks the bundle at path, a regular file of at most
// maxBundleSize (1 MiB).
func Read(path string) (*Bundle, error) {
	data, err := boundedfile.Read(path, maxBundleSize)
	if err != nil {
		return nil, fmt.Errorf("peering bundle %s: %w", path, err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("peering bundle %s: %w", path, err)
	}
	return b, nil
}

// Parse reads a bundle from data and checks it.
func Parse(data []byte) (*Bundle, error) {
	if len(data) > maxBundleSize {
		return nil, fmt.Errorf("larger than %d bytes: not a peering bundle", maxBundleSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty: not a peering bundle")
		}
		return nil, fmt.Errorf("not a peering bundle: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("more than one YAML document: a bundle is one")
	}
	// A bundle is flat: refusing aliases keeps a few bytes from expanding
	// into a large document.
	if hasAlias(&doc) {
		return nil, errors.New("YAML aliases (*name) are not allowed in a peering bundle")
	}
	var w wire
	if err := strictDecode(&doc, &w); err != nil {
		return nil, fmt.Errorf("not a peering bundle: %w", err)
	}
	if w.Format != Format {
		return nil, fmt.Errorf("format %q: want %q", w.Format, Format)
	}
	b := &Bundle{
		Format: w.Format, Issuer: w.Issuer, IssuerName: w.IssuerName, Peer: w.Peer,
		LeafURL: w.LeafURL, User: w.User, Password: w.Password,
		SigningKey: w.SigningKey, CAPEM: w.CAPEM,
		ClientCertPEM: w.ClientCert, ClientKeyPEM: w.ClientKey,
	}
	if w.Expires != "" {
		t, err := time.Parse(time.RFC3339, w.Expires)
		if err != nil {
			return nil, fmt.Errorf("expires %q: want an RFC 3339 time such as 2027-01-01T00:00:00Z", w.Expires)
		}
		b.Expires = &t
	}
	if err := b.Check(); err != nil {
		return nil, err
	}
	return b, nil
}

func hasAlias(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		return true
	}
	for _, c := range n.Content {
		if hasAlias(c) {
			return true
		}
	}
	return false
}

// strictDecode decodes doc into v, refusing unknown keys: yaml.Node's own
// Decode does not know KnownFields, so the node is re-encoded and read by
// a strict decoder.
func strictDecode(doc *yaml.Node, v any) error {
	data, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(v)
}

// Check reports the first problem that makes b unusable.
func (b *Bundle) Check() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"issuer", b.Issuer}, {"peer", b.Peer}, {"leaf_url", b.LeafURL},
		{"user", b.User}, {"password", b.Password}, {"signing_key", b.SigningKey},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	switch {
	case b.Format != Format:
		return fmt.Errorf("format %q: want %q", b.Format, Format)
	case len(missing) > 0:
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	case !config.ValidID(b.Issuer):
		return fmt.Errorf("issuer %q is not an operator id", b.Issuer)
	case !config.ValidID(b.Peer):
		return fmt.Errorf("peer %q is not an operator id", b.Peer)
	case b.Issuer == b.Peer:
		return fmt.Errorf("issuer and peer are both %q", b.Issuer)
	case utf8.RuneCountInString(b.Password) < minPasswordLen:
		return fmt.Errorf("password shorter than %d characters", minPasswordLen)
	case !origin.ValidPublicKey(b.SigningKey):
		return fmt.Errorf("signing_key %q is not an operator public key (O...)", b.SigningKey)
	}
	if err := checkLeafURL(b.LeafURL); err != nil {
		return err
	}
	if b.CAPEM != "" {
		if err := checkCAPEM([]byte(b.CAPEM)); err != nil {
			return fmt.Errorf("ca_pem: %w", err)
		}
	}
	switch {
	case b.ClientCertPEM == "" && b.ClientKeyPEM != "":
		return errors.New("client_key_pem without client_cert_pem")
	case b.ClientCertPEM == "":
	case b.CAPEM == "":
		return errors.New("client_cert_pem without ca_pem")
	default:
		var key []byte
		if b.ClientKeyPEM != "" {
			key = []byte(b.ClientKeyPEM)
		}
		if err := CheckClientCert([]byte(b.CAPEM), []byte(b.ClientCertPEM), key); err != nil {
			return fmt.Errorf("client_cert_pem: %w", err)
		}
	}
	return nil
}

func checkLeafURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("leaf_url %q: not a URL", raw)
	}
	switch u.Scheme {
	case "nats-leaf", "tls", "nats":
	default:
		return fmt.Errorf("leaf_url %q: want nats-leaf://host:port or tls://host:port", raw)
	}
	if u.User != nil {
		return fmt.Errorf("leaf_url %q: credentials belong in user and password", raw)
	}
	if h, p, err := net.SplitHostPort(u.Host); err != nil || h == "" || p == "" {
		return fmt.Errorf("leaf_url %q: want host:port", raw)
	}
	return nil
}

// checkCAPEM requires at least one certificate and nothing but
// certificates: a bundle never carries a private key.
func checkCAPEM(data []byte) error {
	n := 0
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return fmt.Errorf("holds a %s block: want certificates only", blk.Type)
		}
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM certificate")
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return errors.New("text after the last certificate")
	}
	return nil
}

// Marshal returns b as the YAML document Write writes.
func (b *Bundle) Marshal() ([]byte, error) {
	w := wire{
		Format: b.Format, Issuer: b.Issuer, IssuerName: b.IssuerName, Peer: b.Peer,
		LeafURL: b.LeafURL, User: b.User, Password: b.Password,
		SigningKey: b.SigningKey, CAPEM: b.CAPEM,
		ClientCert: b.ClientCertPEM, ClientKey: b.ClientKeyPEM,
	}
	if b.Expires != nil {
		w.Expires = b.Expires.Format(time.RFC3339)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# anfed peering bundle: %s invites %s to dial it.\n", b.Issuer, b.Peer)
	if b.ClientKeyPEM != "" {
		fmt.Fprintf(&buf, "# It holds the password and the client certificate's key %s issued: send it as you would send a password.\n", b.Issuer)
	} else {
		fmt.Fprintf(&buf, "# It holds the password %s issued: send it as you would send a password.\n", b.Issuer)
	}
	fmt.Fprintf(&buf, "# On %s's side: anfed peer add --config FILE <this file>\n", b.Peer)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("encode peering bundle: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode peering bundle: %w", err)
	}
	return buf.Bytes(), nil
}

// Write checks b and writes it to path, readable by the owner only. It
// refuses to overwrite a file.
func (b *Bundle) Write(path string) error {
	if err := b.Check(); err != nil {
		return fmt.Errorf("write peering bundle %s: %w", path, err)
	}
	data, err := b.Marshal()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write peering bundle %s: the file exists; anfed never overwrites a bundle (move it away, or choose another file with --out)", path)
		}
		return fmt.Errorf("write peering bundle: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write peering bundle %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return fmt.Errorf("write peering bundle %s: %w", path, err)
	}
	return nil
}
