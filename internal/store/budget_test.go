package store

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The streams' shares add up (the key rotations' bucket takes what the
// probe takes: a sixty-fourth up to 64 KiB; the audit trail a sixteenth,
// a sixty-fourth of a store under 64 MiB, up to 1 GiB) to storage.max_bytes, never more, and the
// signals keep more than half of it.
func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		total                            int64
		signals, dlq, held, kv, p, audit int64
	}{
		{1 << 20, 1<<20 - 128<<10 - 128<<10 - 64<<10 - 64<<10 - 64<<10 - 16<<10, 128 << 10, 128 << 10, 64 << 10, 16 << 10, 16 << 10},
		{256 << 20, 256<<20 - 32<<20 - 32<<20 - 1<<20 - 1<<20 - 1<<20 - 64<<10, 32 << 20, 32 << 20, 1 << 20, 64 << 10, 16 << 20},
		{1 << 30, 1<<30 - 64<<20 - 128<<20 - 1<<20 - 1<<20 - 1<<20 - 64<<10, 64 << 20, 128 << 20, 1 << 20, 64 << 10, 64 << 20},
		{10 << 30, 10<<30 - 64<<20 - 128<<20 - 1<<20 - 1<<20 - 1<<20 - 64<<10, 64 << 20, 128 << 20, 1 << 20, 64 << 10, 640 << 20},
		{20 << 30, 20<<30 - 64<<20 - 128<<20 - 1<<20 - 1<<20 - 1<<20 - 64<<10, 64 << 20, 128 << 20, 1 << 20, 64 << 10, 1 << 30},
	} {
		b, err := Split(tc.total)
		require.NoError(t, err)
		assert.Equal(t, Budget{Total: tc.total, Signals: tc.signals - tc.p - tc.audit, DLQ: tc.dlq, Held: tc.held - 2*(tc.held/4), KeyHeld: tc.held / 4, RibIn: tc.held / 4, KV: tc.kv, Coord: tc.kv, Intents: tc.kv, Probe: tc.p, Keys: tc.p, Audit: tc.audit}, b)
		assert.Equal(t, tc.total, b.Signals+b.DLQ+b.Held+b.KeyHeld+b.RibIn+b.KV+b.Coord+b.Intents+b.Probe+b.Keys+b.Audit)
		assert.Greater(t, b.Signals, tc.total/2)
	}
	_, err := Split(512 << 10)
	require.Error(t, err)
	assert.Equal(t, "storage.max_bytes 512KiB is less than the minimum, 1MiB (signals, dead letters, held signals and the node's own state share it): raise storage.max_bytes in the policy file", err.Error())
}
