// Package outbound is everything that leaves for a peer: the export
// policy (exportpolicy), the per-peer durable export consumer, and the
// senders that put what the policy lets through on the peer's link —
// durable (Sender, internal/link's protocol) or fire and forget
// (LossySender).
package outbound

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Sender forwards our stored signals to one peer, in store order, through a
// durable JetStream consumer. Up to a window of signals are in flight; a
// signal is acknowledged in the store only when the peer answered that it
// stored or refused it. When the peer does not answer, or answers that it
// cannot take a signal now, the sender waits with backoff and resends
// everything unanswered, in order. Nothing is skipped and order is kept.
type Sender struct {
	self, peer string
	cons       jetstream.Consumer
	nc         *nats.Conn // in the peer account
	policy     *exportpolicy.Policy
	log        zerolog.Logger
	epoch      string
	window     int
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration

	// lastStream is the store sequence of the last signal read. The
	// consumer reads only what the export policy's subjects allow, so a
	// jump is normal; the part of it below the stream's first sequence
	// was discarded at the store's bounds (storage.max_age, max_bytes)
	// before this peer's export reached it. gaps are the jumps not yet
	// compared with the first sequence; only the loop touches them.
	lastStream uint64
	gaps       [][2]uint64
	discarded  atomic.Uint64

	// trim is how many of the oldest signals not yet read to drop for
	// the byte bound; only the loop touches it.
	trim    uint64
	drops   dropLog  // only the loop touches it
	limited struct { // rate-limited answers not logged yet; only the loop touches it
		n  uint64
		at time.Time
	}
	droppedAge, droppedBytes atomic.Uint64

	// lastDelivery is the consumer's delivery sequence of the last
	// signal read in this Run; only the loop touches it.
	lastDelivery uint64
	// reconnects is the consumer connection's reconnection count when
	// Run began (SenderConfig.Reconnects).
	reconnects uint64
	// runStart, tickDelivery and void serve the void-delivery watch
	// (voidDelivered); only the loop touches them, and holding, which
	// the feed sets while it holds a delivery not yet handed over.
	runStart     time.Time
	tickDelivery uint64
	void         int
	holding      atomic.Bool

	cfg    SenderConfig
	stages []Stage
}

// SenderConfig is what a durable sender works with and how it is bound.
type SenderConfig struct {
	Self, Peer string
	// Epoch names our store (its creation time).
	Epoch    string
	Consumer jetstream.Consumer // the peer's durable export consumer
	Conn     *nats.Conn         // in the peer account
	Policy   *exportpolicy.Policy
	Log      zerolog.Logger

	// FirstSeq reports the store's first sequence. nil: discards are not
	// counted.
	FirstSeq func(ctx context.Context) (uint64, error)
	// Expired reports whether the peering has ended: from then on nothing
	// is sent (the signals wait in the store, within its bounds, for a
	// renewed one). nil: the peering does not end.
	Expired func(now time.Time) bool
	// Buffer bounds what waits for this peer.
	Buffer Buffer
	// Observer is told of every signal dropped for this peer at our end,
	// with its reason. nil: not told.
	Observer observe.Observer
	// Diverged is called after a signal was dropped at the buffer bound:
	// the peer's view now lacks it (a clear, say), so the node refreshes
	// the peer. nil: not called.
	Diverged func()
	// Pace paces the signals exported to this peer (export.max_rate;
	// NewPace): a signal waits for its token before it enters the window,
	// so pacing delays signals and never drops one. Resends are not paced
	// again. nil: not paced.
	Pace *rate.Limiter
	// Resign signs a signal we originate again, after export.redact
	// removed fields from its data; required when the policy redacts.
	Resign func(ev *signal.Event) error
	// Stale reports whether a signal we originate carries no signature
	// by the key we sign with now (it was signed before a key rotation's
	// switch): it is signed again (Resign) on its way out. nil: never.
	Stale func(ev *signal.Event) bool
	// Reconnects counts the reconnections of the connection the consumer
	// delivers on (its Stats().Reconnects). A delivery made while it was
	// away (the server kicked it, a broken pipe) is lost, and with no
	// later delivery to show the jump it would come back only after
	// AckWait: when the count moves, Run returns ErrReconnected and the
	// caller resumes the consumer from its acknowledgement floor. nil:
	// not watched.
	Reconnects func() uint64
	// WatchVoid makes Run look for deliveries made into the void in its
	// first 30 s (voidDelivered). Only where the consumer's state is
	// read from the server that keeps it (not a cluster mid-election).
	WatchVoid bool
	// Held reports whether this process may still send on the link: with
	// several processes of one operator, only the holder of the link's
	// lease does, and a holder whose lease ran out sends nothing more
	// (checked before every message). nil: always.
	Held func() bool
	// Audit keeps the audit trail's record of each copy put on the link
	// (at its first send; resends carry the same bytes). nil: none.
	Audit Auditor
}

