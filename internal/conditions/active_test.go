package conditions

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

func TestActiveAndLenWith(t *testing.T) {
	tbl := New()
	_, err := tbl.Apply("op-b", "fault", sig("op-b", "svc/r1", "1", signal.Raised), 1)
	require.NoError(t, err)
	_, err = tbl.Apply("op-b", "fault", sig("op-b", "svc/r2", "2", signal.Raised), 2)
	require.NoError(t, err)
	_, err = tbl.Apply("op-b", "fault", sig("op-b", "svc/r2", "3", signal.Cleared), 3)
	require.NoError(t, err)

	k := func(subj string) Key { return Key{Peer: "op-b", Origin: "op-b", Class: "fault", Subject: subj} }
	require.True(t, tbl.Active(k("svc/r1")))
	require.False(t, tbl.Active(k("svc/r2")), "cleared")
	require.False(t, tbl.Active(Key{Peer: "op-b", Origin: "op-b", Class: "congestion", Subject: "svc/r1"}))
	require.False(t, tbl.Active(Key{Peer: "op-c", Origin: "op-b", Class: "fault", Subject: "svc/r1"}))

	// r1 is held (counted once), r2 and r3 are not, op-c's key is not op-b's.
	extra := []Key{k("svc/r1"), k("svc/r2"), k("svc/r3"), {Peer: "op-c", Origin: "op-c", Class: "fault", Subject: "x/y"}}
	require.Equal(t, 3, tbl.LenWith("op-b", slices.Values(extra)))
	require.Equal(t, 1, tbl.LenWith("op-c", slices.Values(extra)))
	require.Equal(t, 1, tbl.LenWith("op-b", slices.Values([]Key(nil))))
}
