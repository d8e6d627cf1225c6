// Package inbound is everything that enters from a peer: the receiver of
// each peer's link (internal/link's protocol), its checks in order (the
// stages: peering, rate limit, decode, signature, schema, link subject,
// import policy, expiry, replay guard, flap dampening,
// import.max_conditions), the hold and release of what dampening
// suppresses and of what is refused only for want of its origin's key
// (keyheld.go), the advisories it sends and takes, and the store write and
// answer. Every refusal of a peer's signal is made here, with a reason
// from internal/reject. The pure deciders it runs live beside it:
// importpolicy, replay, dampening.
package inbound

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound/dampening"
	"github.com/anfed/anfed/internal/inbound/importpolicy"
	"github.com/anfed/anfed/internal/inbound/replay"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Storer keeps accepted signals and dead letters.
type Storer interface {
	// Put writes ev, encoded as body, and waits (store.Store.Put).
	Put(ctx context.Context, subj string, ev *signal.Event, body []byte) (dup bool, err error)
	// PutOrdered writes without waiting; the future says when the
	// signal is stored (PubAck.Duplicate: it was already) or is not.
	// It fails at once, rather than hold the write for later, while the
	// store cannot take it in order (store.Store.PutOrdered).
	PutOrdered(subj, key string, body []byte) (jetstream.PubAckFuture, error)
	// Written is told of each write PutOrdered's future acknowledged
	// (store.Store.Written): it feeds the condition table.
	Written(subj string, ev *signal.Event, ack *jetstream.PubAck)
	// Reconnects counts the store connection's reconnections: writes
	// issued on it before one may be lost.
	Reconnects() uint64
	DeadLetter(ctx context.Context, from, reason, detail string, hdr nats.Header, body []byte) error
}

// Receiver accepts one peer's signals.
type Receiver struct {
	ReceiverDeps
	self, peer string
	// policy is the import policy; Reimport replaces it.
	policy  atomic.Pointer[importpolicy.Policy]
	limiter *rate.Limiter
	log     zerolog.Logger
	stages  []Stage // the checks, in order (stages.go)

	// The link's order as checking sees it (internal/link): the sender's
	// store epoch and the last sequence decided, counting signals whose
	// store write is still in the pipeline. Only the subscription's
	// goroutine touches it (and the rate-limit log sampling below); gen
	// is the pipeline generation it belongs to (see rollback).
	ord link.Order
	gen uint64

	// The pipeline: signals wait here, in link order, for their checks
	// (made by the workers, in parallel) and then their store write and
	// answer.
	jobs     chan job
	finished chan struct{}
	work     chan *checks
	workers  sync.WaitGroup
	closing  sync.RWMutex // Handle holds it to read; Stop to close
	closed   bool
	started  bool // Start ran; guarded by closing
	// rollback is set by the pipeline when a store write failed: the
	// signals checked after it are answered "not now", and checking
	// starts again from the last signal really decided.
	rb struct {
		sync.Mutex
		gen   uint64
		epoch string
		last  uint64
	}

	limited       int
	limitedLogged time.Time

	cfg *config.Peer // for the peering's end

	// Advisories to and from the peer (advisory.go).
	adv     advisories
	advSubj string

	// The peer's session messages (session.go) go to onSession.
	sessSubj  string
	onSession func(r *Receiver, m *nats.Msg)
	// onChange hears of the table changes the receiver makes
	// (ReceiverConfig.OnChange).
	onChange func(conditions.Change)

	// The maximum active conditions from the peer (import.max_conditions).
	conds    *conditions.Table // nil: nothing counted
	maxConds *condLimit        // nil: no bound; the pipeline checks it, Handle reads its idle state
	warnings atomic.Uint64

	// Flap dampening (import.dampening); nil: none. Only the pipeline's
	// end (complete) decides and releases, so a release takes its place
	// in link order: a signal of the condition settled after the release
	// is stored after the released one. The clock only asks for a look.
	damp                      *dampening.Damper
	dampened                  atomic.Uint64
	keyHeldN                  keyHeldCounts
	stopDamp, dampDone        chan struct{}
	tickPending               atomic.Bool
	suppressLog, untrackedLog logSampler

	// The peer's Adj-RIB-In (ribin.go); nil: none kept.
	ribin *ribIn

	// Stream delivery (telemetry.go): the link's tally, where checked
	// telemetry goes (nil: nowhere), and a sampled log of its refusals.
	tally      *StreamTally
	telPublish func(subj string, ev *signal.Event) error
	telLog     zerolog.Logger
}

