package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind: a node, a
// connection, a proxy or a loop that did not stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
