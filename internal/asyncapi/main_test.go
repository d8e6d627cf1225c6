package asyncapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind (a server
// not shut down, a connection not closed).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
