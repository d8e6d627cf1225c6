package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// TestAttackSessionFlood: op-b, with its real credentials, opens a
// session with A and then floods its session subject with 10,000
// begin-of-rib/End-of-RIB pairs and 10,000 REFRESH asks, while A holds
// 2,000 conditions from op-c and op-c's signals flow to A. The flood is
// bounded where it arrives: A walks op-b's conditions and re-sends its
// export to op-b only within node.SessionRate/SessionBurst and
// node.RefreshAskEvery, the rest is refused session-flood and counted;
// op-c's signals keep crossing and its 2,000 conditions stay.
func TestAttackSessionFlood(t *testing.T) {
	const held, pairs, during = 2000, 10000, 20
	e := newAtkEnv(t, nil)
	publishManyAs(t, e.pubC, "op-c", held)
	heldC := held + 1 // and the one newAtkEnv's opCFlows raised
	waitFor(t, 30*time.Second, func() error {
		if n := e.a.Table().Len("op-c"); n != heldC {
			return fmt.Errorf("A holds %d conditions from op-c, want %d", n, heldC)
		}
		return nil
	})

	x := e.startRogueB(t)
	x.openSession(t, e)
	subj := subject.Session("op-b")
	// A's own refresh to op-b on Up.
	waitFor(t, 10*time.Second, func() error {
		if s := e.a.Session("op-b"); s.RefreshesSent < 1 {
			return fmt.Errorf("A's refresh to op-b on Up has not ended")
		}
		return nil
	})
	before := e.a.Session("op-b")

	start := time.Now()
	flooded := make(chan error, 1)
	go func() {
		for i := range pairs {
			id := fmt.Sprintf("flood-%d", i)
			for _, m := range []session.Message{
				{Type: session.TypeBegin, From: "op-b", To: "op-a", ID: id},
				{Type: session.TypeEndOfRIB, From: "op-b", To: "op-a", ID: id},
				{Type: session.TypeRefresh, From: "op-b", To: "op-a"},
			} {
				if err := x.Conn.Publish(subj, m.Encode()); err != nil {
					flooded <- err
					return
				}
			}
		}
		flooded <- x.Conn.Flush()
	}()
	// op-c's signals keep crossing during the flood, each within a
	// generous window.
	var worst time.Duration
	for range during {
		worst = max(worst, e.opCFlows(t))
	}
	require.NoError(t, <-flooded)
	took := time.Since(start)
	// The flood has arrived at A when it counts its last message: wait
	// until A's view of op-b's session stops moving.
	var after *node.SessionView
	waitFor(t, 60*time.Second, func() error {
		s := e.a.Session("op-b")
		if after != nil && s.EndOfRIBs == after.EndOfRIBs && s.Refused == after.Refused && s.RefreshesSent == after.RefreshesSent {
			return nil
		}
		after = s
		time.Sleep(500 * time.Millisecond)
		return fmt.Errorf("still moving")
	})
	took = time.Since(start)
	eors := after.EndOfRIBs - before.EndOfRIBs
	refreshes := after.RefreshesSent - before.RefreshesSent
	t.Logf("flood of %d begin/End-of-RIB pairs and %d REFRESH asks over %s: A ended %d of op-b's refreshes (table walks), sent it %d refreshes, refused %d, coalesced %d; op-c's %d signals crossed, the slowest in %s",
		pairs, pairs, took.Round(time.Millisecond), eors, refreshes, after.Refused, after.Coalesced, during, worst.Round(time.Millisecond))

	// The bound: what the token bucket lets through over the flood's time.
	secs := took.Seconds() + 1
	allowed := int(node.SessionBurst + node.SessionRate*secs)
	require.LessOrEqual(t, eors, allowed, "A ended op-b's refreshes beyond the session bound (each walks op-b's conditions under the table's lock)")
	require.LessOrEqual(t, refreshes, int(2+secs/node.RefreshAskEvery.Seconds())+1, "A re-sent its export to op-b beyond the REFRESH bound")
	require.GreaterOrEqual(t, after.Refused, 3*pairs-allowed, "the flood's refusals are counted per peer")
	require.Equal(t, after.Refused, e.obs.rejections("op-b", reject.SessionFlood), "the refusals are observed (metrics) per peer and reason")
	require.Equal(t, heldC, e.a.Table().Len("op-c"), "op-c's conditions at A are untouched")
	e.opCFlows(t)
}

// openSession establishes op-b's session with A as a peer's node would:
// an OPEN that has heard A's, until A holds the session established.
func (x *atkRogue) openSession(t *testing.T, e *atkEnv) {
	t.Helper()
	var catalog []string
	for _, c := range schemas.Classes {
		catalog = append(catalog, schemas.Type(c))
	}
	open := session.Message{Type: session.TypeOpen, From: "op-b", To: "op-a", Version: "rogue", HoldSeconds: 90,
		Catalog: catalog, Import: &session.Import{Classes: []string{"*"}}, Heard: true, Refreshes: true}
	waitFor(t, 15*time.Second, func() error {
		// Again until A's link watcher has seen op-b's link up.
		require.NoError(t, x.Conn.Publish(subject.Session("op-b"), open.Encode()))
		time.Sleep(200 * time.Millisecond)
		if s := e.a.Session("op-b"); s.State != session.Established {
			return fmt.Errorf("A's session with op-b is %s", s.State)
		}
		return nil
	})
}
