// Package natsconf derives a node's NATS server configuration from its
// policy file: accounts, users and their permissions, JetStream, leaf-node
// listener and remotes. The pipelines read the same policy, so what NATS
// permits and what the pipelines do come from one source and cannot disagree.
//
// Accounts:
//
//	SYS        the NATS system account; no user can reach it from outside
//	OPS        the operations account: local producers, consumers, JetStream
//	PEER_<id>  one per peer: the only account a leaf link to <id> is bound to
package natsconf

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/subject"
)

// Account names.
const (
	SysAccount = "SYS"
	OpsAccount = "OPS"
)

// PeerAccount is the account bound to the link with peer id.
func PeerAccount(id string) string { return "PEER_" + id }

// Secrets are the node's internal users' NKeys, one per account. An
// embedded node makes them fresh at every start and never writes them to
// disk; a node beside a cluster reads them from nats.external's
// credentials_dir (LoadSecrets), where `anfed natsconf` made them.
type Secrets map[string]nkeys.KeyPair // account name -> user key

// Accounts lists the accounts the node has a user in: SYS, OPS and one
// per peer.
func Accounts(cfg *config.Config) []string {
	accts := []string{SysAccount, OpsAccount}
	for _, p := range cfg.Peers {
		accts = append(accts, PeerAccount(p.ID))
	}
	return accts
}

// NewSecrets makes a user NKey for each account the config needs.
func NewSecrets(cfg *config.Config) (Secrets, error) {
	s := Secrets{}
	for _, a := range Accounts(cfg) {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("make internal key: %w", err)
		}
		s[a] = kp
	}
	return s, nil
}

// Public returns the public key of account's internal user.
func (s Secrets) Public(account string) string {
	kp, ok := s[account]
	if !ok {
		return ""
	}
	pub, _ := kp.PublicKey() // a created key pair always has one
	return pub
}

// hashPassword bcrypts a password from the policy file, so the derived
// configuration (printed by tools, never written by the node) does not
// hold it in clear. The minimum cost keeps leaf-node authentication fast:
// the policy file itself holds the clear password, so a costlier hash of
// an in-memory configuration would protect nothing.
func hashPassword(p string) string {
	if _, err := bcrypt.Cost([]byte(p)); err == nil {
		return p // already a bcrypt hash
	}
	h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
	if err != nil {
		// bcrypt refuses passwords over 72 bytes (config validation
		// refuses them first). Never fall back to the clear password: a
		// hash of random bytes locks the user out instead.
		var r [32]byte
		_, _ = rand.Read(r[:])
		h, _ = bcrypt.GenerateFromPassword([]byte(base64.RawStdEncoding.EncodeToString(r[:])), bcrypt.MinCost)
	}
	return string(h)
}

// LeafPermissions are the permissions of the leaf user we issue to peer,
// seen from the peer's side: what it may publish into our node and what it
// may receive from it. sendTransit says whether we accept signals the peer
// relays from other origins.
func LeafPermissions(self string, p *config.Peer) (pub, sub []string) {
	own := subject.LinkFrom(p.ID)
	if !p.Import.Transit {
		own = subject.LinkPrefix + "." + p.ID + "." + p.ID + ".>"
	}
	pub = []string{own, subject.Ack(self) + ".>"}
	sub = []string{subject.LinkFrom(self), subject.Ack(p.ID) + ".>"}
	return pub, sub
}

// CertMapped reports whether the leaf listener asks peers for client
// certificates (a CA is set): then nats-server maps each certificate to
// the leaf user it names (verify_and_map), binding the certificate to
// the peer.
func CertMapped(cfg *config.Config) bool {
	l := cfg.NATS.LeafNodes
	return l != nil && l.TLS != nil && l.TLS.CA != ""
}

// LeafUser is the name of the leaf user we issue to an accepted peer: its
// certificate's name when the listener maps certificates to users, so
// that only a certificate naming the peer (and the peer's password)
// opens its account; its accept.user otherwise.
func LeafUser(cfg *config.Config, p *config.Peer) string {
	if CertMapped(cfg) {
		return p.CertName()
	}
	return p.Accept.User
}

// Generate returns the NATS server configuration for cfg as of now.
func Generate(cfg *config.Config, sec Secrets) string {
	return GenerateAt(cfg, sec, time.Now())
}

// tlsTimeout is the TLS handshake timeout on leaf links, in seconds.
const tlsTimeout = 2

// GenerateAt returns the embedded server's configuration for cfg as of
// now: a peer whose peering expired at or before now gets neither a leaf
// user nor a remote, so its credentials stop working and we stop dialling
// it.
func GenerateAt(cfg *config.Config, sec Secrets, now time.Time) string {
	return render(cfg, sec, now, false)
}

