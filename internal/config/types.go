// Package config loads and checks a node's policy file: the one YAML file
// from which the node derives both its NATS configuration and its pipelines.
package config

import (
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is one node's policy file.
type Config struct {
	// File is the path the config was loaded from ("" when built in code).
	File string `yaml:"-"`

	Operator Operator `yaml:"operator"`
	NATS     NATS     `yaml:"nats"`
	Storage  Storage  `yaml:"storage"`
	Peers    []Peer   `yaml:"peers"`
	// Origins pins the signing keys of operators that are not our peers
	// but whose signals reach us relayed by a peer (transit).
	Origins []Origin `yaml:"origins"`
	// HTTP is the node's HTTP server (health, metrics, API, dashboard).
	HTTP HTTP `yaml:"http"`
	// Bridges are the TMF642 and VES bridges (docs/bridges.md).
	Bridges Bridges `yaml:"bridges"`
	// Coordination is how we decide on actions other operators propose
	// on resources we are affected by (docs/coordination.md). nil: the
	// node takes no part; action signals cross like any class.
	Coordination *Coordination `yaml:"coordination"`
	// Intents is the TMF921 intent API and the intents we take on from
	// peers (docs/intents.md); nil: off.
	Intents *Intents `yaml:"intents"`
	// Audit is the audit trail of what was sent to whom and who decided
	// on actions (docs/coordination.md#audit-trail); on by default.
	Audit Audit `yaml:"audit"`
	// Telemetry exports OpenTelemetry spans (telemetry.otlp); off by
	// default.
	Telemetry Telemetry `yaml:"telemetry"`

	// warnings are the non-fatal problems found by Parse, with their lines.
	warnings []*Error
}

// Origin is a non-neighbour operator whose signing key we pin.
type Origin struct {
	ID         string `yaml:"id"`
	SigningKey string `yaml:"signing_key"`
	// MayOriginate bounds what the origin may originate; nil: anything.
	MayOriginate *MayOriginate `yaml:"may_originate,omitempty"`
}

// MayOriginate is what one origin may originate, like an RPKI route
// origin authorisation: the classes, and the services the signals are
// about. A signal of that origin outside them is refused at import
// (not-authorized), whichever peer relays it. Both lists are allow-lists:
// empty allows nothing, "*" everything.
type MayOriginate struct {
	Classes []string `yaml:"classes"`
	// Services are path.Match globs on the service (the subject's part
	// before the first "/"), as export.services.
	Services []string `yaml:"services"`
}

// Allows reports whether a signal of class about service is within m.
func (m *MayOriginate) Allows(class, service string) bool {
	if !slices.Contains(m.Classes, "*") && !slices.Contains(m.Classes, class) {
		return false
	}
	for _, p := range m.Services {
		if ok, _ := path.Match(p, service); ok {
			return true
		}
	}
	return false
}

// Operator is this node's identity.
type Operator struct {
	// ID is the operator id used in subjects, account names, CloudEvent
	// sources and paths: ^[a-z][a-z0-9-]{0,31}$.
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// SigningKeyFile holds the operator's ed25519 signing key (an NKey
	// seed, "SO...", made by `anfed keys init`). Every signal we originate
	// carries a signature with it. Required when there are peers; relative
	// to the policy file.
	SigningKeyFile string `yaml:"signing_key_file"`
}

// NATS describes the embedded NATS server, or the existing cluster the
// node connects to instead (External).
type NATS struct {
	// Client is where local producers and consumers connect (operations
	// account). Listen "" means no TCP client listener (in-process only).
	// Embedded mode only: with External, clients connect to the cluster.
	Client Listener `yaml:"client"`
	// External, when set, makes the node connect to an existing NATS
	// cluster instead of embedding a server. `anfed natsconf` writes the
	// configuration the cluster's servers need from this same policy;
	// LeafNodes and Users then describe the cluster's leaf listener and
	// local users. See docs/external-nats.md.
	External *External `yaml:"external,omitempty"`
	// LeafNodes is where peers that dial us connect. nil: no leaf listener.
	LeafNodes *Listener `yaml:"leafnodes"`
	// Users are local users of the operations account.
	Users []User `yaml:"users"`
}

// External is an existing NATS cluster (or supercluster) the node uses
// instead of an embedded server.
type External struct {
	// URLs are the cluster's client URLs (nats://host:port or
	// tls://host:port); the node also learns the others the servers
	// advertise, and reconnects to any of them.
	URLs []string `yaml:"urls"`
	// CredentialsDir holds the node's own users: one NKey user seed per
	// account, OPS.nk, SYS.nk and PEER_<id>.nk (`anfed natsconf` creates
	// the missing ones and writes their public keys into the servers'
	// configuration). Relative to the policy file.
	CredentialsDir string `yaml:"credentials_dir"`
	// TLS to the cluster's client port: CA verifies the servers; Cert and
	// Key are the node's client certificate when the servers ask for one.
	TLS *TLS `yaml:"tls"`
}

// Listener is a host:port to listen on. Port 0 picks a free port.
type Listener struct {
	Listen string `yaml:"listen"`
	// TLS on this listener. On the leaf-node listener, with CA set, peers
	// must present a certificate signed by it (mutual TLS).
	TLS *TLS `yaml:"tls"`
}

// TLS names PEM files; relative paths are resolved against the policy file.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// CA verifies the other side's certificate.
	CA string `yaml:"ca"`
}

