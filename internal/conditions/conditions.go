// Package conditions is the condition table of a node, its "RIB": the
// conditions each peer (or the local producers) reported active, by origin,
// class and subject. A closed loop that starts late reads the current state
// from it and then follows the stream of changes, and a peer whose link is
// down past its grace time sees its conditions go stale, then withdrawn.
//
// The table is pure and in memory: the caller feeds it decoded signals with
// their store sequence and ticks it with the time.
package conditions

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	"github.com/anfed/anfed/internal/signal"
)

// Key identifies a condition: who told us (the peer, or "local"), the origin
// operator, the signal class, and the CloudEvent subject (<service>/<resource>).
type Key struct {
	Peer    string `json:"peer"`
	Origin  string `json:"origin"`
	Class   string `json:"class"`
	Subject string `json:"subject"`
}

// Status is where a condition stands in the table.
type Status string

// The statuses. Only active and stale conditions are held; the others are
// the status a condition has in the Change that removes it.
const (
	StatusActive    Status = "active"
	StatusStale     Status = "stale"
	StatusCleared   Status = "cleared"
	StatusExpired   Status = "expired"
	StatusWithdrawn Status = "withdrawn"
	// StatusSuppressed is the status a node's condition view gives a
	// condition that flap dampening suppressed while the table does not
	// hold it active (its last delivered state was a clear, say).
	StatusSuppressed Status = "suppressed"
)

// Condition is one entry of the table, as the table reports it.
type Condition struct {
	// In JSON (the HTTP and NATS APIs, an.cond) the keys are snake_case,
	// as /v1/peers', and what a condition does not have is absent: no
	// severity, no expiry.
	Key
	Status   Status       `json:"status"`
	State    signal.State `json:"state"`              // of the last signal: raised, updated or cleared
	Source   string       `json:"source"`             // of the last signal
	ID       string       `json:"id"`                 // of the last signal
	Seq      uint64       `json:"seq"`                // store sequence of the last signal; 0: none
	Severity int          `json:"severity,omitempty"` // 0: none
	Raised   time.Time    `json:"raised"`             // first raised at (node clock)
	Updated  time.Time    `json:"updated"`            // last signal applied at (node clock)
	Expiry   time.Time    `json:"expiry,omitzero"`    // zero: none
	Changes  int          `json:"changes"`            // signals that changed the condition, kept across a clear while its tombstone lives

	// Flap dampening (import.dampening), filled by the node's view: the
	// condition is suppressed, its penalty, since when, when it is to be
	// released, and the state of the latest signal held for it.
	Suppressed   bool         `json:"suppressed,omitempty"`
	Penalty      float64      `json:"penalty,omitempty"`
	SuppressedAt time.Time    `json:"suppressed_at,omitzero"`
	ReuseAt      time.Time    `json:"reuse_at,omitzero"`
	Held         signal.State `json:"held,omitempty"`

	// PlannedUntil, filled by the node's view: the peer that told us the
	// condition left with a graceful-shutdown notice; the condition is
	// kept until then, when the peer is expected back.
	PlannedUntil time.Time `json:"planned_until,omitzero"`
}

// ChangeKind says how the table changed.
type ChangeKind string

// The kinds of change. The zero ChangeKind means "no change".
const (
	Upsert   ChangeKind = "upsert"   // raised or updated: the condition is active
	Clear    ChangeKind = "clear"    // cleared by its origin: removed
	Expire   ChangeKind = "expire"   // past its expiry time: removed
	Stale    ChangeKind = "stale"    // the peer's link is down past its grace time
	Withdraw ChangeKind = "withdraw" // the peer's link stayed down: removed
	Fresh    ChangeKind = "fresh"    // the peer's link is back: stale becomes active
)

// Change is what a consumer is told when the table changes. Condition is
// the condition after the change, with the status it ended in.
type Change struct {
	Kind      ChangeKind `json:"kind"`
	Condition Condition  `json:"condition"`
}

