// Package dampening is flap dampening per condition, after BGP's route
// flap dampening (RFC 2439). It is a step of the import journey, after the
// import policy and before the condition table: each state change of a
// condition a peer reports (a raise, an update that changes its severity,
// a clear) adds a penalty that halves every half-life; a condition whose
// penalty exceeds the suppress threshold is suppressed — its signals are
// held, the latest kept — until the penalty decays below the reuse
// threshold or the maximum suppress time has passed, when the latest is
// released.
//
// A Damper decides; it neither stores nor delivers. It is safe for
// concurrent use, pure, and bounded: it tracks at most MaxEntries
// conditions per peer.
package dampening

import (
	"math"
	"sync"
	"time"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
)

// Key is a condition, as the condition table names it.
type Key = conditions.Key

// Decision is what the damper made of one signal.
type Decision struct {
	// Hold: the condition is suppressed; the signal is held (answered
	// accepted, kept as the condition's latest, not delivered).
	Hold bool
	// Suppressed: this signal suppressed the condition.
	Suppressed bool
	// Superseding: a signal of the condition was held before this one
	// (it is superseded now).
	Superseding  bool
	Penalty      float64
	SuppressedAt time.Time // when the condition was suppressed, if held
	ReuseAt      time.Time // when the condition would be released, if held
	// Untracked: the damper is at its bound and tracks no penalty for
	// this condition; the signal passes.
	Untracked bool
}

// Release is a suppressed condition whose time has come: its latest held
// signal is to be delivered.
type Release struct {
	Key Key
	// Held is the source and id of the signal to deliver, and State its
	// state.
	Held  string
	State signal.State
	// Why: "decayed" (penalty below reuse) or "max-suppress".
	Why          string
	Penalty      float64
	SuppressedAt time.Time

	decisions uint64 // the condition's decisions at release
}

// Suppressed is a suppressed condition as the damper reports it.
type Suppressed struct {
	Key          Key
	Penalty      float64
	SuppressedAt time.Time
	ReuseAt      time.Time
	Held         signal.State // state of the latest held signal
}

// Damper is the dampening of one peer's conditions.
type Damper struct {
	p       config.Dampening
	ceiling float64

	mu         sync.Mutex
	m          map[Key]*entry
	suppressed int
	untracked  uint64
}

// entry is one tracked condition.
type entry struct {
	penalty  float64
	at       time.Time // penalty is as of at
	severity int
	seen     bool
	// suppressedAt is zero unless the condition is suppressed.
	suppressedAt time.Time
	held         string // source+" "+id of the latest held signal
	heldState    signal.State
	retryAt      time.Time // a failed release is tried again from then
	releasing    bool      // released, its delivery not confirmed yet
	decisions    uint64    // signals decided
}

// New returns a damper with p (defaults applied to its zero fields).
func New(p config.Dampening) *Damper {
	p = p.WithDefaults()
	return &Damper{p: p, ceiling: p.Ceiling(), m: map[Key]*entry{}}
}

// Params are the damper's parameters, defaults applied.
func (d *Damper) Params() config.Dampening { return d.p }

// decayed is the penalty of e at now.
func (d *Damper) decayed(e *entry, now time.Time) float64 {
	dt := now.Sub(e.at)
	if dt <= 0 || e.penalty == 0 {
		return e.penalty
	}
	return e.penalty * math.Exp2(-float64(dt)/float64(d.p.HalfLife))
}

// reuseAt is when e, suppressed, is released if nothing else happens.
func (d *Damper) reuseAt(e *entry) time.Time {
	at := e.at
	if e.penalty > d.p.Reuse {
		at = at.Add(time.Duration(math.Log2(e.penalty/d.p.Reuse) * float64(d.p.HalfLife)))
	}
	if limit := e.suppressedAt.Add(time.Duration(d.p.MaxSuppress)); limit.Before(at) {
		at = limit
	}
	return at
}

// Signal decides what becomes of ev, a signal of condition k that passed
// every other import check, at now.
func (d *Damper) Signal(k Key, ev *signal.Event, now time.Time) Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.m[k]
	if e == nil {
		if len(d.m) >= d.p.MaxEntries && !d.evict(now) {
			d.untracked++
			return Decision{Untracked: true}
		}
		e = &entry{at: now}
		d.m[k] = e
	}
	e.decisions++
	id := ev.Source + " " + ev.ID
	if e.held == id {
		// The held signal again (a resend after an answer was lost): no
		// new change.
		return Decision{Hold: true, Penalty: d.decayed(e, now), SuppressedAt: e.suppressedAt, ReuseAt: d.reuseAt(e)}
	}
	change := ev.State == signal.Raised || ev.State == signal.Cleared ||
		ev.State == signal.Updated && e.seen && ev.SeverityNumber != e.severity
	e.seen, e.severity = true, ev.SeverityNumber
	e.penalty, e.at = d.decayed(e, now), now
	if change {
		e.penalty = min(e.penalty+d.p.Penalty, d.ceiling)
	}
	var dec Decision
	if e.suppressedAt.IsZero() && e.penalty > d.p.Suppress {
		e.suppressedAt, e.retryAt = now, time.Time{}
		d.suppressed++
		dec.Suppressed = true
	}
	dec.Penalty = e.penalty
	if e.suppressedAt.IsZero() {
		return dec
	}
	dec.Hold, dec.Superseding = true, e.held != ""
	e.held, e.heldState = id, ev.State
	dec.SuppressedAt, dec.ReuseAt = e.suppressedAt, d.reuseAt(e)
	return dec
}