// condLimit is import.max_conditions at work. The table is fed from the
// store, behind the pipeline: pending holds the changes admitted that the
// table may not have applied yet — new keys raised, held keys cleared — so
// a burst of new conditions cannot slip past the limit, and a clear makes
// room for the signal right behind it.
type condLimit struct {
	limit, warn int
	pending     map[conditions.Key]pendingChange
	swept       time.Time
	warned      bool
	// idle (import.max_conditions.idle): when the limit refuses a
	// signal, the link idles until idleUntil: Handle takes nothing and
	// answers nothing, so the sender holds its signals as on a link cut.
	idle      time.Duration
	idleUntil atomic.Int64 // Unix ns; set by the pipeline, read by Handle
	idled     int          // messages left unanswered while idle; Handle's
}

// pendingChange is an admitted change: raised (a new key) or cleared.
type pendingChange struct {
	at     time.Time
	raised bool
}

// pendingTTL: a change admitted but still not applied after this (its
// store write failed, or it was a duplicate) stops counting. A raise is
// forgotten as soon as the table holds its key; a clear only after this.
const pendingTTL = 10 * time.Second

// ConditionWarnings is how many times the peer's active conditions
// reached import.max_conditions.warn_at.
func (r *Receiver) ConditionWarnings() uint64 { return r.warnings.Load() }

// ReceiverDeps are what a node's receivers share.
type ReceiverDeps struct {
	Inspector *inspect.Inspector
	Verifier  *origin.Verifier
	Replay    *replay.Guard
	Store     Storer
	Observer  observe.Observer
	// Held keeps the signals flap dampening holds (import.dampening).
	Held Holder
	// KeyHeld keeps the signals refused only for want of their origin's
	// key until the pins change (keyheld.go); nil: refused as such.
	KeyHeld KeyHolder
	// RibInStore keeps the peer's signals that import policy refused,
	// its Adj-RIB-In (ribin.go); nil: none kept.
	RibInStore RibInKeeper
	// Origins is what each origin may originate (Config.MayOriginate).
	Origins map[string]*config.MayOriginate
}

// ReceiverConfig is everything a receiver is made of; nothing is set on
// it after NewReceiver.
type ReceiverConfig struct {
	Self string       // our operator
	Peer *config.Peer // the peer whose link this receives
	Deps ReceiverDeps // what a node's receivers share
	Log  zerolog.Logger
	// Publish sends advisories to the peer, on the link's connection;
	// nil: none are sent.
	Publish func(subj string, data []byte) error
	// Conditions is the node's condition table, which
	// import.max_conditions counts; nil: nothing is counted.
	Conditions *conditions.Table
	// OnChange hears of the changes of the condition table the receiver
	// makes itself (a refresh's re-statements); the store's feed tells
	// the rest.
	OnChange func(conditions.Change)
	// OnSession takes the peer's session messages (subject.Session), on
	// the subscription's goroutine, in link order with its signals; r is
	// this receiver (for Sync).
	OnSession func(r *Receiver, m *nats.Msg)
	// Stream counts the link's stream messages (kept by the node across
	// reloads); nil: the receiver keeps its own.
	Stream *StreamTally
	// Telemetry publishes checked telemetry, ev, to our local
	// subscribers on subj, in the operations account (and, in process,
	// hands it to the node's stream senders: outbound.TelemetryFeed);
	// nil: it is checked and counted only.
	Telemetry func(subj string, ev *signal.Event) error
}

