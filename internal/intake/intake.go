// Package intake is where a signal enters anfed: local producers publish
// CloudEvents to an.pub[.anything] in the operations account, with or
// without a reply subject. Intake inspects each one, checks that its origin
// is this operator, stores it, and answers: accepted only once stored,
// rejected with the reason otherwise. Refusals go to the dead-letter subject.
package intake

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// Storer keeps accepted signals and dead letters.
type Storer interface {
	PutAsync(subj, key string, body []byte) (jetstream.PubAckFuture, error)
	// Written is told of each write PutAsync's future acknowledged
	// (store.Store.Written): it feeds the condition table.
	Written(subj string, ev *signal.Event, ack *jetstream.PubAck)
	DeadLetter(ctx context.Context, from, reason, detail string, hdr nats.Header, body []byte) error
	// Fault is why the store refuses writes now (nil: it takes them).
	Fault() error
}

// pending is a signal handed to the store, waiting for its ack.
type pending struct {
	fut   jetstream.PubAckFuture
	ev    *signal.Event
	subj  string
	reply string // "": no answer wanted
}

// MaxPending bounds the signals handed to the store and not yet
// acknowledged; past it, intake waits (and NATS buffers, then reports a
// slow consumer).
const MaxPending = 4096

// Intake handles local producers' messages.
type Intake struct {
	// Handle hands each message to the workers (checks and signature,
	// in parallel) and, in arrival order, to the store stage, which
	// waits for each one's checks and hands it to the store in that
	// order: a producer's signals are stored in the order it sent them.
	work    chan *slot
	ordered chan *slot
	workers sync.WaitGroup
	stored  chan struct{} // closed when the store stage is done
	// answered is closed when the answering loop is done: every
	// signal handed to the store is answered.
	answered chan struct{}
	closing  sync.RWMutex // Handle holds it to read; Stop to close
	closed   bool

	pend   chan pending
	conn   *nats.Conn
	self   string
	signer *origin.Signer // nil: signals are stored unsigned (a node without peers)
	insp   *inspect.Inspector
	store  Storer
	obs    observe.Observer
	log    zerolog.Logger
	// unavailLog logs refusals for want of the store, a few every ten
	// seconds: a full store refuses every signal.
	unavailLog zerolog.Logger
	timeout    time.Duration
	stages     []Stage
	// telLog logs telemetry refusals, a few every five seconds: a
	// high-rate producer gone wrong would flood the log.
	telLog      zerolog.Logger
	telAccepted atomic.Uint64
	handOn      func(subj string, ev *signal.Event) error
}

// Deps are what intake works with.
type Deps struct {
	Self      string     // our operator id
	Conn      *nats.Conn // answers go out on it
	Inspector *inspect.Inspector
	Signer    *origin.Signer // nil: signals are stored unsigned (a node without peers)
	Store     Storer
	Observer  observe.Observer
	Log       zerolog.Logger
	// Telemetry hands each checked telemetry signal on, for subj (the
	// node: to its local subscribers on an.telsig and to its stream
	// senders); nil: published on Conn to subj.
	Telemetry func(subj string, ev *signal.Event) error
}

// HeaderProbe marks a readiness probe: intake passes it through its
// stages and answers alive (signal.StatusAlive) in its turn, storing
// nothing.
const HeaderProbe = "Anfed-Probe"

// slot is one message on its way through intake.
type slot struct {
	probe bool
	tel   bool // telemetry (HandleTelemetry): finished by its worker, never stored
	m     *nats.Msg
	reply string // "": no answer wanted
	ev    *signal.Event
	subj  string
	body  []byte
	err   error          // refused: the reason
	done  sync.WaitGroup // the worker is done with it
	local Local          // what the stages see (prepare)
}

// Queue bounds the messages between Handle and the store stage: at most
// this many are checked and signed, on the workers in parallel, ahead of
// their turn to be stored in arrival order.
const Queue = 256

