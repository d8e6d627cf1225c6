// Package closedloop runs a local closed loop on a node's stored signals:
// the current state first, then the live stream, with no gap and no
// duplicate, acknowledged one by one. It is a convenience for Go loops;
// nothing in it is needed on the wire.
//
// # The wire: a JetStream consumer, nothing of anfed's
//
// Every accepted signal is in the JetStream stream ANFED_SIGNALS (operations
// account) under an.sig.<origin>.<class>.<service>.<resource>: one subject
// per condition key. A closed loop in any language that starts late creates
// a durable pull consumer on that stream with
//
//	filter_subject: an.sig.*.congestion.>      (by class, service or origin)
//	deliver_policy: last_per_subject
//	ack_policy:     explicit
//
// and JetStream delivers first the last stored signal of every condition key
// that matches the filter, in stream order — the current state; a key whose
// last signal is "cleared" is not active — then every signal stored after
// the consumer was created, in stream order. The server draws the boundary
// itself, at the stream's last sequence when it creates the consumer, so
// nothing falls between the two parts and nothing is in both (nats-server
// TestJetStreamDeliverLastPerSubject: last per subject, then the new ones;
// consumer.go builds the per-subject skip list and resumes after the
// stream's last sequence). ConsumerInfo.NumPending at creation counts the
// keys (TestJetStreamDeliverLastPerSubjectNumPending). A durable consumer
// keeps its position: a loop that restarts resumes where it acknowledged.
//
// What JetStream does with acknowledgements, checked in nats-server's code
// and tests (v2.15):
//
//   - Ack removes a signal from the consumer's pending set; until then it
//     counts against MaxAckPending, which bounds the signals in flight: at
//     the bound the server delivers nothing new (redeliveries still flow).
//   - A plain Nak redelivers at once ("default nak will redeliver almost
//     immediately", TestJetStreamClusterNAKBackoffs). A Nak with a delay
//     redelivers after that delay.
//   - The consumer's BackOff list replaces AckWait: it is the redelivery
//     schedule of signals that are neither acked nor nakked
//     (TestJetStreamClusterRedeliverBackoffs); it does not apply to a Nak.
//     MaxDeliver must then be -1 or at least len(BackOff).
//   - InProgress resets a pending signal's ack timer.
//   - After MaxDeliver deliveries the server stops redelivering, moves the
//     ack floor past the signal and only publishes the advisory
//     $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>. A
//     loop that wants a dead letter must write it itself: count
//     NumDelivered (in each message's metadata) and publish the message to a
//     dead-letter subject before Term.
//
// # This helper
//
// Run creates (or updates) the durable consumer and handles each signal in
// a goroutine, at most MaxInFlight at a time (MaxAckPending = MaxInFlight;
// a signal waiting for its retry counts too), one at a time per condition
// key, in delivery order, so a key's "cleared" is never handled before its
// "raised" (across keys handlers run concurrently; MaxInFlight 1 gives the
// strict stream order, the current state wholly first). A handler error naks with an explicit delay taken from
// Options.BackOff by delivery count — the helper sets no consumer BackOff
// because JetStream's applies to ack timeouts, not to naks — and the key's
// later signals wait for that signal's redelivery. After MaxDeliver failed
// deliveries, or at once for a Poison error or a body that is not a
// CloudEvent, the helper stores the original message on
// an.dlq.loop-<name>.<reason> (stream ANFED_DLQ; headers Anfed-Reason,
// Anfed-Error and Anfed-From as on the node's own dead letters, plus the
// subject, stream sequence and delivery count) and only then Terms it; if
// the dead letter cannot be stored the signal is retried, never dropped.
// The connection must be allowed to publish there: the node's own
// in-process connection (node.Connect) is; a local user of the policy file
// is not today (its publish permissions deny an.dlq.>), so for it a dead
// letter is retried every last BackOff until it can be stored.
// The consumer's own MaxDeliver is -1 so that JetStream never gives a
// signal up silently. While a signal is held (queued or in its handler) the
// helper sends InProgress every AckWait/3, so a slow or paused handler
// causes no redelivery. When ctx is done Run waits for the running handlers
// and naks, in stream order, what no handler took, so the next run of the
// same durable gets it at once and in order. (The server sends a nakked
// signal to a pull request it still holds for a subscriber that is gone,
// and on failing puts it at the back of its redelivery queue; Run first
// waits until a consumer info request shows no pull request left.)
//
// # Acked signals delivered again
//
// JetStream writes a file consumer's acks to disk a few times a second, not
// one by one; after a kill -9 of the node it may deliver again signals that
// were acked in the last moments before the kill. A Loop remembers the
// identities (source and id) of the last HandledMemory (65,536) signals its
// handler took, across Runs, and acks such a delivery again without calling
// the handler (Stats.AckedAgain). Identities, not stream sequences: a stream
// that lost its last writes in a crash of the machine gives their
// sequences to new signals (nats-server then warns "delivered sequence ...
// past last stream sequence"), and a memory of sequences would ack those new
// signals unhandled. A loop in another language does the same with a
// bounded set of recently handled source+id.
//
// # Current
//
// Delivery.Current marks the initial batch: the signals stored before the
// loop started. Run reads the stream's last sequence L before it creates
// the consumer and records L in the consumer's metadata (key
// MetaCurrentUntil); a delivery is Current when its stream sequence is at
// most L. This is chosen over counting NumPending deliveries because it is
// a property of each signal, not of delivery order: it holds for
// redeliveries, for signals handled concurrently, and across restarts of a
// durable loop (L is read back from the consumer). NumPending would also
// need to know which deliveries were first deliveries, and it counts keys,
// not signals. The one imprecision is conservative: a signal stored in the
// instant between reading L and creating the consumer is in the initial
// batch but is reported Current=false — so Current=true always means
// "already stored when the loop started".
package closedloop

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// Handler handles one signal. It returns nil to acknowledge it, an error to
// have it redelivered after a backoff, or Poison(err) to send it straight to
// the dead-letter subject. It must return soon after ctx is done.
type Handler func(ctx context.Context, ev *signal.Event, d Delivery) error

