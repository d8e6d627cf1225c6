package closedloop_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind: a loop that
// did not stop with its context, a node or a connection not closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
