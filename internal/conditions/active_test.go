package conditions

import (
	"maps"
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

	// Raised: r1 is held (counted once), r2 and r3 are not; op-c's key is
	// not op-b's.
	raised := map[Key]bool{k("svc/r1"): true, k("svc/r2"): true, k("svc/r3"): true, {Peer: "op-c", Origin: "op-c", Class: "fault", Subject: "x/y"}: true}
	require.Equal(t, 3, tbl.LenWith("op-b", maps.All(raised)))
	require.Equal(t, 1, tbl.LenWith("op-c", maps.All(raised)))
	require.Equal(t, 1, tbl.LenWith("op-b", maps.All(map[Key]bool(nil))))
	// Cleared: r1 is held, so it stops counting; r2 is not held.
	require.Equal(t, 0, tbl.LenWith("op-b", maps.All(map[Key]bool{k("svc/r1"): false, k("svc/r2"): false})))
}
