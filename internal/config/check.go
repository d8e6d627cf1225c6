package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/anfed/anfed/schemas"
)

const (
	defaultClientListen    = "127.0.0.1:4222"
	defaultMaxAge          = Duration(72 * time.Hour)
	defaultMaxBytes        = ByteSize(1 << 30)
	defaultDuplicateWindow = Duration(2 * time.Minute)

	minPasswordLen = 8
)

var idRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

const (
	idHint       = `an id is 1 to 32 characters: a lowercase letter, then lowercase letters, digits or "-" (^[a-z][a-z0-9-]{0,31}$)`
	passwordHint = "use at least 8 characters, e.g. the output of `openssl rand -base64 24`"
	listenHint   = `write host:port, e.g. "127.0.0.1:4222", or ":7422" for every interface; port 0 picks a free port`
)

// withDefaults returns s with zero limits replaced by their defaults.
func (s Storage) withDefaults() Storage {
	if s.MaxAge == 0 {
		s.MaxAge = defaultMaxAge
	}
	if s.MaxBytes == 0 {
		s.MaxBytes = defaultMaxBytes
	}
	if s.DuplicateWindow == 0 {
		s.DuplicateWindow = defaultDuplicateWindow
	}
	return s
}

// checker collects the problems of one config. Paths name the offending
// value; Parse turns them into lines.
type checker struct {
	// given reports whether the file wrote a non-null value at path. For
	// configs built in code it is always false: a zero value means "unset".
	given    func(path string) bool
	errs     Errors
	warnings []*Error
}