// User is a local user of the operations account.
type User struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
}

// Storage configures JetStream storage for accepted signals.
type Storage struct {
	// Dir holds JetStream's files. Required.
	Dir string `yaml:"dir"`
	// MaxAge bounds how long accepted signals are kept. Default 72h.
	MaxAge Duration `yaml:"max_age"`
	// MaxBytes bounds the signal stream's size. Default 1GiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// DuplicateWindow is how long (source, id) pairs are remembered for
	// deduplication. Default 2m.
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// Sync is when JetStream flushes signals to disk: "always" (the
	// default: an acknowledged signal survives power loss) or an interval
	// such as "2m" (NATS's own default: faster, but a power loss can lose
	// up to that much acknowledged data). See docs/durability.md.
	Sync string `yaml:"sync"`
	// Replicas is how many servers keep each stream (JetStream R1..R5).
	// 0 means 1; more needs nats.external (a cluster): 3 survives the
	// loss of one server.
	Replicas int `yaml:"replicas,omitempty"`
	// DeadLettersPerReason is how many dead letters (ANFED_DLQ) are kept
	// per sender — each peer, local producers, each closed loop — and
	// reason: past it the oldest of that sender and reason goes, so one
	// sender's flood never flushes another's. Default 100. A dead letter
	// keeps at most 4 KiB of the refused body (with its size and SHA-256)
	// and is at most 10 KiB. See docs/security.md.
	DeadLettersPerReason int `yaml:"dead_letters_per_reason,omitempty"`
}

// HTTP is the node's HTTP server: /healthz, /readyz, /metrics, the JSON
// API, the CloudEvents ingest and the dashboard (docs/operations.md).
type HTTP struct {
	// Listen is host:port. Absent: 127.0.0.1:8440 (loopback). "": no
	// HTTP server.
	Listen string `yaml:"listen"`
	// TokenFile holds the bearer token producers present to the
	// CloudEvents ingest (POST /v1/events). Without it the ingest is
	// off; the read-only endpoints need no token. Relative to the policy
	// file.
	TokenFile string `yaml:"token_file"`
	// AdminTokenFile holds the bearer token operators present to the
	// node's administrative endpoints (POST /v1/reload, a peer's disable
	// and enable, drain): a token apart from the ingest's, which
	// producers hold. Without it those endpoints are off. Relative to the
	// policy file.
	AdminTokenFile string `yaml:"admin_token_file"`
}

