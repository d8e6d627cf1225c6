package origin_test

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
)

// TestLoadSigningKeyRefusesNonFiles: a signing key path at /dev/zero
// exhausted memory, at a FIFO blocked the node for good (SIGTERM
// included). Both are refused at once.
func TestLoadSigningKeyRefusesNonFiles(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "signing.nk")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	for path, want := range map[string]string{"/dev/zero": "is a character device", fifo: "is a FIFO"} {
		done := make(chan error, 1)
		go func() { _, err := origin.LoadSigningKey(path); done <- err }()
		select {
		case err := <-done:
			assert.ErrorContains(t, err, want)
		case <-time.After(5 * time.Second):
			t.Fatalf("LoadSigningKey(%s) blocked", path)
		}
	}
}