// Delivery says where a signal stands in the stream and the consumer.
type Delivery struct {
	Seq          uint64 // stream sequence in ANFED_SIGNALS
	NumDelivered uint64 // 1 on the first delivery
	Current      bool   // part of the initial current-state batch
}

// Options configure a loop. Name is required; the rest have defaults.
type Options struct {
	Name        string          // durable consumer name: the loop's position survives restarts
	Filter      string          // default an.sig.>
	MaxInFlight int             // default 64: signals delivered and not yet acked, nakked or dead-lettered
	BackOff     []time.Duration // default 1s, 5s, 30s: the delay before redelivery n+1 after n failures; the last repeats
	MaxDeliver  int             // default 5: deliveries before a failing signal is dead-lettered
	// Jitter, in [0, 1], shortens each BackOff delay by a random part of
	// up to Jitter times the delay, so that loops failing together do not
	// retry together. 0: the delays as given.
	Jitter  float64
	AckWait time.Duration  // default 30s: redelivery after a crash; a running handler extends it
	Log     zerolog.Logger // zero value: no logs
	// Started, when set, is called once Run has created (or updated) the
	// durable consumer: every signal stored from then on will be handled.
	Started func()
	// Lifecycle, when set, is called with each change of the node's
	// condition table (an.cond.<kind>.…) of the conditions Filter
	// selects, on its own goroutine, in order: what no signal says — a
	// peer's condition gone stale, withdrawn (its link stayed down past
	// its grace time, or its End-of-RIB no longer states it), expired,
	// or fresh again once the peer re-stated it — and the upserts and
	// clears the signals made. Core NATS: changes made while the loop is
	// not running are not replayed (an.api.conditions has the table).
	Lifecycle func(ctx context.Context, c conditions.Change)
}

// Defaults.
const (
	DefaultMaxInFlight = 64
	DefaultMaxDeliver  = 5
	DefaultAckWait     = 30 * time.Second
)

// DefaultBackOff is the redelivery schedule of failed signals.
var DefaultBackOff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second}