// Errors Apply returns, wrapped with the condition they concern.
var (
	ErrInvalid = errors.New("invalid signal")
	ErrStale   = errors.New("older than the signal held")
	ErrLimit   = errors.New("peer at its maximum of active conditions")
)

// DefaultTombstoneTTL is how long a cleared or expired condition is
// remembered, so that a late or replayed older signal cannot raise it again.
// It matches JetStream's default duplicate window.
const DefaultTombstoneTTL = 2 * time.Minute

// Option configures a Table.
type Option func(*Table)

// WithClock sets the clock Apply reads; tests inject one.
func WithClock(now func() time.Time) Option { return func(t *Table) { t.clock = now } }

// WithMaxPerPeer caps the active and stale conditions a peer may hold, like
// BGP's maximum-prefix: a new key beyond it is refused with ErrLimit. 0: no cap.
func WithMaxPerPeer(n int) Option { return func(t *Table) { t.maxPerPeer = max(n, 0) } }

// WithTombstoneTTL sets how long a cleared or expired condition is
// remembered (DefaultTombstoneTTL). 0 forgets it at once.
func WithTombstoneTTL(d time.Duration) Option { return func(t *Table) { t.tombTTL = max(d, 0) } }

// Table is the condition table. It is safe for concurrent use.
type Table struct {
	clock      func() time.Time
	maxPerPeer int
	tombTTL    time.Duration

	// refreshing counts the peers between BeginRefresh and EndRefresh,
	// so Touch costs nothing (no lock) while none is.
	refreshing atomic.Int32

	mu      sync.Mutex
	peers   map[string]*peerTable
	live    int     // active and stale conditions, all peers
	due     dueHeap // entries with an expiry, and tombstones
	subs    []*subscriber
	dropped int
	handles map[string]unique.Handle[string] // intern cache, bounded by maxHandles
	// floors: per peer, the store sequence up to which its signals are
	// refused (Cut): on their way when the peering went down.
	floors map[string]uint64
}

// maxHandles bounds the intern cache: operators, classes and producers are
// few, and a peer that invents many must not grow it without end (beyond
// it, unique.Make alone still shares strings and lets unused ones go).
const maxHandles = 4096

// intern returns the shared copy of s.
func (t *Table) intern(s string) unique.Handle[string] {
	if h, ok := t.handles[s]; ok {
		return h
	}
	h := unique.Make(s)
	if len(t.handles) < maxHandles {
		t.handles[h.Value()] = h
	}
	return h
}

// New returns an empty table.
func New(opts ...Option) *Table {
	t := &Table{
		clock:   time.Now,
		tombTTL: DefaultTombstoneTTL,
		peers:   make(map[string]*peerTable),
		handles: make(map[string]unique.Handle[string]),
	}
	for _, o := range opts {
		o(t)
	}
	return t
}

// peerTable holds one peer's conditions and the state of its link.
type peerTable struct {
	name        string
	m           map[ckey]*entry
	live, stale int // live counts active and stale
	tombs       int

	down          bool
	downAt        int64 // unix ns
	grace, linger time.Duration
	refreshing    bool // between BeginRefresh and EndRefresh
}

// ckey is a condition's key within a peer. Origin and class are interned:
// few distinct values, shared by every condition, compared by pointer.
type ckey struct {
	origin, class unique.Handle[string]
	subject       string
}

// Entry states.
const (
	stActive uint8 = iota + 1
	stStale
	stCleared // tombstone
	stExpired // tombstone
)

var statusOf = [...]Status{stActive: StatusActive, stStale: StatusStale, stCleared: StatusCleared, stExpired: StatusExpired}

func stateCode(s signal.State) uint8 {
	switch s {
	case signal.Raised:
		return 1
	case signal.Updated:
		return 2
	}
	return 3 // Apply admits only valid states
}

var stateOf = [...]signal.State{1: signal.Raised, 2: signal.Updated, 3: signal.Cleared}