// NewReceiver returns the receiver cfg describes, its pipeline not
// started: Start starts it, Stop stops it.
func NewReceiver(cfg ReceiverConfig) *Receiver {
	rc := newReceiver(cfg.Self, cfg.Peer, cfg.Deps, cfg.Log)
	rc.adv.publish = cfg.Publish
	rc.conds = cfg.Conditions
	rc.onChange = cfg.OnChange
	rc.onSession = cfg.OnSession
	if cfg.Stream != nil {
		rc.tally = cfg.Stream
	}
	rc.telPublish = cfg.Telemetry
	return rc
}

// Start starts the pipeline: one checking worker per core, its end (store
// write and answer) and the release clock of import.dampening. Call it
// once, before the subscription hands Handle anything. The store writes
// carry ctx's values; its cancellation does not stop the pipeline, Stop
// does, once every signal handed over is answered.
func (r *Receiver) Start(ctx context.Context) {
	r.closing.Lock()
	defer r.closing.Unlock()
	if r.started || r.closed {
		return
	}
	r.started = true
	for range max(runtime.GOMAXPROCS(0), 1) {
		r.workers.Add(1)
		go r.check()
	}
	if r.damp != nil {
		r.startDampening()
	}
	go r.complete(context.WithoutCancel(ctx))
	if r.KeyHeld != nil {
		r.jobs <- job{sync: r.recheckKeyHeld} // before the link's first message
	}
	if r.ribin != nil {
		// What this start's policy passes of what the peer sent and an
		// earlier policy refused is admitted now, without asking it.
		r.jobs <- job{sync: func() { r.loadRibIn(); r.reimport(false) }}
	}
}

// StagesFor returns the stages of a receiver of operator self for peer p
// that checks with insp and ver, for `policy explain` and `anfed bench`:
// the receiver's own, of a receiver that runs no pipeline. Its Moment
// stages have no state to run with; the others run as the receiver's.
func StagesFor(self string, p *config.Peer, insp *inspect.Inspector, ver *origin.Verifier, origins map[string]*config.MayOriginate) []Stage {
	return newReceiver(self, p, ReceiverDeps{Inspector: insp, Verifier: ver, Observer: observe.Multi{}, Origins: origins}, zerolog.Nop()).stages
}

// newReceiver is the receiver's state, its pipeline not started.
func newReceiver(self string, p *config.Peer, deps ReceiverDeps, log zerolog.Logger) *Receiver {
	r, b := p.Import.RateLimit()
	rc := &Receiver{
		ReceiverDeps: deps,
		self:         self,
		peer:         p.ID,
		limiter:      rate.NewLimiter(rate.Limit(r), b),
		cfg:          p,
		log:          log.With().Str("peer", p.ID).Logger(),
		jobs:         make(chan job, PipelineDepth),
		advSubj:      subject.Advisory(p.ID),
		tally:        &StreamTally{},
		telLog:       log.With().Str("peer", p.ID).Logger().Sample(&zerolog.BurstSampler{Burst: 5, Period: 5 * time.Second}),
		sessSubj:     subject.Session(p.ID),
		finished:     make(chan struct{}),
		work:         make(chan *checks, PipelineDepth),
	}
	if m := p.Import.MaxConditions; m != nil && m.Limit > 0 {
		rc.maxConds = &condLimit{limit: m.Limit, warn: m.WarnCount(), idle: time.Duration(m.Idle), pending: map[conditions.Key]pendingChange{}}
	}
	if d := p.Import.Dampening; d != nil && deps.Held != nil {
		rc.damp = dampening.New(*d)
	}
	rc.policy.Store(importpolicy.New(self, p).WithOrigins(deps.Origins))
	if deps.RibInStore != nil {
		rc.ribin = &ribIn{limit: p.Import.RibInLimit(), keys: map[string]struct{}{}}
	}
	rc.stages = rc.newStages()
	return rc
}

// PipelineDepth is how many signals may wait for their checks, store
// write and answer. Checking (decode, signature, schema, policy) runs on
// one worker per core, so signals are verified in parallel and overlap the
// store writes of the ones before them; what depends on the signals before
// (import.max_conditions, the replay guard) runs one at a time, in link
// order, and the writes are issued in that order, up to MaxWrites in
// flight, never two of one condition (writes.go): a failed write can
// never let a later signal of its condition into the store before it.
const PipelineDepth = 256