// External returns, as of now, the configuration an existing cluster's
// servers need to carry cfg's node (nats.external): the accounts, users
// and permissions, JetStream and the leaf listener and remotes of the
// embedded mode, from the same derivation, with the node's users allowed
// to connect over the network as the NKeys in sec. It is a fragment for
// each server's configuration to include: the server's name, client
// listener, cluster (routes) and, unless the policy sets storage.dir, its
// JetStream directory are the server's own.
func External(cfg *config.Config, sec Secrets, now time.Time) string {
	return render(cfg, sec, now, true)
}

// internalConnTypes are the connection types of the node's own users: an
// embedded node connects in-process, a node beside a cluster over TCP.
func internalConnTypes(external bool) []string {
	if external {
		return []string{"STANDARD"}
	}
	return []string{"IN_PROCESS"}
}

// SysPermissions are what the node's system-account user may do: ask every
// server for its leaf connections (is a peer's link up?), disconnect a
// leaf connection (a rogue hub, an expired peering), and ask who it is.
func SysPermissions() (pub, sub []string) {
	return []string{"$SYS.REQ.SERVER.PING.LEAFZ", "$SYS.REQ.SERVER.*.KICK", "$SYS.REQ.USER.INFO"},
		[]string{"_INBOX.>"}
}

func render(cfg *config.Config, sec Secrets, now time.Time, external bool) string {
	w := &writer{}
	if external {
		w.comment("NATS server configuration for the anfed node of operator " + cfg.Operator.ID + ", written by `anfed natsconf`")
		w.comment("from its policy file. Include it in each server's configuration, which adds the server's own")
		w.comment("server_name, listen, cluster (routes) and, unless the policy sets storage.dir, jetstream.")
		w.comment("See docs/external-nats.md.")
	} else {
		w.kv("server_name", q("anfed-"+cfg.Operator.ID))
		if l := cfg.NATS.Client.Listen; l != "" {
			w.kv("listen", q(listenAddr(l)))
		} else {
			// The embedding node sets DontListen; a listen address is still
			// needed by the parser.
			w.kv("listen", q("127.0.0.1:-1"))
		}
	}
	sync := cfg.Storage.Sync
	if sync == "" {
		sync = "always"
	}
	if cfg.Storage.Dir != "" {
		w.open("jetstream")
		w.kv("store_dir", q(cfg.Storage.Dir))
		w.kv("sync_interval", q(sync))
		// The streams are sized within storage.max_bytes (store.Split):
		// the embedded JetStream holds no more than that, whatever the
		// volume's size. A cluster's servers may hold other accounts' too.
		if cfg.Storage.MaxBytes > 0 && !external {
			w.kv("max_file_store", strconv.FormatInt(int64(cfg.Storage.MaxBytes), 10))
		}
		w.close()
	} else {
		w.comment("storage.dir is not set: each server's own configuration enables JetStream, e.g.")
		w.comment("jetstream { store_dir: \"/data/jetstream\", sync_interval: " + q(sync) + " }")
	}
	w.kv("system_account", q(SysAccount))
	w.open("accounts")

	types := internalConnTypes(external)
	w.open(q(SysAccount))
	w.open("users: [")
	sysPub, sysSub := SysPermissions()
	w.nkeyUser(sec.Public(SysAccount), types, sysPub, sysSub)
	w.closeList()
	w.close()

	w.open(q(OpsAccount))
	w.kv("jetstream", "enabled")
	w.open("users: [")
	w.nkeyUser(sec.Public(OpsAccount), types, nil, nil)
	for _, u := range cfg.NATS.Users {
		// Local clients publish through intake; only the node writes
		// accepted signals and dead letters.
		w.user(u.Name, u.Password, "STANDARD,WEBSOCKET,IN_PROCESS", nil,
			localDeny(cfg))
	}
	w.closeList()
	w.close()

	for i := range cfg.Peers {
		p := &cfg.Peers[i]
		acc := PeerAccount(p.ID)
		w.open(q(acc))
		w.limits(p)
		w.open("users: [")
		w.nkeyUser(sec.Public(acc), types, nil, nil)
		if p.Accept != nil && !p.ExpiredAt(now) && p.Disabled == nil {
			pub, sub := LeafPermissions(cfg.Operator.ID, p)
			w.leafUser(LeafUser(cfg, p), p.Accept.Password, pub, sub)
		}
		w.closeList()
		w.close()
	}
	w.close() // accounts

	dials := dialing(cfg, now)
	if cfg.NATS.LeafNodes != nil || len(dials) > 0 {
		w.open("leafnodes")
		// Redial a lost peer soon: a restored link drains its backlog
		// sooner (NATS's default is 1s).
		w.kv("reconnect", q("250ms"))
		if l := cfg.NATS.LeafNodes; l != nil {
			w.kv("listen", q(listenAddr(l.Listen)))
			if l.TLS != nil {
				// With a CA, a peer must present a certificate it signed,
				// and the certificate names the peer's leaf user.
				w.tls(l.TLS, l.TLS.CA != "")
			}
		}
		if len(dials) > 0 {
			w.open("remotes: [")
			for _, p := range dials {
				w.open("")
				if len(p.Dial.URLs) > 0 {
					var us []string
					for _, u := range RemoteURLs(p.Dial) {
						us = append(us, q(u))
					}
					w.kv("urls", "["+strings.Join(us, ", ")+"]")
				} else {
					w.kv("url", q(RemoteURL(p.Dial)))
				}
				w.kv("account", q(PeerAccount(p.ID)))
				// Dial only the address the policy names: the peer's
				// servers may advertise addresses of its own network,
				// which are not ours to reach, nor a proxy's to bypass.
				w.kv("ignore_discovered_servers", "true")
				if p.Disabled != nil {
					// Held down (peers[].disabled): nats-server toggles
					// this remote alone on reload.
					w.kv("disabled", "true")
				}
				if p.Dial.TLS != nil {
					w.tls(p.Dial.TLS, false)
				}
				w.close()
			}
			w.closeList()
		}
		w.close()
	}
	return w.String()
}

