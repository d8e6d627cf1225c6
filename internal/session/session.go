// Package session is the control plane of a link, like BGP's: the OPEN
// that says who each end is and what it takes (operator ids, software
// version, hold and graceful-restart times, signing key ids, the catalog
// classes and versions it accepts, a summary of its import policy), the
// KEEPALIVE and hold timer that find a silent peer, the NOTIFICATION that
// closes a session with a reason both ends show, and the refresh markers
// (begin, End-of-RIB) that let a receiver drop what its peer no longer
// states.
//
// It holds plain message types and a state machine driven by the caller
// with the time: no NATS, no clock of its own. internal/node carries the
// messages on the link (inside the permission probes and advisories use)
// and runs the refresh.
package session

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Type is a session message's kind.
type Type string

// The message types.
const (
	TypeOpen         Type = "open"
	TypeKeepalive    Type = "keepalive"
	TypeNotification Type = "notification"
	// TypeRefresh asks the peer to send its current state again (BGP
	// ROUTE-REFRESH).
	TypeRefresh Type = "refresh"
	// TypeBegin starts a refresh: what follows re-states the sender's
	// current state, up to the End-of-RIB of the same ID.
	TypeBegin Type = "begin-of-rib"
	// TypeEndOfRIB ends a refresh: the receiver withdraws what the peer
	// held and did not re-state since the begin of the same ID.
	TypeEndOfRIB Type = "end-of-rib"
	// Key rotation (rotation.go): the sender announces its new signing
	// key, signed by the key the receiver pinned (key-rotate); the
	// receiver pins both and confirms (key-accept) or says why not
	// (key-refuse); the sender, signing with the new key since every
	// peer confirmed it, says so (key-switch), and the receiver retires
	// the old key after the overlap.
	TypeKeyRotate Type = "key-rotate"
	TypeKeyAccept Type = "key-accept"
	TypeKeyRefuse Type = "key-refuse"
	TypeKeySwitch Type = "key-switch"
)

// MaxBytes bounds what a receiving side reads of a session message.
const MaxBytes = 64 << 10

// Import is the summary of an import policy an OPEN carries (an ORF:
// what the side accepts).
type Import struct {
	Classes  []string `json:"classes"`
	Services []string `json:"services,omitempty"`
	Transit  bool     `json:"transit,omitempty"`
}

// Message is a session message on the wire (JSON).
type Message struct {
	Type Type   `json:"type"`
	From string `json:"from"`
	To   string `json:"to"`

	// OPEN.
	Version string `json:"version,omitempty"`
	// HoldSeconds: the sender closes the session when it hears nothing
	// for this long; the session's hold time is the smaller of both.
	HoldSeconds    int      `json:"hold_seconds,omitempty"`
	RestartSeconds int      `json:"restart_seconds,omitempty"`
	Keys           []string `json:"keys,omitempty"`
	// Catalog: the class types (net.anfed.<class>.v<N>) the sender
	// understands.
	Catalog []string `json:"catalog,omitempty"`
	Import  *Import  `json:"import,omitempty"`
	// Heard says the sender holds a valid OPEN of the receiver: the
	// session is established at the sender.
	Heard bool `json:"heard,omitempty"`
	// Refreshes: the sender re-states its state and sends End-of-RIB
	// when the session is established (not a lossy export).
	Refreshes bool `json:"refreshes,omitempty"`

	// NOTIFICATION.
	Reason string `json:"reason,omitempty"`
	Text   string `json:"text,omitempty"`

	// Refresh markers: the refresh's id and, on End-of-RIB, how many
	// conditions it re-stated.
	ID    string `json:"id,omitempty"`
	Count int    `json:"count,omitempty"`

	// Key rotation: the rotation announced, accepted, refused (Reason,
	// Text) or switched to.
	Rotation *Rotation `json:"rotation,omitempty"`
}

// Encode is m on the wire.
func (m Message) Encode() []byte {
	b, _ := json.Marshal(m) // plain data always marshals
	return b
}

