package link

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/exportpolicy"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Hop headers of the link protocol. They order and correlate a link's
// messages; they are not part of the signal.
const (
	// HeaderSeq is the sender's store sequence of the signal.
	HeaderSeq = "Anfed-Seq"
	// HeaderPrev is the store sequence of the signal the sender exported
	// to this peer just before, or 0 when it makes no claim (after a
	// restart). The receiver refuses a signal whose Prev it has not
	// decided yet, so a lost message is resent before any later one is
	// taken: per-source order holds across link cuts.
	HeaderPrev = "Anfed-Prev"
	// HeaderEpoch names the sender's store; a new store restarts the
	// sequence.
	HeaderEpoch = "Anfed-Epoch"
	// HeaderFront marks the first signal the sender has not had answered:
	// everything before it the receiver decided. A receiver that knows
	// nothing of the link yet (it restarted) starts only from such a
	// signal, never from one sent behind it.
	HeaderFront = "Anfed-Front"
)

// DefaultWindow is how many signals a sender keeps in flight to a peer.
const DefaultWindow = 512

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
}

// ConsumerName is the durable consumer of the sender to peer.
func ConsumerName(peer string) string { return "export-" + peer }

// ConsumerConfig is the durable consumer a sender reads.
func ConsumerConfig(peer string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(peer),
		Description:   "signals exported to " + peer,
		FilterSubject: subject.Signals,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       time.Minute,
		MaxAckPending: DefaultWindow,
		MaxDeliver:    -1,
	}
}

// NewSender returns the sender of operator self to peer. epoch names our
// store (its creation time).
func NewSender(self, peer, epoch string, cons jetstream.Consumer, nc *nats.Conn, policy *exportpolicy.Policy, log zerolog.Logger) *Sender {
	return &Sender{
		self: self, peer: peer, epoch: epoch, cons: cons, nc: nc, policy: policy,
		log:     log.With().Str("peer", peer).Logger(),
		window:  DefaultWindow,
		timeout: 500 * time.Millisecond,
		// Resending to a peer that is away costs little (no interest:
		// the server drops it), and a short cap lets the backlog start
		// draining soon after the link is back.
		minBackoff: 25 * time.Millisecond,
		maxBackoff: 250 * time.Millisecond,
	}
}

// entry is one exported signal in flight.
type entry struct {
	msg    jetstream.Msg
	seq    uint64
	out    *nats.Msg
	sentAt time.Time
	done   bool
	// skipped: given up as undeliverable; the peer never decided it, so
	// it is no predecessor of the next signal.
	skipped bool
	// missed counts resend rounds in which the peer answered a later
	// signal but not this one.
	missed int
	// noRoute: NATS answered "no responders" for it: nothing on the link
	// would take it (the link is down, or its permissions drop it).
	noRoute bool
	// dropped counts resend rounds in which it had no route while the
	// peer heard us; two in a row rule out a link that came up mid-round.
	dropped int
}

// maxMissed is how many resend rounds a signal may go unheard while the
// peer answers later ones before the sender concludes the link itself
// drops it: NATS permissions derived from the peer's policy (for instance
// a relayed signal to a peer that does not accept transit) silently drop
// what they forbid. Without this, one such signal would hold up the link
// for good.
const maxMissed = 5