// Auditor keeps the audit trail's record of a signal copy put on a
// peer's link: body is the link message's body as sent, which the
// auditor must only read (internal/audit.Writer hashes it off the
// link's path).
type Auditor interface {
	Sent(peer, id, source, typ, subj, rule string, redacted []string, body []byte)
}

// audit records c, whose link message went on the link.
func audit(a Auditor, peer string, c *Copy) {
	if a != nil {
		a.Sent(peer, c.Ev.ID, c.Ev.Source, c.Ev.Type, c.Ev.Subject, c.Rule, c.Redacted, c.Out.Data)
	}
}

// ErrNotHeld is what a publish answers once the link's lease is lost.
var ErrNotHeld = errors.New("link: this process no longer holds the link's lease")

// publish puts m on the link, unless this process no longer holds it.
func (s *Sender) publish(m *nats.Msg) error {
	if s.cfg.Held != nil && !s.cfg.Held() {
		return ErrNotHeld
	}
	return s.nc.PublishMsg(m)
}

// ErrResume is Run's answer to a signal the consumer delivered and the
// sender never got: resume the consumer from its acknowledgement floor,
// then Run again, so that nothing is skipped and order is kept.
var ErrResume = errors.New("link: a stored signal was lost on its way to the sender")

// ErrVoid is Run's answer when the consumer delivered signals the
// sender never read, with nothing after them (voidDelivered): the
// consumer resumes (errors.Is ErrResume).
var ErrVoid = fmt.Errorf("%w: the export consumer delivered signals nobody read (a pull request outlived its reader)", ErrResume)

// ErrReconnected is Run's answer when the connection the consumer
// delivers on came back after a loss: what the consumer delivered
// meanwhile may be lost, so the consumer resumes (errors.Is ErrResume).
var ErrReconnected = fmt.Errorf("%w: the export consumer's connection was lost and came back", ErrResume)

// NewPace returns the limiter of a peer's export.max_rate and max_burst,
// or nil when it is not paced.
func NewPace(e config.ExportPolicy) *rate.Limiter {
	r, burst := e.Pacing()
	if r <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r), burst)
}

// paced reports whether a stored signal takes a token: those the policy
// may export to the peer (as far as the subject tells).
func (s *Sender) paced(m jetstream.Msg) bool {
	k, err := subject.ParseSignal(m.Subject())
	return err == nil && s.policy.MayExport(k)
}

// pullBatch is how many stored signals the consumer fetches ahead. Paced,
// a fetched signal may wait for its token: at most about 20 s of the
// rate are fetched, well within the consumer's AckWait, so that no
// signal waiting its turn is redelivered.
func (s *Sender) pullBatch() int {
	if s.cfg.Pace == nil {
		return s.window
	}
	return min(max(int(float64(s.cfg.Pace.Limit())*20), 1), s.window)
}

// Buffer bounds the signals waiting for one peer (config.Buffer). A zero
// field is no bound.
type Buffer struct {
	// MaxAge: a signal stored longer ago than this when its turn comes
	// is dropped for this peer.
	MaxAge time.Duration
	// MaxBytes: when the waiting signals (counted times MeanSize) take
	// more, the oldest not yet sent are dropped until they fit.
	MaxBytes int64
	// MeanSize reports the store's mean stored signal size in bytes.
	MeanSize func(ctx context.Context) (float64, error)
}

// Dropped is how many signals were dropped for this peer at its buffer
// bounds: too old, and over the byte bound.
func (s *Sender) Dropped() (age, bytes uint64) { return s.droppedAge.Load(), s.droppedBytes.Load() }

// tooOld reports whether a signal stored at t is past the age bound.
func (s *Sender) tooOld(t time.Time) bool {
	return s.cfg.Buffer.MaxAge > 0 && !t.IsZero() && time.Since(t) > s.cfg.Buffer.MaxAge
}

