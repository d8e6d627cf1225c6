package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/anfed/anfed/internal/lease"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/subject"
)

// This file is who does a peer's link work. On the embedded server the
// node does it from Start to Stop. With nats.external several processes
// of one operator may share the cluster: each peer's link — its
// connection, session and pipelines (peer.go) — is worked by the one
// process that holds the peer's lease in the cluster's ANFED_LEASES
// bucket (internal/lease), and another takes it over when that process
// stops renewing. What the link's state needs is in the cluster (the
// durable export consumer, the store's epoch and sequences, the signals
// held by dampening), so a new holder carries on where the last one
// stopped: the peer sees the same sender epoch and sequences, and a
// session that opens again and refreshes.

// LeaseBucket is the KV bucket of the links' leases.
const LeaseBucket = "ANFED_LEASES"

// WithInstance names this process among the operator's processes (the
// holder of a link, in `anfed peers`); default host/pid/random.
func WithInstance(name string) Option { return func(n *Node) { n.instance = name } }

// WithLeaseTTL sets the links' lease time to live (nats.external; default
// lease.DefaultTTL): a holder that dies is replaced within about this long.
func WithLeaseTTL(d time.Duration) Option { return func(n *Node) { n.leaseTTL = d } }

// WithLeaseEvents hears every take and end of a lease by this process.
func WithLeaseEvents(f func(lease.Event)) Option { return func(n *Node) { n.leaseEvents = f } }

// Instance is this process's name among the operator's processes.
func (n *Node) Instance() string { return n.instance }

func defaultInstance() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), nuid.Next()[:8])
}

// errNotHeldHere says another process of the operator holds the link.
var errNotHeldHere = errors.New("this process does not hold the link (another process of the operator does: `anfed peers` names it)")

// leaseKey is the key of peer's link in the lease bucket.
func leaseKey(peer string) string { return "link." + peer }

// openLeases opens the bucket of the links' leases (nats.external), on a
// connection of its own: renewals do not queue behind the store's writes.
func (n *Node) openLeases(ctx context.Context) error {
	nc, err := n.connectOwn("leases", natsconf.OpsAccount, "anfed-node-leases")
	if err != nil {
		return err
	}
	n.extra = append(n.extra, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ttl := n.leaseTTL
	if ttl == 0 {
		ttl = lease.DefaultTTL
	}
	n.leases, err = lease.Open(ctx, js, LeaseBucket, ttl, n.config().Storage.Replicas)
	return err
}

// holdLink works p's link whenever this process holds its lease, until
// rctx ends.
func (n *Node) holdLink(rctx context.Context, id string) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.leases.Hold(rctx, leaseKey(id), n.instance, lease.Options{OnEvent: n.leaseEvent},
			func(wctx context.Context, t *lease.Term) {
				p, ok := n.config().Peer(id) // the policy in force, after any reload
				if !ok {
					return
				}
				sctx, cancel := context.WithTimeout(wctx, n.leases.TTL())
				err := n.startPeer(sctx, p, t)
				cancel()
				if err != nil {
					n.dropLink(p.ID)
					n.log.Warn().Err(err).Str("peer", p.ID).Uint64("term", t.Term).Msg("link: lease taken, but the link's work did not start: given back")
					select { // the others' turn before ours again
					case <-wctx.Done():
					case <-time.After(n.leases.TTL() / 3):
					}
					return
				}
				<-wctx.Done()
				n.dropLink(p.ID)
			})
	}()
}

// dropLink ends the link work of peer in this process, as a lost lease
// does: nothing is said to the peer and nothing withdrawn (the link and
// its state carry on at the next holder).
func (n *Node) dropLink(peer string) {
	n.mu.Lock()
	l := n.links[peer]
	delete(n.links, peer)
	n.mu.Unlock()
	if l == nil {
		return // Stop took it
	}
	if l.pipes != nil {
		n.stopPipes(l.pipes)
	}
	l.stop()
	n.closeOwn(l.nc)
}

// linkUpNow opens a new holder's session at once when the leaf link is up
// already (it is the cluster's, not ours), as a restarted node does.
func (n *Node) linkUpNow(ps *peerSession) {
	if !n.LinkUp(ps.peer) {
		return
	}
	ps.mu.Lock()
	out := ps.m.LinkUp(time.Now())
	ps.mu.Unlock()
	for _, o := range out {
		ps.send(o)
	}
}

// fenced makes send quiet once held says no: a session message of a
// process whose lease ran out is not sent.
func fenced(held func() bool, send func(session.Message)) func(session.Message) {
	return func(m session.Message) {
		if held() {
			send(m)
		}
	}
}

func (n *Node) leaseEvent(e lease.Event) {
	if e.Held {
		n.log.Info().Str("lease", e.Key).Uint64("term", e.Term).Str("instance", e.Holder).Msg("lease taken: this process works it")
	} else {
		n.log.Warn().Str("lease", e.Key).Uint64("term", e.Term).Str("instance", e.Holder).Str("reason", e.Reason).Msg("lease ended: this process no longer works it")
	}
	if n.leaseEvents != nil {
		n.leaseEvents(e)
	}
}

// LinkHolder says which process works peer's link: this one on the
// embedded server; with nats.external, what the lease bucket says ("" when
// none holds it now), and the holder's term.
func (n *Node) LinkHolder(ctx context.Context, peer string) (holder string, term uint64, err error) {
	if n.leases == nil {
		return n.instance, 0, nil
	}
	r, err := n.leases.Holder(ctx, leaseKey(peer))
	if errors.Is(err, lease.ErrNotHeld) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	return r.Holder, r.Term, nil
}

// heldHere reports whether this process works peer's link now.
func (n *Node) heldHere(peer string) bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.links[peer] != nil
}

// announcesFor reports whether this process announces the changes of
// peer's conditions on an.cond (our own: "local"). Every process keeps the
// table from the store, and one announces each change: on the embedded
// server the node; with nats.external the holder of the peer's link, and
// for our own conditions the holder of the "conditions" lease.
func (n *Node) announcesFor(peer string) bool {
	if !n.external() {
		return true
	}
	if _, ok := n.config().Peer(peer); ok {
		return n.heldHere(peer)
	}
	return n.announcer.Load()
}

// holdAnnouncer takes its turn at announcing our own conditions' changes.
func (n *Node) holdAnnouncer(rctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.leases.Hold(rctx, "conditions", n.instance, lease.Options{OnEvent: n.leaseEvent},
			func(wctx context.Context, _ *lease.Term) {
				n.announcer.Store(true)
				<-wctx.Done()
				n.announcer.Store(false)
			})
	}()
}

// askHolder asks the process working peer's link for its view of it.
func (n *Node) askHolder(ctx context.Context, peer string) (PeerState, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	m, err := n.ops.RequestWithContext(ctx, subject.APIPeerState, []byte(peer))
	if err != nil {
		return PeerState{}, false
	}
	var ps PeerState
	if json.Unmarshal(m.Data, &ps) != nil || ps.ID != peer {
		return PeerState{}, false
	}
	return ps, true
}

// servePeerState answers for a peer whose link this process works; the
// others stay silent.
func (n *Node) servePeerState(m *nats.Msg) {
	peer := string(m.Data)
	p, ok := n.config().Peer(peer)
	if !ok || !n.heldHere(peer) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b, _ := json.Marshal(n.peerState(ctx, p, false))
	_ = m.Respond(b)
}
