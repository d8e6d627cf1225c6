package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A storage budget below the minimum is refused at its line, saying the
// minimum; the minimum itself is fine.
func TestStorageMaxBytesMinimum(t *testing.T) {
	_, err := Parse("p.yaml", []byte("operator: {id: op-a}\nstorage:\n  dir: ./data\n  max_bytes: 512KiB\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "p.yaml:4:")
	assert.Contains(t, err.Error(), "storage.max_bytes: 512KiB is less than the minimum, 1MiB")
	_, err = Parse("p.yaml", []byte("operator: {id: op-a}\nstorage:\n  dir: ./data\n  max_bytes: 1MiB\n"))
	require.NoError(t, err)
}