func (c *checker) add(path, hint, format string, args ...any) {
	c.errs = append(c.errs, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (c *checker) warn(path, hint, format string, args ...any) {
	c.warnings = append(c.warnings, &Error{Path: path, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// check runs every semantic check on c and returns all problems and
// warnings, in the order of the file's sections.
func (c *Config) check(given func(path string) bool) (Errors, []*Error) {
	if given == nil {
		given = func(string) bool { return false }
	}
	ck := &checker{given: given}
	ck.id("operator.id", c.Operator.ID)
	ck.nats(&c.NATS)
	ck.storage(c.Storage)
	ck.peers(c)
	return ck.errs, ck.warnings
}

func (c *checker) id(path, id string) {
	switch {
	case id == "":
		c.add(path, idHint, "required")
	case !idRE.MatchString(id):
		c.add(path, idHint, "invalid id %q", id)
	}
}

func (c *checker) password(path, pw string) {
	switch {
	case pw == "":
		c.add(path, passwordHint, "required")
	case utf8.RuneCountInString(pw) < minPasswordLen:
		c.add(path, passwordHint, "too short: want at least %d characters", minPasswordLen)
	}
}

func (c *checker) listen(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(path, listenHint, "invalid address %q: %v", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		c.add(path, listenHint, "invalid port %q in %q: want 0 to 65535", port, addr)
	}
}

func (c *checker) nats(n *NATS) {
	if n.Client.Listen != "" {
		c.listen("nats.client.listen", n.Client.Listen)
	}
	if n.LeafNodes != nil {
		if n.LeafNodes.Listen == "" {
			c.add("nats.leafnodes.listen", `e.g. "0.0.0.0:7422"; remove nats.leafnodes to accept no peers`, "required")
		} else {
			c.listen("nats.leafnodes.listen", n.LeafNodes.Listen)
		}
	}
	names := map[string]int{}
	for i, u := range n.Users {
		base := fmt.Sprintf("nats.users[%d]", i)
		if u.Name == "" {
			c.add(base+".name", "every user needs a name to log in with", "required")
		} else if j, dup := names[u.Name]; dup {
			c.add(base+".name", "give each user its own name", "duplicate user %q (also nats.users[%d])", u.Name, j)
		} else {
			names[u.Name] = i
		}
		c.password(base+".password", u.Password)
	}
}

func (c *checker) storage(s Storage) {
	if s.Dir == "" {
		c.add("storage.dir", "a directory for JetStream files, e.g. ./data/<id>", "required")
	}
	positive := func(path string, v int64, def fmt.Stringer) {
		if v < 0 || v == 0 && c.given(path) {
			c.add(path, fmt.Sprintf("leave it out for the default, %s", def), "must be greater than zero")
		}
	}
	positive("storage.max_age", int64(s.MaxAge), defaultMaxAge)
	positive("storage.max_bytes", int64(s.MaxBytes), defaultMaxBytes)
	positive("storage.duplicate_window", int64(s.DuplicateWindow), defaultDuplicateWindow)
	eff := s.withDefaults()
	if eff.MaxAge > 0 && eff.DuplicateWindow > eff.MaxAge {
		c.add("storage.duplicate_window", "signals are deleted after max_age, so they cannot be remembered for longer: shorten duplicate_window or raise max_age",
			"%s is longer than max_age (%s)", eff.DuplicateWindow, eff.MaxAge)
	}
}

func (c *checker) peers(cfg *Config) {
	ids := map[string]int{}
	acceptUsers := map[string]int{}
	localUsers := map[string]bool{}
	for _, u := range cfg.NATS.Users {
		localUsers[u.Name] = true
	}
	for i, p := range cfg.Peers {
		base := fmt.Sprintf("peers[%d]", i)
		c.id(base+".id", p.ID)
		if p.ID != "" {
			if j, dup := ids[p.ID]; dup {
				c.add(base+".id", "list each peer once", "duplicate peer %q (also peers[%d])", p.ID, j)
			} else {
				ids[p.ID] = i
			}
			if p.ID == cfg.Operator.ID {
				c.add(base+".id", "a peer is another operator; operator.id names this node", "peer %q is this node's own operator id", p.ID)
			}
		}
		const oneOfHint = "accept: the peer dials our leafnodes listener; dial: we dial the peer"
		switch {
		case p.Accept != nil && p.Dial != nil:
			c.add(base, oneOfHint, "has both accept and dial; want exactly one")
		case p.Accept == nil && p.Dial == nil:
			c.add(base, oneOfHint, "needs accept or dial")
		}
		if a := p.Accept; a != nil {
			if cfg.NATS.LeafNodes == nil {
				c.add(base+".accept", `add nats.leafnodes with listen: "0.0.0.0:7422", or dial the peer instead`,
					"accepting a peer needs a leaf-node listener, and nats.leafnodes is not set")
			}
			switch {
			case a.User == "":
				c.add(base+".accept.user", "the user name we issue to the peer for its leaf connection", "required")
			case localUsers[a.User]:
				c.add(base+".accept.user", "each peer needs its own user, distinct from nats.users", "user %q is also a local user in nats.users", a.User)
			default:
				if j, dup := acceptUsers[a.User]; dup {
					c.add(base+".accept.user", "each peer needs its own user", "user %q is also accepted for peers[%d]", a.User, j)
				} else {
					acceptUsers[a.User] = i
				}
			}
			c.password(base+".accept.password", a.Password)
		}
		if d := p.Dial; d != nil {
			c.dialURL(base+".dial.url", d.URL)
			peer := p.ID
			if peer == "" {
				peer = "the peer"
			}
			if d.User == "" {
				c.add(base+".dial.user", fmt.Sprintf("the user name %s issued to us", peer), "required")
			}
			if d.Password == "" {
				c.add(base+".dial.password", fmt.Sprintf("the password %s issued to us", peer), "required")
			}
		}
		c.classes(base+".export.classes", p.Export.Classes)
		c.classes(base+".import.classes", p.Import.Classes)
		c.services(base+".export.services", p.Export.Services)
		name := p.ID
		if name == "" {
			name = base
		}
		if len(p.Export.Classes) == 0 {
			c.warn(base+".export.classes", `list classes, or "*" for all`, "empty: nothing is exported to %s", name)
		}
		if len(p.Import.Classes) == 0 {
			c.warn(base+".import.classes", `list classes, or "*" for all`, "empty: nothing is accepted from %s", name)
		}
	}
}

const dialHint = `write nats-leaf://host:port (or tls://host:port, nats://host:port): the peer's leaf-node listener`

func (c *checker) dialURL(path, raw string) {
	if raw == "" {
		c.add(path, dialHint, "required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		c.add(path, dialHint, "invalid url %q", raw)
		return
	}
	switch u.Scheme {
	case "nats-leaf", "nats", "tls":
	default:
		c.add(path, dialHint, "unsupported scheme %q in %q", u.Scheme, raw)
		return
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || host == "" || port == "" {
		c.add(path, dialHint, "url %q needs host:port", raw)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		c.add(path, dialHint, "invalid port %q in %q: want 1 to 65535", port, raw)
	}
}

func (c *checker) classes(path string, list []string) {
	seen := map[string]int{}
	for i, class := range list {
		p := fmt.Sprintf("%s[%d]", path, i)
		if j, dup := seen[class]; dup {
			c.add(p, "list each class once", "duplicate class %q (also %s[%d])", class, path, j)
			continue
		}
		seen[class] = i
		if class != "*" && !slices.Contains(schemas.Classes, class) {
			c.add(p, suggest(class, schemas.Classes, "known classes")+`; "*" means all`, "unknown class %q", class)
		}
	}
}

func (c *checker) services(at string, list []string) {
	const hint = `a path.Match glob on the service name: * ? [a-z], \ escapes`
	for i, pat := range list {
		p := fmt.Sprintf("%s[%d]", at, i)
		if pat == "" {
			c.add(p, hint, "empty pattern")
			continue
		}
		// path.Match reports a malformed pattern even against the empty name.
		if _, err := path.Match(pat, ""); err != nil {
			c.add(p, hint, "invalid pattern %q", pat)
		}
	}
}