// Dead-letter reasons, the last token of an.dlq.loop-<name>.<reason>.
const (
	ReasonPoison     = "poison"                 // the handler returned Poison(err)
	ReasonMaxDeliver = "max-deliver"            // the handler failed MaxDeliver times
	ReasonMalformed  = string(reject.Malformed) // the stored body is not a CloudEvent
)

// Headers added to a loop's dead letters besides store.HeaderReason,
// store.HeaderError and store.HeaderFrom.
const (
	HeaderSubject    = "Anfed-Subject"    // the signal's subject in ANFED_SIGNALS
	HeaderStreamSeq  = "Anfed-Stream-Seq" // its stream sequence
	HeaderDeliveries = "Anfed-Deliveries" // how many times it was delivered
)

// MetaCurrentUntil is the consumer metadata key holding the stream's last
// sequence when the loop's consumer was created.
const MetaCurrentUntil = "anfed-current-until"

// DLQFrom is the "from" token of a loop's dead letters: an.dlq.loop-<name>.<reason>.
func DLQFrom(name string) string { return "loop-" + name }

type poisonError struct{ err error }

func (p *poisonError) Error() string {
	if p.err == nil {
		return "poison"
	}
	return p.err.Error()
}

func (p *poisonError) Unwrap() error { return p.err }

// Poison marks err as final: the signal goes to the dead-letter subject
// without being redelivered.
func Poison(err error) error { return &poisonError{err} }

// IsPoison reports whether err was made by Poison.
func IsPoison(err error) bool {
	var p *poisonError
	return errors.As(err, &p)
}

// Stats count what a loop did since it was made.
type Stats struct {
	Delivered    uint64 // handler calls
	Current      uint64 // of which for the initial batch
	Acked        uint64
	Naked        uint64 // redeliveries asked for: handler errors, shutdown, dead letters that could not be stored
	DeadLettered uint64
	// AckedAgain counts deliveries of signals this loop had already
	// handled and acked (see Loop): acked again, the handler not called.
	AckedAgain uint64
	// Repulls counts the times the loop found its pull gone quiet with
	// signals waiting and room to take them, and pulled afresh (see
	// StallCheck).
	Repulls uint64
}

// Loop is a closed loop; Run runs it. Its Stats survive Run.
type Loop struct {
	nc   *nats.Conn
	opts Options
	h    Handler

	delivered, current, acked, naked, dead, again, repulls atomic.Uint64
	running                                                atomic.Bool
	lastDelivery                                           atomic.Int64 // unix nanoseconds of the last delivery

	// handled remembers the identities (source+id hashes) of the last
	// signals the handler took and the loop acked, across Runs: JetStream writes a
	// consumer's acks to disk a few times a second, so after a kill -9 of
	// the node it may deliver again signals acked just before. The loop
	// acks those again without calling the handler: no duplicate reaches
	// the closed loop.
	handled idMemory
	seed    maphash.Seed

	// One Run's state. Its context is passed down from Run to the
	// deliveries (dispatch, the key workers, the handler), not kept.
	js       jetstream.JetStream
	log      zerolog.Logger
	boundary uint64
	wg       sync.WaitGroup
	mu       sync.Mutex
	closing  bool
	held     map[uint64]*item     // stream seq -> signal received and not yet acked, nakked or termed
	keys     map[string]*keyState // subject -> its queue
}

// item is one delivery held by the loop.
type item struct {
	msg     jetstream.Msg
	subj    string
	seq     uint64
	n       uint64 // NumDelivered
	current bool
}

// keyState serialises one condition key's signals.
type keyState struct {
	running bool
	queue   []*item
	retry   uint64 // stream seq of a nakked signal whose redelivery the key waits for; 0: none
	timer   *time.Timer
}

// New returns a loop consuming through nc (a connection to the node's
// operations account) with handler h.
func New(nc *nats.Conn, opts Options, h Handler) *Loop {
	return &Loop{nc: nc, opts: opts, h: h, seed: maphash.MakeSeed()}
}

// Run runs a loop until ctx is done: see New and Loop.Run.
func Run(ctx context.Context, nc *nats.Conn, opts Options, h Handler) error {
	return New(nc, opts, h).Run(ctx)
}