// Run forwards until ctx is done.
func (s *Sender) Run(ctx context.Context) error {
	it, err := s.cons.Messages(jetstream.PullMaxMessages(s.window))
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
			select {
			case in <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { it.Stop(); <-feedDone }()

	replyPrefix := "an.ack." + s.self + "." + nuid.Next()
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

func (s *Sender) loop(ctx context.Context, in <-chan jetstream.Msg, replies <-chan *nats.Msg, replyPrefix string) error {
	var (
		window    []*entry
		bySeq     = map[uint64]*entry{}
		decided   uint64 // the last signal the peer decided, in order: the front's Prev
		heardLate bool   // since the last resend, the peer answered a signal behind the front
		stalled   bool
		resendAt  time.Time
		lastHeard time.Time // when the peer last answered, or we last (re)sent into silence
		backoff   = s.minBackoff
		failures  int
		tick      = time.NewTicker(50 * time.Millisecond)
		progress  = time.NewTicker(15 * time.Second)
	)
	defer tick.Stop()
	defer progress.Stop()

	// prevOf is the predecessor the peer must have decided before e: the
	// nearest earlier signal in the window it can decide, else the last it
	// decided.
	prevOf := func(i int) uint64 {
		for j := i - 1; j >= 0; j-- {
			if !window[j].skipped {
				return window[j].seq
			}
		}
		return decided
	}
	send := func(i int) {
		e := window[i]
		if len(window) == 1 || lastHeard.IsZero() {
			lastHeard = time.Now() // the clock for "no answer" starts now
		}
		e.out.Header.Set(HeaderPrev, strconv.FormatUint(prevOf(i), 10))
		if e == firstOpen(window) {
			e.out.Header.Set(HeaderFront, "1")
		} else {
			e.out.Header.Del(HeaderFront)
		}
		e.out.Header.Set(HeaderSent, strconv.FormatInt(time.Now().UnixNano(), 10))
		e.sentAt = time.Now()
		if err := s.nc.PublishMsg(e.out); err != nil {
			// The connection is closing or its buffer is full: the
			// timeout below resends.
			s.log.Debug().Err(err).Msg("link: publish")
		}
	}
	stall := func(why string, err error) {
		if stalled {
			return
		}
		stalled = true
		failures++
		resendAt = time.Now().Add(backoff)
		if failures == 1 || failures%20 == 0 {
			s.log.Info().Err(err).Str("why", why).Int("unanswered", len(window)).Int("attempt", failures).Msg("link: peer not taking signals; will resend")
		}
		backoff = min(2*backoff, s.maxBackoff)
	}
	popDone := func() {
		for len(window) > 0 && window[0].done {
			e := window[0]
			if !e.skipped {
				decided = e.seq
			}
			_ = e.msg.Ack()
			delete(bySeq, e.seq)
			window[0] = nil
			window = window[1:]
		}
	}

	for {
		var inCh <-chan jetstream.Msg
		if len(window) < s.window {
			inCh = in
		}
		select {
		case <-ctx.Done():
			return nil // unacknowledged signals are redelivered after restart

		case m := <-inCh:
			e, ok := s.prepare(m, replyPrefix)
			if !ok {
				continue // decided here: not for this peer
			}
			window = append(window, e)
			bySeq[e.seq] = e
			if !stalled {
				send(len(window) - 1)
			}

		case r := <-replies:
			if r.Header.Get("Status") == "503" && strings.HasSuffix(r.Subject, ".probe") {
				continue // no route: the link is down
			}
			if r.Header.Get("Status") != "503" {
				lastHeard = time.Now()
			}
			if strings.HasSuffix(r.Subject, ".probe") {
				if ans, err := signal.ParseAnswer(r.Data); err == nil && ans.Status == signal.StatusAlive {
					// The peer hears us: what it has not answered, it did
					// not get.
					heardLate = true
				}
				continue
			}
			seq, err := strconv.ParseUint(r.Subject[strings.LastIndexByte(r.Subject, '.')+1:], 10, 64)
			e := bySeq[seq]
			if err != nil || e == nil || e.done {
				continue // an answer to a resend already answered
			}
			if r.Header.Get("Status") == "503" {
				// From NATS, not from the peer: proves nothing about it.
				e.noRoute = true
				stall("no route", errors.New("no responders on the link"))
				continue
			}
			if e != firstOpen(window) {
				heardLate = true
			}
			ans, err := signal.ParseAnswer(r.Data)
			switch {
			case err != nil:
				stall("bad answer", err)
			case ans.OK():
				e.done = true
			case retryable(ans.Reason):
				stall(ans.Reason, ans.Err())
			default:
				// Refused for good: retrying cannot help. The peer counted
				// it and kept it in its dead-letter stream.
				ev := e.out.Header.Get(HeaderSeq)
				s.log.Warn().Str("seq", ev).Str("reason", ans.Reason).Str("error", ans.Error).Msg("link: peer refused signal")
				e.done = true
			}
			if e.done {
				popDone()
				if !stalled {
					backoff, failures = s.minBackoff, 0
				}
			}

		case now := <-tick.C:
			if stalled && !now.Before(resendAt) {
				stalled = false
				lastHeard = now
				if heardLate {
					// The peer hears us. A signal NATS found no route for
					// is dropped by the link's permissions; one that stays
					// unanswered round after round, likewise.
					if f := firstOpen(window); f != nil {
						f.missed++
					}
					for _, e := range window {
						if e.noRoute {
							e.dropped++
						}
						if !e.done && (e.dropped >= 2 || e.missed >= maxMissed) {
							s.log.Error().Str("seq", e.out.Header.Get(HeaderSeq)).Str("subject", e.out.Subject).
								Msg("link: the link drops this signal while the peer hears us: given up. Most likely the peer's " +
									"permissions forbid it, e.g. we relay (export.transit) and the peer does not accept transit " +
									"(import.transit): align the two policies")
							e.done, e.skipped = true, true
						}
					}
					popDone()
				}
				for _, e := range window {
					e.noRoute = false
				}
				heardLate = false
				for i, e := range window {
					if !e.done {
						send(i)
					}
				}
				if len(window) > 0 {
					probe := nats.NewMsg(ProbeSubject(s.self))
					probe.Reply = replyPrefix + ".probe"
					probe.Header.Set(HeaderEpoch, s.epoch)
					_ = s.nc.PublishMsg(probe)
				}
				continue
			}
			// Silence, not slowness: while answers keep coming the peer is
			// working through the window, however long it is.
			if !stalled && len(window) > 0 && now.Sub(lastHeard) > s.timeout {
				stall("timeout", errors.New("no answer within "+s.timeout.String()))
			}

		case <-progress.C:
			// Keep unanswered signals ours while the peer is away.
			for _, e := range window {
				_ = e.msg.InProgress()
			}
		}
	}
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

// retryable reports whether a refusal is about now, not about the signal.
func retryable(reason string) bool {
	switch reject.Reason(reason) {
	case reject.Unavailable, reject.RateLimited, reject.OutOfOrder:
		return true
	}
	return false
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
	if d := s.policy.Decide(ev, k.Class); !d.Export {
		s.log.Trace().Str("type", ev.Type).Str("subject", ev.Subject).Str("rule", d.Rule).Msg("link: not exported")
		_ = m.Ack()
		return nil, false
	}
	ev.Path = append(ev.Path, s.self)
	seq := meta.Sequence.Stream
	out := nats.NewMsg(subject.Link(s.self, k))
	out.Reply = replyPrefix + "." + strconv.FormatUint(seq, 10)
	out.Data = ev.Encode()
	out.Header.Set(HeaderSeq, strconv.FormatUint(seq, 10))
	out.Header.Set(HeaderEpoch, s.epoch)
	return &entry{msg: m, seq: seq, out: out}, true
}