// evict forgets one tracked condition to make room: among a sample of
// those not suppressed, the one with the lowest penalty. It reports
// whether it made room.
func (d *Damper) evict(now time.Time) bool {
	const sample = 16
	var (
		victim Key
		low    = math.Inf(1)
		seen   int
	)
	for k, e := range d.m { // map order is random: a fair sample
		if !e.suppressedAt.IsZero() || e.releasing {
			continue
		}
		if p := d.decayed(e, now); p < low {
			victim, low = k, p
		}
		if seen++; seen == sample {
			break
		}
	}
	if math.IsInf(low, 1) {
		return false
	}
	delete(d.m, victim)
	return true
}

// Due returns the suppressed conditions to release at now, and marks them
// released: a later signal of theirs passes. It also forgets conditions
// whose penalty decayed below half of reuse (RFC 2439), so that the
// damper holds only what may matter.
func (d *Damper) Due(now time.Time) []Release {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []Release
	for k, e := range d.m {
		p := d.decayed(e, now)
		if e.suppressedAt.IsZero() {
			if !e.releasing && p < d.p.Reuse/2 {
				delete(d.m, k)
			}
			continue
		}
		if now.Before(e.retryAt) {
			continue
		}
		why := ""
		switch {
		case p < d.p.Reuse:
			why = "decayed"
		case now.Sub(e.suppressedAt) >= time.Duration(d.p.MaxSuppress):
			why = "max-suppress"
		default:
			continue
		}
		out = append(out, Release{Key: k, Held: e.held, State: e.heldState, Why: why, Penalty: p, SuppressedAt: e.suppressedAt, decisions: e.decisions})
		e.suppressedAt, e.held, e.releasing = time.Time{}, "", true
		d.suppressed--
	}
	return out
}

// Released reports the outcome of delivering r. When it failed, the
// condition is suppressed again and its release retried after retry —
// unless a later signal of it was decided meanwhile, which makes the held
// one obsolete: then keep is false and the caller drops it.
func (d *Damper) Released(r Release, ok bool, now time.Time, retry time.Duration) (keep bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.m[r.Key]
	if e == nil {
		return false
	}
	e.releasing = false
	if ok || e.decisions != r.decisions {
		return false
	}
	e.suppressedAt, e.held, e.heldState, e.retryAt = r.SuppressedAt, r.Held, r.State, now.Add(retry)
	d.suppressed++
	return true
}

// Unsuppress ends the suppression of k when held is still its latest held
// signal: the caller delivered that signal itself (it could not hold it).
func (d *Damper) Unsuppress(k Key, held string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.m[k]; e != nil && !e.suppressedAt.IsZero() && e.held == held {
		e.suppressedAt, e.held = time.Time{}, ""
		d.suppressed--
	}
}

// Restore takes up a suppression that was under way before a restart: k
// suppressed since suppressedAt, with penalty as of at, its latest held
// signal ev.
func (d *Damper) Restore(k Key, ev *signal.Event, penalty float64, at, suppressedAt time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.m[k]
	if e == nil {
		e = &entry{}
		d.m[k] = e
	}
	if e.suppressedAt.IsZero() {
		d.suppressed++
	}
	e.penalty, e.at, e.suppressedAt = min(penalty, d.ceiling), at, suppressedAt
	e.seen, e.severity = true, ev.SeverityNumber
	e.held, e.heldState = ev.Source+" "+ev.ID, ev.State
}

// Snapshot returns the suppressed conditions at now.
func (d *Damper) Snapshot(now time.Time) []Suppressed {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Suppressed, 0, d.suppressed)
	for k, e := range d.m {
		if e.suppressedAt.IsZero() {
			continue
		}
		out = append(out, Suppressed{Key: k, Penalty: d.decayed(e, now), SuppressedAt: e.suppressedAt, ReuseAt: d.reuseAt(e), Held: e.heldState})
	}
	return out
}

// Counts are how many conditions the damper tracks and how many are
// suppressed, and how many signals passed untracked at its bound.
func (d *Damper) Counts() (tracked, suppressed int, untracked uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m), d.suppressed, d.untracked
}