// dropLog logs drops at a buffer bound at most every 5 s, with counts.
type dropLog struct {
	age, bytes uint64
	at         time.Time
}

func (s *Sender) noteDrop(age bool, ev *signal.Event) {
	d := &s.drops
	if age {
		s.droppedAge.Add(1)
		d.age++
		s.dropped(reject.BufferAge, fmt.Sprintf("waited for %s longer than its export.buffer.max_age %s", s.peer, s.cfg.Buffer.MaxAge), ev)
	} else {
		s.droppedBytes.Add(1)
		d.bytes++
		s.dropped(reject.BufferBytes, fmt.Sprintf("the signals waiting for %s passed its export.buffer.max_bytes %d: the oldest not yet sent are dropped", s.peer, s.cfg.Buffer.MaxBytes), ev)
	}
	if s.cfg.Diverged != nil {
		s.cfg.Diverged()
	}
	if now := time.Now(); now.Sub(d.at) >= 5*time.Second {
		s.log.Warn().Str("reason", "buffer-bound").Uint64("too_old", d.age).Uint64("over_bytes", d.bytes).
			Dur("max_age", s.cfg.Buffer.MaxAge).Int64("max_bytes", s.cfg.Buffer.MaxBytes).
			Uint64("total_too_old", s.droppedAge.Load()).Uint64("total_over_bytes", s.droppedBytes.Load()).
			Msg("link: signals waiting for this peer dropped at its buffer bound (export.buffer): the peer will not get them")
		d.age, d.bytes, d.at = 0, 0, now
	}
}

// noteRateLimited logs, at most every 5 s with a count, that the peer
// refuses signals over its import rate limit: they wait and are resent,
// so the delay has a visible cause at our end too.
func (s *Sender) noteRateLimited(detail string) {
	r := &s.limited
	r.n++
	if now := time.Now(); now.Sub(r.at) >= 5*time.Second {
		s.log.Warn().Str("reason", string(reject.RateLimited)).Uint64("count", r.n).Str("error", detail).
			Msg("link: the peer refuses signals over its import rate limit (its import.max_rate): they wait here and are resent")
		r.n, r.at = 0, now
	}
}

// dropped reports a signal of ours the peer will not get, with its reason.
func (s *Sender) dropped(reason reject.Reason, detail string, ev *signal.Event) {
	if s.cfg.Observer != nil {
		s.cfg.Observer.Rejected(observe.Rejection{Node: s.self, To: s.peer, Reason: reason, Detail: detail, Event: ev})
	}
}

func (s *Sender) expired() bool { return s.cfg.Expired != nil && s.cfg.Expired(time.Now()) }

// Discarded is how many signals the store discarded at its bounds before
// they could be sent to this peer.
func (s *Sender) Discarded() uint64 { return s.discarded.Load() }

// ConsumerName is the durable consumer of the sender to peer.
func ConsumerName(peer string) string { return "export-" + peer }

// ConsumerConfig is the durable consumer a sender reads: the stored
// signals whose subjects match filters (exportpolicy.Policy.Subjects), so
// that JetStream never hands a peer's sender what the peer never gets.
func ConsumerConfig(peer string, filters []string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        ConsumerName(peer),
		Description:    "signals exported to " + peer,
		FilterSubjects: filters,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        time.Minute,
		MaxAckPending:  config.DefaultLinkWindow,
		MaxDeliver:     -1,
	}
}

// NewSender returns the durable sender that cfg describes; Run runs it.
func NewSender(cfg SenderConfig) *Sender {
	s := &Sender{
		self: cfg.Self, peer: cfg.Peer, epoch: cfg.Epoch, cons: cfg.Consumer, nc: cfg.Conn, policy: cfg.Policy, cfg: cfg,
		log:     cfg.Log.With().Str("peer", cfg.Peer).Logger(),
		window:  config.DefaultLinkWindow,
		timeout: 500 * time.Millisecond,
		// Resending to a peer that is away costs little (no interest:
		// the server drops it), and a short cap lets the backlog start
		// draining soon after the link is back.
		minBackoff: 25 * time.Millisecond,
		maxBackoff: 100 * time.Millisecond,
	}
	s.stages = (&stager{self: s.self, policy: s.policy, log: s.log, expired: cfg.Expired, holdExpired: true,
		maxAge: cfg.Buffer.MaxAge, dropOld: func(ev *signal.Event) { s.noteDrop(true, ev) }, resign: cfg.Resign, stale: cfg.Stale}).stages()
	return s
}

