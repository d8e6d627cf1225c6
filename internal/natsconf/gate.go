package natsconf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// MinServerVersion is the oldest nats-server anfed runs on or with: older
// releases have known leaf-node and permission vulnerabilities.
const MinServerVersion = "2.14.3"

// CheckServerVersion refuses a nats-server version older than
// MinServerVersion.
func CheckServerVersion(v string) error {
	ok, err := versionAtLeast(v, MinServerVersion)
	if err != nil {
		return fmt.Errorf("nats-server version %q: %w", v, err)
	}
	if !ok {
		return fmt.Errorf("nats-server %s is older than %s, which anfed requires (known leaf-node and permission vulnerabilities): upgrade it", v, MinServerVersion)
	}
	return nil
}

func versionAtLeast(v, min string) (bool, error) {
	parse := func(s string) ([3]int, error) {
		var out [3]int
		s = strings.TrimPrefix(s, "v")
		s, _, _ = strings.Cut(s, "-") // pre-release or build suffix
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			return out, fmt.Errorf("want MAJOR.MINOR.PATCH")
		}
		for i, p := range parts {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 {
				return out, fmt.Errorf("want MAJOR.MINOR.PATCH")
			}
			out[i] = n
		}
		return out, nil
	}
	a, err := parse(v)
	if err != nil {
		return false, err
	}
	b, _ := parse(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i], nil
		}
	}
	return true, nil
}

// CheckSecurity refuses server options that would let anyone in without
// credentials on a node that others can reach: a no-auth user, or
// unauthenticated access, with a leaf-node or route listener.
func CheckSecurity(o *server.Options) error {
	reachable := o.LeafNode.Port != 0 || o.Cluster.Port != 0
	if !reachable {
		return nil
	}
	if o.NoAuthUser != "" {
		return fmt.Errorf("no_auth_user %q on a node with a leaf-node or route listener: every connection must authenticate", o.NoAuthUser)
	}
	if len(o.Users) == 0 && len(o.Nkeys) == 0 && o.Username == "" && o.Authorization == "" {
		return fmt.Errorf("a node with a leaf-node or route listener must define users: unauthenticated connections would be accepted")
	}
	return nil
}