// Stats returns the loop's counters.
func (l *Loop) Stats() Stats {
	return Stats{
		Delivered: l.delivered.Load(), Current: l.current.Load(), Acked: l.acked.Load(),
		Naked: l.naked.Load(), DeadLettered: l.dead.Load(), AckedAgain: l.again.Load(),
		Repulls: l.repulls.Load(),
	}
}

// HandledMemory is how many acked signals a loop remembers.
const HandledMemory = 1 << 16

// idMemory is a bounded set of signal identities (64-bit hashes of
// source and id): the newest HandledMemory added.
type idMemory struct {
	mu   sync.Mutex
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func (m *idMemory) add(id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.set == nil {
		m.set = make(map[uint64]struct{})
		m.ring = make([]uint64, 0, HandledMemory)
	}
	if _, ok := m.set[id]; ok {
		return
	}
	if len(m.ring) < HandledMemory {
		m.ring = append(m.ring, id)
	} else {
		delete(m.set, m.ring[m.next])
		m.ring[m.next] = id
		m.next = (m.next + 1) % HandledMemory
	}
	m.set[id] = struct{}{}
}

func (m *idMemory) has(id uint64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.set[id]
	return ok
}

func (o Options) withDefaults() (Options, error) {
	if o.Name == "" {
		return o, errors.New("closedloop: Name is required (the durable consumer's name)")
	}
	for i := 0; i < len(o.Name); i++ {
		if c := o.Name[i]; c <= ' ' || c == '.' || c == '*' || c == '>' || c == '/' || c == '\\' || c > '~' {
			return o, fmt.Errorf("closedloop: Name %q: a durable name is printable ASCII without '.', '*', '>', '/', '\\' or spaces", o.Name)
		}
	}
	if o.Filter == "" {
		o.Filter = subject.Signals
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = DefaultMaxInFlight
	}
	if len(o.BackOff) == 0 {
		o.BackOff = DefaultBackOff
	}
	for _, d := range o.BackOff {
		if d <= 0 {
			return o, fmt.Errorf("closedloop: BackOff %v: delays must be positive", o.BackOff)
		}
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = DefaultMaxDeliver
	}
	if o.AckWait <= 0 {
		o.AckWait = DefaultAckWait
	}
	return o, nil
}

// Run creates or updates the durable consumer and handles signals until ctx
// is done, then waits for the running handlers to return, naks the signals
// it holds that no handler took (so the next run gets them at once) and
// returns nil. It returns an error only if the loop cannot start.
func (l *Loop) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("closedloop: Run is already running")
	}
	defer l.running.Store(false)
	opts, err := l.opts.withDefaults()
	if err != nil {
		return err
	}
	l.opts = opts
	l.log = opts.Log.With().Str("loop", opts.Name).Logger()
	if l.js, err = jetstream.New(l.nc); err != nil {
		return fmt.Errorf("closedloop: %w", err)
	}
	cons, err := l.consumer(ctx)
	if err != nil {
		return err
	}
	if opts.Lifecycle != nil {
		subj := subject.CondPrefix + ".*." + strings.TrimPrefix(opts.Filter, subject.SignalPrefix+".")
		sub, err := l.nc.Subscribe(subj, func(m *nats.Msg) {
			var c conditions.Change
			if json.Unmarshal(m.Data, &c) == nil && c.Kind != "" {
				opts.Lifecycle(ctx, c)
			}
		})
		if err != nil {
			return fmt.Errorf("closedloop: condition changes %s: %w", subj, err)
		}
		defer sub.Unsubscribe()
		if err := l.nc.Flush(); err != nil {
			return fmt.Errorf("closedloop: %w", err)
		}
	}
	if opts.Started != nil {
		opts.Started()
	}
	l.closing = false
	l.held = map[uint64]*item{}
	l.keys = map[string]*keyState{}

	consume := func() (jetstream.ConsumeContext, error) {
		l.lastDelivery.Store(time.Now().UnixNano())
		return cons.Consume(func(m jetstream.Msg) { l.dispatch(ctx, m) },
			jetstream.PullMaxMessages(opts.MaxInFlight),
			// Requests of 10 s, not 30: nats.go notices a request the
			// server dropped when its heartbeats stop, within its life.
			jetstream.PullExpiry(10*time.Second),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				l.log.Debug().Err(err).Msg("closedloop: consume")
			}))
	}
	cc, err := consume()
	if err != nil {
		return fmt.Errorf("closedloop: consume: %w", err)
	}
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		l.heartbeat(ctx)
	}()
	l.log.Info().Str("filter", opts.Filter).Uint64("current_until", l.boundary).Msg("closed loop started")

	// The stall watch: after a node's kill -9 and restart, a pull can go
	// quiet for good (seen once in TestKill9: 682 signals never delivered
	// in 60 s while the consumer had them pending). When nothing was
	// delivered for two checks in a row while the loop has room and the
	// consumer has signals pending — or the server holds no pull request
	// of ours while the stream has signals past the consumer's (seen in
	// TestKill9 after a restart under load: no pull at the server,
	// NumPending 0, 971 signals undelivered for 30 s) — pull afresh. Redelivery and order
	// are JetStream's as before: what the old pull had buffered and not
	// dispatched is unacked and comes again.
	stallTick := time.NewTicker(StallCheck)
	quiet := 0
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-stallTick.C:
			if !l.stalled(ctx, cons) {
				quiet = 0
				continue
			}
			if quiet++; quiet < 2 {
				continue
			}
			quiet = 0
			cc.Stop()
			next, err := consume()
			if err != nil {
				l.log.Warn().Err(err).Msg("closedloop: pulling afresh after a quiet pull")
				// Keep the stopped one: Drain below is harmless on it.
				continue
			}
			cc = next
			l.repulls.Add(1)
			l.log.Warn().Msg("closedloop: the pull went quiet with signals pending: pulling afresh")
		}
	}
	stallTick.Stop()
	cc.Drain() // buffered deliveries still reach dispatch and are held
	select {
	case <-cc.Closed():
	case <-time.After(5 * time.Second):
		cc.Stop()
	}
	l.mu.Lock()
	l.closing = true
	for _, k := range l.keys {
		if k.timer != nil {
			k.timer.Stop()
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
	<-hbDone
	l.forgetPulls(cons)
	l.mu.Lock()
	left := make([]*item, 0, len(l.held))
	for _, it := range l.held {
		left = append(left, it)
	}
	l.held = nil
	l.mu.Unlock()
	// In stream order: JetStream redelivers nakked signals in the order
	// of the naks, so each key's order survives the restart.
	slices.SortFunc(left, func(a, b *item) int { return cmp.Compare(a.seq, b.seq) })
	for _, it := range left {
		l.nak(it, 0)
	}
	_ = l.nc.FlushTimeout(time.Second)
	l.log.Info().Msg("closed loop stopped")
	return nil
}

// StallCheck is how often a running loop checks that its pull is alive.
var StallCheck = 2 * time.Second

// stalled reports whether nothing was delivered for a StallCheck while
// the loop has room and the consumer has signals pending, or the server
// holds no pull request of ours while the stream has signals past those
// the consumer delivered.
func (l *Loop) stalled(ctx context.Context, cons jetstream.Consumer) bool {
	if time.Since(time.Unix(0, l.lastDelivery.Load())) < StallCheck {
		return false
	}
	l.mu.Lock()
	held := len(l.held)
	l.mu.Unlock()
	if held >= l.opts.MaxInFlight {
		l.log.Trace().Int("held", held).Msg("closedloop: quiet, no room")
		return false
	}
	ictx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	info, err := cons.Info(ictx)
	if err != nil {
		l.log.Trace().Err(err).Int("held", held).Msg("closedloop: quiet, no consumer info")
		return false
	}
	if info.NumPending > 0 {
		l.log.Trace().Int("held", held).Uint64("pending", info.NumPending).Msg("closedloop: quiet with signals pending")
		return true
	}
	if info.NumWaiting > 0 {
		return false
	}
	// The server holds no pull request of ours: our pull is gone (a
	// node restarted with leaf nodes dropped it, seen in TestKill9 under
	// load, and nats.go noticed only at its missed heartbeat 30 s later).
	// NumPending alone does not tell: after that restart it read 0 for a
	// last-per-subject consumer with 971 signals to deliver. The stream's
	// last sequence past what the consumer delivered does.
	st, err := l.js.Stream(ictx, store.SignalStream)
	if err != nil {
		return false
	}
	last := st.CachedInfo().State.LastSeq
	l.log.Trace().Int("held", held).Uint64("stream_last", last).Uint64("delivered", info.Delivered.Stream).Msg("closedloop: quiet with no pull at the server")
	return last > info.Delivered.Stream
}

// forgetPulls waits, briefly, until the server dropped this run's pull
// requests. The server tries a nakked signal on a pull request that is
// still registered but whose subscriber is gone and, failing, puts the
// signal at the back of its redelivery queue: the naks Run sends at the end
// would be redelivered out of order. A consumer info request makes the
// server drop requests nobody listens to (at once, or 2 s after they were
// made when the server has leaf nodes or gateways).
func (l *Loop) forgetPulls(cons jetstream.Consumer) {
	deadline := time.Now().Add(3 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		info, err := cons.Info(ctx)
		cancel()
		if err != nil || info.NumWaiting == 0 || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumer creates the loop's durable consumer, recording the initial
// batch's boundary in its metadata, or updates the existing one and reads
// the boundary back.
func (l *Loop) consumer(ctx context.Context) (jetstream.Consumer, error) {
	o := l.opts
	st, err := l.js.Stream(ctx, store.SignalStream)
	if err != nil {
		return nil, fmt.Errorf("closedloop: stream %s: %w", store.SignalStream, err)
	}
	last := st.CachedInfo().State.LastSeq
	cfg := jetstream.ConsumerConfig{
		Durable:       o.Name,
		Description:   "anfed closed loop " + o.Name,
		FilterSubject: o.Filter,
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    -1, // the helper dead-letters; JetStream alone would give up silently
		MaxAckPending: o.MaxInFlight,
		Metadata:      map[string]string{MetaCurrentUntil: strconv.FormatUint(last, 10)},
	}
	cons, err := l.js.CreateConsumer(ctx, store.SignalStream, cfg)
	if errors.Is(err, jetstream.ErrConsumerExists) {
		var old jetstream.Consumer
		if old, err = l.js.Consumer(ctx, store.SignalStream, o.Name); err != nil {
			return nil, fmt.Errorf("closedloop: consumer %s: %w", o.Name, err)
		}
		// The initial batch is the one of the consumer's creation; a
		// consumer made by someone else has none.
		was := old.CachedInfo().Config.Metadata[MetaCurrentUntil]
		if was == "" {
			was = "0"
		}
		cfg.Metadata = map[string]string{MetaCurrentUntil: was}
		cons, err = l.js.UpdateConsumer(ctx, store.SignalStream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("closedloop: consumer %s: %w", o.Name, err)
	}
	l.boundary, _ = strconv.ParseUint(cons.CachedInfo().Config.Metadata[MetaCurrentUntil], 10, 64)
	return cons, nil
}

// dispatch runs on the consumer's delivery goroutine: it queues m behind
// its key and starts the key's worker if it has none.
func (l *Loop) dispatch(ctx context.Context, m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		l.log.Warn().Err(err).Str("subject", m.Subject()).Msg("closedloop: not a JetStream delivery")
		return
	}
	l.lastDelivery.Store(time.Now().UnixNano())
	it := &item{msg: m, subj: m.Subject(), seq: meta.Sequence.Stream, n: meta.NumDelivered}
	it.current = it.seq <= l.boundary
	l.log.Trace().Uint64("seq", it.seq).Uint64("delivered", it.n).Str("subject", it.subj).Msg("closedloop: delivery")
	l.mu.Lock()
	if l.closing || l.held == nil {
		l.mu.Unlock()
		l.nak(it, 0)
		return
	}
	if _, ok := l.held[it.seq]; ok {
		// Redelivered while we still hold it (an ack timer that ran out):
		// the copy we hold will be decided.
		l.mu.Unlock()
		l.log.Trace().Uint64("seq", it.seq).Msg("closedloop: delivered again while held")
		return
	}
	l.held[it.seq] = it
	k := l.keys[it.subj]
	if k == nil {
		k = &keyState{}
		l.keys[it.subj] = k
	}
	if k.retry == it.seq {
		// The redelivery the key waited for goes first.
		k.retry = 0
		if k.timer != nil {
			k.timer.Stop()
			k.timer = nil
		}
		k.queue = append([]*item{it}, k.queue...)
	} else {
		k.queue = append(k.queue, it)
	}
	l.kick(ctx, it.subj, k)
	l.mu.Unlock()
}

// kick starts key's worker if it has work and may run. l.mu is held.
func (l *Loop) kick(ctx context.Context, subj string, k *keyState) {
	if l.closing || k.running || k.retry != 0 || len(k.queue) == 0 {
		return
	}
	k.running = true
	l.wg.Add(1)
	go l.work(ctx, subj, k)
}

// work handles subj's queue in order until it is empty, the key waits for
// a redelivery, or the loop stops.
func (l *Loop) work(ctx context.Context, subj string, k *keyState) {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		if l.closing || k.retry != 0 || len(k.queue) == 0 || ctx.Err() != nil {
			k.running = false
			if len(k.queue) == 0 && k.retry == 0 && l.keys[subj] == k {
				delete(l.keys, subj)
			}
			l.mu.Unlock()
			return
		}
		it := k.queue[0]
		k.queue = k.queue[1:]
		l.mu.Unlock()

		out, delay := l.process(ctx, it)

		l.mu.Lock()
		if out == keep {
			// Stopping: Run naks it once nothing is consumed any more, so
			// that it is not redelivered to this run.
			l.mu.Unlock()
			continue
		}
		if l.held != nil {
			delete(l.held, it.seq)
		}
		if out != retry {
			l.mu.Unlock()
			continue
		}
		// Later signals of the key wait for this one's redelivery, or
		// give up waiting if it never comes (a signal removed by the
		// stream's limits is not redelivered). The key waits before the
		// nak is sent, so that the redelivery cannot come first.
		seq := it.seq
		if !l.closing {
			k.retry = seq
			k.timer = time.AfterFunc(delay+max(2*time.Second, delay/2), func() {
				l.mu.Lock()
				defer l.mu.Unlock()
				if l.closing || k.retry != seq {
					return
				}
				k.retry, k.timer = 0, nil
				l.kick(ctx, subj, k)
				if !k.running && len(k.queue) == 0 && l.keys[subj] == k {
					delete(l.keys, subj)
				}
			})
		}
		l.mu.Unlock()
		if !l.nak(it, delay) {
			// Lost: the server redelivers after AckWait; the key goes on.
			l.mu.Lock()
			if k.retry == seq {
				k.retry = 0
				if k.timer != nil {
					k.timer.Stop()
					k.timer = nil
				}
			}
			l.mu.Unlock()
		}
	}
}

// outcome is what became of a delivery.
type outcome int

const (
	done  outcome = iota // acked or terminated: the loop is done with it
	retry                // to be nakked with a delay: its key waits for the redelivery
	keep                 // not decided (stopping): Run naks it at the end
)

// process decides one delivery.
func (l *Loop) process(ctx context.Context, it *item) (outcome, time.Duration) {
	o := l.opts
	ev, err := signal.DecodeStructured(it.msg.Data())
	if err != nil {
		return l.deadLetter(ctx, it, ReasonMalformed, err.Error())
	}
	id := l.identity(ev)
	if l.handled.has(id) {
		// Handled and acked already; the server forgot the ack.
		if err := it.msg.Ack(); err != nil {
			l.log.Warn().Err(err).Uint64("seq", it.seq).Msg("closedloop: ack")
		}
		l.again.Add(1)
		l.log.Debug().Uint64("seq", it.seq).Uint64("delivered", it.n).Msg("closedloop: delivered again after its ack: acked again, not handled")
		return done, 0
	}
	if it.n > uint64(o.MaxDeliver) {
		// Its handler already failed MaxDeliver times (the dead letter
		// could not be stored, or the process stopped before it was).
		return l.deadLetter(ctx, it, ReasonMaxDeliver, fmt.Sprintf("delivered %d times, the handler failed each time", it.n))
	}
	l.delivered.Add(1)
	if it.current {
		l.current.Add(1)
	}
	err = l.call(ctx, ev, Delivery{Seq: it.seq, NumDelivered: it.n, Current: it.current})
	switch {
	case err == nil:
		// Remembered before the ack: whatever becomes of the ack, the
		// handler has taken it.
		l.handled.add(id)
		if err := it.msg.Ack(); err != nil {
			l.log.Warn().Err(err).Uint64("seq", it.seq).Msg("closedloop: ack")
			return done, 0
		}
		l.acked.Add(1)
		return done, 0
	case IsPoison(err):
		return l.deadLetter(ctx, it, ReasonPoison, err.Error())
	case ctx.Err() != nil:
		// Stopping: the next run gets it at once.
		return keep, 0
	case it.n >= uint64(o.MaxDeliver):
		return l.deadLetter(ctx, it, ReasonMaxDeliver, err.Error())
	default:
		d := o.BackOff[min(int(it.n)-1, len(o.BackOff)-1)]
		if o.Jitter > 0 {
			d -= time.Duration(rand.Float64() * min(o.Jitter, 1) * float64(d))
		}
		l.log.Debug().Err(err).Uint64("seq", it.seq).Uint64("delivered", it.n).Stringer("retry_in", d).Msg("closedloop: handler failed")
		return retry, d
	}
}

// identity hashes a signal's source and id, what names it wherever it is
// stored.
func (l *Loop) identity(ev *signal.Event) uint64 {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(ev.Source)
	h.WriteByte(0)
	h.WriteString(ev.ID)
	return h.Sum64()
}

// call runs the handler; a panic is a failure like an error.
func (l *Loop) call(ctx context.Context, ev *signal.Event, d Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return l.h(ctx, ev, d)
}

// nak asks for redelivery after delay (0: at once) and reports whether the
// server took it.
func (l *Loop) nak(it *item, delay time.Duration) bool {
	var err error
	if delay > 0 {
		err = it.msg.NakWithDelay(delay)
	} else {
		err = it.msg.Nak()
	}
	if err != nil {
		l.log.Warn().Err(err).Uint64("seq", it.seq).Msg("closedloop: nak")
		return false
	}
	l.naked.Add(1)
	return true
}

// deadLetter stores the original message on an.dlq.loop-<name>.<reason> and
// then terminates it. When the dead letter cannot be stored, the signal is
// to be retried after the longest backoff instead: it is never dropped.
func (l *Loop) deadLetter(ctx context.Context, it *item, reason, detail string) (outcome, time.Duration) {
	dl := store.DeadLetterMsg(DLQFrom(l.opts.Name), reason, detail, it.msg.Headers(), it.msg.Data())
	h := dl.Header
	h.Set(HeaderSubject, it.subj)
	h.Set(HeaderStreamSeq, strconv.FormatUint(it.seq, 10))
	h.Set(HeaderDeliveries, strconv.FormatUint(it.n, 10))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := l.js.PublishMsg(ctx, dl)
	if err != nil {
		l.log.Error().Err(err).Uint64("seq", it.seq).Str("reason", reason).Msg("closedloop: dead letter not stored; will retry")
		return retry, l.opts.BackOff[len(l.opts.BackOff)-1]
	}
	if err := it.msg.TermWithReason("anfed closed loop dead letter: " + reason); err != nil {
		l.log.Warn().Err(err).Uint64("seq", it.seq).Msg("closedloop: term")
	}
	l.dead.Add(1)
	l.log.Warn().Uint64("seq", it.seq).Str("subject", it.subj).Str("reason", reason).Str("error", detail).Msg("closedloop: dead letter")
	return done, 0
}

// heartbeat tells the server every AckWait/3 that the signals the loop
// holds are being worked on, so none is redelivered while it waits for or
// runs in a handler.
func (l *Loop) heartbeat(ctx context.Context) {
	t := time.NewTicker(l.opts.AckWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(l.held))
		for _, it := range l.held {
			msgs = append(msgs, it.msg)
		}
		l.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}
