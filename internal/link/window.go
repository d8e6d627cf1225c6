package link

import "time"

// Window is the sending end of a link: the signals in flight to the peer,
// in store order, and when to send, probe, resend, hold and give up. It is
// driven by events — a signal to send (Add), the peer's answer to one
// (Answer) or to a probe (ProbeAnswer), the time (Tick), a buffer bound
// (DropUnsent) — each with the time it happens, and acts through its
// Effects; it keeps no clock and no connection, so a test drives it with
// a fake clock (TestWindow). The times passed in must never go back (a
// probe is the sync point for what was sent before it): the sender
// passes time.Now() at each event. T is what the sender keeps of a
// signal.
//
// The peer answers each signal; a probe, which the peer answers in order
// after every signal sent before it, is the sync point: when it comes
// back, what the peer decided (up to the probe's Last) is done, and what
// was sent before the probe but neither decided nor answered was lost and
// is resent, in order. Probes go out when the peer falls silent, when NATS
// finds no route (the link is down: nothing is resent until a probe is
// answered), and after a "not now" answer. So a slow peer is never
// flooded with resends, and a lost signal is resent only once its loss is
// proven.
type Window[T any] struct {
	cfg   WindowConfig
	fx    Effects[T]
	slots []*slot[T]
	bySeq map[uint64]*slot[T]
	// decided: the last signal the peer decided, in order: the front's
	// predecessor.
	decided uint64
	// down: the link is presumed down (no route, or a probe went
	// unanswered): new signals are held until a probe is answered.
	down      bool
	probeAt   time.Time // when the probe in flight was sent; zero: none
	probeDue  time.Time // when to send the next probe; zero: none planned
	lastHeard time.Time
	backoff   time.Duration
}

// WindowConfig is a window's size and timers.
type WindowConfig struct {
	// Size is how many signals may be in flight (config.DefaultLinkWindow).
	Size int
	// Timeout: a peer silent this long with signals out is probed, and a
	// probe unanswered this long means the link is down.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before the next probe
	// after no route, an unanswered probe or a "not now".
	MinBackoff, MaxBackoff time.Duration
}

// Effects is what a window asks of its sender.
type Effects[T any] interface {
	// Send puts it on the link (again) with its predecessor prev and, if
	// front, the front mark. false: nothing was sent (the peering
	// ended), and it stays as it was.
	Send(it T, prev uint64, front bool, now time.Time) bool
	// Probe sends a probe. false: none was sent (the peering ended).
	Probe(now time.Time) bool
	// Ack: the peer decided it (or it was given up): acknowledge it in
	// the store. A dropped signal was acknowledged by Drop.
	Ack(it T)
	// Drop gives up a signal never sent at a buffer bound (age: too old,
	// else over the byte bound): acknowledge it and count it.
	Drop(it T, age bool)
	// TooOld reports whether a signal held while the link was down waited
	// past the age bound when it is about to be sent.
	TooOld(it T, now time.Time) bool
	// GiveUp reports a signal the link drops while the peer hears us
	// (maxUnheard probes proved it lost with no route, or maxLost
	// proved it lost).
	GiveUp(it T)
	// Note reports a change worth a log line, with the signals in
	// flight (or resent).
	Note(n Note, count int)
}

// Note is a window's change worth a log line.
type Note int

const (
	// NoteNoRoute: NATS found no route for a signal: holding signals.
	NoteNoRoute Note = iota + 1
	// NoteSilent: a probe went unanswered: holding signals.
	NoteSilent
	// NoteBack: the peer answers a probe again after it was down.
	NoteBack
	// NoteResent: signals lost or answered "not now" were resent.
	NoteResent
)

// Answer is what a peer's answer to a signal says to the window.
type Answer int

const (
	// AnswerNoRoute: from NATS, not the peer: nothing on the link took it.
	AnswerNoRoute Answer = iota + 1
	// AnswerUnreadable: the answer does not parse: sync with a probe.
	AnswerUnreadable
	// AnswerDone: decided: accepted, a duplicate, or refused for good.
	AnswerDone
	// AnswerNotNow: a refusal about now (Retryable): sync with a probe,
	// then resend.
	AnswerNotNow
)

// Giving up: a signal the link drops while the peer hears us — NATS
// permissions derived from the peer's policy (a relayed signal to a peer
// that does not accept transit, say) drop what they forbid, silently —
// would otherwise hold up the link for good. Two probes proving it lost
// with no route, or five proving it lost, and the sender gives it up.
const (
	maxUnheard = 2
	maxLost    = 5
)

