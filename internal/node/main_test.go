package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind: a node, a
// connection, a proxy or a loop that did not stop.
//
// One goroutine of nats.go is not ours to stop: an object store Put (the
// attack tests store an object to show a peer cannot read it) starts the
// async publisher's reconnect watch and, deferred, sets its status
// channel to nil (jetstream/object.go: cleanupReplySub); a watch that had
// not yet read the channel then waits on a nil channel for ever
// (jetstream/publish.go: resetPendingAcksOnReconnect, nats.go v1.55.0).
// The node's own JetStream contexts never run that cleanup, so their
// watches end with their connection.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}