// entry is one exported signal in flight: what the window
// (link.Window) keeps of it.
type entry struct {
	msg    jetstream.Msg
	seq    uint64
	stored time.Time
	out    *nats.Msg
	// copy is what the stages made, for the audit trail's record at the
	// first send that goes out (Copy.recorded; the window keeps entries
	// by value). nil: no audit.
	copy *Copy
}

// pullExpiry bounds each pull request of the export consumer; heartbeats
// come every half of it.
const pullExpiry = 5 * time.Second

// Run forwards until ctx is done.
func (s *Sender) Run(ctx context.Context) error {
	s.lastDelivery = 0 // a resumed consumer numbers its deliveries afresh
	s.runStart, s.tickDelivery, s.void = time.Now(), 0, 0
	if s.cfg.Reconnects != nil {
		s.reconnects = s.cfg.Reconnects()
	}
	// Short pulls: a consumer whose leader was lost with a cluster server
	// is found silent (missed heartbeats) and pulled again within seconds,
	// not after the default 30 s.
	it, err := s.cons.Messages(jetstream.PullMaxMessages(s.pullBatch()), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return err
	}
	defer it.Stop()
	// The feed stops with Run: a Run that returns ErrResume while the
	// feed holds a delivery must not leave it waiting to hand it over.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	in := make(chan jetstream.Msg)
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		for {
			m, err := it.Next()
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
					return
				}
				s.log.Warn().Err(err).Msg("link: export consumer")
				continue
			}
			s.holding.Store(true)
			if s.cfg.Pace != nil && s.paced(m) {
				if err := s.cfg.Pace.Wait(ctx); err != nil {
					return // ctx done; the signal is redelivered after restart
				}
			}
			select {
			case in <- m:
				s.holding.Store(false)
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { stop(); it.Stop(); <-feedDone }()

	replyPrefix := subject.Ack(s.self) + "." + nuid.Next()
	replies := make(chan *nats.Msg, 4*s.window)
	sub, err := s.nc.ChanSubscribe(replyPrefix+".*", replies)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := s.nc.Flush(); err != nil {
		return err
	}
	return s.loop(ctx, in, replies, replyPrefix)
}

