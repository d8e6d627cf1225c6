//go:build !race

// The key-rotation stream test streams 1,000 signals/s through two nodes:
// race-hostile like the link-cut tests (fault_test.go), it runs without
// the race detector (.ci/run runs it in their step). The rotation's
// protocol runs under it in TestAttackKeyRotation.

package node_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
)

// TestKeyRotationUnderStream: op-a streams ~1,000 congestions a second to
// op-b and rotates its signing key in the middle of it. op-b accepts the
// announcement (signed by the key it pinned), confirms, op-a switches.
// The checker: every signal op-a accepted is stored once at op-b, in
// op-a's order (lost 0, duplicates 0); op-b refused nothing, held
// nothing for want of a key; the stored signals are signed by the old
// key up to the switch and by the new key only after it. After the
// overlap op-b pins the new key alone; restarted with its policy still
// pinning the old key, it takes op-a's signals (the rotation is kept in
// its store).
func TestKeyRotationUnderStream(t *testing.T) {
	// Short: op-a signs again, with the new key, what it sends after the
	// switch, so op-b needs the old key only for what was on the wire.
	const overlap = 3 * time.Second
	// ~1,000 signals/s; signals accepted at op-a before the rotation and
	// after the switch: a second and two of the stream.
	const rate, before, after = 1000, 1000, 2000
	ref := &refusals{}
	na, nb, _ := linkedOpts(t, nil, []node.Option{node.WithObserver(ref)}, nil)
	waitEstablished(t, na, "op-b")
	waitEstablished(t, nb, "op-a")
	oldKey := na.SigningKey()
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	// A condition raised before the rotation and never updated: its
	// latest signal stays signed by the old key in op-a's store.
	old := congestion("op-a", "pre-rotation")
	old.Subject = "vpn-acme/ic-old"
	require.True(t, publish(t, pa, old).OK())

	stop := make(chan struct{})
	started := time.Now()
	done := stream(t, pa, 4, rate, stop)
	// op-a's store holds what its intake accepted: a second of stream.
	waitStored(t, na, before)
	asked := time.Now()
	r, err := na.RotateKey(context.Background(), overlap)
	require.NoError(t, err)
	newKey := r.Key
	require.NotEqual(t, oldKey, newKey)
	assert.Equal(t, oldKey, r.Previous)
	var switched time.Duration
	// The announcement and the confirmation wait on the link behind the
	// stream's signals (session messages keep link order).
	waitFor(t, 60*time.Second, func() error {
		if k := na.KeyRotation(); k.SwitchedAt.IsZero() {
			return fmt.Errorf("not switched: %+v", k)
		}
		switched = time.Since(asked)
		return nil
	})
	assert.Equal(t, newKey, na.SigningKey())
	waitStored(t, na, storedCount(t, na)+after)
	close(stop)
	want := append(done(), old.Key())
	streamed := time.Since(started)

	var got []*signal.Event
	waitFor(t, 120*time.Second, func() error {
		if c := storedCount(t, nb); c < uint64(len(want)) {
			return fmt.Errorf("op-b stored %d of %d", c, len(want))
		}
		got = storedEvents(t, nb, "op-a")
		if len(got) < len(want) {
			return fmt.Errorf("op-b stored %d of %d", len(got), len(want))
		}
		return nil
	})
	seen := map[string]int{}
	last := map[string]string{}
	dups, disorder := 0, 0
	for _, ev := range got {
		if seen[ev.Key()]++; seen[ev.Key()] > 1 {
			dups++
		}
		if ev.Sequence <= last[ev.Source] {
			disorder++
		}
		last[ev.Source] = ev.Sequence
	}
	lost := 0
	for _, k := range want {
		if seen[k] == 0 {
			lost++
		}
	}
	vOld, err := origin.NewVerifier(map[string]string{"op-a": oldKey})
	require.NoError(t, err)
	vNew, err := origin.NewVerifier(map[string]string{"op-a": newKey})
	require.NoError(t, err)
	// Intake signs on one worker per core and stores in arrival order, so
	// a signal that took the old key just before the switch can be stored
	// after one that took the new key: never more than intake.Queue
	// apart. After the last signal signed by the old key, the new key
	// only.
	firstNew, lastOld, byNew := -1, -1, 0
	for i, ev := range got {
		by := keyIDs(t, ev)
		require.Len(t, by, 1, "one signature")
		switch by[0] {
		case newKey:
			if firstNew < 0 {
				firstNew = i
			}
			byNew++
			assert.NoError(t, vNew.Verify(ev))
			assert.Error(t, vOld.Verify(ev))
		case oldKey:
			lastOld = i
			assert.NoError(t, vOld.Verify(ev))
		default:
			t.Errorf("%s signed by %s", ev.ID, by[0])
		}
	}
	t.Logf("op-a accepted %d in %s, op-b stored %d; switch %s after the ask; lost %d, duplicates %d, out of order %d, refused %v, key-held %d; old key up to #%d, new key from #%d (%d signals), interleaved at the switch %d",
		len(want), streamed.Round(time.Millisecond), len(got), switched.Round(time.Millisecond), lost, dups, disorder, ref.counts(), peerState(t, nb, "op-a").KeyHeld.Held, lastOld, firstNew, byNew, max(lastOld-firstNew+1, 0))
	assert.Zero(t, lost, "lost")
	assert.Zero(t, dups, "duplicates")
	assert.Zero(t, disorder, "per-source order")
	assert.Empty(t, ref.counts(), "op-b refused nothing")
	assert.Zero(t, peerState(t, nb, "op-a").KeyHeld.Held, "nothing held for want of a key")
	assert.Empty(t, deadLettersFrom(t, nb, "op-a"))
	require.Positive(t, firstNew, "signals before the switch are signed by the old key")
	assert.Less(t, lastOld-firstNew, intake.Queue, "old and new interleave only among the signals intake had in hand at the switch")
	assert.Greater(t, len(got)-1-lastOld, 500, "after it, the new key only")

	// The overlap ends: op-b retires the old key.
	waitFor(t, overlap+20*time.Second, func() error {
		if k := nb.PeerKeys("op-a").Pinned; !slices.Equal(k, []string{newKey}) {
			return fmt.Errorf("op-b pins %v", k)
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error {
		if !na.KeyRotation().Done {
			return fmt.Errorf("op-a's rotation not done: %+v", na.KeyRotation())
		}
		return nil
	})
	v := nb.PeerKeys("op-a")
	require.NotNil(t, v.Rotation)
	assert.True(t, v.Rotation.Retired)

	// A refresh after the overlap re-states the old condition, signed
	// again by op-a with the new key: op-b keeps it (without the second
	// signature it is held for want of the retired key and End-of-RIB
	// withdraws it).
	eors := nb.Session("op-a").EndOfRIBs
	require.NoError(t, nb.RefreshPeer(context.Background(), "op-a", true, false))
	waitFor(t, 30*time.Second, func() error {
		if s := nb.Session("op-a"); s.EndOfRIBs == eors {
			return fmt.Errorf("no End-of-RIB from op-a yet")
		}
		return nil
	})
	assert.Len(t, nb.Conditions(conditions.Filter{Peer: "op-a", Service: "vpn-acme"}), 2, "ic-paris-1 and ic-old, both still held")
	assert.Zero(t, nb.Session("op-a").Swept, "nothing withdrawn")
	assert.Zero(t, peerState(t, nb, "op-a").KeyHeld.Held, "nothing held for want of the retired key")

	// op-b restarts with its policy still pinning the old key: its store
	// holds the rotation, so op-a's session and signals are taken.
	b := nb.Config()
	require.Equal(t, oldKey, b.Peers[0].SigningKey)
	nb.Stop()
	nb = startNode(t, b, node.WithObserver(ref))
	assert.Equal(t, []string{newKey}, nb.PeerKeys("op-a").Pinned)
	waitEstablished(t, nb, "op-a")
	ev := congestion("op-a", "after-restart")
	require.True(t, publish(t, pa, ev).OK())
	waitFor(t, 20*time.Second, func() error {
		if got := storedFrom(t, nb, "op-a"); !slices.Contains(got, "after-restart") {
			return fmt.Errorf("not stored at op-b")
		}
		return nil
	})
	for k, n := range ref.counts() {
		// A signal answered as the node stopped is sent again: a
		// duplicate. Nothing is refused for its key.
		assert.Equal(t, "op-a/duplicate", k, "after the restart op-b refused %d: %s", n, k)
	}
}