// Decode reads a session message, bounded, and checks that it is from
// peer to self.
func Decode(b []byte, peer, self string) (Message, error) {
	var m Message
	if len(b) > MaxBytes {
		return m, fmt.Errorf("session message of %d bytes, over %d", len(b), MaxBytes)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("session message: %w", err)
	}
	switch m.Type {
	case TypeOpen, TypeKeepalive, TypeNotification, TypeRefresh, TypeBegin, TypeEndOfRIB:
	case TypeKeyRotate, TypeKeyAccept, TypeKeyRefuse, TypeKeySwitch:
		if m.Rotation == nil {
			return m, fmt.Errorf("%s message without its rotation", m.Type)
		}
	default:
		return m, fmt.Errorf("session message of unknown type %q", clean(string(m.Type), 32))
	}
	if m.From != peer {
		return m, fmt.Errorf("session message from %q on %s's link", clean(m.From, 64), peer)
	}
	if m.Type != TypeOpen && m.To != self {
		// An OPEN naming someone else is answered with a NOTIFICATION.
		return m, fmt.Errorf("session message for %q, not %s", clean(m.To, 64), self)
	}
	m.Reason, m.Text, m.Version = clean(m.Reason, 64), clean(m.Text, 512), clean(m.Version, 64)
	return m, nil
}

// clean makes a peer's text safe to log and show: printable, bounded.
func clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return s
}

// State is where a session stands.
type State string

// The states. A session is idle while its link is down; open-sent while
// it waits for the peer's OPEN (or for the peer to have heard ours);
// established once both ends hold each other's valid OPEN.
const (
	Idle        State = "idle"
	OpenSent    State = "open-sent"
	Established State = "established"
)

// Reasons a session closes, in NOTIFICATIONs and in the status.
const (
	ReasonWrongPeer      = "wrong-peer"
	ReasonNoCommonClass  = "no-common-class"
	ReasonUnknownKey     = "unknown-key"
	ReasonHoldExpired    = "hold-timer-expired"
	ReasonLinkDown       = "link-down"
	ReasonPeerClosed     = "peer-closed"
	ReasonPeerRestarted  = "peer-restarted"
	ReasonBadMessage     = "bad-message"
	ReasonAdministrative = "administrative"
	// ReasonPlanned: a graceful-shutdown notice; the NOTIFICATION's
	// RestartSeconds says within how long the sender is back.
	ReasonPlanned = "planned-restart"
)

// Defaults of the timers.
const (
	DefaultHold = 30 * time.Second
	// Retry is how often an OPEN is sent again while the peer has not
	// answered it, and how long a closed session waits to open again.
	Retry = time.Second
)

// Local is what this end states in its OPEN and checks in the peer's.
type Local struct {
	Self, Peer string
	Version    string
	Hold       time.Duration // 0: DefaultHold
	Restart    time.Duration
	// Keys are our signing key ids (public keys); PeerKeys those we
	// pinned for the peer.
	Keys, PeerKeys []string
	// Catalog is the class types we understand; Import our import
	// policy's summary for this peer; Export the classes we may send it.
	Catalog []string
	Import  Import
	Export  []string
	// Refreshes: we re-state our state, then End-of-RIB, when the
	// session is established.
	Refreshes bool
}

// Negotiated is what an established session agreed.
type Negotiated struct {
	Hold    time.Duration `json:"hold"`
	Version string        `json:"peer_version"`
	Restart time.Duration `json:"peer_restart"`
	Keys    []string      `json:"peer_keys"`
	// Catalog: the class types both ends understand.
	Catalog []string `json:"catalog"`
	// PeerImport is what the peer says it accepts; Sendable the classes
	// our export policy passes that the peer accepts.
	PeerImport Import `json:"peer_import"`
	// PeerRefreshes: the peer sends End-of-RIB after establishment.
	PeerRefreshes bool     `json:"peer_refreshes"`
	Sendable      []string `json:"sendable"`
}

// Status is a session as the peers view shows it.
type Status struct {
	State      State       `json:"state"`
	Since      time.Time   `json:"since"`
	LastDown   string      `json:"last_down,omitempty"`
	LastDownAt time.Time   `json:"last_down_at,omitzero"`
	Flaps      int         `json:"flaps"`
	Negotiated *Negotiated `json:"negotiated,omitempty"`
}

// Event is what a step of the machine tells the caller beyond the
// messages to send.
type Event int

// The events.
const (
	None Event = iota
	// Up: the session was established; the caller sends its refresh.
	Up
	// Down: the session closed (Status().LastDown says why).
	Down
	// RefreshAsked: the peer asked for our current state again.
	RefreshAsked
)

