package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/lease"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// peerLink is one peer's link at work. The link's connection (in the
// peer's account) and its session live as long as the peering; the
// pipelines — the receiver and the export — are made from the peer's
// policy and made again when a reload changes it, while the leaf link
// and the session stay up.
type peerLink struct {
	p  *config.Peer
	nc *nats.Conn
	ps *peerSession
	// pipes are replaced under Node.mu.
	pipes *peerPipes
	// held says whether this process may still send on the link: its
	// lease's validity with nats.external (links.go), nil (always) on
	// the embedded server.
	held func() bool
	// stream counts the peer's stream messages (export.delivery: stream
	// at its end) across the receivers a reload makes.
	stream *inbound.StreamTally
}

// peerPipes are a peer's pipelines, made from one version of its policy.
type peerPipes struct {
	rcv   *inbound.Receiver
	sub   *nats.Subscription
	xc    *nats.Conn
	snd   *outbound.Sender
	lossy *outbound.LossySender
	// cancel ends the export; wg waits for it.
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopped is closed when the pipelines stop (stopPipes): a refresh
	// running on their sender ends then and runs again on the new one.
	stopped  chan struct{}
	stopOnce sync.Once
}

// stop ends the link's pipelines and its session's work; its
// connections stay open for the caller to close.
func (l *peerLink) stop() {
	l.ps.goneOnce.Do(func() { close(l.ps.gone) })
	if l.pipes != nil {
		l.pipes.cancel()
		l.pipes.wg.Wait()
	}
}

// link is the peer's link (nil for no such peer).
func (n *Node) link(peer string) *peerLink {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if l := n.links[peer]; l != nil {
		return l
	}
	return n.stopped[peer] // their counts stay readable after Stop
}

// sender is the peer's durable sender (nil: none, or lossy).
func (n *Node) sender(peer string) *outbound.Sender {
	snd, _ := n.senderOf(peer)
	return snd
}

// senderOf is peer's durable sender now and a channel closed when its
// pipelines stop (a reload replaces them); nil, nil: none.
func (n *Node) senderOf(peer string) (*outbound.Sender, <-chan struct{}) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if l := n.links[peer]; l != nil && l.pipes != nil && l.pipes.snd != nil {
		return l.pipes.snd, l.pipes.stopped
	}
	return nil, nil
}

// receivers are the links' receivers now (after Stop: those it
// stopped, whose counts stay readable).
func (n *Node) receivers() []*inbound.Receiver {
	n.mu.RLock()
	defer n.mu.RUnlock()
	links := n.links
	if len(links) == 0 {
		links = n.stopped
	}
	out := make([]*inbound.Receiver, 0, len(links))
	for _, l := range links {
		if l.pipes != nil {
			out = append(out, l.pipes.rcv)
		}
	}
	return out
}

// receiverDeps are what a new receiver shares with the others: the
// pinned keys and origins of the policy in force.
func (n *Node) receiverDeps() inbound.ReceiverDeps {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.deps
}

// startPeer opens p's link: its connection, its session and its
// pipelines; under t, the link's lease, with nats.external (nil: none).
func (n *Node) startPeer(ctx context.Context, p *config.Peer, t *lease.Term) error {
	acc := natsconf.PeerAccount(p.ID)
	nc, err := n.connectOwn("link "+p.ID, acc, "anfed-node-"+p.ID, nats.CustomInboxPrefix(subject.Ack(n.ID())))
	if err != nil {
		return err
	}
	l := &peerLink{p: p, nc: nc, ps: n.newSession(p, nc), stream: &inbound.StreamTally{}}
	if t != nil {
		l.held = t.Valid
		l.ps.send = fenced(t.Valid, l.ps.send)
	}
	n.mu.Lock()
	n.links[p.ID] = l
	n.mu.Unlock()
	pp, err := n.startPipes(ctx, l, p)
	if err != nil {
		return err
	}
	n.mu.Lock()
	l.pipes = pp
	n.mu.Unlock()
	if t != nil {
		n.linkUpNow(l.ps)
	}
	return nil
}

