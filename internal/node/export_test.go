package node

import "github.com/nats-io/nats.go"

// StoreConn is the connection the node writes to JetStream through, for
// tests that break it.
func (n *Node) StoreConn() *nats.Conn { return n.storeConn }