// entry is one condition, kept small: times as unix nanoseconds, strings
// interned where they repeat, no maps. 128 bytes on 64-bit.
type entry struct {
	peer     *peerTable
	k        ckey
	source   unique.Handle[string]
	id       string
	seq      uint64
	severity int
	raised   int64
	updated  int64
	expiry   int64 // 0: none
	due      int64 // when Tick must look at it: expiry, or end of tombstone
	changes  uint32
	heapIdx  int32 // -1: not scheduled
	status   uint8
	state    uint8
	stated   bool // re-stated, or changed by a signal, since the peer's refresh began
}

func (e *entry) isLive() bool { return e.status == stActive || e.status == stStale }

func (e *entry) key() Key {
	return Key{Peer: e.peer.name, Origin: e.k.origin.Value(), Class: e.k.class.Value(), Subject: e.k.subject}
}

func (e *entry) condition() Condition {
	return Condition{
		Key:      e.key(),
		Status:   statusOf[e.status],
		State:    stateOf[e.state],
		Source:   e.source.Value(),
		ID:       e.id,
		Seq:      e.seq,
		Severity: e.severity,
		Raised:   fromNanos(e.raised),
		Updated:  fromNanos(e.updated),
		Expiry:   fromNanos(e.expiry),
		Changes:  int(e.changes),
	}
}

// record takes the last-signal fields of ev.
func (t *Table) record(e *entry, ev *signal.Event, seq uint64, now int64) {
	t.setSignal(e, ev, seq)
	e.state = stateCode(ev.State)
	e.stated = true
	e.updated = now
	if e.changes < math.MaxUint32 {
		e.changes++
	}
}

// setSignal takes the source, id and seq of ev.
func (t *Table) setSignal(e *entry, ev *signal.Event, seq uint64) {
	if e.source == (unique.Handle[string]{}) || e.source.Value() != ev.Source {
		e.source = t.intern(ev.Source)
	}
	e.id = strings.Clone(ev.ID) // never pin a larger decode buffer
	e.seq = seq
}

