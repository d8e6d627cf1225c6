package outbound

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// LossySender forwards our signals to one peer fire and forget, over core
// NATS (export.delivery: lossy). It takes each signal as the store
// republishes it, once stored, and publishes it on the link without
// asking for an answer: nothing waits for the peer, nothing is resent.
// What is published while the link is down, or while the peer cannot keep
// up (NATS drops a slow consumer's messages), is lost to that peer; the
// sender counts what it sent and what it dropped because the link was
// down. For signals whose value is gone in seconds (high-rate performance
// measurements, say), where a backlog after a cut is worse than a gap.
//
// With LossyConfig.Stream (export.delivery: stream) it also forwards our
// checked telemetry (an.telsig, from intake or relayed from a peer),
// marked link.HeaderTelemetry, and numbers every message for the link
// (link.HeaderStreamSeq), what it drops at the link-up stage included,
// so the receiver counts the gaps.
type LossySender struct {
	self, peer string
	src        *nats.Conn // operations account: the store's republish
	nc         *nats.Conn // peer account: the link
	policy     *exportpolicy.Policy
	log        zerolog.Logger
	cfg        LossyConfig
	delivery   string // lossy or stream, for the log

	sent, droppedDown, taken, telemetry atomic.Uint64

	subsMu sync.Mutex
	subs   []*nats.Subscription // one per subject of the export policy; Run's own
	// slow: what NATS dropped from the subscriptions Run has let go.
	slow uint64

	// The stream's numbering (Stream): a number is taken and its message
	// published under seqMu, so the link carries them in order.
	seqMu sync.Mutex
	seq   uint64
	epoch string
}

// LossyConfig is what a lossy sender works with.
type LossyConfig struct {
	Self, Peer string
	Source     *nats.Conn // operations account: reads the stored signals' republish
	Conn       *nats.Conn // the peer account's connection: the link
	Policy     *exportpolicy.Policy
	Log        zerolog.Logger
	// LinkUp reports whether the peer's link is connected. nil: always
	// presumed up.
	LinkUp func() bool
	// Expired and Held, as for SenderConfig.
	Expired func(now time.Time) bool
	Held    func() bool
	// Audit, as for SenderConfig: each copy of a stored signal published
	// on the link (telemetry is never written to the audit trail).
	Audit Auditor
	// Stream: export.delivery stream. Telemetry is forwarded too, and
	// each message numbered for the receiver's loss count.
	Stream bool
	// Feed, with Stream: the node's telemetry comes from it (in process,
	// TelemetryFeed) instead of subscriptions to an.telsig. nil:
	// subscribed.
	Feed *TelemetryFeed
}

// NewLossySender returns the fire-and-forget sender cfg describes; Run
// runs it.
func NewLossySender(cfg LossyConfig) *LossySender {
	delivery := config.DeliveryLossy
	if cfg.Stream {
		delivery = config.DeliveryStream
	}
	return &LossySender{self: cfg.Self, peer: cfg.Peer, src: cfg.Source, nc: cfg.Conn, policy: cfg.Policy, cfg: cfg,
		epoch: strconv.FormatInt(time.Now().UnixNano(), 36), delivery: delivery,
		log: cfg.Log.With().Str("peer", cfg.Peer).Str("delivery", delivery).Logger()}
}

// LossyCounts are a fire-and-forget sender's counts.
type LossyCounts struct {
	// Sent: published on the link, Telemetry of them telemetry.
	Sent      uint64 `json:"sent"`
	Telemetry uint64 `json:"telemetry"`
	// DroppedLinkDown: dropped because the link was down; DroppedSlow:
	// dropped by NATS before the sender took them (it could not keep up)
	// from its subscriptions: telemetry from a TelemetryFeed never is.
	DroppedLinkDown uint64 `json:"dropped_link_down"`
	DroppedSlow     uint64 `json:"dropped_slow"`
}

// Stats are the sender's counts now.
func (s *LossySender) Stats() LossyCounts {
	s.subsMu.Lock()
	slow := s.slow
	for _, sub := range s.subs {
		if n, err := sub.Dropped(); err == nil {
			slow += uint64(n)
		}
	}
	s.subsMu.Unlock()
	return LossyCounts{Sent: s.sent.Load(), Telemetry: s.telemetry.Load(), DroppedLinkDown: s.droppedDown.Load(), DroppedSlow: slow}
}

// number takes the next stream number for the link (Stream), for a
// message published or dropped.
func (s *LossySender) number() uint64 {
	if !s.cfg.Stream {
		return 0
	}
	s.seq++
	return s.seq
}

// What a lossy sender holds, at most, before NATS drops: signals taken
// from the store and not yet forwarded.
const (
	lossyPendingMsgs  = 65536
	lossyPendingBytes = 64 << 20
)

