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