// dialing lists the peers we dial at now: those with dial that have not
// expired.
func dialing(cfg *config.Config, now time.Time) []*config.Peer {
	var ps []*config.Peer
	for i := range cfg.Peers {
		if p := &cfg.Peers[i]; p.Dial != nil && !p.ExpiredAt(now) {
			ps = append(ps, p)
		}
	}
	return ps
}

// localDeny is what local users may not publish: accepted signals and
// checked telemetry, the
// store's input, the signals flap dampening holds, those held for want of
// a key, the peers' Adj-RIB-In and the audit trail (only the node writes
// them), dead
// letters in the node's and the peers' names (closed loops may write
// their own, an.dlq.loop-*), the coordination bucket, and JetStream
// requests that would destroy the node's streams.
func localDeny(cfg *config.Config) []string {
	deny := []string{subject.Signals, subject.Telemetry, subject.Store, subject.Held, subject.KeyHeld, subject.RibIn, subject.Audit, subject.DLQPrefix + ".local.>"}
	for _, p := range cfg.Peers {
		deny = append(deny, subject.DLQPrefix+"."+p.ID+".>")
	}
	// The coordination bucket (internal/coordination.Bucket): the leases
	// we grant are ours to write, never a local producer's.
	deny = append(deny, "$KV.ANFED_COORD.>", "$JS.API.CONSUMER.DELETE.ANFED_SIGNALS.anfed-coordination")
	// The links' leases (node.LeaseBucket, a KV bucket's stream
	// KV_ANFED_LEASES): a local user that wrote one could end a link's
	// work in the process holding it.
	deny = append(deny, "$KV.ANFED_LEASES.>")
	for _, stream := range []string{"ANFED_SIGNALS", "ANFED_DLQ", "ANFED_HELD", "KV_ANFED_COORD", "ANFED_KEYHELD", "ANFED_RIBIN", "KV_ANFED_LEASES", "ANFED_AUDIT"} {
		for _, op := range []string{"DELETE", "PURGE", "UPDATE", "MSG.DELETE"} {
			deny = append(deny, "$JS.API.STREAM."+op+"."+stream)
		}
	}
	return deny
}

// RemoteURLs are the dial URLs (dial.urls, or dial.url) with the
// credentials the peer issued to us.
func RemoteURLs(d *config.Dial) []string {
	var out []string
	for _, a := range d.Addresses() {
		out = append(out, remoteURL(d, a))
	}
	return out
}

// RemoteURL is the dial URL with the credentials the peer issued to us.
func RemoteURL(d *config.Dial) string { return remoteURL(d, d.URL) }

func remoteURL(d *config.Dial, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw // config validation rejects this earlier
	}
	if d.User != "" {
		u.User = url.UserPassword(d.User, d.Password)
	}
	return u.String()
}

// listenAddr maps port 0 ("pick a free port") to NATS's -1.
func listenAddr(addr string) string {
	h, p, err := net.SplitHostPort(addr)
	if err != nil || p != "0" {
		return addr
	}
	return net.JoinHostPort(h, "-1")
}