// slot is one signal in flight.
type slot[T any] struct {
	it     T
	seq    uint64
	sentAt time.Time
	done   bool
	acked  bool
	// skipped: given up (dropped at a bound, or undeliverable); the peer
	// never decided it, so it is no predecessor of the next signal.
	skipped bool
	// answered: the peer answered it (even "not now") since it was last
	// sent: it reaches the peer.
	answered bool
	// noRoute: NATS answered "no responders" for it since it was last
	// sent: nothing on the link took it.
	noRoute bool
	// lost counts probes that proved it lost (the peer, which answers
	// probes in order, had not decided it and never answered it); unheard
	// counts those of them in which NATS also found no route for it.
	lost, unheard int
}

// NewWindow returns an empty window, the peer heard at now.
func NewWindow[T any](cfg WindowConfig, fx Effects[T], now time.Time) *Window[T] {
	return &Window[T]{cfg: cfg, fx: fx, bySeq: map[uint64]*slot[T]{}, lastHeard: now, backoff: cfg.MinBackoff}
}

// Room reports whether another signal may be added.
func (w *Window[T]) Room() bool { return len(w.slots) < w.cfg.Size }

// Len is how many signals are in the window.
func (w *Window[T]) Len() int { return len(w.slots) }

// Busy reports whether the window has a use for Tick: signals out, or a
// probe planned or in flight. An idle window needs no clock.
func (w *Window[T]) Busy() bool {
	return len(w.slots) > 0 || !w.probeAt.IsZero() || !w.probeDue.IsZero()
}

// Each calls f with every signal in the window, in order.
func (w *Window[T]) Each(f func(T)) {
	for _, s := range w.slots {
		f(s.it)
	}
}

// Add takes the signal of store sequence seq; it is sent at once unless
// the link is presumed down.
func (w *Window[T]) Add(now time.Time, seq uint64, it T) {
	s := &slot[T]{it: it, seq: seq}
	w.slots = append(w.slots, s)
	w.bySeq[seq] = s
	if len(w.slots) == 1 {
		w.lastHeard = now // the silence clock starts with the first in flight
	}
	if !w.down {
		w.send(len(w.slots)-1, now)
	}
}

// Answer takes the answer a to the signal of sequence seq. It reports
// false when no such signal waits for one (an answer to a resend already
// answered): nothing changed.
func (w *Window[T]) Answer(now time.Time, seq uint64, a Answer) bool {
	s := w.bySeq[seq]
	if s == nil || s.done {
		return false
	}
	if a == AnswerNoRoute {
		s.noRoute = true
		if !w.down {
			w.fx.Note(NoteNoRoute, len(w.slots))
		}
		w.down = true
		w.planProbe(now, w.backoff)
		return true
	}
	w.lastHeard = now
	s.answered = true
	switch a {
	case AnswerUnreadable:
		w.planProbe(now, w.backoff)
	case AnswerNotNow:
		w.planProbe(now, w.backoff)
		w.backoff = min(2*w.backoff, w.cfg.MaxBackoff)
	default:
		s.done = true
		w.popDone()
	}
	return true
}

// ProbeAnswer takes the answer to a probe: noRoute from NATS (the link
// is down), or alive from the peer with last, the last signal it decided
// in order; anything else (or no probe in flight) is ignored.
func (w *Window[T]) ProbeAnswer(now time.Time, noRoute, alive bool, last uint64) {
	if noRoute {
		// The link is down: try again soon.
		w.probeAt, w.down = time.Time{}, true
		w.planProbe(now, w.backoff)
		w.backoff = min(2*w.backoff, w.cfg.MaxBackoff)
		return
	}
	if !alive || w.probeAt.IsZero() {
		return
	}
	w.lastHeard = now
	sentBefore := w.probeAt
	w.probeAt = time.Time{}
	if w.down {
		w.fx.Note(NoteBack, len(w.slots))
	}
	w.down, w.backoff = false, w.cfg.MinBackoff
	w.synced(now, last, sentBefore)
	// New signals held while down go out after the resends, unless they
	// waited past the age bound.
	for i, s := range w.slots {
		if !s.done && s.sentAt.IsZero() {
			if w.fx.TooOld(s.it, now) {
				w.drop(s, true)
				continue
			}
			w.send(i, now)
		}
	}
	w.popDone()
}

