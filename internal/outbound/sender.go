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
	// ResumeOnLoss makes Run return ErrResume when a delivery of the
	// consumer never reached the sender (a jump in the consumer's
	// delivery sequence: a cluster server was lost mid-delivery), before
	// anything past it is sent; the caller resumes the consumer from its
	// acknowledgement floor. Without it the lost signal comes back only
	// after AckWait, behind later ones.
	ResumeOnLoss bool
	// Held reports whether this process may still send on the link: with
	// several processes of one operator, only the holder of the link's
	// lease does, and a holder whose lease ran out sends nothing more
	// (checked before every message). nil: always.
	Held func() bool
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

// entry is one exported signal in flight.
type entry struct {
	msg    jetstream.Msg
	seq    uint64
	stored time.Time
	out    *nats.Msg
	sentAt time.Time
	done   bool
	acked  bool
	// skipped: given up as undeliverable; the peer never decided it, so
	// it is no predecessor of the next signal.
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

// Giving up: a signal the link drops while the peer hears us — NATS
// permissions derived from the peer's policy (a relayed signal to a peer
// that does not accept transit, say) drop what they forbid, silently —
// would otherwise hold up the link for good. Two probes proving it lost
// with no route, or five proving it lost, and the sender gives it up,
// logs it, and goes on.
const (
	maxUnheard = 2
	maxLost    = 5
)

// pullExpiry bounds each pull request of the export consumer; heartbeats
// come every half of it.
const pullExpiry = 5 * time.Second

// Run forwards until ctx is done.
func (s *Sender) Run(ctx context.Context) error {
	s.lastDelivery = 0 // a resumed consumer numbers its deliveries afresh
	// Short pulls: a consumer whose leader was lost with a cluster server
	// is found silent (missed heartbeats) and pulled again within seconds,
	// not after the default 30 s.
	it, err := s.cons.Messages(jetstream.PullMaxMessages(s.pullBatch()), jetstream.PullExpiry(pullExpiry))
	if err != nil {
		return err
	}
	defer it.Stop()
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
			if s.cfg.Pace != nil && s.paced(m) {
				if err := s.cfg.Pace.Wait(ctx); err != nil {
					return // ctx done; the signal is redelivered after restart
				}
			}
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { it.Stop(); <-feedDone }()

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

// loop is the sender's state machine. Signals go out as they come. The
// peer answers each; a probe, which the peer answers in order after every
// signal sent before it, is the sync point: when it comes back, what the
// peer decided (up to the probe's Last) is done, and what was sent before
// the probe but neither decided nor answered was lost and is resent, in
// order. Probes go out when the peer falls silent, when NATS finds no route
// (the link is down: nothing is resent until a probe is answered), and
// after a "not now" answer. So a slow peer is never flooded with resends,
// and a lost signal is resent only once its loss is proven.
func (s *Sender) loop(ctx context.Context, in <-chan jetstream.Msg, replies <-chan *nats.Msg, replyPrefix string) error {
	var (
		window  []*entry
		bySeq   = map[uint64]*entry{}
		decided uint64 // the last signal the peer decided, in order: the front's Prev
		// down: the link is presumed down (no route, or a probe went
		// unanswered): hold new signals until a probe is answered.
		down      bool
		probeAt   time.Time // when the probe in flight was sent; zero: none
		probeDue  time.Time // when to send the next probe; zero: none planned
		lastHeard = time.Now()
		backoff   = s.minBackoff
		tick      = time.NewTicker(25 * time.Millisecond)
		progress  = time.NewTicker(15 * time.Second)
		bound     = time.NewTicker(time.Second)
		gapTick   = time.NewTicker(time.Second)
	)
	defer tick.Stop()
	defer gapTick.Stop()
	defer progress.Stop()
	defer bound.Stop()
	if s.cfg.Buffer.MaxBytes <= 0 || s.cfg.Buffer.MeanSize == nil {
		bound.Stop()
	}
	// drop gives up an unsent signal of the window at a buffer bound.
	// It was never sent, so the peer never decided it: it is no
	// predecessor of the next.
	drop := func(e *entry, age bool) {
		e.done, e.skipped, e.acked = true, true, true
		_ = e.msg.Ack()
		s.noteDrop(age, nil)
	}

	prevOf := func(i int) uint64 {
		for j := i - 1; j >= 0; j-- {
			if !window[j].skipped {
				return window[j].seq
			}
		}
		return decided
	}
	send := func(i int) {
		if s.expired() {
			return
		}
		e := window[i]
		now := time.Now()
		h := e.out.Header
		setHeader(h, link.HeaderPrev, strconv.FormatUint(prevOf(i), 10))
		if e == firstOpen(window) {
			h[link.HeaderFront] = []string{"1"}
		} else {
			delete(h, link.HeaderFront)
		}
		setHeader(h, link.HeaderSent, strconv.FormatInt(now.UnixNano(), 10))
		e.sentAt, e.answered, e.noRoute = now, false, false
		if err := s.publish(e.out); err != nil {
			s.log.Debug().Err(err).Msg("link: publish") // the next probe finds it lost
		}
	}
	planProbe := func(after time.Duration) {
		if probeAt.IsZero() && (probeDue.IsZero() || time.Now().Add(after).Before(probeDue)) {
			probeDue = time.Now().Add(after)
		}
	}
	sendProbe := func() {
		if s.expired() {
			probeAt, probeDue = time.Time{}, time.Time{}
			return
		}
		probe := nats.NewMsg(subject.Probe(s.self))
		probe.Reply = replyPrefix + ".probe"
		probe.Header.Set(link.HeaderEpoch, s.epoch)
		probeAt, probeDue = time.Now(), time.Time{}
		if err := s.publish(probe); err != nil {
			s.log.Debug().Err(err).Msg("link: probe")
		}
	}
	popDone := func() {
		for len(window) > 0 && window[0].done {
			e := window[0]
			if !e.skipped {
				decided = e.seq
			}
			if !e.acked {
				_ = e.msg.Ack()
			}
			delete(bySeq, e.seq)
			window[0] = nil
			window = window[1:]
		}
	}
	// synced handles a probe's answer: the peer has decided up to last.
	synced := func(last uint64, sentBefore time.Time) {
		for _, e := range window {
			if e.done {
				continue
			}
			if e.seq <= last && last != 0 {
				e.done = true // decided; only its answer was lost
				continue
			}
			if !e.sentAt.IsZero() && e.sentAt.Before(sentBefore) && !e.answered {
				e.lost++
				if e.noRoute {
					e.unheard++
				}
				if e.unheard >= maxUnheard || e.lost >= maxLost {
					s.log.Error().Str("seq", e.out.Header.Get(link.HeaderSeq)).Str("subject", e.out.Subject).
						Msg("link: the link drops this signal while the peer hears us: given up. Most likely the peer's " +
							"permissions forbid it, e.g. we relay (export.transit) and the peer does not accept transit " +
							"(import.transit): align the two policies")
					e.done, e.skipped = true, true
					s.dropped(reject.Undeliverable, fmt.Sprintf("signal %s on %s: the link drops it while %s hears us (its NATS permissions forbid it): given up",
						e.out.Header.Get(link.HeaderSeq), e.out.Subject, s.peer), nil)
				}
			}
		}
		popDone()
		// Resend, in order, what the peer did not decide and was sent
		// before the probe: lost, or answered "not now". (What was held
		// unsent, always behind those, goes out next.)
		resent := 0
		for i, e := range window {
			if !e.done && !e.sentAt.IsZero() && e.sentAt.Before(sentBefore) {
				send(i)
				resent++
			}
		}
		if resent > 0 {
			s.log.Debug().Int("resent", resent).Uint64("peer-last", last).Msg("link: resending")
		}
	}

	for {
		var inCh <-chan jetstream.Msg
		if len(window) < s.window || s.trim > 0 {
			inCh = in
		}
		// The tick only matters with signals out or a probe planned; an
		// idle sender does not wait on it, so it does not wake 40 times a
		// second (since Go 1.23 an unwatched timer does not fire).
		var tickC <-chan time.Time
		if len(window) > 0 || !probeAt.IsZero() || !probeDue.IsZero() {
			tickC = tick.C
		}
		select {
		case <-ctx.Done():
			return nil // unacknowledged signals are redelivered after restart

		case m := <-inCh:
			if s.lostBefore(m) {
				return ErrResume // unacknowledged signals are redelivered after the resume
			}
			e, ok := s.prepare(m, replyPrefix)
			if !ok {
				continue // decided here: not for this peer, or dropped at a bound
			}
			window = append(window, e)
			bySeq[e.seq] = e
			if len(window) == 1 {
				lastHeard = time.Now() // the silence clock starts with the first in flight
			}
			if !down {
				send(len(window) - 1)
			}

		case r := <-replies:
			noRoute := r.Header.Get("Status") == "503"
			if strings.HasSuffix(r.Subject, ".probe") {
				if noRoute {
					// The link is down: try again soon.
					probeAt, down = time.Time{}, true
					planProbe(backoff)
					backoff = min(2*backoff, s.maxBackoff)
					continue
				}
				ans, err := signal.ParseAnswer(r.Data)
				if err != nil || ans.Status != signal.StatusAlive || probeAt.IsZero() {
					continue
				}
				lastHeard = time.Now()
				sentBefore := probeAt
				probeAt = time.Time{}
				if down {
					s.log.Info().Int("unanswered", len(window)).Msg("link: peer answers again; resending")
				}
				down, backoff = false, s.minBackoff
				synced(ans.Last, sentBefore)
				// New signals held while down go out after the resends,
				// unless they waited past the age bound.
				for i, e := range window {
					if !e.done && e.sentAt.IsZero() {
						if s.tooOld(e.stored) {
							drop(e, true)
							continue
						}
						send(i)
					}
				}
				popDone()
				continue
			}
			seq, err := strconv.ParseUint(r.Subject[strings.LastIndexByte(r.Subject, '.')+1:], 10, 64)
			e := bySeq[seq]
			if err != nil || e == nil || e.done {
				continue // an answer to a resend already answered
			}
			if noRoute {
				// From NATS, not from the peer: nothing on the link took it.
				e.noRoute = true
				if !down {
					s.log.Info().Int("unanswered", len(window)).Msg("link: no route to the peer; holding signals")
				}
				down = true
				planProbe(backoff)
				continue
			}
			lastHeard = time.Now()
			e.answered = true
			ans, err := signal.ParseAnswer(r.Data)
			switch {
			case err != nil:
				planProbe(backoff)
			case ans.OK():
				e.done = true
			case link.Retryable(ans.Reason):
				// Not now (out of order after a loss, store unavailable,
				// over the rate): sync with a probe, then resend.
				if ans.Reason == string(reject.RateLimited) {
					s.noteRateLimited(ans.Error)
				}
				planProbe(backoff)
				backoff = min(2*backoff, s.maxBackoff)
			default:
				// Refused for good: retrying cannot help. The peer counted
				// it and kept it in its dead-letter stream.
				s.log.Warn().Str("seq", e.out.Header.Get(link.HeaderSeq)).Str("reason", ans.Reason).Str("error", ans.Error).Msg("link: peer refused signal")
				e.done = true
			}
			if e.done {
				popDone()
			}

		case now := <-tickC:
			switch {
			case !probeAt.IsZero() && now.Sub(probeAt) > s.timeout:
				// The probe went unanswered: the link is down.
				probeAt = time.Time{}
				if !down {
					s.log.Info().Int("unanswered", len(window)).Msg("link: peer silent; holding signals")
				}
				down = true
				planProbe(backoff)
				backoff = min(2*backoff, s.maxBackoff)
			case probeAt.IsZero() && !probeDue.IsZero() && !now.Before(probeDue):
				sendProbe()
			case probeAt.IsZero() && probeDue.IsZero() && firstOpen(window) != nil && now.Sub(lastHeard) > s.timeout:
				// Silence while signals are out: ask the peer where it is.
				sendProbe()
			}

		case <-bound.C:
			// The byte bound: waiting signals times the mean size.
			n := s.overBytes(ctx)
			// The oldest unsent first: those held in the window.
			for _, e := range window {
				if n == 0 {
					break
				}
				if !e.done && e.sentAt.IsZero() {
					drop(e, false)
					n--
				}
			}
			popDone()
			s.trim = n // the rest from the store, as they are read

		case <-gapTick.C:
			s.countDiscards(ctx)

		case <-progress.C:
			// Keep unanswered signals ours while the peer is away.
			for _, e := range window {
				_ = e.msg.InProgress()
			}
		}
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
		s.log.Warn().Uint64("discarded", n).Uint64("total", s.discarded.Load()).
			Msg("link: the store discarded signals at its bounds (storage.max_age / max_bytes) before they reached this peer")
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

// firstOpen is the first signal of the window not yet decided.
func firstOpen(window []*entry) *entry {
	for _, e := range window {
		if !e.done {
			return e
		}
	}
	return nil
}

// lostBefore reports whether a delivery of the consumer before m never
// reached the sender: lost on the way.
func (s *Sender) lostBefore(m jetstream.Msg) bool {
	if !s.cfg.ResumeOnLoss {
		return false
	}
	meta, err := m.Metadata()
	if err != nil {
		return false
	}
	last := s.lastDelivery
	if d := meta.Sequence.Consumer; d > last {
		s.lastDelivery = d
	}
	return last != 0 && meta.Sequence.Consumer > last+1
}

// prepare turns a stored signal into a link message, or decides that it
// is not for this peer (and acknowledges it).
func (s *Sender) prepare(m jetstream.Msg, replyPrefix string) (*entry, bool) {
	meta, err := m.Metadata()
	if err != nil {
		s.log.Error().Err(err).Msg("link: stored signal without metadata; skipped")
		_ = m.Term()
		return nil, false
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
		return nil, false
	}
	k, err := subject.ParseSignal(m.Subject())
	if err != nil {
		s.log.Error().Err(err).Msg("link: stored signal has a bad subject; skipped")
		_ = m.Term()
		return nil, false
	}
	ev, err := signal.DecodeStructured(m.Data())
	if err != nil {
		s.log.Error().Err(err).Str("subject", m.Subject()).Msg("link: stored signal does not decode; skipped")
		_ = m.Term()
		return nil, false
	}
	c := &Copy{Ev: ev, Key: k, Stored: meta.Timestamp, Now: time.Now()}
	if err := run(s.stages, c); err != nil {
		if errors.Is(err, errNoLinkSubject) {
			_ = m.Term()
		} else {
			_ = m.Ack() // decided here: not for this peer, or dropped at a bound
		}
		return nil, false
	}
	seq := meta.Sequence.Stream
	out := c.Out
	reply := make([]byte, 0, len(replyPrefix)+1+20)
	reply = strconv.AppendUint(append(append(reply, replyPrefix...), '.'), seq, 10)
	out.Reply = string(reply)
	// The link headers in one allocation; send sets Prev and Sent in
	// place (PublishMsg encodes the headers before it returns).
	vals := make([]string, 4)
	vals[0], vals[1] = out.Reply[len(replyPrefix)+1:], s.epoch
	out.Header[link.HeaderSeq] = vals[0:1:1]
	out.Header[link.HeaderEpoch] = vals[1:2:2]
	out.Header[link.HeaderPrev] = vals[2:3:3]
	out.Header[link.HeaderSent] = vals[3:4:4]
	return &entry{msg: m, seq: seq, stored: meta.Timestamp, out: out}, true
}

// setHeader sets h's single value of key in place when it has one.
func setHeader(h nats.Header, key, v string) {
	if vs := h[key]; len(vs) == 1 {
		vs[0] = v
		return
	}
	h[key] = []string{v}
}

// reshape makes the peer's copy of a signal the export policy passes, as
// the stages do (redact, export-tags): a refresh re-states signals with
// it. false: it cannot be made, and is not sent (logged).
func (s *Sender) reshape(ev *signal.Event) bool {
	c := &Copy{Ev: ev}
	for _, st := range s.stages {
		if st.Name != StageRedact && st.Name != StageExportTags {
			continue
		}
		if err := st.Run(c); err != nil {
			return false
		}
	}
	return true
}