// Stop stops the pipeline once every signal handed to it is answered.
// Call it after the subscription is drained; what Handle gets after it is
// left unanswered. A receiver never started has nothing to stop.
func (r *Receiver) Stop() {
	// A message still being handled (the subscription did not drain
	// in time) is handed over first; later ones are left unanswered.
	r.closing.Lock()
	started := r.started && !r.closed
	r.closed = true
	r.closing.Unlock()
	if !started {
		return
	}
	if r.stopDamp != nil {
		close(r.stopDamp)
		<-r.dampDone
	}
	close(r.work)
	r.workers.Wait()
	close(r.jobs)
	<-r.finished
}

// Subject is what the receiver subscribes to in the peer's account.
func (r *Receiver) Subject() string { return subject.LinkFrom(r.peer) }

// job is one link message between checking and answering: a probe, a
// signal to store, a signal to refuse (with a dead letter), or an answer
// decided by checking alone.
type job struct {
	m     *nats.Msg
	seq   uint64
	epoch string
	gen   uint64
	probe bool
	ans   signal.Answer
	idles bool // its refusal made the link idle (import.max_conditions.idle)

	put     *putJob
	hold    *holdJob // a signal of a suppressed condition (import.dampening)
	keyHold error    // a signal refused only for want of its origin's key: held
	refuse  error
	keep    string        // refused by import policy: kept in the Adj-RIB-In, of this class
	ev      *signal.Event // the refused signal, when it decoded
	tick    bool          // not a link message: time to release what dampening holds
	sync    func()        // not a link message: run in link order (Sync)

	chk *checks // being checked: put or refuse once done
}

// checks is a signal's checks that depend on it alone, made by a worker
// while the pipeline still stores the signals before it.
type checks struct {
	a    Arrival
	err  error
	done sync.WaitGroup // the worker is done with it
	tel  bool           // telemetry: finished by its worker (telemetry.go), never in the pipeline
	// put is the store write settle makes of it (job.put), here to be
	// made with the checks.
	put putJob
}

// check is a worker: it makes the checks of the signals handed to it.
func (r *Receiver) check() {
	defer r.workers.Done()
	for c := range r.work {
		c.a.Now = time.Now()
		c.err = r.run(Check, &c.a)
		if c.tel {
			r.telemetry(c)
			continue
		}
		c.done.Done()
	}
}

// putJob is an accepted signal waiting for its store write.
type putJob struct {
	ev      *signal.Event
	subj    string
	class   string
	refresh bool // a refresh's re-statement
}

// Handle processes one link message; it is a nats.MsgHandler. It checks
// the message and hands it to the pipeline, which stores and answers in
// link order.
func (r *Receiver) Handle(m *nats.Msg) {
	if m.Subject == r.advSubj {
		r.advised(m) // not a signal: not ordered, not answered
		return
	}
	if m.Subject == r.sessSubj {
		if f := r.onSession; f != nil {
			f(r, m) // the session's: not a signal, not answered here
		}
		return
	}
	r.closing.RLock()
	defer r.closing.RUnlock()
	r.tally.see(r, m)
	if m.Header.Get(link.HeaderTelemetry) != "" {
		if !r.closed {
			r.handleTelemetry(m) // not idled: it holds no condition
		}
		return
	}
	if r.closed || r.idling() {
		return // closed: unanswered, the sender sends it again
	}
	r.resync()
	if m.Subject == subject.Probe(r.peer) {
		r.ord.See(link.ReadHop(m.Header.Get))
		r.jobs <- job{m: m, probe: true, epoch: r.ord.Epoch, gen: r.gen}
		return
	}
	j := r.accept(m)
	j.m, j.epoch, j.gen = m, r.ord.Epoch, r.gen
	r.jobs <- j
}

// resync takes up a rollback the pipeline made.
func (r *Receiver) resync() {
	r.rb.Lock()
	defer r.rb.Unlock()
	if r.rb.gen != r.gen {
		r.gen = r.rb.gen
		r.ord.Rollback(r.rb.epoch, r.rb.last)
	}
}