// Apply records a signal that peer (or "local") delivered with store
// sequence seq (0: unknown, no ordering check) and class taken from its type.
//
//   - raised or updated: the condition is active (Upsert). A new key beyond
//     WithMaxPerPeer is refused with ErrLimit; held keys still update.
//   - cleared: the condition is removed (Clear); a clear of a key not held
//     changes nothing.
//   - a signal already void (expiry at or before now) removes the condition
//     if held (Expire), and is otherwise ignored.
//   - the same source+id as the signal held (a resync, a redelivery) is a
//     no-op: zero Change, nil error.
//   - a seq at or below the one held is refused with ErrStale.
//
// A zero Change with a nil error means nothing changed.
func (t *Table) Apply(peer, class string, ev *signal.Event, seq uint64) (Change, error) {
	if err := checkInput(peer, class, ev); err != nil {
		return Change{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq != 0 && seq <= t.floors[peer] {
		return Change{}, fmt.Errorf("apply %s/%s/%s/%s seq %d: %w (stored before the peering went down, at %d)", peer, ev.Origin, class, ev.Subject, seq, ErrStale, t.floors[peer])
	}
	now := nanos(t.clock())
	k := ckey{origin: t.intern(ev.Origin), class: t.intern(class), subject: ev.Subject}
	p := t.peers[peer]
	var e *entry
	if p != nil {
		e = p.m[k]
	}
	if e != nil {
		if e.id == ev.ID && e.source.Value() == ev.Source {
			return Change{}, nil
		}
		if seq != 0 && e.seq != 0 && seq <= e.seq {
			return Change{}, fmt.Errorf("apply %s/%s/%s/%s seq %d: %w (seq %d)", peer, ev.Origin, class, ev.Subject, seq, ErrStale, e.seq)
		}
	}

	var c Change
	switch exp := nanos(ev.ExpiryTime); {
	case ev.State == signal.Cleared:
		c = t.clear(e, ev, seq, now)
	case exp != 0 && exp <= now:
		c = t.voidOnArrival(e, ev, seq, now)
	default:
		if p == nil {
			p = t.peer(peer)
		}
		var err error
		if c, err = t.upsert(p, k, e, ev, seq, now); err != nil {
			return Change{}, err
		}
	}
	if c.Kind != "" {
		t.broadcast(c)
	}
	return c, nil
}

func checkInput(peer, class string, ev *signal.Event) error {
	switch {
	case ev == nil:
		return fmt.Errorf("apply: nil event: %w", ErrInvalid)
	case peer == "" || class == "":
		return fmt.Errorf("apply %q from peer %q class %q: peer and class are required: %w", ev.ID, peer, class, ErrInvalid)
	case ev.Origin == "" || ev.Subject == "" || ev.Source == "" || ev.ID == "":
		return fmt.Errorf("apply %q from peer %q: origin, subject, source and id are required: %w", ev.ID, peer, ErrInvalid)
	case !ev.State.Valid():
		return fmt.Errorf("apply %q from peer %q: state %q, want raised, updated or cleared: %w", ev.ID, peer, ev.State, ErrInvalid)
	}
	return nil
}

func (t *Table) upsert(p *peerTable, k ckey, e *entry, ev *signal.Event, seq uint64, now int64) (Change, error) {
	wasLive := e != nil && e.isLive()
	if !wasLive && t.maxPerPeer > 0 && p.live >= t.maxPerPeer {
		return Change{}, fmt.Errorf("apply %s/%s/%s/%s: %w (%d)", p.name, ev.Origin, k.class.Value(), ev.Subject, ErrLimit, t.maxPerPeer)
	}
	switch {
	case e == nil:
		k.subject = strings.Clone(k.subject)
		e = &entry{peer: p, k: k, heapIdx: -1}
		p.m[k] = e
	case !wasLive:
		p.tombs-- // a tombstone raised again keeps its change count
	case e.status == stStale:
		p.stale--
	}
	if !wasLive {
		e.raised = now
		p.live++
		t.live++
	}
	e.status = stActive
	t.record(e, ev, seq, now)
	e.severity = ev.SeverityNumber
	e.expiry = nanos(ev.ExpiryTime)
	t.schedule(e, e.expiry)
	return Change{Kind: Upsert, Condition: e.condition()}, nil
}

func (t *Table) clear(e *entry, ev *signal.Event, seq uint64, now int64) Change {
	if e == nil {
		return Change{} // nothing held, nobody was told of it
	}
	if !e.isLive() {
		// Already gone: remember the newer signal for ordering and dedup.
		t.setSignal(e, ev, seq)
		return Change{}
	}
	t.unlive(e)
	e.status = stCleared
	t.record(e, ev, seq, now)
	c := Change{Kind: Clear, Condition: e.condition()}
	t.bury(e, now)
	return c
}

func (t *Table) voidOnArrival(e *entry, ev *signal.Event, seq uint64, now int64) Change {
	if e == nil {
		return Change{}
	}
	if !e.isLive() {
		t.setSignal(e, ev, seq)
		return Change{}
	}
	t.unlive(e)
	e.status = stExpired
	t.record(e, ev, seq, now)
	e.severity = ev.SeverityNumber
	e.expiry = nanos(ev.ExpiryTime)
	c := Change{Kind: Expire, Condition: e.condition()}
	t.bury(e, now)
	return c
}

// dropPeer forgets a peer's table that holds nothing.
func (t *Table) dropPeer(p *peerTable) {
	if p.refreshing {
		p.refreshing = false
		t.refreshing.Add(-1)
	}
	delete(t.peers, p.name)
}

// Cut refuses, from now on, peer's signals stored up to upTo (a store
// sequence) that reach Apply: the table is fed from the store behind the
// receiver, so a signal stored before the peering went down
// (administratively, or removed) can come after its withdrawal, and must
// not bring a condition back. A re-statement (Apply with seq 0) is not
// refused, nor what is stored after upTo.
func (t *Table) Cut(peer string, upTo uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.floors == nil {
		t.floors = map[string]uint64{}
	}
	t.floors[peer] = max(t.floors[peer], upTo)
}

// peer returns the peer's table, creating it.
func (t *Table) peer(name string) *peerTable {
	p := t.peers[name]
	if p == nil {
		p = &peerTable{name: strings.Clone(name), m: make(map[ckey]*entry)}
		t.peers[name] = p
	}
	return p
}

// unlive takes a live entry out of the counts.
func (t *Table) unlive(e *entry) {
	if e.status == stStale {
		e.peer.stale--
	}
	e.peer.live--
	t.live--
}

// bury turns an entry that just left the live set into a tombstone, or
// forgets it when tombstones are off or the peer holds too many.
func (t *Table) bury(e *entry, now int64) {
	p := e.peer
	keep := t.tombTTL > 0 && (t.maxPerPeer == 0 || p.tombs < t.maxPerPeer)
	p.tombs++
	if !keep {
		t.remove(e)
		return
	}
	t.schedule(e, addNanos(now, t.tombTTL))
}

// remove forgets an entry that is not live.
func (t *Table) remove(e *entry) {
	t.schedule(e, 0)
	p := e.peer
	if e.status == stCleared || e.status == stExpired {
		p.tombs--
	}
	delete(p.m, e.k)
	if len(p.m) == 0 && !p.down {
		t.dropPeer(p)
	}
}

// Len returns the number of active and stale conditions held for peer, or
// for all peers when peer is "".
func (t *Table) Len(peer string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if peer == "" {
		return t.live
	}
	if p := t.peers[peer]; p != nil {
		return p.live
	}
	return 0
}

// Filter selects conditions. Empty fields match all; Service matches the
// part of the subject before the first '/'.
type Filter struct {
	Peer, Origin, Class, Service string
	IncludeStale                 bool // Snapshot only; changes are never filtered by status
}

// Match reports whether f selects k.
func (f Filter) Match(k Key) bool { return f.match(k) }

func (f Filter) match(k Key) bool {
	if f.Service != "" {
		svc, _, _ := strings.Cut(k.Subject, "/")
		if svc != f.Service {
			return false
		}
	}
	return (f.Peer == "" || f.Peer == k.Peer) &&
		(f.Origin == "" || f.Origin == k.Origin) &&
		(f.Class == "" || f.Class == k.Class)
}

// Snapshot returns the active conditions (and stale ones with
// IncludeStale) that f selects, sorted by peer, origin, class and subject.
func (t *Table) Snapshot(f Filter) []Condition {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.snapshot(f)
}

func (t *Table) snapshot(f Filter) []Condition {
	var out []Condition
	add := func(p *peerTable) {
		for _, e := range p.m {
			if e.status == stActive || (f.IncludeStale && e.status == stStale) {
				if c := e.condition(); f.match(c.Key) {
					out = append(out, c)
				}
			}
		}
	}
	if f.Peer != "" {
		if p := t.peers[f.Peer]; p != nil {
			add(p)
		}
	} else {
		for _, p := range t.peers {
			add(p)
		}
	}
	slices.SortFunc(out, func(a, b Condition) int { return compareKeys(a.Key, b.Key) })
	return out
}

// CompareKeys orders keys as Snapshot does.
func CompareKeys(a, b Key) int { return compareKeys(a, b) }

func compareKeys(a, b Key) int {
	return cmp.Or(
		strings.Compare(a.Peer, b.Peer),
		strings.Compare(a.Origin, b.Origin),
		strings.Compare(a.Class, b.Class),
		strings.Compare(a.Subject, b.Subject),
	)
}

// nanos is t in unix nanoseconds, clamped to what int64 holds; 0 stands
// for the zero time.
func nanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return math.MinInt64 + 1
	case t.After(maxTime):
		return math.MaxInt64
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1 // the epoch itself, kept distinct from "none"
}

var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func addNanos(n int64, d time.Duration) int64 {
	if d > 0 && n > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return n + int64(d)
}
