package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/anfed/anfed/internal/filter"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

const (
	defaultClientListen = "127.0.0.1:4222"
	defaultMaxAge       = Duration(72 * time.Hour)
	defaultMaxBytes     = ByteSize(1 << 30)
	// MinStorageBytes is the smallest storage.max_bytes: the dead
	// letters' and held signals' eighths must each hold the largest signal
	// (64 KiB) with room to spare.
	MinStorageBytes        = ByteSize(1 << 20)
	defaultDuplicateWindow = Duration(2 * time.Minute)
	// defaultDeadLettersPerReason is store.DefaultDeadLettersPerReason.
	defaultDeadLettersPerReason = 100

	minPasswordLen = 8
)

var idRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidID reports whether id is a valid operator id.
func ValidID(id string) bool { return idRE.MatchString(id) }

const (
	idHint       = `an id is 1 to 32 characters: a lowercase letter, then lowercase letters, digits or "-" (^[a-z][a-z0-9-]{0,31}$)`
	passwordHint = "use at least 8 characters, e.g. the output of `openssl rand -base64 24`"
	listenHint   = `write host:port, e.g. "127.0.0.1:4222", or ":7422" for every interface; port 0 picks a free port`
	keyFileHint  = "create one with `anfed keys init --dir DIR` and set signing_key_file: DIR/signing.nk"
	peerKeyHint  = "the peer's public signing key: the O... key in the bundle it issued (`anfed peer add`), or from `anfed keys show` on its side (`anfed peer pin`)"
	originHint   = "the origin's public signing key, from `anfed keys show` on its side"
	leafTLSHint  = "peers' links cross administrative boundaries: configure nats.leafnodes.tls with cert, key and ca"
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
	now      time.Time
	errs     Errors
	warnings []*Error
	// keys maps each pinned signing key to where it was first pinned.
	keys map[string]string
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
	ck := &checker{given: given, now: time.Now(), keys: map[string]string{}}
	ck.id("operator.id", c.Operator.ID)
	if c.Operator.SigningKeyFile == "" && len(c.Peers) > 0 {
		ck.add("operator.signing_key_file", keyFileHint, "required: every signal we send a peer is signed with it")
	}
	ck.nats(&c.NATS)
	ck.external(&c.NATS)
	ck.storage(c.Storage, c.NATS.External != nil)
	ck.http(c)
	ck.bridges(c)
	ck.intents(c)
	ck.peers(c)
	ck.origins(c)
	ck.coordination(c)
	ck.audit(c.Audit)
	ck.telemetry(c.Telemetry)
	return ck.errs, ck.warnings
}

// resolvePaths makes the relative file paths in c relative to dir, the
// policy file's directory, as the file's reader expects.
func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p == "" || filepath.IsAbs(*p) {
			return
		}
		f := filepath.Join(dir, *p)
		if a, err := filepath.Abs(f); err == nil {
			f = a
		}
		*p = f
	}
	tls := func(t *TLS) {
		if t != nil {
			abs(&t.Cert)
			abs(&t.Key)
			abs(&t.CA)
		}
	}
	abs(&c.Storage.Dir)
	abs(&c.Operator.SigningKeyFile)
	abs(&c.HTTP.TokenFile)
	abs(&c.HTTP.AdminTokenFile)
	c.Bridges.resolvePaths(abs)
	if c.Intents != nil {
		abs(&c.Intents.TokenFile)
	}
	tls(c.NATS.Client.TLS)
	if e := c.NATS.External; e != nil {
		abs(&e.CredentialsDir)
		tls(e.TLS)
	}
	if c.NATS.LeafNodes != nil {
		tls(c.NATS.LeafNodes.TLS)
	}
	for i := range c.Peers {
		if d := c.Peers[i].Dial; d != nil {
			tls(d.TLS)
		}
	}
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

// listen checks a listen address and reports whether it is valid.
func (c *checker) listen(path, addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(path, listenHint, "invalid address %q: %v", addr, strings.TrimPrefix(err.Error(), "address "+addr+": "))
		return false
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		c.add(path, listenHint, "invalid port %q in %q: want 0 to 65535", port, addr)
		return false
	}
	return true
}