// startPipes makes and starts p's receiver and export on the link l.
func (n *Node) startPipes(ctx context.Context, l *peerLink, p *config.Peer) (pp *peerPipes, err error) {
	pctx, cancel := context.WithCancel(context.Background())
	pp = &peerPipes{cancel: cancel, stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			n.stopPipes(pp)
		}
	}()
	ps := l.ps
	pp.rcv = inbound.NewReceiver(inbound.ReceiverConfig{
		Self: n.ID(), Peer: p, Deps: n.receiverDeps(), Log: n.log,
		Publish:    l.nc.Publish, // advisories to the peer, on the link
		Conditions: n.table,
		OnChange:   n.announce,
		OnSession:  func(r *inbound.Receiver, m *nats.Msg) { n.sessionMsg(pctx, ps, r, m) },
		Stream:     l.stream,
		Telemetry:  n.handTelemetry, // checked telemetry to our local subscribers and stream senders, never stored
	})
	pp.rcv.Start(pctx)
	if err := pp.rcv.Restore(ctx); err != nil {
		return pp, err
	}
	if pp.sub, err = n.subscribeTo(l.nc, pp.rcv.Subject(), pp.rcv.Handle); err != nil {
		return pp, err
	}
	// The export reads and acknowledges on a connection of its own.
	if pp.xc, err = n.connectOwn("export "+p.ID, natsconf.OpsAccount, "anfed-node-export-"+p.ID); err != nil {
		return pp, err
	}
	cfg := n.config()
	if p.Export.Lossy() {
		// A durable export consumer left from an earlier durable
		// configuration is removed: its backlog will never be sent, and
		// saying so (delivery-changed, against the peer) is better than
		// keeping it.
		if err := outbound.DropConsumer(ctx, n.store.JetStream(), n.ID(), p.ID, n.obs, n.log); err != nil {
			return pp, err
		}
		lcfg := outbound.LossyConfig{Self: n.ID(), Peer: p.ID, Source: pp.xc, Conn: l.nc, Policy: exportpolicy.ForConfig(cfg, p, exportpolicy.WithIntents(n.intents)), Log: n.log,
			Expired: p.ExpiredAt, LinkUp: func() bool { return n.LinkUp(p.ID) }, Held: l.held, Stream: p.Export.Stream(),
			Feed: n.tel}
		if a := n.auditor(); a != nil {
			lcfg.Audit = a // never a nil *audit.Writer in the interface
		}
		pp.lossy = outbound.NewLossySender(lcfg)
		n.runExport(pctx, pp, &outbound.Export{Peer: p.ID, JS: n.store.JetStream(), Lossy: true, Send: pp.lossy.Run, Held: l.held})
		return pp, nil
	}
	policy := exportpolicy.ForConfig(cfg, p, exportpolicy.WithIntents(n.intents))
	js := n.store.JetStream()
	if err := outbound.EnsureConsumer(ctx, js, p.ID, policy.Subjects(), n.log); err != nil {
		return pp, fmt.Errorf("export consumer for %s: %w", p.ID, err)
	}
	xjs, err := jetstream.New(pp.xc)
	if err != nil {
		return pp, err
	}
	cons, err := xjs.Consumer(ctx, store.SignalStream, outbound.ConsumerName(p.ID))
	if err != nil {
		return pp, fmt.Errorf("export consumer for %s: %w", p.ID, err)
	}
	scfg := outbound.SenderConfig{
		Self: n.ID(), Peer: p.ID, Epoch: n.epoch, Consumer: cons, Conn: l.nc, Policy: policy, Log: n.log,
		Expired:  p.ExpiredAt,
		Observer: n.obs,
		FirstSeq: n.store.FirstSeq,
		Buffer: outbound.Buffer{
			MaxAge:   time.Duration(p.Export.Buffer.MaxAge),
			MaxBytes: int64(p.Export.Buffer.MaxBytes),
			MeanSize: n.store.MeanSize,
		},
		Pace:     outbound.NewPace(p.Export),
		Held:     l.held,
		Diverged: func() { n.refreshAfterDrop(l.ps) },
	}
	if a := n.auditor(); a != nil {
		scfg.Audit = a // never a nil *audit.Writer in the interface
	}
	if n.signer != nil {
		scfg.Resign = n.signer.Sign // export.redact signs the redacted copy again
		scfg.Stale = n.signer.Stale // and a key rotation's switch what the old key signed
	}
	if !n.external() {
		// A kicked export connection loses what was delivered while it
		// was away: resume when it is back, and look for deliveries made
		// into the void. In process only: on a cluster the consumer's
		// state read during a leader's election can be behind, and a
		// resume then would start a Run that cannot see the jump the
		// old one would have seen (lostBefore); there the stall watch
		// (Export.Watch) and the jump do the work (TestExternalCluster
		// lost a signal 3 of 3 runs with these on).
		scfg.Reconnects = func() uint64 { return pp.xc.Stats().Reconnects }
		scfg.WatchVoid = true
	}
	pp.snd = outbound.NewSender(scfg)
	n.runExport(pctx, pp, &outbound.Export{Peer: p.ID, JS: js, Filters: policy.Subjects(), Send: pp.snd.Run, Held: l.held,
		// On a cluster an unpaced consumer's pulls can be lost with a server.
		Watch: n.external() && p.Export.MaxRate <= 0})
	return pp, nil
}