func (r *Receiver) accept(m *nats.Msg) job {
	hop := link.ReadHop(m.Header.Get)
	r.ord.See(hop)
	switch v, err := r.ord.Decide(hop); v {
	case link.Decided:
		return job{ans: signal.Answer{Status: signal.StatusDuplicate}}
	case link.OutOfOrder:
		var e *reject.Error
		errors.As(err, &e)
		return job{ans: signal.Answer{Status: signal.StatusRejected, Reason: string(e.Reason), Error: e.Detail}}
	}
	seq := hop.Seq
	var j job
	// The admit stages and the checks run on one Arrival: made once.
	c := &checks{a: Arrival{Subject: m.Subject, Header: m.Header, Data: m.Data, Now: time.Now()}}
	if err := r.run(Admit, &c.a); err != nil {
		// Answered, not dead-lettered: the sender keeps the signal, or
		// the peering is over.
		var e *reject.Error
		errors.As(err, &e)
		j.ans = signal.Answer{Status: signal.StatusRejected, Reason: string(e.Reason), Error: e.Detail}
	} else {
		c.a.mayHold = r.KeyHeld != nil
		c.done.Add(1)
		r.work <- c
		j.chk = c
	}
	if seq != 0 && !(j.chk == nil && j.ans.Status == signal.StatusRejected && link.Retryable(j.ans.Reason)) {
		r.ord.Taken(hop) // decided, unless its store write fails (see complete)
	}
	j.seq = seq
	return j
}

// settle finishes a job's checks, in link order: the settle stages,
// which depend on the signals before it.
func (r *Receiver) settle(j job) job {
	a := &j.chk.a
	if j.chk.err != nil {
		j.refuse, j.ev = j.chk.err, a.Ev
		if r.ribin != nil && keepable(a.refusedAt, j.chk.err) {
			j.keep = a.Class
		}
		return j
	}
	if a.unpinned != nil {
		j.keyHold, j.ev = a.unpinned, a.Ev // settled when it is released
		return j
	}
	subj, err := subject.Signal(a.Key)
	if err != nil {
		j.refuse, j.ev = reject.Wrap(reject.BadAttribute, err), a.Ev
		return j
	}
	a.stored = subj
	a.refresh = j.m.Header.Get(link.HeaderRefresh) != ""
	ev, class := a.Ev, a.Class
	t := r.conds
	if a.refresh && t != nil && j.m.Header.Get(link.HeaderRefreshKeep) != "" {
		t.Touch(r.peer, class, ev) // kept; its signal comes in order
		j.ans = signal.Answer{Status: signal.StatusDuplicate, Subject: subj}
		return j
	}
	if a.refresh && t != nil {
		// A re-statement (refresh): what the table holds as it is needs
		// no store write; what it does not hold goes the usual way, past
		// the replay guard (we may have taken it before: it was withdrawn
		// since) but not past dampening or import.max_conditions.
		c, need := t.Restate(r.peer, class, ev)
		if c.Kind != "" && r.onChange != nil {
			r.onChange(c)
		}
		if !need {
			j.ans = signal.Answer{Status: signal.StatusDuplicate, Subject: subj}
			return j
		}
	}
	if err := r.run(Settle, a); err != nil {
		j.idles = a.idles
		j.refuse, j.ev = err, a.Ev
		return j
	}
	switch {
	case a.duplicate:
		j.ans = signal.Answer{Status: signal.StatusDuplicate, Subject: subj}
	case a.hold != nil:
		j.hold = a.hold
	default:
		if t != nil && !a.refresh {
			t.Touch(r.peer, class, ev) // stated, if a refresh is under way
		}
		j.chk.put = putJob{ev: ev, subj: subj, class: class, refresh: a.refresh}
		j.put = &j.chk.put
	}
	return j
}

