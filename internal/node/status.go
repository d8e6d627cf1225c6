package node

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/subject"
)

// Export is one signal this node put on the link to a peer (a resend
// counts again).
type Export struct {
	Peer string
	// Seq is the signal's sequence in our store (0 if unknown).
	Seq uint64
	Msg *nats.Msg
	At  time.Time
}

// WatchExports calls f for every signal the node's senders put on a link
// (durable and lossy alike), from an in-process subscription of its own in
// each peer's account: it sees what the peer is sent, and nothing more.
// f runs on the subscription's goroutine and must not block. stop ends
// the watch; call it before Stop.
func (n *Node) WatchExports(f func(Export)) (stop func(), err error) {
	if n.ops == nil {
		return nil, errors.New("node not started")
	}
	var conns []*nats.Conn
	stop = func() {
		for _, nc := range conns {
			nc.Close()
		}
	}
	probe, advisory, sess := subject.Probe(n.ID()), subject.Advisory(n.ID()), subject.Session(n.ID())
	for _, p := range n.config().Peers {
		peer := p.ID
		nc, err := n.connect(natsconf.PeerAccount(peer), nats.Name("anfed-node-watch-"+peer))
		if err != nil {
			stop()
			return nil, err
		}
		conns = append(conns, nc)
		sub, err := nc.Subscribe(subject.LinkFrom(n.ID()), func(m *nats.Msg) {
			if m.Subject == probe || m.Subject == advisory || m.Subject == sess {
				return
			}
			var seq uint64
			fmt.Sscan(m.Header.Get(link.HeaderSeq), &seq)
			f(Export{Peer: peer, Seq: seq, Msg: m, At: time.Now()})
		})
		if err != nil {
			stop()
			return nil, fmt.Errorf("watch exports to %s: %w", peer, err)
		}
		// Never slow the link down: past this the watch misses messages
		// (and NATS counts a slow consumer), the link does not.
		if err := sub.SetPendingLimits(65536, 64<<20); err != nil {
			stop()
			return nil, err
		}
		if err := nc.Flush(); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// Readiness says why the node is not ready to carry signals, naming each
// failing part; nil when it is: the NATS server accepts connections,
// JetStream is enabled, the store takes a probe write and is not full,
// intake answers a probe, the node's own connections (intake, store,
// conditions, each peer's link and export) are connected, the policy is
// loaded, and each configured peer has its link pipelines. A peer's link
// being down is not a fault of this node (its signals wait in the store)
// and does not make it unready; /v1/peers shows it. The probes run at
// most once every 2 s.
func (n *Node) Readiness() error {
	var errs []error
	switch {
	case n.external():
		if n.ops == nil || !n.ops.IsConnected() {
			errs = append(errs, errors.New("nats: not connected to the cluster"))
		}
	case n.srv == nil:
		errs = append(errs, errors.New("nats: not started"))
	case !n.srv.Running():
		errs = append(errs, errors.New("nats: not running"))
	case !n.srv.JetStreamEnabled():
		errs = append(errs, errors.New("jetstream: not enabled"))
	}
	if err := n.storeReadiness(); err != nil {
		errs = append(errs, err)
	}
	if err := n.intakeReadiness(); err != nil {
		errs = append(errs, err)
	}
	if err := n.connsReadiness(); err != nil {
		errs = append(errs, err)
	}
	if n.config() == nil {
		errs = append(errs, errors.New("config: not loaded"))
	}
	if n.store == nil {
		errs = append(errs, errors.New("store: not open"))
	}
	if n.table == nil {
		errs = append(errs, errors.New("conditions: table not started"))
	}
	if n.config() != nil {
		// With nats.external a link is another process's while this one
		// waits for its lease: no fault of this one.
		if got, want := len(n.receivers()), len(n.config().Peers); got != want && !n.external() {
			errs = append(errs, fmt.Errorf("links: %d of %d peers configured", got, want))
		}
	}
	return errors.Join(errs...)
}