// Peer is one neighbouring operator and the policy towards it.
type Peer struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
	// Exactly one of Accept and Dial is set.
	Accept *Accept      `yaml:"accept"`
	Dial   *Dial        `yaml:"dial"`
	Export ExportPolicy `yaml:"export"`
	Import ImportPolicy `yaml:"import"`
	// Role is the peer's role towards us, as in RFC 9234: RoleCustomer
	// (it buys transit from us), RoleProvider (we buy transit from it)
	// or RolePeer (the default: neither). It decides which relayed
	// signals we pass on to whom (ExportPolicy.TransitFrom).
	Role string `yaml:"role,omitempty"`
	// SigningKey is the peer's public signing key (an operator NKey,
	// "O..."), pinned at peering: its signals must carry a signature that
	// verifies against it.
	SigningKey string `yaml:"signing_key"`
	// MayOriginate bounds what the peer may originate (its own signals,
	// and relayed by others); nil: anything.
	MayOriginate *MayOriginate `yaml:"may_originate,omitempty"`
	// Expires, when set, ends the peering: after it the peer's credentials
	// stop working and its link is cut.
	Expires *time.Time `yaml:"expires"`
	// Disabled, when set, holds the peering administratively down (like
	// BGP's administrative shutdown, RFC 8203): the peer is told the
	// reason, its link is held down and its conditions are withdrawn,
	// while its configuration stays. `anfed peer disable|enable` set and
	// clear it.
	Disabled *Disabled `yaml:"disabled,omitempty"`
	// Limits bound what the peer's leaf connections may take from our
	// NATS server; the server enforces them. Zero fields take the defaults.
	Limits Limits `yaml:"limits,omitempty"`
}

// Limits bound one peer's use of our NATS server: rendered by natsconf as
// the limits of the peer's account, so nats-server enforces them on the
// peer's leaf connections before any of anfed's code runs.
type Limits struct {
	// MaxSubscriptions is the most subscriptions (leaf interest, LS+) one
	// leaf connection of the peer may hold; past it the server refuses
	// each new one with -ERR and keeps the connection. Default 1,000; a
	// real anfed node needs fewer than 20.
	MaxSubscriptions int `yaml:"max_subscriptions,omitempty"`
	// MaxPayload is the largest message the peer may send; a larger one
	// makes the server close the connection (Maximum Payload Violation).
	// Default 128KiB: twice the largest signal (64 KiB), room for the link
	// headers; at least 68KiB.
	MaxPayload ByteSize `yaml:"max_payload,omitempty"`
	// MaxConnections is how many leaf connections of an accepted peer the
	// server holds at once (the account's max_leafnodes): a further one is
	// refused and the established one kept. Default 1. A peer whose
	// cluster's servers all dial us (its nats.external) needs its number
	// of servers.
	MaxConnections int `yaml:"max_connections,omitempty"`
}

// Defaults of a peer's limits.
const (
	DefaultMaxSubscriptions = 1000
	DefaultMaxPayload       = ByteSize(128 << 10)
	DefaultMaxConnections   = 1
	// MinMaxPayload is the smallest max_payload: the largest signal (64
	// KiB) and its link headers.
	MinMaxPayload = ByteSize(68 << 10)
	// MaxMaxPayload is NATS's own ceiling on a message.
	MaxMaxPayload = ByteSize(64 << 20)
	// MinMaxSubscriptions leaves room for the subscriptions an anfed node
	// holds on a link (its receiver, answers, the account's imports).
	MinMaxSubscriptions = 32
	// MaxMaxConnections bounds max_connections: a cluster's servers.
	MaxMaxConnections = 64
)

// WithDefaults is l with its zero fields set to the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxSubscriptions == 0 {
		l.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if l.MaxPayload == 0 {
		l.MaxPayload = DefaultMaxPayload
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = DefaultMaxConnections
	}
	return l
}

