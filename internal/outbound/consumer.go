package outbound

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/store"
)

// Export is one peer's export at work: its sender run until the node
// stops, and its durable consumer resumed from the first signal the peer
// has not answered whenever the sender stops on a lost delivery, a stall
// or an error.
type Export struct {
	Peer string
	JS   jetstream.JetStream
	// Filters are the durable consumer's subjects
	// (exportpolicy.Policy.Subjects); nil for a lossy sender.
	Filters []string
	// Lossy: the sender is a LossySender, which reads no durable
	// consumer, so a failed resume is not retried.
	Lossy bool
	// Watch: look for a consumer that stopped delivering with signals
	// waiting (its pulls lost with a cluster server) and resume it.
	Watch  bool
	LinkUp func() bool
	Log    zerolog.Logger
	// Send is the sender's Run.
	Send func(context.Context) error
	// Held, as for SenderConfig: once it says no, the export neither
	// sends nor resumes the consumer (the link's new holder owns it).
	// nil: always held.
	Held func() bool
}

func (x *Export) held() bool { return x.Held == nil || x.Held() }

// Run runs the peer's sender until rctx is done. When the sender finds a
// delivery lost (ErrResume: a cluster server was lost mid-delivery) or
// stops on an error, the export consumer resumes from the first signal
// the peer has not answered and the sender runs again.
func (x *Export) Run(rctx context.Context) {
	for {
		ctx, stalled := context.WithCancel(rctx)
		watched := make(chan struct{})
		if x.Watch {
			go func() {
				defer close(watched)
				x.watch(ctx, stalled)
			}()
		} else {
			close(watched)
		}
		err := x.Send(ctx)
		stalling := ctx.Err() != nil && rctx.Err() == nil
		stalled()
		<-watched
		if rctx.Err() != nil {
			return
		}
		if stalling {
			x.Log.Warn().Str("peer", x.Peer).Msg("export: the consumer stopped delivering with signals waiting and the link up (its server was lost): resuming from the first unanswered")
		} else if errors.Is(err, ErrVoid) {
			x.Log.Warn().Str("peer", x.Peer).Msg("export: the consumer delivered signals nobody read (a pull request outlived its reader): resuming from the first unanswered")
		} else if errors.Is(err, ErrReconnected) {
			x.Log.Warn().Str("peer", x.Peer).Msg("export: the consumer's connection came back after a loss (what it delivered meanwhile may be lost): resuming from the first unanswered")
		} else if errors.Is(err, ErrResume) {
			x.Log.Warn().Str("peer", x.Peer).Msg("export: a signal was lost between the store and the sender (a server lost mid-delivery, the consumer's connection kicked): resuming from the first unanswered")
		} else {
			x.Log.Error().Err(err).Str("peer", x.Peer).Msg("export stopped; restarting in 1s")
			select {
			case <-rctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		for rctx.Err() == nil {
			if !x.held() {
				return // the consumer is the new holder's to resume
			}
			ctx, cancel := context.WithTimeout(rctx, 10*time.Second)
			err := EnsureConsumer(ctx, x.JS, x.Peer, x.Filters, x.Log)
			cancel()
			if err == nil || x.Lossy {
				break
			}
			x.Log.Warn().Err(err).Str("peer", x.Peer).Msg("export: resume the consumer")
			select {
			case <-rctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

// watch calls stalled when the peer's export consumer, on a cluster,
// holds signals for a peer whose link is up, has room in its window, and
// neither delivers nor has a pull request waiting for three looks in a
// row: its pulls were lost with a server, and the client did not notice.
func (x *Export) watch(ctx context.Context, stalled func()) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var last uint64
	still := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		c, err := x.JS.Consumer(ictx, store.SignalStream, ConsumerName(x.Peer))
		cancel()
		if err != nil {
			still = 0
			continue
		}
		info := c.CachedInfo()
		if info.NumPending > 0 && info.NumWaiting == 0 && info.NumAckPending < config.DefaultLinkWindow &&
			info.Delivered.Stream == last && x.LinkUp() {
			still++
		} else {
			still = 0
		}
		last = info.Delivered.Stream
		if still >= 3 {
			stalled()
			return
		}
	}
}

// EnsureConsumer makes sure peer's export consumer will deliver in store
// order from the first signal the peer has not answered. After a restart,
// JetStream would hand out new signals before those it had delivered and
// not seen acknowledged (until their ack wait ran out), and the peer, having
// taken a later signal, would take the earlier ones for resends it had
// decided. So a consumer with unacknowledged deliveries is recreated to
// start just after its acknowledgement floor.
//
// The consumer reads only the subjects the export policy may send
// (filters). When the policy changed, so do they: the consumer is
// recreated, from the acknowledgement floor when signals still wait for
// the peer (none is lost; the new policy decides them), else from the next
// signal stored (what the old policy decided stays decided).
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, peer string, filters []string, log zerolog.Logger) error {
	name := ConsumerName(peer)
	cfg := ConsumerConfig(peer, filters)
	st, err := js.Stream(ctx, store.SignalStream)
	if err != nil {
		return err
	}
	last := st.CachedInfo().State.LastSeq // before the consumer's state: nothing after it is missed
	c, err := js.Consumer(ctx, store.SignalStream, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		_, err = js.CreateConsumer(ctx, store.SignalStream, cfg)
		return err
	case err != nil:
		return err
	}
	info, err := c.Info(ctx)
	if err != nil {
		return err
	}
	same := slices.Equal(info.Config.FilterSubjects, filters) && info.Config.FilterSubject == ""
	if info.NumAckPending == 0 && same {
		return nil
	}
	start := info.AckFloor.Stream + 1
	if info.NumAckPending == 0 && info.NumPending == 0 {
		start = max(start, last+1)
		// nats-server counts a consumer's pending messages
		// asynchronously: a signal stored just now can be in the stream
		// and not yet in NumPending. Resume after the last one delivered
		// when the old filters match a later one.
		if undelivered(ctx, st, info) {
			start = info.Delivered.Stream + 1
		}
	}
	log.Info().Str("peer", peer).Int("unanswered", info.NumAckPending).Uint64("waiting", info.NumPending).
		Uint64("from", start).Bool("policy_changed", !same).Msg("export resumes from the first signal not decided")
	if err := js.DeleteConsumer(ctx, store.SignalStream, name); err != nil {
		return err
	}
	cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
	cfg.OptStartSeq = start
	// Made again at once under the deleted one's name, the server can
	// answer 500 while the deleted consumer's last state write is still
	// renaming its file ("rename .../o.dat.tmp ...: no such file or
	// directory"): a few tries, then the error.
	for try := 0; ; try++ {
		_, err = js.CreateConsumer(ctx, store.SignalStream, cfg)
		if err == nil || try == 4 || ctx.Err() != nil {
			return err
		}
		log.Debug().Err(err).Str("peer", peer).Msg("export consumer not made yet: trying again")
		time.Sleep(time.Duration(50<<try) * time.Millisecond)
	}
}

// undelivered tells whether the stream holds a message the consumer's
// filters match after the last one it delivered.
func undelivered(ctx context.Context, st jetstream.Stream, info *jetstream.ConsumerInfo) bool {
	filters := info.Config.FilterSubjects
	if info.Config.FilterSubject != "" {
		filters = append(filters, info.Config.FilterSubject)
	}
	for _, f := range filters {
		m, err := st.GetLastMsgForSubject(ctx, f)
		if err != nil {
			continue // none stored
		}
		if m.Sequence > info.Delivered.Stream {
			return true
		}
	}
	return false
}

// DropConsumer removes a durable export consumer left from an earlier
// durable configuration of a peer now lossy: its backlog will never be
// sent, and saying so is better than keeping it. What waited in it
// (unsent or unanswered) is reported to obs, against the peer, as one
// rejection of that many signals (reject.DeliveryChanged).
func DropConsumer(ctx context.Context, js jetstream.JetStream, self, peer string, obs observe.Observer, log zerolog.Logger) error {
	c, err := js.Consumer(ctx, store.SignalStream, ConsumerName(peer))
	if err != nil {
		return nil
	}
	var waiting uint64
	if info, err := c.Info(ctx); err == nil {
		waiting = info.NumPending + uint64(info.NumAckPending)
	}
	if err := js.DeleteConsumer(ctx, store.SignalStream, ConsumerName(peer)); err != nil {
		return fmt.Errorf("export consumer for %s: %w", peer, err)
	}
	log.Warn().Str("peer", peer).Str("reason", string(reject.DeliveryChanged)).Uint64("dropped", waiting).
		Msg("export to this peer is now lossy: its durable backlog is dropped")
	if waiting > 0 && obs != nil {
		obs.Rejected(observe.Rejection{Node: self, To: peer, Reason: reject.DeliveryChanged, Count: waiting,
			Detail: fmt.Sprintf("%d signals waited for %s when its export.delivery became lossy: its durable backlog is dropped, never sent", waiting, peer)})
	}
	return nil
}

// Backlog is how many stored signals still wait to be decided for peer's
// durable export: not yet delivered plus delivered and not yet answered.
func Backlog(ctx context.Context, js jetstream.JetStream, peer string) (uint64, error) {
	info, err := exportInfo(ctx, js, peer)
	if err != nil {
		return 0, err
	}
	return info.NumPending + uint64(info.NumAckPending), nil
}

// exportInfo reads the state of peer's durable export consumer.
func exportInfo(ctx context.Context, js jetstream.JetStream, peer string) (*jetstream.ConsumerInfo, error) {
	c, err := js.Consumer(ctx, store.SignalStream, ConsumerName(peer))
	if err != nil {
		return nil, fmt.Errorf("export consumer for %s: %w", peer, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("export consumer for %s: %w", peer, err)
	}
	return info, nil
}