// loop feeds the sender's window (link.Window, the protocol's state
// machine) with its events — a stored signal to send, the peer's answers,
// the time — and does what it asks on the link and in the store (wire).
// The timers and the byte bound's and discards' checks are the loop's.
func (s *Sender) loop(ctx context.Context, in <-chan jetstream.Msg, replies <-chan *nats.Msg, replyPrefix string) error {
	fx := &wire{s: s, replyPrefix: replyPrefix}
	w := link.NewWindow[entry](link.WindowConfig{Size: s.window, Timeout: s.timeout, MinBackoff: s.minBackoff, MaxBackoff: s.maxBackoff}, fx, time.Now())
	var (
		tick     = time.NewTicker(25 * time.Millisecond)
		progress = time.NewTicker(15 * time.Second)
		bound    = time.NewTicker(time.Second)
		gapTick  = time.NewTicker(time.Second)
	)
	defer tick.Stop()
	defer gapTick.Stop()
	defer progress.Stop()
	defer bound.Stop()
	if s.cfg.Buffer.MaxBytes <= 0 || s.cfg.Buffer.MeanSize == nil {
		bound.Stop()
	}
	for {
		var inCh <-chan jetstream.Msg
		if w.Room() || s.trim > 0 {
			inCh = in
		}
		// The tick only matters with signals out or a probe planned; an
		// idle sender does not wait on it, so it does not wake 40 times a
		// second (since Go 1.23 an unwatched timer does not fire).
		var tickC <-chan time.Time
		if w.Busy() {
			tickC = tick.C
		}
		select {
		case <-ctx.Done():
			return nil // unacknowledged signals are redelivered after restart

		case m := <-inCh:
			meta, err := m.Metadata() // read once: it allocates
			if err == nil && s.lostBefore(meta) {
				return ErrResume // unacknowledged signals are redelivered after the resume
			}
			e, ok := s.prepare(m, meta, err, replyPrefix)
			if !ok {
				continue // decided here: not for this peer, or dropped at a bound
			}
			w.Add(time.Now(), e.seq, e)

		case r := <-replies:
			noRoute := r.Header.Get("Status") == "503"
			if strings.HasSuffix(r.Subject, ".probe") {
				var ans signal.Answer
				alive := false
				if !noRoute {
					a, err := signal.ParseAnswer(r.Data)
					ans, alive = a, err == nil && a.Status == signal.StatusAlive
				}
				w.ProbeAnswer(time.Now(), noRoute, alive, ans.Last)
				continue
			}
			seq, err := strconv.ParseUint(r.Subject[strings.LastIndexByte(r.Subject, '.')+1:], 10, 64)
			if err != nil {
				continue
			}
			var ans signal.Answer
			kind := link.AnswerNoRoute
			if !noRoute {
				kind = link.AnswerDone
				a, err := signal.ParseAnswer(r.Data)
				switch {
				case err != nil:
					kind = link.AnswerUnreadable
				case a.OK():
				case link.Retryable(a.Reason):
					// Not now (out of order after a loss, store
					// unavailable, over the rate): sync with a probe,
					// then resend.
					kind = link.AnswerNotNow
				}
				ans = a
			}
			if !w.Answer(time.Now(), seq, kind) {
				continue // an answer to a resend already answered
			}
			switch {
			case kind == link.AnswerNotNow && ans.Reason == string(reject.RateLimited):
				s.noteRateLimited(ans.Error)
			case kind == link.AnswerDone && !ans.OK():
				// Refused for good: retrying cannot help. The peer
				// counted it and kept it in its dead-letter stream.
				s.log.Warn().Uint64("seq", seq).Str("reason", ans.Reason).Str("error", ans.Error).Msg("link: peer refused signal")
			}

		case <-tickC:
			// The time now, not the tick's: a probe sent late must not
			// look sent before the signals that went out ahead of it.
			w.Tick(time.Now())

		case <-bound.C:
			// The byte bound: waiting signals times the mean size; the
			// oldest unsent first: those held in the window, then the
			// rest from the store, as they are read.
			s.trim = w.DropUnsent(s.overBytes(ctx))

		case <-gapTick.C:
			if s.cfg.Reconnects != nil && s.cfg.Reconnects() != s.reconnects {
				return ErrReconnected // unacknowledged signals are redelivered after the resume
			}
			if s.voidDelivered(ctx, w.Room(), w.Len()) {
				return ErrVoid // unacknowledged signals are redelivered after the resume
			}
			s.countDiscards(ctx)

		case <-progress.C:
			// Keep unanswered signals ours while the peer is away.
			w.Each(func(e entry) { _ = e.msg.InProgress() })
		}
	}
}

// wire is what the sender's window asks for, done on the link and in the
// store (link.Effects).
type wire struct {
	s           *Sender
	replyPrefix string
}

func (x *wire) Send(e entry, prev uint64, front bool, now time.Time) bool {
	s := x.s
	if s.expired() {
		return false
	}
	h := e.out.Header
	setHeader(h, link.HeaderPrev, strconv.FormatUint(prev, 10))
	if front {
		h[link.HeaderFront] = []string{"1"}
	} else {
		delete(h, link.HeaderFront)
	}
	setHeader(h, link.HeaderSent, strconv.FormatInt(now.UnixNano(), 10))
	if err := s.publish(e.out); err != nil {
		s.log.Debug().Err(err).Msg("link: publish") // the next probe finds it lost
	} else if e.copy != nil && !e.copy.recorded {
		audit(s.cfg.Audit, s.peer, e.copy)
		e.copy.recorded = true
	}
	return true
}

func (x *wire) Probe(time.Time) bool {
	s := x.s
	if s.expired() {
		return false
	}
	probe := nats.NewMsg(subject.Probe(s.self))
	probe.Reply = x.replyPrefix + ".probe"
	probe.Header.Set(link.HeaderEpoch, s.epoch)
	if err := s.publish(probe); err != nil {
		s.log.Debug().Err(err).Msg("link: probe")
	}
	return true
}

func (x *wire) Ack(e entry) { _ = e.msg.Ack() }

func (x *wire) Drop(e entry, age bool) {
	_ = e.msg.Ack()
	x.s.noteDrop(age, nil)
}

func (x *wire) TooOld(e entry, _ time.Time) bool { return x.s.tooOld(e.stored) }