// Machine is one link's session. It is not safe for concurrent use: its
// owner drives it from one goroutine.
type Machine struct {
	l          Local
	st         Status
	linkUp     bool
	heardPeer  bool // we hold a valid OPEN of the peer
	peerHeard  bool // the peer holds ours
	lastSent   time.Time
	lastHeard  time.Time
	retryAfter time.Time
	peer       *Message
}

// New returns an idle session whose link is down.
func New(l Local, now time.Time) *Machine {
	if l.Hold <= 0 {
		l.Hold = DefaultHold
	}
	return &Machine{l: l, st: Status{State: Idle, Since: now}}
}

// Update makes l what this end states and checks from now on (a reload
// changed its policy): an established session stays up, and the next
// OPEN carries it.
func (m *Machine) Update(l Local) {
	if l.Hold <= 0 {
		l.Hold = DefaultHold
	}
	m.l = l
}

// KeysRotated tells the session that a key rotation changed, while it
// runs, the keys its OPEN states (ours: the key we sign with) and those
// it checks the peer's OPEN against (the peer's pinned keys). An event,
// like LinkUp or Receive, not a setting: the keys at construction are
// Local's.
func (m *Machine) KeysRotated(keys, peerKeys []string) {
	m.l.Keys, m.l.PeerKeys = slices.Clone(keys), slices.Clone(peerKeys)
}

// Status is the session's state.
func (m *Machine) Status() Status {
	s := m.st
	if s.Negotiated != nil {
		n := *s.Negotiated
		s.Negotiated = &n
	}
	return s
}

// Hold is the hold time in force: the smaller of ours and the peer's
// once established, ours before.
func (m *Machine) Hold() time.Duration {
	if m.st.Negotiated != nil {
		return m.st.Negotiated.Hold
	}
	return m.l.Hold
}

func (m *Machine) open() Message {
	imp := m.l.Import
	return Message{Type: TypeOpen, From: m.l.Self, To: m.l.Peer, Version: m.l.Version,
		HoldSeconds: int(m.l.Hold / time.Second), RestartSeconds: int(m.l.Restart / time.Second),
		Keys: m.l.Keys, Catalog: m.l.Catalog, Import: &imp, Heard: m.heardPeer, Refreshes: m.l.Refreshes}
}

func (m *Machine) msg(t Type) Message { return Message{Type: t, From: m.l.Self, To: m.l.Peer} }

func (m *Machine) set(s State, now time.Time) {
	if m.st.State != s {
		m.st.State, m.st.Since = s, now
	}
}

// down closes the session for reason; an established one counts a flap.
func (m *Machine) down(now time.Time, reason string) Event {
	was := m.st.State
	m.heardPeer, m.peerHeard, m.peer = false, false, nil
	m.st.LastDown, m.st.LastDownAt = reason, now
	m.st.Negotiated = nil
	m.set(Idle, now)
	m.retryAfter = now.Add(Retry)
	if was == Established {
		m.st.Flaps++
		return Down
	}
	return None
}

// LinkUp starts the session: our OPEN goes out.
func (m *Machine) LinkUp(now time.Time) []Message {
	m.linkUp = true
	m.set(OpenSent, now)
	m.lastSent, m.lastHeard = now, now
	return []Message{m.open()}
}

// LinkDown closes the session: the link is gone.
func (m *Machine) LinkDown(now time.Time) Event {
	m.linkUp = false
	if m.st.State == Idle {
		return None
	}
	return m.down(now, ReasonLinkDown)
}

// Close ends the session with a NOTIFICATION of reason and text, ours to
// send; the session opens again after Retry while the link is up.
func (m *Machine) Close(now time.Time, reason, text string) ([]Message, Event) {
	n := m.msg(TypeNotification)
	n.Reason, n.Text = reason, text
	ev := m.down(now, reason+": "+text)
	return []Message{n}, ev
}

// Refresh asks the peer for its current state (inbound refresh). It
// returns nothing while the session is not established.
func (m *Machine) Refresh() []Message {
	if m.st.State != Established {
		return nil
	}
	return []Message{m.msg(TypeRefresh)}
}

