package link

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/exportpolicy"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Sender forwards our stored signals to one peer, in store order, through a
// durable JetStream consumer: a signal is acknowledged in the store only
// when the peer answered. While the peer is unreachable the sender retries
// the same signal with backoff, so order is kept and nothing is skipped.
type Sender struct {
	self, peer string
	cons       jetstream.Consumer
	nc         *nats.Conn // in the peer account, inbox prefix an.ack.<self>
	policy     *exportpolicy.Policy
	log        zerolog.Logger
	timeout    time.Duration
	minBackoff time.Duration
	maxBackoff time.Duration
}

// ConsumerName is the durable consumer of the sender to peer.
func ConsumerName(peer string) string { return "export-" + peer }

// ConsumerConfig is the durable consumer a sender reads. One signal is in
// flight at a time, which keeps per-source order across retries.
func ConsumerConfig(peer string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName(peer),
		Description:   "signals exported to " + peer,
		FilterSubject: subject.Signals,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1,
		MaxDeliver:    -1,
	}
}

// NewSender returns the sender of operator self to peer.
func NewSender(self, peer string, cons jetstream.Consumer, nc *nats.Conn, policy *exportpolicy.Policy, log zerolog.Logger) *Sender {
	return &Sender{
		self: self, peer: peer, cons: cons, nc: nc, policy: policy,
		log:        log.With().Str("peer", peer).Logger(),
		timeout:    2 * time.Second,
		minBackoff: 50 * time.Millisecond,
		maxBackoff: 2 * time.Second,
	}
}

// Run forwards until ctx is done.
func (s *Sender) Run(ctx context.Context) error {
	it, err := s.cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			s.log.Warn().Err(err).Msg("link: export consumer")
			continue
		}
		s.forward(ctx, msg)
	}
}

func (s *Sender) forward(ctx context.Context, msg jetstream.Msg) {
	k, err := subject.ParseSignal(msg.Subject())
	if err != nil {
		s.log.Error().Err(err).Msg("link: stored signal has a bad subject; skipped")
		_ = msg.Term()
		return
	}
	ev, err := signal.DecodeStructured(msg.Data())
	if err != nil {
		s.log.Error().Err(err).Str("subject", msg.Subject()).Msg("link: stored signal does not decode; skipped")
		_ = msg.Term()
		return
	}
	if d := s.policy.Decide(ev, k.Class); !d.Export {
		s.log.Debug().Str("type", ev.Type).Str("subject", ev.Subject).Str("rule", d.Rule).Msg("link: not exported")
		_ = msg.Ack()
		return
	}
	ev.Path = append(ev.Path, s.self)
	out := nats.NewMsg(subject.Link(s.self, k))
	out.Data = ev.Encode()

	backoff := s.minBackoff
	for attempt := 1; ; attempt++ {
		out.Header.Set(HeaderSent, strconv.FormatInt(time.Now().UnixNano(), 10))
		rctx, cancel := context.WithTimeout(ctx, s.timeout)
		resp, err := s.nc.RequestMsgWithContext(rctx, out)
		cancel()
		if err == nil {
			ans, perr := signal.ParseAnswer(resp.Data)
			switch {
			case perr != nil:
				err = perr
			case ans.OK():
				_ = msg.Ack()
				return
			case ans.Reason == string(reject.Unavailable) || ans.Reason == string(reject.RateLimited):
				err = ans.Err()
			default:
				// Refused for good: retrying cannot help. The peer
				// counted it and kept it in its dead-letter stream.
				s.log.Warn().Str("type", ev.Type).Str("subject", ev.Subject).Str("id", ev.ID).
					Str("reason", ans.Reason).Str("error", ans.Error).Msg("link: peer refused signal")
				_ = msg.Ack()
				return
			}
		}
		if ctx.Err() != nil {
			return // not acknowledged: redelivered after restart
		}
		if attempt == 1 || attempt%20 == 0 {
			s.log.Info().Err(err).Int("attempt", attempt).Str("id", ev.ID).Msg("link: peer not answering; retrying")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.maxBackoff)
		_ = msg.InProgress()
	}
}