func (x *wire) GiveUp(e entry) {
	s := x.s
	s.log.Error().Str("seq", e.out.Header.Get(link.HeaderSeq)).Str("subject", e.out.Subject).
		Msg("link: the link drops this signal while the peer hears us: given up. Most likely the peer's " +
			"permissions forbid it, e.g. we relay (export.transit) and the peer does not accept transit " +
			"(import.transit): align the two policies")
	s.dropped(reject.Undeliverable, fmt.Sprintf("signal %s on %s: the link drops it while %s hears us (its NATS permissions forbid it): given up",
		e.out.Header.Get(link.HeaderSeq), e.out.Subject, s.peer), nil)
}

func (x *wire) Note(n link.Note, count int) {
	l := x.s.log
	switch n {
	case link.NoteNoRoute:
		l.Info().Int("unanswered", count).Msg("link: no route to the peer; holding signals")
	case link.NoteSilent:
		l.Info().Int("unanswered", count).Msg("link: peer silent; holding signals")
	case link.NoteBack:
		l.Info().Int("unanswered", count).Msg("link: peer answers again; resending")
	case link.NoteResent:
		l.Debug().Int("resent", count).Msg("link: resending")
	}
}

// maxGaps is how many jumps in the store sequence the sender keeps before
// it compares them with the store's first sequence (else once a second).
const maxGaps = 1024

// countDiscards counts, of the jumps read so far, the signals below the
// store's first sequence: discarded at its bounds before this peer's
// export reached them. Discards take the oldest first, so a jump from a to
// b lost what lies below the first sequence; the rest of it is still
// stored and is not for this peer (the consumer would have read it). As
// before the filters existed, a discarded signal counts whether or not
// the policy would have sent it: the store cannot tell any more.
func (s *Sender) countDiscards(ctx context.Context) {
	if len(s.gaps) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	first, err := s.cfg.FirstSeq(ctx)
	if err != nil {
		return // next time
	}
	var n uint64
	for _, g := range s.gaps {
		if end := min(first, g[1]); end > g[0]+1 {
			n += end - g[0] - 1
		}
	}
	s.gaps = s.gaps[:0]
	if n > 0 {
		s.discarded.Add(n)
		s.log.Warn().Str("reason", string(reject.StoreBound)).Uint64("discarded", n).Uint64("total", s.discarded.Load()).
			Msg("link: the store discarded signals at its bounds (storage.max_age / max_bytes) before they reached this peer")
		if s.cfg.Observer != nil {
			s.cfg.Observer.Rejected(observe.Rejection{Node: s.self, To: s.peer, Reason: reject.StoreBound, Count: n,
				Detail: fmt.Sprintf("%d signals discarded by the store at its bounds (storage.max_age, max_bytes) before %s's export reached them", n, s.peer)})
		}
	}
}

// overBytes is how many waiting signals are over the byte bound.
func (s *Sender) overBytes(ctx context.Context) uint64 {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := s.cons.Info(ctx)
	if err != nil {
		return 0
	}
	mean, err := s.cfg.Buffer.MeanSize(ctx)
	if err != nil || mean <= 0 {
		return 0
	}
	waiting := float64(info.NumPending) + float64(info.NumAckPending)
	over := waiting*mean - float64(s.cfg.Buffer.MaxBytes)
	if over <= 0 {
		return 0
	}
	return uint64(over/mean) + 1
}

// voidWatch is how long after its start a Run watches for deliveries
// made into the void (voidDelivered).
const voidWatch = 30 * time.Second

// voidDelivered reports, once a second in the first voidWatch of a Run,
// whether the consumer has delivered signals that never reached the
// sender and none came after them to show the jump (lostBefore): a pull
// request of an earlier Run, or of this one before its connection was
// kicked, is still served by the server for a moment after nobody reads
// its inbox (nats-server serves a young request with no interest when
// leaf nodes are on), and the last signals before a quiet spell would wait
// the consumer's one-minute ack wait. Seen as: the consumer counts more
// deliveries unacknowledged than the window holds, for two looks in a
// row, with no delivery between them, room in the window and nothing
// held by the feed.
func (s *Sender) voidDelivered(ctx context.Context, room bool, held int) bool {
	idle := s.lastDelivery == s.tickDelivery
	s.tickDelivery = s.lastDelivery
	if !s.cfg.WatchVoid || time.Since(s.runStart) > voidWatch || !room || !idle || s.holding.Load() {
		s.void = 0
		return false
	}
	ictx, cancel := context.WithTimeout(ctx, time.Second)
	info, err := s.cons.Info(ictx)
	cancel()
	if err != nil || info.NumAckPending <= held {
		s.void = 0
		return false
	}
	s.void++
	return s.void >= 2
}