// stopPipes stops a peer's pipelines: the receiver's subscription
// drained, the receiver stopped (it answers what it was handed), the
// export ended and its connection closed. Signals the peer sends
// meanwhile go unanswered and its sender resends them; what our export
// had in flight is sent again by the next export from the consumer's
// acknowledgement floor.
func (n *Node) stopPipes(pp *peerPipes) {
	pp.stopOnce.Do(func() { close(pp.stopped) })
	if pp.sub != nil {
		_ = pp.sub.Drain()
		waitDrained(pp.sub)
	}
	if pp.rcv != nil {
		pp.rcv.Stop()
	}
	pp.cancel()
	pp.wg.Wait()
	if pp.xc != nil {
		n.closeOwn(pp.xc)
	}
}

// runExport runs a peer's export until its pipelines stop.
func (n *Node) runExport(pctx context.Context, pp *peerPipes, x *outbound.Export) {
	x.LinkUp = func() bool { return n.LinkUp(x.Peer) }
	x.Log = n.log
	pp.wg.Add(1)
	go func() {
		defer pp.wg.Done()
		x.Run(pctx)
	}()
}

// subscribeTo is subscribe for a subscription its caller owns.
func (n *Node) subscribeTo(nc *nats.Conn, subj string, h nats.MsgHandler) (*nats.Subscription, error) {
	sub, err := nc.QueueSubscribe(subj, "anfed", h)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subj, err)
	}
	// Bounded: past these limits NATS drops messages and reports a slow
	// consumer; producers that ask for an answer then time out and retry.
	if err := sub.SetPendingLimits(65536, 256<<20); err != nil {
		return nil, err
	}
	return sub, nil
}

// handTelemetry hands checked telemetry on — intake's, and what the
// receivers took from stream peers: published on an.telsig to local
// subscribers (in process, encoded only when one listens) and, in process,
// handed to the stream senders (outbound.TelemetryFeed), which take
// what their export policies' telemetry subjects match. With
// nats.external the senders, maybe in another process, subscribe to
// an.telsig instead.
func (n *Node) handTelemetry(subj string, ev *signal.Event) error {
	if n.opsAcc == nil || n.opsAcc.SubscriptionInterest(subj) {
		if err := n.ops.Publish(subj, ev.Encode()); err != nil {
			return err
		}
	}
	n.tel.Offer(subj, ev)
	return nil
}

// TelemetryAccepted is how many telemetry signals from local producers
// (an.tel) intake checked, signed and handed on since the start.
func (n *Node) TelemetryAccepted() uint64 {
	if n.intake == nil {
		return 0
	}
	return n.intake.TelemetryAccepted()
}
