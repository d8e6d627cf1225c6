package node

import (
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

// connHealth keeps the node's own connections (intake, store, condition
// table, each peer's link and export) and what became of them.
//
// A connection the server drops (a kick, a broken pipe, a cluster server
// lost) is reconnected by nats.go, which subscribes again; the node's
// pipelines resume on it (TestStoreConnectionKickedReconnects). A
// connection the server closes with an -ERR (the node broke the protocol,
// e.g. a control line over 4,096 bytes) nats.go closes for good: intake,
// the store's JetStream context, the export consumers and the links all
// hold it, and rebuilding them in place would be a second start path that
// no restart exercises. So the node fails: Failed is closed, Err says
// which connection and why, Readiness says so, and `anfed serve` stops and
// exits non-zero for its supervisor to start it again, from the store on
// disk, on the start path every restart takes.
type connHealth struct {
	mu     sync.Mutex
	conns  []ownConn
	failed chan struct{}
	err    error
}

// ownConn is one of the node's own connections and the part of the node
// that needs it ("store", "link op-b").
type ownConn struct {
	part string
	nc   *nats.Conn
}

// connectOwn opens one of the node's own connections, for part: its loss
// is the node's.
func (n *Node) connectOwn(part, account, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{
		nats.Name(name),
		nats.ClosedHandler(n.connClosed),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !n.stopping.Load() && n.ownsConn(nc) {
				n.log.Warn().Err(err).Str("conn", nc.Opts.Name).Msg("connection lost; reconnecting")
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.log.Info().Str("conn", nc.Opts.Name).Msg("connection back")
		}),
	}, opts...)
	nc, err := n.connect(account, opts...)
	if err != nil {
		return nil, err
	}
	n.health.mu.Lock()
	n.health.conns = append(n.health.conns, ownConn{part: part, nc: nc})
	n.health.mu.Unlock()
	return nc, nil
}

// connClosed fails the node when one of its connections closes while it
// is not stopping.
func (n *Node) connClosed(nc *nats.Conn) {
	if n.stopping.Load() || !n.ownsConn(nc) {
		return
	}
	cause := nc.LastError()
	if cause == nil {
		cause = errors.New("closed")
	}
	n.fail(fmt.Errorf("connection %s closed by the server and not reopened (%w): the node cannot carry signals without it; restart it", nc.Opts.Name, cause))
}

// ownsConn tells whether nc is one of the node's connections still in
// use (closeOwn gave those of a removed peer back).
func (n *Node) ownsConn(nc *nats.Conn) bool {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	for _, c := range n.health.conns {
		if c.nc == nc {
			return true
		}
	}
	return false
}

// closeOwn closes one of the node's connections that is no longer
// needed (a removed peer's, a replaced export's): its close is not a
// failure.
func (n *Node) closeOwn(nc *nats.Conn) {
	n.health.mu.Lock()
	for i, c := range n.health.conns {
		if c.nc == nc {
			n.health.conns = append(n.health.conns[:i], n.health.conns[i+1:]...)
			break
		}
	}
	n.health.mu.Unlock()
	nc.Close()
}

// fail records the node's first fatal error and closes Failed.
func (n *Node) fail(err error) {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	if n.health.err != nil {
		return
	}
	n.health.err = err
	n.log.Error().Err(err).Msg("node failed")
	close(n.health.failed)
}

// Failed is closed when the node can no longer carry signals and cannot
// mend itself (Err says why): its owner stops it.
func (n *Node) Failed() <-chan struct{} { return n.health.failed }

// Err is why the node failed (nil while it has not).
func (n *Node) Err() error {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	return n.health.err
}

// connsReadiness names the node's connections that are not connected.
func (n *Node) connsReadiness() error {
	n.health.mu.Lock()
	defer n.health.mu.Unlock()
	var errs []error
	if n.health.err != nil {
		errs = append(errs, fmt.Errorf("node failed: %w", n.health.err))
	}
	for _, c := range n.health.conns {
		if st := c.nc.Status(); st != nats.CONNECTED && st != nats.DRAINING_SUBS && !n.stopping.Load() {
			errs = append(errs, fmt.Errorf("%s: connection %s %s", c.part, c.nc.Opts.Name, st))
		}
	}
	return errors.Join(errs...)
}