// Run forwards until ctx is done. The sender subscribes only to the
// stored-signal subjects its export policy may send (exportpolicy's
// Subjects, as the durable sender's consumer filters), so a signal for
// no lossy peer costs the lossy senders nothing; Decide stays the final
// check.
func (s *LossySender) Run(ctx context.Context) error {
	var (
		mu      sync.Mutex // the subscriptions' callbacks run concurrently
		up      = true
		checked time.Time
		logged  time.Time
		unsent  uint64
	)
	linkUp := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); s.cfg.LinkUp != nil && now.Sub(checked) >= 100*time.Millisecond {
			up, checked = s.cfg.LinkUp(), now
		}
		return up
	}
	dropped := func() {
		s.seqMu.Lock()
		s.number() // the receiver counts it as a gap
		s.seqMu.Unlock()
		s.droppedDown.Add(1)
		mu.Lock()
		defer mu.Unlock()
		unsent++
		if now := time.Now(); now.Sub(logged) >= 5*time.Second {
			s.log.Warn().Uint64("dropped", unsent).Uint64("total", s.droppedDown.Load()).
				Msg("link: link down: signals for this peer dropped (export.delivery: " + s.delivery + ")")
			unsent, logged = 0, now
		}
	}
	stages := (&stager{self: s.self, policy: s.policy, log: s.log, expired: s.cfg.Expired, linkUp: linkUp, dropDown: dropped}).stages()
	// forward takes one signal its subscriptions or the feed delivered:
	// ev is the feed's decoded signal (nil: decode data).
	forward := func(subj string, ev *signal.Event, data []byte) {
		s.taken.Add(1)
		k, err := subject.ParseSignal(subj)
		if err != nil {
			return
		}
		// The copy and the room for its link message in one allocation.
		sc := &sendCopy{}
		if ev != nil {
			sc.c.Ev = ev.Clone()
		} else if sc.c.Ev, err = signal.DecodeStructured(data); err != nil {
			s.log.Error().Err(err).Str("subject", subj).Msg("link: stored signal does not decode; skipped")
			return
		}
		c := &sc.c
		c.Key, c.Now, c.lm = k, time.Now(), &sc.lm
		if err := run(stages, c); err != nil {
			return
		}
		out := c.Out
		if s.cfg.Held != nil && !s.cfg.Held() {
			return // another process holds the link now
		}
		// The link headers' values are the link message's own (linkMsg),
		// set without a map write of their own each.
		vals := c.lm.vals[:]
		tel := strings.HasPrefix(subj, subject.TelemetryPrefix+".")
		if tel {
			vals[0] = "1"
			out.Header[link.HeaderTelemetry] = vals[0:1:1]
		}
		var num [40]byte
		sent := strconv.AppendInt(num[:0], time.Now().UnixNano(), 10)
		s.seqMu.Lock()
		if n := s.number(); n != 0 {
			// Sent and the number in one string.
			b := strconv.AppendUint(sent, n, 10)
			both := string(b)
			vals[1], vals[2], vals[3] = both[:len(sent)], both[len(sent):], s.epoch
			out.Header[link.HeaderStreamSeq] = vals[2:3:3]
			out.Header[link.HeaderStreamEpoch] = vals[3:4:4]
		} else {
			vals[1] = string(sent)
		}
		out.Header[link.HeaderSent] = vals[1:2:2]
		err = s.nc.PublishMsg(out)
		s.seqMu.Unlock()
		if err != nil {
			s.droppedDown.Add(1)
			return
		}
		s.sent.Add(1)
		if tel {
			s.telemetry.Add(1)
			return // never in the audit trail: telemetry is not stored
		}
		audit(s.cfg.Audit, s.peer, c)
	}
	// Bounded: past these limits NATS drops, which is this mode's promise.
	// The bound is the sender's, shared by its subscriptions.
	subjects := s.policy.Subjects()
	if s.cfg.Stream {
		if s.cfg.Feed != nil {
			// Telemetry comes from the feed, on intake's and the
			// receivers' workers, filtered as a subscription would be.
			leave := s.cfg.Feed.join(&telemetryTap{filters: s.policy.TelemetrySubjects(), take: forward})
			defer leave()
		} else {
			subjects = append(subjects, s.policy.TelemetrySubjects()...)
		}
	}
	msgs, bytes := lossyPendingMsgs/len(subjects), lossyPendingBytes/len(subjects)
	for _, subj := range subjects {
		sub, err := s.src.Subscribe(subj, func(m *nats.Msg) { forward(m.Subject, nil, m.Data) })
		if err != nil {
			return errors.Join(err, s.unsubscribe())
		}
		_ = sub.SetPendingLimits(msgs, bytes)
		s.subsMu.Lock()
		s.subs = append(s.subs, sub)
		s.subsMu.Unlock()
	}
	<-ctx.Done()
	return s.unsubscribe()
}

// Delivered is how many signals (stored, and telemetry for a stream
// sender) the sender's subscriptions took,
// exported or not: what its policy's subjects let through.
func (s *LossySender) Delivered() uint64 { return s.taken.Load() }

func (s *LossySender) unsubscribe() error {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	var errs []error
	for _, sub := range s.subs {
		if n, err := sub.Dropped(); err == nil {
			s.slow += uint64(n)
		}
		errs = append(errs, sub.Unsubscribe())
	}
	s.subs = nil
	return errors.Join(errs...)
}
