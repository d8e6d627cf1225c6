//go:build unix

package store

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lock is per open file, so two nodes in one process are kept apart
// too; the holder's PID is in the file, and a release lets the next in.
func TestLockDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	l, err := LockDir(dir)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, LockFile))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(b))

	_, err = LockDir(dir)
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "storage.dir "+dir+" is held by process "+strconv.Itoa(os.Getpid()))

	l.Release()
	l.Release() // twice is fine
	l2, err := LockDir(dir)
	require.NoError(t, err, "a released directory is free")
	l2.Release()
}