// idling reports whether the link idles (import.max_conditions.idle).
// While it does, link messages and probes go unanswered: the sender finds
// the peer silent, holds its signals, probes now and then, and resends
// what went unanswered, in order, once a probe is answered.
func (r *Receiver) idling() bool {
	l := r.maxConds
	if l == nil {
		return false
	}
	until := l.idleUntil.Load()
	if until == 0 {
		return false
	}
	if time.Now().UnixNano() < until {
		l.idled++
		return true
	}
	r.log.Warn().Str("reason", string(reject.TooManyConditions)).Int("unanswered", l.idled).
		Msg("link: idle hold time (import.max_conditions.idle) over: taking signals again")
	l.idleUntil.CompareAndSwap(until, 0)
	l.idled = 0
	return false
}

// checkMaxConditions refuses a signal that would raise a new condition
// from the peer when it already holds import.max_conditions of them.
// Clears, and signals for a condition already held, always pass.
func (r *Receiver) checkMaxConditions(ev *signal.Event, class string) error {
	l := r.maxConds
	t := r.conds
	if l == nil || t == nil {
		return nil
	}
	k := conditions.Key{Peer: r.peer, Origin: ev.Origin, Class: class, Subject: ev.Subject}
	now := time.Now()
	if ev.State == signal.Cleared {
		l.pending[k] = pendingChange{at: now} // clears always pass
		return nil
	}
	if p, ok := l.pending[k]; ok && p.raised || t.Active(k) && !ok {
		return nil // held, or about to be: an update
	}
	// Admitted changes count until the table applied them; they are
	// swept out now and then.
	if now.Sub(l.swept) > time.Second || len(l.pending) >= PipelineDepth {
		for pk, p := range l.pending {
			if now.Sub(p.at) > pendingTTL || p.raised && t.Active(pk) {
				delete(l.pending, pk)
			}
		}
		l.swept = now
	}
	n := t.LenWith(r.peer, func(yield func(conditions.Key, bool) bool) {
		for k, p := range l.pending {
			if !yield(k, p.raised) {
				return
			}
		}
	})
	if n >= l.limit {
		idle := ""
		if l.idle > 0 {
			l.idleUntil.Store(now.Add(l.idle).UnixNano())
			idle = fmt.Sprintf("; the link idles for %s (import.max_conditions.idle): what you send meanwhile is taken afterwards", l.idle)
			r.log.Warn().Str("reason", string(reject.TooManyConditions)).Int("limit", l.limit).Stringer("idle", l.idle).
				Msg("link: the peer reached import.max_conditions.limit: the link idles for the hold time")
		}
		r.advise(AdvisoryMaxConditionsLimit, fmt.Sprintf("max-conditions limit %d reached: %s refuses new conditions from %s (too-many-conditions); updates and clears of held ones still pass%s",
			l.limit, r.self, r.peer, idle), l.limit, n)
		return reject.Errorf(reject.TooManyConditions,
			"%s holds %d active conditions from %s, its import.max_conditions.limit: the new condition %s %s is refused "+
				"(updates and clears of held conditions still pass). Clear or let expire conditions at %s, or ask %s to raise "+
				"peers[%s].import.max_conditions.limit; the refused signal is in %s's dead-letter stream%s",
			r.self, n, r.peer, class, ev.Subject, r.peer, r.self, r.peer, r.self, idle)
	}
	l.pending[k] = pendingChange{at: now, raised: true}
	n++
	switch {
	case n >= l.warn && !l.warned:
		l.warned = true
		r.warnings.Add(1)
		r.log.Warn().Str("reason", "max-conditions-warning").Int("active", n).Int("warn_at", l.warn).Int("limit", l.limit).
			Msg("link: the peer's active conditions reached import.max_conditions.warn_at; at the limit new ones are refused")
		r.advise(AdvisoryMaxConditionsWarning, fmt.Sprintf("max-conditions warning: %s holds %d active conditions from %s (warn_at %d, limit %d)",
			r.self, n, r.peer, l.warn, l.limit), l.limit, n)
	case n < l.warn:
		l.warned = false
		if k := r.adv.lastKind; k == AdvisoryMaxConditionsWarning || k == AdvisoryMaxConditionsLimit {
			r.advise(AdvisoryMaxConditionsOK, fmt.Sprintf("max-conditions back below warn_at: %s holds %d active conditions from %s (limit %d)",
				r.self, n, r.peer, l.limit), l.limit, n)
		}
	}
	return nil
}

