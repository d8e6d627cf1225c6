// Package natstest holds test helpers that run real NATS servers: polling
// waits and a rogue leaf node that dials a real anfed node with a peer's
// real credentials, so tests can speak raw NATS on a real link.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// WaitFor polls f until it returns nil or d passes, then fails the test
// with f's last error.
func WaitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", d, err)
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// RogueLeaf is a bare NATS server that dials leafURL as user/password, the
// way a peer's node would, and a client connected to it. Whatever the
// client publishes crosses the real link; whatever the link lets through,
// the client can subscribe to.
type RogueLeaf struct {
	Server *server.Server
	Conn   *nats.Conn
}

// StartRogueLeaf starts a rogue leaf and waits until its link is up.
func StartRogueLeaf(t testing.TB, leafURL, user, password string, opts ...nats.Option) *RogueLeaf {
	t.Helper()
	u, err := url.Parse(leafURL)
	require.NoError(t, err)
	u.User = url.UserPassword(user, password)
	sopts := &server.Options{
		ServerName: "rogue-" + user,
		Host:       "127.0.0.1",
		Port:       -1,
		NoSigs:     true,
		NoLog:      true,
		LeafNode: server.LeafNodeOpts{
			ReconnectInterval: 100 * time.Millisecond,
			Remotes:           []*server.RemoteLeafOpts{{URLs: []*url.URL{u}}},
		},
	}
	s, err := server.NewServer(sopts)
	require.NoError(t, err)
	s.Start()
	t.Cleanup(s.Shutdown)
	require.True(t, s.ReadyForConnections(10*time.Second))
	WaitFor(t, 10*time.Second, func() error {
		if s.NumLeafNodes() != 1 {
			return fmt.Errorf("rogue leaf %s not connected", user)
		}
		return nil
	})
	nc, err := nats.Connect("", append([]nats.Option{nats.InProcessServer(s)}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return &RogueLeaf{Server: s, Conn: nc}
}

// FreeAddr returns a loopback address with a port that was free a moment
// ago, for topologies where every node must know the others' addresses
// before any starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}