// MayOriginate returns what each origin may originate, by origin id:
// peers[].may_originate and origins[].may_originate. An origin absent
// from the map may originate anything.
func (c *Config) MayOriginate() map[string]*MayOriginate {
	m := map[string]*MayOriginate{}
	for i := range c.Peers {
		if a := c.Peers[i].MayOriginate; a != nil {
			m[c.Peers[i].ID] = a
		}
	}
	for i := range c.Origins {
		if a := c.Origins[i].MayOriginate; a != nil {
			m[c.Origins[i].ID] = a
		}
	}
	return m
}

// Disabled is why a peering is held administratively down.
type Disabled struct {
	// Reason is sent to the peer and shown at both ends: at most
	// MaxDisabledReason bytes of printable text.
	Reason string `yaml:"reason"`
}

// MaxDisabledReason bounds a disabled peering's reason, as RFC 9003
// bounds BGP's shutdown communication.
const MaxDisabledReason = 255

// ExpiredAt reports whether the peering has ended at now.
func (p *Peer) ExpiredAt(now time.Time) bool { return p.Expires != nil && !now.Before(*p.Expires) }

// Accept means the peer dials our leaf-node listener with credentials we
// issued to it.
type Accept struct {
	User     string `yaml:"user"`
	Password string `yaml:"password"`
	// CertName is the identity the peer's client certificate must carry
	// when the leaf listener asks for one (nats.leafnodes.tls.ca): a DNS,
	// email or URI subject alternative name, or the whole subject DN
	// (RFC 2253, e.g. "CN=op-b,O=Operator B"). Default: "CN=<peer id>",
	// the subject of the client certificate `anfed peer invite` issues. A
	// certificate from the right CA that names another peer, or nothing
	// we know, is refused (nats-server's verify_and_map).
	CertName string `yaml:"cert_name,omitempty"`
}

// CertName is the identity the peer's client certificate must carry:
// accept.cert_name, or "CN=<peer id>".
func (p *Peer) CertName() string {
	if p.Accept != nil && p.Accept.CertName != "" {
		return p.Accept.CertName
	}
	return "CN=" + p.ID
}

// Dial means we dial the peer's leaf-node listener with credentials the peer
// issued to us.
type Dial struct {
	// URL is nats-leaf://host:port (or tls://host:port).
	URL string `yaml:"url"`
	// URLs, in place of URL: several addresses of the peer's leaf
	// listeners (each server of its cluster); the link is made to one of
	// them, and to another when that one is lost.
	URLs     []string `yaml:"urls"`
	User     string   `yaml:"user"`
	Password string   `yaml:"password"`
	// TLS for the link: CA verifies the peer's listener; Cert and Key are
	// our client certificate for mutual TLS.
	TLS *TLS `yaml:"tls"`
}

// Addresses is what the link dials: URLs, or URL.
func (d *Dial) Addresses() []string {
	if len(d.URLs) > 0 {
		return d.URLs
	}
	return []string{d.URL}
}

