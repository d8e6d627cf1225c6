package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/origin"
)

const (
	secretModeHint = "chmod 600 %s: only the node's user should read it"
	pemHint        = "a PEM file (-----BEGIN CERTIFICATE----- ...), e.g. made with openssl or your PKI"
)

// policyMode is the permission bits of the policy file name, or 0 when it
// cannot be told (bytes not from a file).
func policyMode(name string) fs.FileMode {
	fi, err := os.Stat(name)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Mode().Perm()
}

// fileChecker reads the files a checked config names.
type fileChecker struct {
	errs, warnings []*Error
}

func (f *fileChecker) add(path, hint, format string, args ...any) {
	f.errs = append(f.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (f *fileChecker) warn(path, hint, format string, args ...any) {
	f.warnings = append(f.warnings, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// read reads the file at key path (its value file), bounded; secret says
// whether others reading it is a warning. It reports the problem and
// returns nil when the file cannot be used.
func (f *fileChecker) read(path, file string, secret bool, hint string) []byte {
	b, err := boundedfile.Read(file, boundedfile.MaxSize)
	if err != nil {
		var pe *fs.PathError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f.add(path, hint, "%s does not exist", file)
		case errors.Is(err, boundedfile.ErrNotRegular), errors.Is(err, boundedfile.ErrTooLarge):
			f.add(path, hint, "%v", err)
		case errors.As(err, &pe):
			f.add(path, hint, "cannot read %s: %v", file, pe.Err)
		default:
			f.add(path, hint, "cannot read %s: %v", file, err)
		}
		return nil
	}
	if secret {
		if fi, err := os.Stat(file); err == nil && boundedfile.Exposed(fi) {
			f.warn(path, fmt.Sprintf(secretModeHint, file), "%s is readable by others (mode %04o): it holds a secret", file, fi.Mode().Perm())
		}
	}
	return b
}

// checkFiles checks every file c names (its paths resolved): the signing
// key, tokens and passwords, TLS certificates, keys and CAs, the node's
// NATS credentials; and warns when the policy file, which holds leaf
// passwords, is readable by others (policy is its mode, 0: unknown).
func (c *Config) checkFiles(policy fs.FileMode) (Errors, []*Error) {
	f := &fileChecker{}
	if k := c.Operator.SigningKeyFile; k != "" {
		if b := f.read("operator.signing_key_file", k, true, keyFileHint); b != nil {
			if _, err := origin.ParseSigningKey(b); err != nil {
				f.add("operator.signing_key_file", keyFileHint, "%s: %v", k, err)
			}
		}
	}
	c.tokenFiles(f)
	ext := c.NATS.External != nil
	if l := c.NATS.LeafNodes; l != nil && l.TLS != nil {
		f.tls("nats.leafnodes.tls", l.TLS, ext)
	}
	for i, p := range c.Peers {
		if p.Dial != nil && p.Dial.TLS != nil {
			f.tls(fmt.Sprintf("peers[%d].dial.tls", i), p.Dial.TLS, ext)
		}
	}
	if e := c.NATS.External; e != nil {
		if e.TLS != nil {
			f.tls("nats.external.tls", e.TLS, false)
		}
		c.credentials(f, e.CredentialsDir)
	}
	if policy&0o077 != 0 && c.holdsPasswords() {
		f.warn("", fmt.Sprintf(secretModeHint, c.File), "the policy file is readable by others (mode %04o) and holds passwords (nats.users, peers' accept and dial)", policy)
	}
	return f.errs, f.warnings
}

// tokenFiles warns about tokens and passwords that others may read; the
// semantic checks already read them (ReadToken).
func (c *Config) tokenFiles(f *fileChecker) {
	secret := func(path, file string) {
		if file == "" {
			return
		}
		if fi, err := os.Stat(file); err == nil && fi.Mode().IsRegular() && boundedfile.Exposed(fi) {
			f.warn(path, fmt.Sprintf(secretModeHint, file), "%s is readable by others (mode %04o): it holds a secret", file, fi.Mode().Perm())
		}
	}
	secret("http.token_file", c.HTTP.TokenFile)
	if c.Intents != nil {
		secret("intents.token_file", c.Intents.TokenFile)
	}
	secret("http.admin_token_file", c.HTTP.AdminTokenFile)
	if t := c.Bridges.TMF642; t != nil {
		secret("bridges.tmf642.token_file", t.TokenFile)
		for i, u := range t.Upstream {
			secret(fmt.Sprintf("bridges.tmf642.upstream[%d].token_file", i), u.TokenFile)
		}
	}
	if v := c.Bridges.VES; v != nil {
		secret("bridges.ves.token_file", v.TokenFile)
		secret("bridges.ves.password_file", v.PasswordFile)
	}
}

// tls checks a TLS block's files: the certificate and key as a pair, the
// CA as at least one certificate. On a cluster (external) the listener's
// and remotes' files are read by the servers, which may hold them at
// paths this machine does not have: a missing one is then a warning.
func (f *fileChecker) tls(base string, t *TLS, onServers bool) {
	read := func(key, file string, secret bool, hint string) []byte {
		if file == "" {
			return nil
		}
		if onServers {
			if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
				f.warn(base+"."+key, "the cluster's servers read it: it must exist at this path on each of them", "%s does not exist on this machine", file)
				return nil
			}
		}
		return f.read(base+"."+key, file, secret, hint)
	}
	cert := read("cert", t.Cert, false, pemHint)
	key := read("key", t.Key, true, "the PEM private key of "+base+".cert")
	if cert != nil && key != nil {
		if _, err := tls.X509KeyPair(cert, key); err != nil {
			f.add(base+".cert", "a PEM certificate and the PEM private key it was issued for", "%s and %s: %v", t.Cert, t.Key, err)
		}
	}
	if ca := read("ca", t.CA, false, pemHint); ca != nil {
		if !x509.NewCertPool().AppendCertsFromPEM(ca) {
			f.add(base+".ca", pemHint, "%s holds no PEM certificate", t.CA)
		}
	}
}

// credentials checks the node's NATS user seeds that exist in dir
// (`anfed natsconf` makes the missing ones).
func (c *Config) credentials(f *fileChecker, dir string) {
	if dir == "" {
		return
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.nk"))
	for _, n := range names {
		f.read("nats.external.credentials_dir", n, true, "the node's NKey user seed, made by `anfed natsconf`")
	}
}

// holdsPasswords reports whether the policy holds a password in clear.
func (c *Config) holdsPasswords() bool {
	for _, u := range c.NATS.Users {
		if u.Password != "" {
			return true
		}
	}
	for _, p := range c.Peers {
		if p.Accept != nil && p.Accept.Password != "" || p.Dial != nil && p.Dial.Password != "" {
			return true
		}
	}
	return false
}