// Tick applies time: KEEPALIVEs every third of the hold time, the hold
// timer, OPENs again while the peer has not answered, and a new OPEN a
// while after a close.
func (m *Machine) Tick(now time.Time) ([]Message, Event) {
	if !m.linkUp {
		return nil, None
	}
	switch m.st.State {
	case Idle:
		if !now.Before(m.retryAfter) {
			return m.LinkUp(now), None
		}
	case OpenSent:
		if now.Sub(m.lastSent) >= Retry {
			m.lastSent = now
			return []Message{m.open()}, None
		}
	case Established:
		if now.Sub(m.lastHeard) >= m.Hold() {
			return m.Close(now, ReasonHoldExpired, fmt.Sprintf("nothing heard from %s for %s", m.l.Peer, m.Hold()))
		}
		if now.Sub(m.lastSent) >= m.Hold()/3 {
			m.lastSent = now
			return []Message{m.msg(TypeKeepalive)}, None
		}
	}
	return nil, None
}

// Receive takes a message from the peer.
func (m *Machine) Receive(now time.Time, in Message) ([]Message, Event) {
	if !m.linkUp {
		return nil, None
	}
	m.lastHeard = now
	switch in.Type {
	case TypeNotification:
		if m.st.State == Idle {
			return nil, None
		}
		return nil, m.down(now, fmt.Sprintf("%s: %s says %s: %s", ReasonPeerClosed, m.l.Peer, in.Reason, in.Text))
	case TypeOpen:
		return m.receiveOpen(now, in)
	case TypeKeepalive:
		if m.st.State == OpenSent && m.heardPeer {
			return m.establish(now)
		}
	case TypeRefresh:
		if m.st.State == Established {
			return nil, RefreshAsked
		}
	}
	return nil, None
}

func (m *Machine) receiveOpen(now time.Time, in Message) ([]Message, Event) {
	if reason, text := m.check(in); reason != "" {
		return m.Close(now, reason, text)
	}
	var ev Event
	if m.st.State == Established && !in.Heard {
		// The peer started afresh (it restarted): so do we.
		ev = m.down(now, ReasonPeerRestarted)
		m.set(OpenSent, now)
	}
	if m.st.State == Idle {
		m.set(OpenSent, now)
	}
	m.heardPeer = true
	p := in
	m.peer = &p
	if in.Heard {
		m.peerHeard = true
	}
	if m.st.State == Established {
		return nil, ev
	}
	m.lastSent = now
	out := []Message{m.open()}
	if m.peerHeard {
		// Up outweighs the Down of a peer that restarted: the flap
		// is counted, the refresh must run.
		o, e := m.establish(now)
		return append(out, o...), e
	}
	return out, ev
}

func (m *Machine) establish(now time.Time) ([]Message, Event) {
	p := m.peer
	hold := m.l.Hold
	if ph := time.Duration(p.HoldSeconds) * time.Second; ph > 0 && ph < hold {
		hold = ph
	}
	n := &Negotiated{Hold: hold, Version: p.Version, Restart: time.Duration(p.RestartSeconds) * time.Second,
		Keys: slices.Clone(p.Keys), Catalog: common(m.l.Catalog, p.Catalog), PeerRefreshes: p.Refreshes}
	if p.Import != nil {
		n.PeerImport = *p.Import
	}
	for _, c := range m.l.Export {
		if accepts(n.PeerImport.Classes, c) {
			n.Sendable = append(n.Sendable, c)
		}
	}
	m.st.Negotiated = n
	m.set(Established, now)
	m.lastSent = now
	return []Message{m.msg(TypeKeepalive)}, Up
}

// check finds what makes the peer's OPEN unacceptable: its reason and a
// text for both ends, or "".
func (m *Machine) check(in Message) (reason, text string) {
	if in.From != m.l.Peer || in.To != m.l.Self {
		return ReasonWrongPeer, fmt.Sprintf("the OPEN is from %q to %q; this link is between %s and %s", in.From, in.To, m.l.Peer, m.l.Self)
	}
	if len(common(m.l.Catalog, in.Catalog)) == 0 {
		return ReasonNoCommonClass, fmt.Sprintf("%s understands %s, %s understands %s: no class in common",
			m.l.Self, strings.Join(m.l.Catalog, ","), m.l.Peer, strings.Join(in.Catalog, ","))
	}
	for _, k := range in.Keys {
		if !slices.Contains(m.l.PeerKeys, k) {
			return ReasonUnknownKey, fmt.Sprintf("%s signs with key %s, which %s has not pinned: pin it (anfed peer pin) or check the peering bundle", m.l.Peer, k, m.l.Self)
		}
	}
	return "", ""
}

func common(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func accepts(classes []string, c string) bool {
	return slices.Contains(classes, "*") || slices.Contains(classes, c)
}