// ExportPolicy decides which of our signals the peer receives.
// Allow-lists are default-deny: an empty list exports nothing; "*" means all.
type ExportPolicy struct {
	Classes  []string `yaml:"classes"`
	Services []string `yaml:"services"` // path.Match globs on the service token
	// IntentClasses are classes of Classes that go to the peer only for
	// a service the peer owns an intent for that we accepted, while it
	// is in force (docs/intents.md): an intent narrows them to its
	// service and lifetime; it never widens Classes or Services.
	IntentClasses []string `yaml:"intent_classes,omitempty"`
	// Transit allows relaying signals whose origin is another operator.
	Transit bool `yaml:"transit"`
	// TransitFrom lists whose relayed signals may go to this peer, by the
	// role of the neighbour we learned them from (RoleCustomer, RolePeer,
	// RoleProvider) or by that neighbour's id. Empty: valley-free, as
	// RFC 9234 / Gao-Rexford: signals learned from a customer go to
	// every peer, signals learned from a peer or a provider only to
	// customers. Only with Transit; our own signals are not affected.
	TransitFrom []string `yaml:"transit_from,omitempty"`
	// Delivery is how signals cross to the peer: DeliveryDurable (the
	// default: sent from the store in order and resent until the peer
	// stored them; nothing is lost across link cuts) or DeliveryLossy
	// (core NATS, fire and forget: what is published while the link is
	// down or the peer is slow is lost, nothing waits, nothing is resent)
	// or DeliveryStream (lossy's delivery of stored signals, plus the
	// telemetry producers publish on an.tel: checked, signed, never
	// stored; each message numbered so both ends count what is lost).
	Delivery string `yaml:"delivery,omitempty"`
	// Buffer bounds what waits for the peer (durable delivery).
	Buffer Buffer `yaml:"buffer,omitempty"`
	// MaxRate paces the signals sent to the peer, in signals per second,
	// with bursts up to MaxBurst (default: one second's worth). Pacing
	// delays signals, it never drops them (durable delivery). 0: no pacing.
	MaxRate  float64 `yaml:"max_rate,omitempty"`
	MaxBurst int     `yaml:"max_burst,omitempty"`
	// Redact lists JSON pointers (RFC 6901) into the signal's data, each
	// starting with /data/, removed from the signals we originate before
	// they cross to the peer; the copy is signed again with our key. Not
	// with Transit (a relayed signal carries its origin's signature over
	// its data) nor with lossy delivery.
	Redact []string `yaml:"redact,omitempty"`
	// MinSeverity exports only raised and updated signals with at least
	// this severity number (the severity extension's 1-24: INFO 9, WARN
	// 13, ERROR 17); a signal without one is not exported. A cleared
	// signal always passes, so that the peer never keeps a condition
	// whose end it was not told. 0: no severity filter.
	MinSeverity int `yaml:"min_severity,omitempty"`
	// Tags sets and matches the signals' tags (like BGP communities)
	// towards the peer.
	Tags ExportTags `yaml:"tags,omitempty"`
	// Filter is a CloudEvents SQL (CESQL v1) condition on the signal's
	// attributes: only signals for which it is TRUE are exported (a
	// clear always passes). Checked at load; "": no filter.
	Filter string `yaml:"filter,omitempty"`
}

// ExportTags are the tag rules of an export.
type ExportTags struct {
	// Match exports only signals that carry at least one of these tags
	// (a clear always passes). Empty: no tag filter.
	Match []string `yaml:"match,omitempty"`
	// Remove and Add change the tags of what the peer receives (Remove
	// first); our store keeps the signal as it was.
	Remove []string `yaml:"remove,omitempty"`
	Add    []string `yaml:"add,omitempty"`
}

// ImportTags are the tag rules of an import.
type ImportTags struct {
	// Deny refuses signals that carry any of these tags, Require those
	// that carry none of them (reason filtered; a clear always passes).
	Deny    []string `yaml:"deny,omitempty"`
	Require []string `yaml:"require,omitempty"`
	// Add tags the accepted signals, as we store them and our consumers
	// see them, after Deny and Require.
	Add []string `yaml:"add,omitempty"`
}

// Roles of a peering (RFC 9234): what the peer is to us.
const (
	RoleCustomer = "customer"
	RoleProvider = "provider"
	RolePeer     = "peer"
)

// Roles lists the roles, in the order docs and hints give them.
var Roles = []string{RoleCustomer, RolePeer, RoleProvider}

// RoleOf is the peer's role towards us: Role, or RolePeer when unset.
func (p *Peer) RoleOf() string {
	if p.Role == "" {
		return RolePeer
	}
	return p.Role
}

// PeerRoles maps each peer's id to its role towards us.
func (c *Config) PeerRoles() map[string]string {
	m := make(map[string]string, len(c.Peers))
	for i := range c.Peers {
		m[c.Peers[i].ID] = c.Peers[i].RoleOf()
	}
	return m
}