// New returns an intake, not started: Start it before Handle gets
// messages, and Stop it.
func New(d Deps) *Intake {
	return &Intake{self: d.Self, conn: d.Conn, insp: d.Inspector, signer: d.Signer, store: d.Store, obs: d.Observer, log: d.Log,
		unavailLog: d.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second}),
		telLog:     d.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 5 * time.Second}),
		timeout:    5 * time.Second, pend: make(chan pending, MaxPending),
		work: make(chan *slot, Queue), ordered: make(chan *slot, Queue), stored: make(chan struct{}), answered: make(chan struct{}),
		stages: StagesFor(d.Inspector, d.Self, d.Signer), handOn: d.Telemetry}
}

// Start starts the workers (one per core), the store stage and the loop
// that answers producers as the store acknowledges their signals.
func (in *Intake) Start() {
	for range max(runtime.GOMAXPROCS(0), 1) {
		in.workers.Add(1)
		go in.check()
	}
	go in.storeStage()
	go in.answer()
}

// check is a worker: decode, checks, signature, encoding.
func (in *Intake) check() {
	defer in.workers.Done()
	for sl := range in.work {
		if sl.tel {
			in.telemetry(sl)
			continue
		}
		if !sl.probe {
			sl.ev, sl.subj, sl.err = in.prepare(sl.m, &sl.local, subject.Signal)
			if sl.err == nil {
				sl.body = sl.ev.Encode()
			}
		}
		sl.done.Done()
	}
}

// storeStage hands checked signals to the store in arrival order, and
// answers refusals.
func (in *Intake) storeStage() {
	defer close(in.stored)
	for sl := range in.ordered {
		sl.done.Wait()
		if sl.probe {
			in.reply(sl.reply, signal.Answer{Status: signal.StatusAlive})
			continue
		}
		if p, ans, ok := in.put(sl); ok {
			p.reply = sl.reply
			in.pend <- p
		} else {
			in.reply(sl.reply, ans)
		}
	}
}

// answer answers producers as the store acknowledges their signals, in
// the order they came, until Stop.
func (in *Intake) answer() {
	defer close(in.answered)
	for p := range in.pend {
		var ans signal.Answer
		select {
		case ack := <-p.fut.Ok():
			in.store.Written(p.subj, p.ev, ack)
			in.obs.Accepted(observe.Acceptance{Node: in.self, Event: p.ev, Duplicate: ack.Duplicate})
			ans = signal.Answer{Status: signal.StatusAccepted, Subject: p.subj}
			if ack.Duplicate {
				ans.Status = signal.StatusDuplicate
			}
		case err := <-p.fut.Err():
			if f := in.store.Fault(); f != nil {
				err = f // the write timed out because the store is full
			}
			ans = in.unavailable(p.ev, err)
		}
		in.reply(p.reply, ans)
	}
}

// Stop returns once every signal handed over is answered; what Handle
// gets from then on is left unanswered (the producer's request times
// out).
func (in *Intake) Stop() {
	in.closing.Lock()
	in.closed = true
	in.closing.Unlock()
	close(in.work)
	in.workers.Wait()
	close(in.ordered)
	<-in.stored
	close(in.pend)
	<-in.answered
}

// Unanswered is about how many signals intake holds without an answer
// yet: queued for the store or waiting for its acknowledgement.
func (in *Intake) Unanswered() int { return len(in.ordered) + len(in.pend) }

// Handle processes one message; it is a nats.MsgHandler.
func (in *Intake) Handle(m *nats.Msg) {
	in.closing.RLock()
	defer in.closing.RUnlock()
	if in.closed {
		return
	}
	sl := &slot{m: m, reply: m.Reply, probe: m.Header.Get(HeaderProbe) != ""}
	sl.done.Add(1)
	in.work <- sl
	in.ordered <- sl
}

func (in *Intake) reply(reply string, ans signal.Answer) {
	if reply == "" {
		return
	}
	_ = signal.PublishAnswer(in.conn, reply, ans) // the producer may be gone; its retry will be a duplicate
}

