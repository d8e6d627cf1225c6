package origin

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/anfed/anfed/internal/boundedfile"
)

// NewSigningKey makes an operator's ed25519 signing key (an NKey of the
// operator type: its public key starts with "O").
func NewSigningKey() (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("make signing key: %w", err)
	}
	return kp, nil
}

// WriteSigningKey writes kp's seed to path, readable by the owner only. It
// refuses to overwrite an existing file: a signing key is an identity.
func WriteSigningKey(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return fmt.Errorf("signing key seed: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("write signing key %s: the file exists; anfed never overwrites a key (move it away to make a new one)", path)
		}
		return fmt.Errorf("write signing key: %w", err)
	}
	if _, err := f.Write(append(seed, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write signing key %s: %w", path, err)
	}
	return f.Close()
}

// LoadSigningKey reads an operator signing key seed written by
// WriteSigningKey (or by nk/nsc: any operator NKey seed, "SO..."): a
// regular file of at most boundedfile.MaxSize bytes, so that a path to a
// device or a FIFO fails at once instead of exhausting memory or blocking.
func LoadSigningKey(path string) (nkeys.KeyPair, error) {
	b, err := boundedfile.Read(path, boundedfile.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	kp, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return kp, nil
}

// ParseSigningKey reads an operator NKey seed ("SO...") from b.
func ParseSigningKey(b []byte) (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("not an NKey seed (create one with `anfed keys init`): %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	if !nkeys.IsValidPublicOperatorKey(pub) {
		return nil, fmt.Errorf("want an operator NKey seed (SO...), got one for %s", pub[:1])
	}
	return kp, nil
}

// ValidPublicKey reports whether s is an operator public NKey, the form
// in which a peer's signing key is pinned in the policy file.
func ValidPublicKey(s string) bool { return nkeys.IsValidPublicOperatorKey(s) }