// Delivery modes of an export.
const (
	DeliveryDurable = "durable"
	DeliveryLossy   = "lossy"
	DeliveryStream  = "stream"
)

// Lossy reports whether signals cross to the peer fire and forget:
// delivery lossy or stream.
func (e ExportPolicy) Lossy() bool {
	return e.Delivery == DeliveryLossy || e.Delivery == DeliveryStream
}

// Stream reports whether the peer also gets our telemetry (delivery:
// stream).
func (e ExportPolicy) Stream() bool { return e.Delivery == DeliveryStream }

// Buffer bounds the signals that wait for one peer while its link is down
// or slow. At a bound the oldest waiting signals are dropped for that peer
// only (other peers and local consumers still have them), counted and
// logged. 0: bounded only by the store (storage.max_age, max_bytes).
type Buffer struct {
	// MaxAge: a signal stored longer ago than this is not sent to the peer.
	MaxAge Duration `yaml:"max_age,omitempty"`
	// MaxBytes: when the signals waiting for the peer take more than this
	// (counted as waiting signals times the store's mean signal size), the
	// oldest are dropped until they fit.
	MaxBytes ByteSize `yaml:"max_bytes,omitempty"`
}

// ImportPolicy decides which signals we accept from the peer.
type ImportPolicy struct {
	Classes []string `yaml:"classes"` // default-deny; "*" means all
	// Transit accepts signals the peer relays from other origins; without
	// it the peer may send only signals whose origin is itself.
	Transit bool `yaml:"transit"`
	// MaxRate bounds the signals per second accepted from the peer, with
	// bursts up to MaxBurst; over it a signal is refused as rate-limited
	// (an anfed sender backs off and resends it). 0: defaults of 1000/s
	// and a burst of 2000.
	MaxRate  float64 `yaml:"max_rate"`
	MaxBurst int     `yaml:"max_burst"`
	// Grace is how long the peer's link may be down before its
	// conditions go stale (default 30s); WithdrawAfter how long they stay
	// stale before they are withdrawn and local consumers told so
	// (default 5m). Like BGP graceful restart.
	Grace         Duration `yaml:"grace"`
	WithdrawAfter Duration `yaml:"withdraw_after"`
	// MaxConditions bounds the active conditions held from the peer,
	// like BGP's maximum-prefix (RFC 4486). nil: no bound.
	MaxConditions *MaxConditions `yaml:"max_conditions"`
	// Tags filters and sets the signals' tags from the peer.
	Tags ImportTags `yaml:"tags,omitempty"`
	// Filter is a CESQL v1 condition: signals for which it is not TRUE
	// are refused (reason filtered; a clear always passes). "": none.
	Filter string `yaml:"filter,omitempty"`
	// Dampening suppresses the conditions of the peer that flap, like
	// BGP's route flap dampening (RFC 2439). nil: no dampening; an empty
	// block ({}) uses RFC 2439's usual values.
	Dampening *Dampening `yaml:"dampening"`
	// AdjRibIn bounds what the node keeps of the peer's signals that
	// this import policy refuses (its Adj-RIB-In, BGP's soft
	// reconfiguration inbound): the latest per condition, for at most
	// Limit conditions, admitted without asking the peer when the
	// policy widens. nil: DefaultAdjRibInLimit.
	AdjRibIn *AdjRibIn `yaml:"adj_rib_in"`
}

// AdjRibIn is import.adj_rib_in.
type AdjRibIn struct {
	// Limit is the most conditions of the peer whose refused signal is
	// kept (> 0); past it a refused signal of a new condition is not
	// kept, and counted (adj_rib_in.over_bound, reason adj-rib-in-full).
	Limit int `yaml:"limit"`
}