func (in *Intake) unavailable(ev *signal.Event, err error) signal.Answer {
	err = store.Classify(err)
	in.unavailLog.Error().Err(err).Str("type", ev.Type).Str("subject", ev.Subject).Msg("intake: store unavailable")
	r := reject.Errorf(reject.Unavailable, "the node could not store the signal (%v): retry with the same id", err)
	in.obs.Rejected(observe.Rejection{Node: in.self, From: observe.Local, Reason: reject.Unavailable, Detail: r.Error(), Event: ev})
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reject.Unavailable), Error: r.Error()}
}

// put hands a checked signal to the store; ok is false when it was
// refused, with the answer saying why.
func (in *Intake) put(sl *slot) (p pending, ans signal.Answer, ok bool) {
	if sl.err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), in.timeout)
		defer cancel()
		return p, in.refuse(ctx, sl.m, sl.ev, sl.err), false
	}
	fut, err := in.store.PutAsync(sl.subj, sl.ev.Key(), sl.body)
	if err != nil {
		return p, in.unavailable(sl.ev, err), false
	}
	return pending{fut: fut, ev: sl.ev, subj: sl.subj}, signal.Answer{}, true
}

// prepare runs intake's stages on a message, in l, and names the
// signal's subject with where (the store's, or telemetry's); err says
// why it is refused.
func (in *Intake) prepare(m *nats.Msg, l *Local, where func(subject.Key) (string, error)) (ev *signal.Event, subj string, err error) {
	*l = Local{Header: m.Header, Data: m.Data}
	for i := range in.stages {
		if err := in.stages[i].Run(l); err != nil {
			return l.Ev, "", err
		}
	}
	ev = l.Ev
	subj, err = where(subject.Key{Origin: ev.Origin, Class: l.Class, Service: ev.Service(), Resource: ev.Resource()})
	if err != nil {
		return ev, "", reject.Wrap(reject.BadAttribute, err)
	}
	return ev, subj, nil
}

// checkLocal verifies what only a local producer's signal must satisfy.
func checkLocal(self string, ev *signal.Event) error {
	if ev.Origin != self {
		return reject.Errorf(reject.WrongOrigin, "%s is %q but this node is %q: local producers publish their own operator's signals, with source anfed://%s/<producer>", signal.AttrOrigin, ev.Origin, self, self)
	}
	if ev.DSSEMaterial != "" || ev.SignedExtAttrs != "" {
		return reject.Errorf(reject.BadAttribute, "%s and %s are set by the node, which signs every signal it accepts: leave them out", signal.AttrDSSEMaterial, signal.AttrSignedExtAttrs)
	}
	if len(ev.Path) != 0 {
		return reject.Errorf(reject.BadAttribute, "%s must be empty on a new signal: nodes add to it when they forward", signal.AttrPath)
	}
	return nil
}

func (in *Intake) refuse(ctx context.Context, m *nats.Msg, ev *signal.Event, err error) signal.Answer {
	ans, reason := in.rejected(in.log, "intake: signal rejected", ev, err)
	if dlErr := in.store.DeadLetter(ctx, observe.Local, string(reason), err.Error(), m.Header, m.Data); dlErr != nil {
		in.log.Error().Err(dlErr).Msg("intake: dead letter not stored")
	}
	return ans
}

// rejected logs (on log) and counts a refusal, and is its answer.
func (in *Intake) rejected(log zerolog.Logger, msg string, ev *signal.Event, err error) (signal.Answer, reject.Reason) {
	reason := reject.ReasonOf(err)
	if reason == "" {
		reason = reject.Malformed
	}
	l := log.Warn().Str("from", observe.Local).Str("reason", string(reason)).Str("error", err.Error())
	if ev != nil {
		l = l.Str("type", ev.Type).Str("subject", ev.Subject).Str("id", ev.ID)
	}
	l.Msg(msg)
	in.obs.Rejected(observe.Rejection{Node: in.self, From: observe.Local, Reason: reason, Detail: err.Error(), Event: ev})
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reason), Error: err.Error()}, reason
}
