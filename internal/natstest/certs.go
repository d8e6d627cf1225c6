package natstest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// CA is a throwaway certificate authority for TLS tests: ECDSA P-256,
// valid for a day, its files in a t.TempDir().
type CA struct {
	// File is the CA certificate, PEM: what a policy names as tls.ca.
	File string
	// Cert is the parsed CA certificate.
	Cert *x509.Certificate

	key *ecdsa.PrivateKey
	dir string
}

// NewCA makes a CA named after the test.
func NewCA(t testing.TB) *CA {
	t.Helper()
	return NewCAUntil(t, time.Now().Add(24*time.Hour))
}

// NewCAUntil is NewCA valid until notAfter.
func NewCAUntil(t testing.TB, notAfter time.Time) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "anfed test CA " + t.Name()},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.pem")
	writePEM(t, file, "CERTIFICATE", der)
	return &CA{File: file, Cert: cert, key: key, dir: dir}
}

// Issue makes a certificate and key signed by ca, named name, good for
// both server and client authentication, with ips (and name, as a DNS
// name) as subject alternative names. It returns the PEM files.
func (ca *CA) Issue(t testing.TB, name string, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	return ca.IssueUntil(t, name, time.Now().Add(24*time.Hour), ips...)
}

// IssueUntil is Issue valid until notAfter.
func (ca *CA) IssueUntil(t testing.TB, name string, notAfter time.Time, ips ...net.IP) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{name},
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile = filepath.Join(ca.dir, name+".pem")
	keyFile = filepath.Join(ca.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// PEM returns the CA certificate in PEM form.
func (ca *CA) PEM(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(ca.File)
	require.NoError(t, err)
	return b
}

// ClientTLS returns a client configuration that trusts ca and presents
// the certificate in certFile and keyFile, or none when both are "".
// Use it with StartRogueLeafTLS to dial a TLS leaf listener.
func (ca *CA) ClientTLS(t testing.TB, certFile, keyFile string) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

// ServedSerial is the serial of the certificate a TLS leaf listener at
// addr, signed by ca, presents to a new connection (nats-server sends its
// INFO in the clear, then upgrades to TLS): what a certificate rotation
// changes.
func (ca *CA) ServedSerial(t testing.TB, addr string) *big.Int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "INFO "), line)
	cfg := ca.ClientTLS(t, "", "")
	host, _, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	cfg.ServerName = host
	tc := tls.Client(c, cfg)
	require.NoError(t, tc.Handshake())
	return tc.ConnectionState().PeerCertificates[0].SerialNumber
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	require.NoError(t, err)
	return n
}

func writePEM(t testing.TB, file, typ string, der []byte) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	require.NoError(t, os.WriteFile(file, b, 0o600))
}