// store keeps an accepted signal, waiting for the write: what the
// pipeline's end does between link messages (a release, a held signal
// that could not be held); the link's own signals are written without
// waiting (writes.go).
func (r *Receiver) store(ctx context.Context, m *nats.Msg, p *putJob) signal.Answer {
	dup, err := r.Store.Put(ctx, p.subj, p.ev, p.ev.Encode())
	if err != nil {
		return r.unstored(p.ev, err)
	}
	return r.stored(m, p, dup)
}

// unstored is the answer to a signal whose store write failed: "not
// now". Not the peer's fault: no dead letter. The sender keeps the
// signal and resends it.
func (r *Receiver) unstored(ev *signal.Event, err error) signal.Answer {
	r.log.Error().Err(err).Str("type", ev.Type).Str("subject", ev.Subject).Msg("link: store unavailable")
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.Unavailable, Detail: err.Error(), Event: ev})
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reject.Unavailable), Error: err.Error()}
}

// stored does what follows a signal's store write (dup: the store had it
// already) and returns its answer.
func (r *Receiver) stored(m *nats.Msg, p *putJob, dup bool) signal.Answer {
	ev, subj := p.ev, p.subj
	var lat time.Duration
	if sent, err := strconv.ParseInt(m.Header.Get(link.HeaderSent), 10, 64); err == nil {
		lat = time.Since(time.Unix(0, sent))
	}
	r.Replay.Record(ev.Source, ev.ID)
	r.Observer.Crossed(observe.Crossing{From: r.peer, To: r.self, Event: ev, Latency: lat, Duplicate: dup})
	if dup && p.refresh {
		// Stored before, no longer in the table (withdrawn while the
		// link was down): the peer re-states it, the table takes it.
		if t := r.conds; t != nil {
			if c, err := t.Apply(r.peer, p.class, ev, 0); err == nil && c.Kind != "" && r.onChange != nil {
				r.onChange(c)
			}
		}
	}
	if dup {
		r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.Duplicate, Detail: "already stored: " + ev.Key(), Event: ev})
		return signal.Answer{Status: signal.StatusDuplicate, Subject: subj}
	}
	return signal.Answer{Status: signal.StatusAccepted, Subject: subj}
}

// checkSubject verifies that the link subject was sent by the peer and
// describes the signal it carries, so that subject permissions and
// subject-based filters see the truth.
func checkSubject(peer, subj string, ev *signal.Event, class string) error {
	from, k, err := subject.ParseLink(subj)
	if err != nil {
		return reject.Wrap(reject.BadAttribute, err)
	}
	if from != peer {
		return reject.Errorf(reject.WrongOrigin, "link subject %s names sender %s on %s's link", subj, from, peer)
	}
	want := subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()}
	if k != want {
		w, err := subject.Link(from, want)
		if err != nil {
			return reject.Wrap(reject.BadAttribute, err)
		}
		return reject.Errorf(reject.BadAttribute, "link subject %s does not match the signal (want %s)", subj, w)
	}
	return nil
}

func (r *Receiver) refuse(ctx context.Context, m *nats.Msg, ev *signal.Event, err error) signal.Answer {
	ans := r.rejected(r.log, "link: signal rejected", ev, err)
	if dlErr := r.Store.DeadLetter(ctx, r.peer, ans.Reason, err.Error(), m.Header, m.Data); dlErr != nil {
		r.log.Error().Err(dlErr).Msg("link: dead letter not stored")
	}
	return ans
}

// rejected logs (on log) and counts a refusal of the peer's signal, and
// is its answer.
func (r *Receiver) rejected(log zerolog.Logger, msg string, ev *signal.Event, err error) signal.Answer {
	reason := reject.ReasonOf(err)
	if reason == "" {
		reason = reject.Malformed
	}
	l := log.Warn().Str("reason", string(reason)).Str("error", err.Error())
	if ev != nil {
		l = l.Str("type", ev.Type).Str("subject", ev.Subject).Str("id", ev.ID)
	}
	l.Msg(msg)
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reason, Detail: err.Error(), Event: ev})
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reason), Error: err.Error()}
}
