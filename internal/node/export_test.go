package node

import "github.com/nats-io/nats.go"

// StoreConn is the connection the node writes to JetStream through, for
// tests that break it.
func (n *Node) StoreConn() *nats.Conn { return n.storeConn }

// PeerConn is the connection of the link to peer.
func (n *Node) PeerConn(peer string) *nats.Conn {
	if l := n.link(peer); l != nil {
		return l.nc
	}
	return nil
}

// UnsubscribeIntake takes intake off its subjects, as if its
// subscriptions were lost.
func (n *Node) UnsubscribeIntake() {
	for _, s := range n.subs[:2] { // Start subscribes intake first
		_ = s.Unsubscribe()
	}
}

// Crash ends the node as kill -9 would, as far as the cluster and the
// peers can tell: every connection closes at once, nothing is drained,
// answered or handed back (a link's lease is left to run out). The rest
// of the node then winds down in this process, sending nothing.
func (n *Node) Crash() {
	n.Cut()
	n.Stop()
}

// Cut is Crash without the winding down (Stop, which may wait seconds for
// writes whose connection it closed): what the cluster and the peers see
// of a kill -9, done when it returns.
func (n *Node) Cut() {
	n.stopping.Store(true)
	n.health.mu.Lock()
	conns := make([]*nats.Conn, 0, len(n.health.conns)+1)
	for _, c := range n.health.conns {
		conns = append(conns, c.nc)
	}
	n.health.mu.Unlock()
	if n.sys != nil {
		conns = append(conns, n.sys)
	}
	for _, nc := range conns {
		nc.Close()
	}
}

// OpsInterest reports whether any subscription in the operations account
// of the embedded server matches subj.
func (n *Node) OpsInterest(subj string) bool {
	return n.opsAcc != nil && n.opsAcc.SubscriptionInterest(subj)
}

// TelemetrySenders is how many stream senders take the node's telemetry
// in process (outbound.TelemetryFeed) now.
func (n *Node) TelemetrySenders() int { return n.tel.Senders() }
