package peering

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/origin"
)

// UserFor is the leaf user name we issue to peer.
func UserFor(peer string) string { return "peer-" + peer }

// NewPassword returns a fresh random password: 24 bytes, base64url.
func NewPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Invite is what NewInvite issues.
type Invite struct {
	Peer    string     // the invited operator's id
	LeafURL string     // where it dials us
	Expires *time.Time // when the credentials end; nil: never
	// CA, when set, issues the peer's client certificate for mutual TLS:
	// it signs CSR (PEM) when given, else it makes a key and certificate.
	// It must be the CA in nats.leafnodes.tls.ca.
	CA  *CA
	CSR []byte
}

// NewInvite issues fresh credentials to in.Peer for dialling our leaf
// listener at in.LeafURL, in a bundle that also carries our public
// signing key (read from the operator's signing_key_file), when the
// listener has one the CA in nats.leafnodes.tls.ca, and with in.CA the
// peer's client certificate. That CA must have signed the listener's
// certificate too: the peer verifies the listener with it.
func NewInvite(cfg *config.Config, in Invite) (*Bundle, error) {
	peerID, leafURL, expires := in.Peer, in.LeafURL, in.Expires
	self := cfg.Operator.ID
	switch {
	case !config.ValidID(peerID):
		return nil, fmt.Errorf("invite %q: not an operator id (lowercase letters, digits and \"-\", starting with a letter)", peerID)
	case peerID == self:
		return nil, fmt.Errorf("invite %q: that is this node's own operator id", peerID)
	case cfg.NATS.LeafNodes == nil:
		return nil, fmt.Errorf("invite %s: the policy has no nats.leafnodes listener for %s to dial", peerID, peerID)
	case cfg.Operator.SigningKeyFile == "":
		return nil, errors.New("invite: operator.signing_key_file is not set (create a key with `anfed keys init --dir DIR`)")
	}
	if _, ok := cfg.Peer(peerID); ok {
		return nil, fmt.Errorf("invite %s: already a peer in the policy", peerID)
	}
	if expires != nil && !expires.After(time.Now()) {
		return nil, fmt.Errorf("invite %s: expires %s is in the past", peerID, expires.Format(time.RFC3339))
	}
	user := UserFor(peerID)
	for _, u := range cfg.NATS.Users {
		if u.Name == user {
			return nil, fmt.Errorf("invite %s: the leaf user %q is already a local user in nats.users", peerID, user)
		}
	}
	for _, p := range cfg.Peers {
		if p.Accept != nil && p.Accept.User == user {
			return nil, fmt.Errorf("invite %s: the leaf user %q is already issued to %s", peerID, user, p.ID)
		}
	}
	kp, err := origin.LoadSigningKey(cfg.Operator.SigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("invite %s: %w", peerID, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("invite %s: %w", peerID, err)
	}
	pass, err := NewPassword()
	if err != nil {
		return nil, err
	}
	b := &Bundle{
		Format:     Format,
		Issuer:     self,
		IssuerName: cfg.Operator.Name,
		Peer:       peerID,
		LeafURL:    leafURL,
		User:       user,
		Password:   pass,
		SigningKey: pub,
		Expires:    expires,
	}
	if t := cfg.NATS.LeafNodes.TLS; t != nil && t.CA != "" {
		if b.CAPEM, err = listenerCA(t); err != nil {
			return nil, fmt.Errorf("invite %s: %w", peerID, err)
		}
	}
	if in.CA != nil {
		if err := b.issueClientCert(in.CA, in.CSR); err != nil {
			return nil, fmt.Errorf("invite %s: %w", peerID, err)
		}
	}
	if err := b.Check(); err != nil {
		return nil, fmt.Errorf("invite %s: %w", peerID, err)
	}
	return b, nil
}

// issueClientCert puts the peer's client certificate, issued by ca, in b.
func (b *Bundle) issueClientCert(ca *CA, csr []byte) error {
	if b.CAPEM == "" {
		return errors.New("a client certificate needs nats.leafnodes.tls.ca: the listener does not ask for one")
	}
	if !bytes.Contains([]byte(b.CAPEM), bytes.TrimSpace(ca.PEM)) {
		return errors.New("the CA given is not nats.leafnodes.tls.ca: the listener would refuse its certificates")
	}
	var notAfter time.Time
	if b.Expires != nil {
		notAfter = *b.Expires
	}
	if csr != nil {
		cert, err := ca.SignCSR(b.Peer, csr, notAfter)
		if err != nil {
			return err
		}
		b.ClientCertPEM = string(cert)
		return nil
	}
	cert, key, err := ca.IssueClient(b.Peer, notAfter)
	if err != nil {
		return err
	}
	b.ClientCertPEM, b.ClientKeyPEM = string(cert), string(key)
	return nil
}

// listenerCA reads the CA file of the leaf listener's TLS and checks that
// it verifies the listener's own certificate, as the peer will.
func listenerCA(t *config.TLS) (string, error) {
	caPEM, err := boundedfile.Read(t.CA, boundedfile.MaxSize)
	if err != nil {
		return "", fmt.Errorf("read nats.leafnodes.tls.ca: %w", err)
	}
	if err := checkCAPEM(caPEM); err != nil {
		return "", fmt.Errorf("nats.leafnodes.tls.ca %s: %w", t.CA, err)
	}
	if t.Cert == "" {
		return string(caPEM), nil
	}
	certPEM, err := boundedfile.Read(t.Cert, boundedfile.MaxSize)
	if err != nil {
		return "", fmt.Errorf("read nats.leafnodes.tls.cert: %w", err)
	}
	// The file may hold the chain: the listener's certificate first, then
	// intermediates.
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", fmt.Errorf("nats.leafnodes.tls.cert %s: %w", t.Cert, err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return "", fmt.Errorf("nats.leafnodes.tls.cert %s: no PEM certificate", t.Cert)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := chain[0].Verify(opts); err != nil {
		return "", fmt.Errorf("nats.leafnodes.tls.ca %s does not verify the listener's certificate %s, so the peer could not either: %w", t.CA, t.Cert, err)
	}
	return string(caPEM), nil
}