type writer struct {
	b     strings.Builder
	depth int
}

func (w *writer) indent() { w.b.WriteString(strings.Repeat("  ", w.depth)) }

func (w *writer) kv(k, v string) {
	w.indent()
	fmt.Fprintf(&w.b, "%s: %s\n", k, v)
}

// open starts a block: "name {" , "name: [" or a bare "{" in a list.
func (w *writer) open(name string) {
	w.indent()
	switch {
	case name == "":
		w.b.WriteString("{\n")
	case strings.HasSuffix(name, "["):
		w.b.WriteString(name + "\n")
	default:
		w.b.WriteString(name + " {\n")
	}
	w.depth++
}

func (w *writer) close() {
	w.depth--
	w.indent()
	w.b.WriteString("}\n")
}

func (w *writer) closeList() {
	w.depth--
	w.indent()
	w.b.WriteString("]\n")
}

// nkeyUser is the node's own user of an account: an NKey that may
// connect only as types, with the given permissions (none: all within its
// account).
func (w *writer) nkeyUser(pub string, types, pubAllow, subAllow []string) {
	w.open("")
	w.kv("nkey", q(pub))
	w.kv("allowed_connection_types", list(types))
	if len(pubAllow) > 0 {
		w.open("permissions")
		w.open("publish")
		w.kv("allow", list(pubAllow))
		w.close()
		w.open("subscribe")
		w.kv("allow", list(subAllow))
		w.close()
		w.close()
	}
	w.close()
}

// comment writes a comment line.
func (w *writer) comment(text string) {
	w.indent()
	w.b.WriteString("# " + text + "\n")
}

func (w *writer) user(name, pass, types string, pubAllow, pubDeny []string) {
	w.open("")
	w.kv("user", q(name))
	w.kv("password", q(hashPassword(pass)))
	w.kv("allowed_connection_types", list(strings.Split(types, ",")))
	if len(pubAllow) > 0 || len(pubDeny) > 0 {
		w.open("permissions")
		w.open("publish")
		if len(pubAllow) > 0 {
			w.kv("allow", list(pubAllow))
		}
		if len(pubDeny) > 0 {
			w.kv("deny", list(pubDeny))
		}
		w.close()
		w.close()
	}
	w.close()
}

// tls writes a tls block naming t's files. On a listener, verify requires
// the other side's certificate; on a remote, ca_file becomes the roots
// that verify the listener's certificate.
func (w *writer) tls(t *config.TLS, verify bool) {
	w.open("tls")
	if t.Cert != "" {
		w.kv("cert_file", q(t.Cert))
	}
	if t.Key != "" {
		w.kv("key_file", q(t.Key))
	}
	if t.CA != "" {
		w.kv("ca_file", q(t.CA))
	}
	if verify {
		// The client's certificate must be signed by the CA and name a
		// user (LeafUser); the password is still checked.
		w.kv("verify_and_map", "true")
	}
	w.kv("timeout", strconv.Itoa(tlsTimeout))
	w.close()
}

// limits writes the limits of peer p's account: the subscriptions and
// payload of each connection, and, for a peer that dials us, how many
// leaf connections it may hold at once. nats-server enforces them
// (parseAccountLimits, applyAccountLimits, registerWithAccount).
func (w *writer) limits(p *config.Peer) {
	l := p.Limits.WithDefaults()
	w.open("limits")
	w.kv("max_subscriptions", strconv.Itoa(l.MaxSubscriptions))
	w.kv("max_payload", strconv.FormatInt(int64(l.MaxPayload), 10))
	if p.Accept != nil {
		w.kv("max_leafnodes", strconv.Itoa(l.MaxConnections))
	}
	w.close()
}

func (w *writer) leafUser(name, pass string, pub, sub []string) {
	w.open("")
	w.kv("user", q(name))
	w.kv("password", q(hashPassword(pass)))
	w.kv("allowed_connection_types", list([]string{"LEAFNODE"}))
	w.open("permissions")
	w.open("publish")
	w.kv("allow", list(pub))
	w.close()
	w.open("subscribe")
	w.kv("allow", list(sub))
	w.close()
	w.close()
	w.close()
}

func (w *writer) String() string { return w.b.String() }

// q quotes s for the NATS configuration format: double quotes, with the
// escapes its lexer knows (\\, \", \t, \n, \r, \xXX). A quoted string is
// never subject to $variable substitution.
func q(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func list(xs []string) string {
	qs := make([]string, len(xs))
	for i, x := range xs {
		qs[i] = q(x)
	}
	return "[" + strings.Join(qs, ", ") + "]"
}
