package natstest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// StartServer starts a nats-server with opts (no signal handlers, no log),
// waits until it takes connections, and shuts it down, waiting for its
// goroutines, when the test ends.
func StartServer(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	opts.NoSigs, opts.NoLog = true, true
	s, err := server.NewServer(opts)
	require.NoError(t, err)
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	require.True(t, s.ReadyForConnections(10*time.Second), "nats-server not ready")
	return s
}

// StartJetStream starts a nats-server with JetStream on a t.TempDir() and a
// client listener on a free loopback port, and returns it with a JetStream
// context on a connection closed when the test ends.
func StartJetStream(t testing.TB) (*server.Server, jetstream.JetStream) {
	t.Helper()
	s := StartServer(t, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir()})
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return s, js
}
