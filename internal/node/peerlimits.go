package node

import "strings"

// Reasons of the refusals nats-server makes from a peer's limits
// (peers[].limits), as logged and counted (Node.LimitRefusals).
const (
	LimitConnections   = "max-connections"   // a leaf connection past max_connections
	LimitSubscriptions = "max-subscriptions" // subscriptions past max_subscriptions (logged at most every 2 s per peer)
	LimitPayload       = "max-payload"       // a message past max_payload: the connection is closed
)

// limitReason is the limit a server log line reports, or "".
func limitReason(msg string) string {
	switch {
	case strings.Contains(msg, "maximum account active connections exceeded"):
		return LimitConnections
	case strings.Contains(msg, "maximum subscriptions exceeded"):
		return LimitSubscriptions
	case strings.Contains(msg, "maximum payload exceeded"):
		return LimitPayload
	}
	return ""
}

// LimitRefusals counts, by peer and reason (LimitConnections,
// LimitSubscriptions, LimitPayload), what the embedded server refused a
// peer's leaf connections from the peer's limits (peers[].limits), as it
// logged them. Peer "" holds refusals the node could not attribute. Nil
// with nats.external: the cluster's servers log them.
func (n *Node) LimitRefusals() map[string]map[string]uint64 {
	if n.natsPeers == nil {
		return nil
	}
	return n.natsPeers.counts()
}