// lostBefore reports whether a delivery of the consumer before m never
// reached the sender: lost on the way (a cluster server lost
// mid-delivery, the consumer's connection kicked). Run then stops before
// anything past it is sent: sent after its successors, the lost signal
// would look to the peer like a resend it had already decided.
func (s *Sender) lostBefore(meta *jetstream.MsgMetadata) bool {
	last := s.lastDelivery
	if d := meta.Sequence.Consumer; d > last {
		s.lastDelivery = d
	}
	return last != 0 && meta.Sequence.Consumer > last+1
}

// prepare turns a stored signal into a link message, or decides that it
// is not for this peer (and acknowledges it). meta and err are m's
// Metadata.
func (s *Sender) prepare(m jetstream.Msg, meta *jetstream.MsgMetadata, err error, replyPrefix string) (entry, bool) {
	if err != nil {
		s.log.Error().Err(err).Msg("link: stored signal without metadata; skipped")
		_ = m.Term()
		return entry{}, false
	}
	if seq := meta.Sequence.Stream; s.lastStream != 0 && seq > s.lastStream+1 && s.cfg.FirstSeq != nil {
		s.gaps = append(s.gaps, [2]uint64{s.lastStream, seq})
		if len(s.gaps) >= maxGaps {
			s.countDiscards(context.Background())
		}
	}
	if meta.Sequence.Stream > s.lastStream {
		s.lastStream = meta.Sequence.Stream
	}
	if s.trim > 0 {
		// Over the byte bound: the oldest waiting go first.
		s.trim--
		_ = m.Ack()
		s.noteDrop(false, nil)
		return entry{}, false
	}
	k, err := subject.ParseSignal(m.Subject())
	if err != nil {
		s.log.Error().Err(err).Msg("link: stored signal has a bad subject; skipped")
		_ = m.Term()
		return entry{}, false
	}
	ev, err := signal.DecodeStructured(m.Data())
	if err != nil {
		s.log.Error().Err(err).Str("subject", m.Subject()).Msg("link: stored signal does not decode; skipped")
		_ = m.Term()
		return entry{}, false
	}
	// The copy and the room for its link message in one allocation.
	sc := &sendCopy{}
	sc.c = Copy{Ev: ev, Key: k, Stored: meta.Timestamp, Now: time.Now(), lm: &sc.lm}
	c := &sc.c
	if err := run(s.stages, c); err != nil {
		if errors.Is(err, errNoLinkSubject) {
			_ = m.Term()
		} else {
			_ = m.Ack() // decided here: not for this peer, or dropped at a bound
		}
		return entry{}, false
	}
	seq := meta.Sequence.Stream
	out := c.Out
	var num [20]byte
	out.Reply = replyPrefix + "." + string(strconv.AppendUint(num[:0], seq, 10))
	// The link headers' values are the link message's own (linkMsg);
	// send sets Prev and Sent in place (PublishMsg encodes the headers
	// before it returns).
	vals := c.lm.vals[:]
	vals[0], vals[1] = out.Reply[len(replyPrefix)+1:], s.epoch
	out.Header[link.HeaderSeq] = vals[0:1:1]
	out.Header[link.HeaderEpoch] = vals[1:2:2]
	out.Header[link.HeaderPrev] = vals[2:3:3]
	out.Header[link.HeaderSent] = vals[3:4:4]
	e := entry{msg: m, seq: seq, stored: meta.Timestamp, out: out}
	if s.cfg.Audit != nil {
		e.copy = c
	}
	return e, true
}

// setHeader sets h's single value of key in place when it has one.
func setHeader(h nats.Header, key, v string) {
	if vs := h[key]; len(vs) == 1 {
		vs[0] = v
		return
	}
	h[key] = []string{v}
}

// reshape makes the peer's copy of a signal the export policy passes
// by rule, as the stages do (redact, export-tags): a refresh re-states
// signals with it. false: it cannot be made, and is not sent (logged).
func (s *Sender) reshape(ev *signal.Event, rule string) (*Copy, bool) {
	c := &Copy{Ev: ev, Rule: rule}
	for _, st := range s.stages {
		if st.Name != StageRedact && st.Name != StageExportTags {
			continue
		}
		if err := st.Run(c); err != nil {
			return nil, false
		}
	}
	return c, true
}