// Tick takes the time: a probe unanswered past the timeout means the
// link is down; a planned probe is due; signals out and the peer silent
// past the timeout: ask the peer where it is.
func (w *Window[T]) Tick(now time.Time) {
	switch {
	case !w.probeAt.IsZero() && now.Sub(w.probeAt) > w.cfg.Timeout:
		w.probeAt = time.Time{}
		if !w.down {
			w.fx.Note(NoteSilent, len(w.slots))
		}
		w.down = true
		w.planProbe(now, w.backoff)
		w.backoff = min(2*w.backoff, w.cfg.MaxBackoff)
	case w.probeAt.IsZero() && !w.probeDue.IsZero() && !now.Before(w.probeDue):
		w.sendProbe(now)
	case w.probeAt.IsZero() && w.probeDue.IsZero() && w.firstOpen() != nil && now.Sub(w.lastHeard) > w.cfg.Timeout:
		w.sendProbe(now)
	}
}

// DropUnsent drops up to n of the oldest signals never sent (held while
// the link is down), for the byte bound, and returns how many more are
// to go: the caller drops those from the store as they are read.
func (w *Window[T]) DropUnsent(n uint64) uint64 {
	for _, s := range w.slots {
		if n == 0 {
			break
		}
		if !s.done && s.sentAt.IsZero() {
			w.drop(s, false)
			n--
		}
	}
	w.popDone()
	return n
}

// drop gives up an unsent signal at a buffer bound. It was never sent,
// so the peer never decided it: it is no predecessor of the next.
func (w *Window[T]) drop(s *slot[T], age bool) {
	s.done, s.skipped, s.acked = true, true, true
	w.fx.Drop(s.it, age)
}

// prevOf is the predecessor of the i-th signal: the last one before it
// not given up, or the last decided.
func (w *Window[T]) prevOf(i int) uint64 {
	for j := i - 1; j >= 0; j-- {
		if !w.slots[j].skipped {
			return w.slots[j].seq
		}
	}
	return w.decided
}

func (w *Window[T]) send(i int, now time.Time) {
	s := w.slots[i]
	if !w.fx.Send(s.it, w.prevOf(i), s == w.firstOpen(), now) {
		return
	}
	s.sentAt, s.answered, s.noRoute = now, false, false
}

func (w *Window[T]) planProbe(now time.Time, after time.Duration) {
	if w.probeAt.IsZero() && (w.probeDue.IsZero() || now.Add(after).Before(w.probeDue)) {
		w.probeDue = now.Add(after)
	}
}

func (w *Window[T]) sendProbe(now time.Time) {
	if !w.fx.Probe(now) {
		w.probeAt, w.probeDue = time.Time{}, time.Time{}
		return
	}
	w.probeAt, w.probeDue = now, time.Time{}
}

// popDone takes the decided signals off the window's front, in order.
func (w *Window[T]) popDone() {
	for len(w.slots) > 0 && w.slots[0].done {
		s := w.slots[0]
		if !s.skipped {
			w.decided = s.seq
		}
		if !s.acked {
			w.fx.Ack(s.it)
		}
		delete(w.bySeq, s.seq)
		w.slots[0] = nil
		w.slots = w.slots[1:]
	}
}

// synced handles a probe's answer: the peer has decided up to last.
func (w *Window[T]) synced(now time.Time, last uint64, sentBefore time.Time) {
	for _, s := range w.slots {
		if s.done {
			continue
		}
		if s.seq <= last && last != 0 {
			s.done = true // decided; only its answer was lost
			continue
		}
		if !s.sentAt.IsZero() && s.sentAt.Before(sentBefore) && !s.answered {
			s.lost++
			if s.noRoute {
				s.unheard++
			}
			if s.unheard >= maxUnheard || s.lost >= maxLost {
				s.done, s.skipped = true, true
				w.fx.GiveUp(s.it)
			}
		}
	}
	w.popDone()
	// Resend, in order, what the peer did not decide and was sent before
	// the probe: lost, or answered "not now". (What was held unsent,
	// always behind those, goes out next.)
	resent := 0
	for i, s := range w.slots {
		if !s.done && !s.sentAt.IsZero() && s.sentAt.Before(sentBefore) {
			w.send(i, now)
			resent++
		}
	}
	if resent > 0 {
		w.fx.Note(NoteResent, resent)
	}
}

// firstOpen is the first signal of the window not yet decided.
func (w *Window[T]) firstOpen() *slot[T] {
	for _, s := range w.slots {
		if !s.done {
			return s
		}
	}
	return nil
}