// Dampening is flap dampening per condition (RFC 2439): each state change
// of a condition (a raise, an update that changes its severity, a clear)
// adds Penalty to the condition's penalty, which halves every HalfLife.
// When it exceeds Suppress, the condition's signals are held (answered
// accepted, the latest kept durably) until the penalty decays below Reuse
// or MaxSuppress has passed; then the latest is delivered. Zero fields
// take the defaults below.
type Dampening struct {
	Penalty     float64  `yaml:"penalty"`      // default 1000
	HalfLife    Duration `yaml:"half_life"`    // default 15m
	Suppress    float64  `yaml:"suppress"`     // default 2000
	Reuse       float64  `yaml:"reuse"`        // default 750
	MaxSuppress Duration `yaml:"max_suppress"` // default 60m
	// MaxEntries bounds the conditions of the peer whose penalty the node
	// tracks (default 10000); see docs/policy.md for what happens at it.
	MaxEntries int `yaml:"max_entries"`
}

// Defaults of flap dampening (RFC 2439's usual values).
const (
	DefaultDampPenalty     = 1000
	DefaultDampHalfLife    = Duration(15 * time.Minute)
	DefaultDampSuppress    = 2000
	DefaultDampReuse       = 750
	DefaultDampMaxSuppress = Duration(60 * time.Minute)
	DefaultDampMaxEntries  = 10000
)

// WithDefaults is d with its zero fields set to the defaults.
func (d Dampening) WithDefaults() Dampening {
	if d.Penalty == 0 {
		d.Penalty = DefaultDampPenalty
	}
	if d.HalfLife == 0 {
		d.HalfLife = DefaultDampHalfLife
	}
	if d.Suppress == 0 {
		d.Suppress = DefaultDampSuppress
	}
	if d.Reuse == 0 {
		d.Reuse = DefaultDampReuse
	}
	if d.MaxSuppress == 0 {
		d.MaxSuppress = DefaultDampMaxSuppress
	}
	if d.MaxEntries == 0 {
		d.MaxEntries = DefaultDampMaxEntries
	}
	return d
}

// Ceiling is the highest penalty a condition can reach (RFC 2439's
// maximum penalty): one that decays to Reuse in MaxSuppress. It assumes
// a checked config with defaults applied.
func (d Dampening) Ceiling() float64 {
	return d.Reuse * math.Exp2(float64(d.MaxSuppress)/float64(d.HalfLife))
}

// MaxConditions bounds the active (and stale) conditions held from one
// peer. At WarnAt the node logs a warning and counts it; at Limit it
// refuses signals that would raise a condition of a new key from the
// peer (reason too-many-conditions, dead-lettered, answered to the
// sender), while updates and clears of the conditions it holds still pass.
type MaxConditions struct {
	// Limit is the most active conditions held from the peer (> 0).
	Limit int `yaml:"limit"`
	// WarnAt is a percentage of Limit ("80%", the default) or a count
	// ("800") at which a warning is logged.
	WarnAt string `yaml:"warn_at"`
	// Idle, when set, also idles the link for this hold time when the
	// limit refuses a signal, like maximum-prefix's restart timer: the
	// node takes nothing from the peer and answers nothing, so the peer's
	// sender holds its signals as if the link were down and resends them
	// in order afterwards. Nothing is lost. 0: no idling.
	Idle Duration `yaml:"idle"`
}

// WarnCount is the number of conditions at which to warn: WarnAt as a
// count, or as a percentage of Limit (default 80%). It assumes a checked
// config.
func (m *MaxConditions) WarnCount() int {
	w := strings.TrimSpace(m.WarnAt)
	if w == "" {
		w = "80%"
	}
	if pc, ok := strings.CutSuffix(w, "%"); ok {
		f, _ := strconv.ParseFloat(strings.TrimSpace(pc), 64)
		return max(int(math.Ceil(f*float64(m.Limit)/100)), 1)
	}
	n, _ := strconv.Atoi(w)
	return n
}

// Duration is a time.Duration written as "90s", "5m", "72h".
type Duration time.Duration

// ByteSize is a size in bytes written as 1024, "512KiB", "64MiB", "1GiB", "1GB".
type ByteSize int64