func (c *checker) nats(n *NATS) {
	if n.Client.Listen != "" {
		c.listen("nats.client.listen", n.Client.Listen)
	}
	if n.Client.TLS != nil {
		c.add("nats.client.tls", "local producers and closed loops connect without TLS: keep nats.client.listen on loopback or a private network, and remove tls here",
			"not supported")
	}
	if l := n.LeafNodes; l != nil {
		switch {
		case l.Listen == "":
			c.add("nats.leafnodes.listen", `e.g. "0.0.0.0:7422"; remove nats.leafnodes to accept no peers`, "required")
		case c.listen("nats.leafnodes.listen", l.Listen):
			c.leafTLS(l)
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

// maxReplicas is JetStream's largest replication factor.
const maxReplicas = 5

const externalURLHint = `the cluster's client URLs, e.g. ["nats://nats-1:4222", "nats://nats-2:4222", "nats://nats-3:4222"] (tls:// for TLS)`

// external checks nats.external, and the settings that only an embedded
// server can honour.
func (c *checker) external(n *NATS) {
	e := n.External
	if e == nil {
		return
	}
	const base = "nats.external"
	if n.Client.Listen != "" || n.Client.TLS != nil {
		c.add("nats.client", "the cluster's servers listen for clients (their own listen setting): remove nats.client; local producers and closed loops connect to the cluster as nats.users",
			"only for the embedded server, and nats.external is set")
	}
	if l := n.LeafNodes; l != nil && l.Listen != "" {
		if _, port, err := net.SplitHostPort(l.Listen); err == nil && port == "0" {
			c.add("nats.leafnodes.listen", "the cluster's servers open this listener and peers dial it: give a fixed port, e.g. \":7422\"",
				"port 0 (a free port) only works for the embedded server, which reports the port it picked; nats.external is set")
		}
	}
	if len(e.URLs) == 0 {
		c.add(base+".urls", externalURLHint, "required")
	}
	seen := map[string]int{}
	for i, raw := range e.URLs {
		p := fmt.Sprintf("%s.urls[%d]", base, i)
		if j, dup := seen[raw]; dup {
			c.add(p, "list each server once", "duplicate url %q (also urls[%d])", raw, j)
			continue
		}
		seen[raw] = i
		u, err := url.Parse(raw)
		if err != nil {
			c.add(p, externalURLHint, "invalid url %q", raw)
			continue
		}
		switch u.Scheme {
		case "nats", "tls":
		default:
			c.add(p, externalURLHint, "unsupported scheme %q in %q: want nats:// or tls://", u.Scheme, raw)
			continue
		}
		if u.User != nil {
			c.add(p, "the node authenticates with the NKeys in credentials_dir: remove the user from the url", "url %q carries credentials", raw)
		}
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || host == "" || port == "" {
			c.add(p, externalURLHint, "url %q needs host:port", raw)
		} else if pn, err := strconv.Atoi(port); err != nil || pn < 1 || pn > 65535 {
			c.add(p, externalURLHint, "invalid port %q in %q: want 1 to 65535", port, raw)
		}
	}
	if e.CredentialsDir == "" {
		c.add(base+".credentials_dir", "a directory for the node's NKey seeds (OPS.nk, SYS.nk, PEER_<id>.nk): `anfed natsconf --config FILE` creates them and writes the servers' configuration",
			"required")
	}
	if t := e.TLS; t != nil {
		switch {
		case t.Cert != "" && t.Key == "":
			c.add(base+".tls.key", "the PEM private key of tls.cert", "required with tls.cert")
		case t.Cert == "" && t.Key != "":
			c.add(base+".tls.cert", "the PEM client certificate that tls.key belongs to", "required with tls.key")
		}
	}
}

// leafTLS checks the TLS of the leaf listener l, whose address is valid:
// a listener that peers reach from outside the machine must have it.
func (c *checker) leafTLS(l *Listener) {
	const path = "nats.leafnodes.tls"
	t := l.TLS
	if t == nil {
		host, _, _ := net.SplitHostPort(l.Listen)
		switch {
		case loopback(host):
			c.warn(path, "fine on one machine; "+leafTLSHint, "not set: links to the listener on %s are not encrypted", l.Listen)
		default:
			c.add(path, leafTLSHint, "required: the leaf listener %s is not on a loopback address", l.Listen)
		}
		return
	}
	if t.Cert == "" {
		c.add(path+".cert", "the PEM certificate our leaf listener presents to peers", "required")
	}
	if t.Key == "" {
		c.add(path+".key", "the PEM private key of tls.cert", "required")
	}
	if t.CA == "" {
		c.warn(path, "set ca to the CA certificate that signs the peers' client certificates",
			"no ca: no mutual TLS, peers connect with a password alone")
	}
}

// loopback reports whether a listen host is on the loopback interface
// only; "" and 0.0.0.0 mean every interface.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dialTLS checks a dial's TLS: a CA to verify the peer's listener, and
// a client certificate whole or not at all.
func (c *checker) dialTLS(base string, d *Dial, peer string) {
	t := d.TLS
	if t == nil {
		if u, err := url.Parse(d.URL); err == nil && u.Scheme == "tls" {
			c.add(base+".tls", fmt.Sprintf("add tls: {ca: FILE}, the CA certificate that verifies %s's leaf listener", peer),
				"required for the tls:// url")
		}
		return
	}
	if t.CA == "" {
		c.add(base+".tls.ca", fmt.Sprintf("the CA certificate that verifies %s's leaf listener (`anfed peer add` writes it from the bundle)", peer), "required")
	}
	switch {
	case t.Cert != "" && t.Key == "":
		c.add(base+".tls.key", "the PEM private key of tls.cert", "required with tls.cert")
	case t.Cert == "" && t.Key != "":
		c.add(base+".tls.cert", "the PEM client certificate that tls.key belongs to", "required with tls.key")
	}
}

// signingKey checks a pinned public signing key and that no two operators
// share one: a key is an operator's identity.
func (c *checker) signingKey(path, key, hint string) {
	switch {
	case key == "":
		c.add(path, hint, "required")
	case !origin.ValidPublicKey(key):
		c.add(path, hint, "invalid signing key %q: want an operator public NKey (56 characters, starting with \"O\")", key)
	default:
		if first, dup := c.keys[key]; dup {
			c.add(path, "each operator has its own key: check which one you copied", "the same key is pinned at %s", first)
		} else {
			c.keys[key] = path
		}
	}
}

func (c *checker) origins(cfg *Config) {
	peers := map[string]int{}
	for i, p := range cfg.Peers {
		peers[p.ID] = i
	}
	ids := map[string]int{}
	for i, o := range cfg.Origins {
		base := fmt.Sprintf("origins[%d]", i)
		c.id(base+".id", o.ID)
		if o.ID != "" {
			if j, dup := ids[o.ID]; dup {
				c.add(base+".id", "list each origin once", "duplicate origin %q (also origins[%d])", o.ID, j)
			} else {
				ids[o.ID] = i
			}
			if j, ok := peers[o.ID]; ok {
				c.add(base+".id", fmt.Sprintf("pin its key in peers[%d].signing_key and remove it here", j), "%q is a peer, not a distant origin", o.ID)
			}
			if o.ID == cfg.Operator.ID {
				c.add(base+".id", "origins are other operators whose signals reach us through a peer", "origin %q is this node's own operator id", o.ID)
			}
		}
		c.signingKey(base+".signing_key", o.SigningKey, originHint)
		c.mayOriginate(base+".may_originate", o.MayOriginate)
	}
}

// mayOriginate checks an origin authorisation: known classes, valid
// service globs, and a warning when it allows nothing.
func (c *checker) mayOriginate(path string, m *MayOriginate) {
	if m == nil {
		return
	}
	c.classes(path+".classes", m.Classes)
	c.services(path+".services", m.Services)
	if len(m.Classes) == 0 || len(m.Services) == 0 {
		c.warn(path, `list classes and services ("*" for all), or remove may_originate to allow anything`, "an empty list: every signal of this origin is refused (not-authorized)")
	}
}

func (c *checker) storage(s Storage, external bool) {
	if s.Dir == "" && !external {
		c.add("storage.dir", "a directory for JetStream files, e.g. ./data/<id>", "required")
	}
	positive := func(path string, v int64, def fmt.Stringer) {
		if v < 0 || v == 0 && c.given(path) {
			c.add(path, fmt.Sprintf("leave it out for the default, %s", def), "must be greater than zero")
		}
	}
	positive("storage.max_age", int64(s.MaxAge), defaultMaxAge)
	positive("storage.max_bytes", int64(s.MaxBytes), defaultMaxBytes)
	if s.MaxBytes > 0 && s.MaxBytes < MinStorageBytes {
		c.add("storage.max_bytes", fmt.Sprintf("at least %s: signals, dead letters, held signals and the node's own state share it (docs/reliability.md)", MinStorageBytes),
			"%s is less than the minimum, %s", s.MaxBytes, MinStorageBytes)
	}
	positive("storage.duplicate_window", int64(s.DuplicateWindow), defaultDuplicateWindow)
	if n := s.DeadLettersPerReason; n < 0 || n == 0 && c.given("storage.dead_letters_per_reason") {
		c.add("storage.dead_letters_per_reason", fmt.Sprintf("leave it out for the default, %d", defaultDeadLettersPerReason), "must be greater than zero")
	}
	if s.Sync != "" && s.Sync != "always" {
		if d, err := time.ParseDuration(s.Sync); err != nil || d <= 0 {
			c.add("storage.sync", `"always" (the default: flush every write) or an interval such as "2m" (see docs/durability.md)`, "invalid sync policy %q", s.Sync)
		}
	}
	switch {
	case s.Replicas < 0 || s.Replicas > maxReplicas || s.Replicas == 0 && c.given("storage.replicas"):
		c.add("storage.replicas", "1 (the default), or 3 on a cluster of at least three servers to survive the loss of one",
			"%d replicas: JetStream keeps a stream on 1 to %d servers", s.Replicas, maxReplicas)
	case s.Replicas > 1 && !external:
		c.add("storage.replicas", "the embedded server is one server: set nats.external to the cluster's urls (see docs/external-nats.md), or remove replicas",
			"%d replicas need a NATS cluster, and nats.external is not set", s.Replicas)
	}
	eff := s.withDefaults()
	if eff.MaxAge > 0 && eff.DuplicateWindow > eff.MaxAge {
		c.add("storage.duplicate_window", "signals are deleted after max_age, so they cannot be remembered for longer: shorten duplicate_window or raise max_age",
			"%s is longer than max_age (%s)", eff.DuplicateWindow, eff.MaxAge)
	}
}

func (c *checker) peers(cfg *Config) {
	ids := map[string]int{}
	acceptUsers := map[string]int{}
	certNames := map[string]int{}
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
			if p.ID == "local" || strings.HasPrefix(p.ID, "loop-") {
				c.add(base+".id", `"local" and ids starting with "loop-" name local producers and closed loops in dead-letter subjects`, "peer id %q is reserved", p.ID)
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
			c.certName(base, i, &p, cfg, certNames, localUsers)
		}
		if d := p.Dial; d != nil {
			if len(d.URLs) > 0 {
				if d.URL != "" {
					c.add(base+".dial.urls", "keep url for one address, or list them all under urls", "both url and urls are set")
				}
				for j, u := range d.URLs {
					c.dialURL(fmt.Sprintf("%s.dial.urls[%d]", base, j), u)
				}
			} else {
				c.dialURL(base+".dial.url", d.URL)
			}
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
			c.dialTLS(base+".dial", d, peer)
		}
		c.signingKey(base+".signing_key", p.SigningKey, peerKeyHint)
		c.classes(base+".export.classes", p.Export.Classes)
		c.classes(base+".import.classes", p.Import.Classes)
		c.services(base+".export.services", p.Export.Services)
		c.mayOriginate(base+".may_originate", p.MayOriginate)
		c.export(base+".export", p.Export, cfg.Storage.withDefaults())
		c.roles(base, &p, cfg)
		c.tagRules(base+".export.tags", map[string][]string{"match": p.Export.Tags.Match, "remove": p.Export.Tags.Remove, "add": p.Export.Tags.Add},
			[2]string{"add", "remove"}, "a tag both removed and added: keep it in one list")
		c.filter(base+".export.filter", p.Export.Filter)
		c.filter(base+".import.filter", p.Import.Filter)
		c.tagRules(base+".import.tags", map[string][]string{"deny": p.Import.Tags.Deny, "require": p.Import.Tags.Require, "add": p.Import.Tags.Add},
			[2]string{"deny", "require"}, "a signal carrying it would be both denied and required: keep it in one list")
		c.importLimits(base+".import", p.Import)
		c.peerLimits(base+".limits", &p)
		c.dampening(base+".import.dampening", p.Import.Dampening)
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
		if d := p.Disabled; d != nil {
			switch {
			case strings.TrimSpace(d.Reason) == "":
				c.add(base+".disabled.reason", "say why, e.g. `anfed peer disable --reason \"maintenance of ic-paris-1 until 14:00 UTC\"`", "required: the peer is told why its peering is down")
			case len(d.Reason) > MaxDisabledReason:
				c.add(base+".disabled.reason", "shorten it: a ticket number or a URL says more", "%d bytes, over %d", len(d.Reason), MaxDisabledReason)
			case strings.ContainsFunc(d.Reason, func(r rune) bool { return r < 0x20 || r == 0x7f }):
				c.add(base+".disabled.reason", "one line of text", "holds control characters")
			default:
				c.warn(base+".disabled", "`anfed peer enable` brings it back", "%s is administratively down: %s", name, d.Reason)
			}
		}
		if p.ExpiredAt(c.now) {
			c.warn(base+".expires", "issue new credentials with `anfed peer invite` and set a new expires, or remove the peer",
				"%s expired at %s: its link is refused", name, p.Expires.Format(time.RFC3339))
		}
	}
}

// certName checks the certificate identity of an accepted peer. With a
// CA on the leaf listener it is the peer's NATS user name (verify_and_map),
// so it must be unique among peers and local users.
func (c *checker) certName(base string, i int, p *Peer, cfg *Config, seen map[string]int, localUsers map[string]bool) {
	path := base + ".accept.cert_name"
	l := cfg.NATS.LeafNodes
	mapped := l != nil && l.TLS != nil && l.TLS.CA != ""
	if !mapped {
		if p.Accept.CertName != "" {
			c.warn(path, "set nats.leafnodes.tls.ca so that peers present client certificates", "ignored: the leaf listener asks for no client certificate")
		}
		return
	}
	name := p.CertName()
	if name == "" {
		return // the missing id is reported
	}
	const hint = "the name in the peer's client certificate: a DNS, email or URI SAN, or its subject DN such as \"CN=op-b,O=Operator B\"; each peer's certificate names it alone"
	switch {
	case strings.TrimSpace(name) != name || strings.ContainsAny(name, "\x00\n\r"):
		c.add(path, hint, "invalid certificate name %q", name)
	case localUsers[name]:
		c.add(path, hint, "certificate name %q is also a local user in nats.users", name)
	default:
		if j, dup := seen[name]; dup {
			c.add(path, hint, "certificate name %q is also the certificate name of peers[%d]", name, j)
		} else {
			seen[name] = i
		}
	}
}

// peerLimits checks a peer's NATS limits.
func (c *checker) peerLimits(base string, p *Peer) {
	l := p.Limits
	if v := l.MaxSubscriptions; v < 0 || v == 0 && c.given(base+".max_subscriptions") || v > 0 && v < MinMaxSubscriptions {
		c.add(base+".max_subscriptions", fmt.Sprintf("at least %d (an anfed node needs fewer than 20); leave it out for the default, %d", MinMaxSubscriptions, DefaultMaxSubscriptions),
			"%d subscriptions is too few", v)
	}
	if v := l.MaxPayload; v < 0 || v == 0 && c.given(base+".max_payload") || v > 0 && v < MinMaxPayload || v > MaxMaxPayload {
		c.add(base+".max_payload", fmt.Sprintf("from %s (the largest signal, 64 KiB, and its link headers) to %s; leave it out for the default, %s", MinMaxPayload, MaxMaxPayload, DefaultMaxPayload),
			"%s is out of range", v)
	}
	if v := l.MaxConnections; v < 0 || v == 0 && c.given(base+".max_connections") || v > MaxMaxConnections {
		c.add(base+".max_connections", fmt.Sprintf("1 (the default) to %d: the number of the peer's servers that dial us", MaxMaxConnections),
			"%d connections is out of range", v)
	}
	if l.MaxConnections > 0 && p.Accept == nil && p.Dial != nil {
		c.warn(base+".max_connections", "it bounds the connections of a peer that dials us; the peer's own policy bounds ours", "ignored: we dial this peer")
	}
}

// export checks a peer's delivery mode and buffer bounds.
func (c *checker) export(base string, e ExportPolicy, st Storage) {
	switch e.Delivery {
	case "", DeliveryDurable, DeliveryLossy, DeliveryStream:
	default:
		c.add(base+".delivery", `"durable" (the default: nothing lost across link cuts), "lossy" (core NATS, fire and forget) or "stream" (lossy, plus the telemetry published on an.tel, never stored); see docs/durability.md`,
			"unknown delivery %q", e.Delivery)
	}
	c.exportRate(base, e)
	c.redact(base, e)
	c.classes(base+".intent_classes", e.IntentClasses)
	for i, class := range e.IntentClasses {
		if class != "*" && !slices.Contains(e.Classes, "*") && !slices.Contains(e.Classes, class) {
			c.add(fmt.Sprintf("%s.intent_classes[%d]", base, i), "an intent never widens the export policy: add "+class+" to export.classes too, or remove it here",
				"%s is not in export.classes", class)
		}
	}
	if e.MinSeverity < 0 || e.MinSeverity > 24 || e.MinSeverity == 0 && c.given(base+".min_severity") {
		c.add(base+".min_severity", "a severity number from 1 to 24 (INFO 9, WARN 13, ERROR 17, FATAL 21), or leave it out to export every severity",
			"%d is not a severity number", e.MinSeverity)
	}
	b := e.Buffer
	for _, f := range []struct {
		path string
		v    int64
	}{{base + ".buffer.max_age", int64(b.MaxAge)}, {base + ".buffer.max_bytes", int64(b.MaxBytes)}} {
		if f.v < 0 || f.v == 0 && c.given(f.path) {
			c.add(f.path, "leave it out to bound the peer's backlog by the store's limits only", "must be greater than zero")
		}
	}
	if e.Lossy() && (b.MaxAge != 0 || b.MaxBytes != 0) {
		c.fireAndForget(e, base+".buffer", "nothing waits for a peer with "+e.Delivery+" delivery: remove buffer, or use delivery: durable")
	}
	if b.MaxAge > 0 && st.MaxAge > 0 && b.MaxAge > st.MaxAge {
		c.warn(base+".buffer.max_age", "the store drops signals after storage.max_age, whatever the peer's buffer allows",
			"%s is longer than storage.max_age (%s): the store's bound applies first", b.MaxAge, st.MaxAge)
	}
	if b.MaxBytes > 0 && st.MaxBytes > 0 && b.MaxBytes > st.MaxBytes {
		c.warn(base+".buffer.max_bytes", "the store drops the oldest signals beyond storage.max_bytes, whatever the peer's buffer allows",
			"%s is more than storage.max_bytes (%s): the store's bound applies first", b.MaxBytes, st.MaxBytes)
	}
}

// roles checks a peer's role and the export's transit_from.
func (c *checker) roles(base string, p *Peer, cfg *Config) {
	const roleHint = "the peer's role towards us, as in RFC 9234: customer (it buys transit from us), provider (we buy transit from it) or peer (the default)"
	if p.Role != "" && !slices.Contains(Roles, p.Role) {
		c.add(base+".role", suggest(p.Role, Roles, "roles")+"; "+roleHint, "unknown role %q", p.Role)
	}
	list := p.Export.TransitFrom
	if len(list) == 0 {
		return
	}
	at := base + ".export.transit_from"
	if !p.Export.Transit {
		c.add(at, "set export.transit: true to relay other operators' signals to this peer, or remove transit_from", "transit_from without transit: nothing is relayed")
	}
	var ids []string
	for _, q := range cfg.Peers {
		if q.ID != "" && q.ID != p.ID {
			ids = append(ids, q.ID)
		}
	}
	hint := "a role (customer, peer, provider) or the id of another peer: whose relayed signals may go to this peer, by the neighbour we learned them from"
	seen := map[string]int{}
	for i, v := range list {
		path := fmt.Sprintf("%s[%d]", at, i)
		if j, dup := seen[v]; dup {
			c.add(path, "list each once", "%q is also transit_from[%d]", v, j)
			continue
		}
		seen[v] = i
		switch {
		case slices.Contains(Roles, v), slices.Contains(ids, v):
		case v != "" && v == p.ID:
			c.add(path, "signals learned from a peer never go back to it (no loops): remove it", "%q is this peer itself", v)
		default:
			c.add(path, suggest(v, append(slices.Clone(Roles), ids...), "roles and peers")+"; "+hint, "%q is neither a role nor another peer", v)
		}
	}
}

// filter checks a CESQL filter: it compiles, and is a condition.
func (c *checker) filter(path, src string) {
	if src == "" && !c.given(path) {
		return
	}
	if _, err := filter.Compile(src); err != nil {
		c.add(path, filter.Hint, "%v", err)
	}
}

// tagRules checks the tag lists of an export or an import: valid tags,
// each once, bounded, and none in both lists of clash.
func (c *checker) tagRules(base string, lists map[string][]string, clash [2]string, clashHint string) {
	hint := "a tag, like a BGP community, is " + signal.TagSyntax + `; well-known: ` + signal.TagNoExport + `, ` + signal.TagNoAdvertise
	for _, name := range []string{"match", "deny", "require", "remove", "add"} {
		list, ok := lists[name]
		if !ok {
			continue
		}
		at := base + "." + name
		if len(list) > signal.MaxTags {
			c.add(at, fmt.Sprintf("a signal carries at most %d tags", signal.MaxTags), "lists %d tags", len(list))
		}
		seen := map[string]int{}
		for i, tag := range list {
			p := fmt.Sprintf("%s[%d]", at, i)
			if !signal.ValidTag(tag) {
				c.add(p, hint, "invalid tag %q", tag)
				continue
			}
			if j, dup := seen[tag]; dup {
				c.add(p, "list each tag once", "%q is also %s[%d]", tag, name, j)
				continue
			}
			seen[tag] = i
		}
	}
	for i, tag := range lists[clash[1]] {
		if slices.Contains(lists[clash[0]], tag) {
			c.add(fmt.Sprintf("%s.%s[%d]", base, clash[1], i), clashHint, "%q is also in %s", tag, clash[0])
		}
	}
}

// redact checks a peer's export redactions.
func (c *checker) redact(base string, e ExportPolicy) {
	if len(e.Redact) == 0 {
		return
	}
	const hint = `a JSON pointer (RFC 6901) into the signal's data, e.g. "/data/customer/name"; "~1" stands for "/" and "~0" for "~" in a name`
	seen := map[string]int{}
	for i, ptr := range e.Redact {
		p := fmt.Sprintf("%s.redact[%d]", base, i)
		if !strings.HasPrefix(ptr, "/data/") || len(ptr) == len("/data/") {
			c.add(p, hint, "%q does not point into /data/: only fields of the signal's data can be redacted", ptr)
			continue
		}
		for j := 0; j < len(ptr); j++ {
			if ptr[j] == '~' && (j+1 == len(ptr) || ptr[j+1] != '0' && ptr[j+1] != '1') {
				c.add(p, hint, "%q: \"~\" must be followed by 0 or 1", ptr)
				break
			}
		}
		if j, dup := seen[ptr]; dup {
			c.add(p, "list each pointer once", "%q is also redact[%d]", ptr, j)
		} else {
			seen[ptr] = i
		}
	}
	if e.Transit {
		c.add(base+".redact", "redaction applies to the signals we originate, signed again with our key; a relayed signal carries its origin's signature over its data, "+
			"so only its origin can redact it: remove transit for this peer, or ask the origins to redact at their end",
			"redact with transit: relayed signals cannot be redacted")
	}
	if e.Lossy() {
		c.add(base+".redact", "redaction is done by the durable sender: use delivery: durable, or remove redact", "redact with delivery: %s", e.Delivery)
	}
}

// fireAndForget reports a durable-only setting at path on a lossy or
// stream export: a warning with lossy (as it always was), an error with
// stream, where it never meant anything.
func (c *checker) fireAndForget(e ExportPolicy, path, hint string) {
	if e.Stream() {
		c.add(path, hint, "not with delivery: stream")
		return
	}
	c.warn(path, hint, "ignored with delivery: lossy")
}

// exportRate checks a peer's export pacing.
func (c *checker) exportRate(base string, e ExportPolicy) {
	const rateHint = "signals per second sent to this peer at most, e.g. max_rate: 50; leave it out for no pacing"
	if e.MaxRate < 0 || e.MaxRate == 0 && c.given(base+".max_rate") {
		c.add(base+".max_rate", rateHint, "must be greater than zero")
	}
	if e.MaxBurst < 0 || e.MaxBurst == 0 && c.given(base+".max_burst") {
		c.add(base+".max_burst", "the most signals sent at once before pacing starts; leave it out for one second's worth of max_rate", "must be greater than zero")
	} else if e.MaxBurst > 0 && e.MaxRate <= 0 && !c.given(base+".max_rate") {
		c.add(base+".max_burst", "set max_rate too, or remove max_burst", "max_burst without max_rate")
	}
	if e.Lossy() && e.MaxRate > 0 {
		c.fireAndForget(e, base+".max_rate", "pacing delays signals, and nothing waits with "+e.Delivery+" delivery: remove max_rate, or use delivery: durable")
	}
}

// importLimits checks a peer's maximum active conditions.
func (c *checker) importLimits(base string, im ImportPolicy) {
	if r := im.AdjRibIn; r != nil && r.Limit <= 0 {
		c.add(base+".adj_rib_in.limit", "the most conditions whose refused signal is kept for a wider import policy, e.g. limit: 1024; leave adj_rib_in out for the default", "must be greater than zero")
	}
	m := im.MaxConditions
	if m == nil {
		return
	}
	base += ".max_conditions"
	const limitHint = "the most active conditions held from this peer, like BGP's maximum-prefix: e.g. limit: 1000"
	if m.Limit <= 0 {
		c.add(base+".limit", limitHint, "must be greater than zero")
		return
	}
	if m.Idle < 0 || m.Idle == 0 && c.given(base+".idle") {
		c.add(base+".idle", "how long the link idles when the limit refuses a signal, e.g. idle: 5m; leave it out not to idle", "must be greater than zero")
	}
	const warnHint = `a percentage of limit ("80%", the default) or a count below limit ("800")`
	w := strings.TrimSpace(m.WarnAt)
	if w == "" {
		return
	}
	if pc, ok := strings.CutSuffix(w, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pc), 64)
		if err != nil || f <= 0 || f > 100 {
			c.add(base+".warn_at", warnHint, "invalid percentage %q: want more than 0%% and at most 100%%", m.WarnAt)
		}
		return
	}
	n, err := strconv.Atoi(w)
	switch {
	case err != nil:
		c.add(base+".warn_at", warnHint, "invalid threshold %q", m.WarnAt)
	case n <= 0 || n > m.Limit:
		c.add(base+".warn_at", warnHint, "%d is not between 1 and limit (%d)", n, m.Limit)
	}
}

