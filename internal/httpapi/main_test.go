package httpapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind: a server,
// an event stream, a watch or a node that did not stop.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
