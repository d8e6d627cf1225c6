package natsconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/anfed/anfed/internal/boundedfile"
	"github.com/anfed/anfed/internal/config"
)

// SeedFile is the file in dir that holds the seed of the node's user of
// account: OPS.nk, SYS.nk, PEER_<id>.nk.
func SeedFile(dir, account string) string { return filepath.Join(dir, account+".nk") }

// LoadSecrets reads the node's users from nats.external's credentials_dir:
// one NKey user seed per account (a bare "SU..." seed or a .creds-style
// decorated file). The cluster knows their public keys from the
// configuration `anfed natsconf` wrote, so they must stay the same.
func LoadSecrets(cfg *config.Config) (Secrets, error) {
	e := cfg.NATS.External
	if e == nil {
		return nil, errors.New("nats.external is not set: an embedded server makes its own users at each start")
	}
	s := Secrets{}
	var errs []error
	for _, acc := range Accounts(cfg) {
		f := SeedFile(e.CredentialsDir, acc)
		kp, err := readSeed(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			errs = append(errs, fmt.Errorf("the node's user of account %s: %s does not exist: run `anfed natsconf --config %s` to create it, and load the configuration it writes into the cluster's servers", acc, f, cfg.File))
		case err != nil:
			errs = append(errs, fmt.Errorf("the node's user of account %s: %s: %w", acc, f, err))
		default:
			s[acc] = kp
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// EnsureSecrets creates, in nats.external's credentials_dir, the seed of
// every account's user that is missing, readable only by the owner, and
// returns the files it created. It never replaces a seed: the cluster's
// servers know the public keys of those in place.
func EnsureSecrets(cfg *config.Config) (created []string, err error) {
	e := cfg.NATS.External
	if e == nil {
		return nil, errors.New("nats.external is not set")
	}
	if err := os.MkdirAll(e.CredentialsDir, 0o700); err != nil {
		return nil, fmt.Errorf("credentials_dir: %w", err)
	}
	for _, acc := range Accounts(cfg) {
		f := SeedFile(e.CredentialsDir, acc)
		if _, err := os.Stat(f); err == nil {
			continue
		} else if !errors.Is(err, fs.ErrNotExist) {
			return created, err
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return created, fmt.Errorf("make the node's user of %s: %w", acc, err)
		}
		seed, _ := kp.Seed()
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return created, fmt.Errorf("write %s: %w", f, err)
		}
		_, werr := fh.Write(append(seed, '\n'))
		if cerr := fh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return created, fmt.Errorf("write %s: %w", f, werr)
		}
		created = append(created, f)
	}
	return created, nil
}

func readSeed(file string) (nkeys.KeyPair, error) {
	data, err := boundedfile.Read(file, boundedfile.MaxSize)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("not an NKey seed: %w", err)
	}
	seed, err := kp.Seed()
	if err != nil || !strings.HasPrefix(string(seed), "SU") {
		return nil, errors.New(`not a user NKey seed (want "SU...")`)
	}
	return kp, nil
}