// dampening checks a peer's flap dampening, with defaults for what the
// file leaves out.
func (c *checker) dampening(base string, d *Dampening) {
	if d == nil {
		return
	}
	positive := func(key string, v float64, hint string) bool {
		if v < 0 || v == 0 && c.given(base+"."+key) || math.IsNaN(v) || math.IsInf(v, 0) {
			c.add(base+"."+key, hint, "must be a number greater than zero")
			return false
		}
		return true
	}
	ok := positive("penalty", d.Penalty, "what each state change of a condition adds to its penalty, e.g. penalty: 1000 (the default)")
	ok = positive("suppress", d.Suppress, "the penalty at which a condition is suppressed, e.g. suppress: 2000 (the default)") && ok
	ok = positive("reuse", d.Reuse, "the penalty below which a suppressed condition is released, e.g. reuse: 750 (the default)") && ok
	ok = positive("half_life", float64(d.HalfLife), "how long the penalty takes to halve, e.g. half_life: 15m (the default)") && ok
	ok = positive("max_suppress", float64(d.MaxSuppress), "the longest a condition stays suppressed, e.g. max_suppress: 60m (the default)") && ok
	if d.MaxEntries < 0 || d.MaxEntries == 0 && c.given(base+".max_entries") {
		c.add(base+".max_entries", "how many of the peer's conditions the node tracks a penalty for, e.g. max_entries: 10000 (the default)", "must be greater than zero")
		ok = false
	}
	if !ok {
		return
	}
	w := d.WithDefaults()
	if w.Reuse >= w.Suppress {
		c.add(base+".reuse", "reuse must be below suppress (RFC 2439: e.g. suppress 2000, reuse 750), or a released condition is suppressed again at once",
			"reuse %g is not below suppress %g", w.Reuse, w.Suppress)
		return
	}
	if w.MaxSuppress < w.HalfLife {
		c.add(base+".max_suppress", "max_suppress must be at least half_life (e.g. half_life 15m, max_suppress 60m)",
			"max_suppress %s is shorter than half_life %s", time.Duration(w.MaxSuppress), time.Duration(w.HalfLife))
		return
	}
	if ceil := w.Ceiling(); ceil <= w.Suppress {
		c.add(base+".suppress", fmt.Sprintf("the penalty never exceeds reuse×2^(max_suppress/half_life) = %.0f: lower suppress, or raise max_suppress", ceil),
			"suppress %g can never be reached", w.Suppress)
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
