package peering

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/anfed/anfed/internal/boundedfile"
)

// CAValidity is how long the CA that `anfed init` makes is valid; the
// listener's certificate and the client certificates it issues end with it
// at the latest.
const CAValidity = 10 * 365 * 24 * time.Hour

// CA is an operator's own certificate authority for its leaf listener:
// it signs the listener's certificate and the client certificates of the
// peers that dial it (mutual TLS). ECDSA P-256.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	PEM  []byte // Cert, PEM
}

// NewCA makes a self-signed CA named after the operator.
func NewCA(operatorID string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("make CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "anfed CA of " + operatorID, Organization: []string{operatorID}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("make CA certificate: %w", err)
	}
	return &CA{Cert: cert, key: key, PEM: pemBlock("CERTIFICATE", der)}, nil
}

// LoadCA reads a CA certificate and its private key (PEM files).
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := boundedfile.Read(certFile, boundedfile.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", certFile, err)
	}
	keyPEM, err := boundedfile.Read(keyFile, boundedfile.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("CA key %s: %w", keyFile, err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("CA key %s is not the key of the CA certificate %s", keyFile, certFile)
	}
	return &CA{Cert: cert, key: key, PEM: pemBlock("CERTIFICATE", blk.Bytes)}, nil
}

// KeyPEM returns the CA's private key, PEM (PKCS #8).
func (ca *CA) KeyPEM() ([]byte, error) { return keyPEM(ca.key) }

// IssueServer makes the leaf listener's certificate and key, valid for
// the given host names and addresses.
func (ca *CA) IssueServer(cn string, hosts []string) (certPEM, keyPEMBytes []byte, err error) {
	tmpl := ca.template(cn, ca.Cert.NotAfter, x509.ExtKeyUsageServerAuth)
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(tmpl)
}

// IssueClient makes a client certificate and key for peer: its common
// name is the peer's operator id. It ends at notAfter, or with the CA
// when notAfter is zero or later.
func (ca *CA) IssueClient(peer string, notAfter time.Time) (certPEM, keyPEMBytes []byte, err error) {
	return ca.issue(ca.template(peer, ca.end(notAfter), x509.ExtKeyUsageClientAuth))
}

// SignCSR signs a certificate signing request of peer as a client
// certificate. The CSR's own subject and extensions are ignored: the
// certificate names peer and is good for client authentication only.
func (ca *CA) SignCSR(peer string, csrPEM []byte, notAfter time.Time) ([]byte, error) {
	blk, _ := pem.Decode(csrPEM)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("no PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	tmpl := ca.template(peer, ca.end(notAfter), x509.ExtKeyUsageClientAuth)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate request: %w", err)
	}
	return pemBlock("CERTIFICATE", der), nil
}

func (ca *CA) end(notAfter time.Time) time.Time {
	if notAfter.IsZero() || notAfter.After(ca.Cert.NotAfter) {
		return ca.Cert.NotAfter
	}
	return notAfter
}

func (ca *CA) template(cn string, notAfter time.Time, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

func (ca *CA) issue(tmpl *x509.Certificate) (certPEM, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE", der), kp, nil
}

// NewCSR makes a key and a certificate signing request for it, named cn:
// the dialling side keeps the key and sends the request.
func NewCSR(cn string) (csrPEM, keyPEMBytes []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("make certificate request: %w", err)
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pemBlock("CERTIFICATE REQUEST", der), kp, nil
}

// CheckClientCert checks that certPEM is a client certificate that caPEM
// verifies and, when keyPEM is not nil, that keyPEM is its key.
func CheckClientCert(caPEM, certPEM, keyPEMBytes []byte) error {
	blk, rest := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("no PEM certificate")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return errors.New("text after the certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no CA to verify it with")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the CA does not verify it as a client certificate: %w", err)
	}
	if keyPEMBytes == nil {
		return nil
	}
	key, err := parseKey(keyPEMBytes)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if !samePublicKey(cert.PublicKey, key.Public()) {
		return errors.New("the key is not the certificate's")
	}
	return nil
}

func parseKey(data []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("no PEM key")
	}
	var k any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("a %s block: want a private key", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a %T cannot sign", k)
	}
	return s, nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

func keyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	return pemBlock("PRIVATE KEY", der), nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serialNumber() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on the platforms Go supports.
		panic(fmt.Sprintf("serial number: %v", err))
	}
	return n
}
