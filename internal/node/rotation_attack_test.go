package node_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// TestAttackKeyRotation: op-b, with its real leaf credentials and its
// real signing key, announces keys A must not take: its own key for
// op-c's origin, and a new key for its own origin not signed by the key
// A pinned (signed by the new key alone, by a stranger's key, or with
// the signature of another announcement). Each is refused with its
// reason (key-refuse to op-b, bad-key-rotation counted and logged); A's
// pins of op-b and op-c stay, the session stays established, op-b's
// signals under its pinned key and op-c's keep being taken. Then op-b
// rotates for real: a signal it signed with the new key before A knew it
// was held (key-held), and is stored once A accepts the rotation — while
// the node runs, not at the next start.
func TestAttackKeyRotation(t *testing.T) {
	e := newAtkEnv(t, nil)
	x := e.startRogueB(t)
	x.openSession(t, e)
	var mu sync.Mutex
	var answers []session.Message
	sub, err := x.Conn.Subscribe(subject.Session("op-a"), func(m *nats.Msg) {
		sm, err := session.Decode(m.Data, "op-a", "op-b")
		if err == nil && (sm.Type == session.TypeKeyRefuse || sm.Type == session.TypeKeyAccept) {
			mu.Lock()
			answers = append(answers, sm)
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	flaps := e.a.Session("op-b").Flaps
	pinnedB, pinnedC := e.a.PeerKeys("op-b").Pinned, e.a.PeerKeys("op-c").Pinned
	require.Equal(t, []string{pub(t, "op-b")}, pinnedB)
	require.Equal(t, []string{pub(t, "op-c")}, pinnedC)

	newKey, err := origin.NewSigningKey()
	require.NoError(t, err)
	newPub, _ := newKey.PublicKey()
	stranger, err := origin.NewSigningKey()
	require.NoError(t, err)
	announce := func(r session.Rotation) {
		t.Helper()
		m := session.Message{Type: session.TypeKeyRotate, From: "op-b", To: "op-a", Rotation: &r}
		require.NoError(t, x.Conn.Publish(subject.Session("op-b"), m.Encode()))
		require.NoError(t, x.Conn.Flush())
	}
	signed := func(r session.Rotation, prev, key nkeys.KeyPair) session.Rotation {
		require.NoError(t, r.Sign(session.TypeKeyRotate, "op-b", "op-a", prev, key))
		return r
	}
	base := func(id, org string) session.Rotation {
		return session.Rotation{ID: id, Origin: org, Previous: pub(t, "op-b"), Key: newPub, OverlapSeconds: 3600}
	}
	lifted := signed(base("lift-src", "op-b"), operatorKey(t, "op-b"), newKey)
	lifted.ID = "lifted" // a genuine signature of another announcement
	attacks := []struct {
		name string
		r    session.Rotation
		why  string
	}{
		{"op-b's key for op-c's origin", signed(base("for-op-c", "op-c"), operatorKey(t, "op-b"), newKey), `op-b announces a key for origin "op-c"`},
		{"op-c's origin, op-c's pin as previous, signed by op-b", func() session.Rotation {
			r := base("for-op-c-2", "op-c")
			r.Previous = pub(t, "op-c")
			return signed(r, operatorKey(t, "op-b"), newKey)
		}(), `op-b announces a key for origin "op-c"`},
		{"own origin, signed by the new key alone", signed(base("self-signed", "op-b"), newKey, newKey), "not signed by a key we pinned for op-b"},
		{"own origin, no signature by the previous key", func() session.Rotation {
			r := signed(base("unsigned", "op-b"), operatorKey(t, "op-b"), newKey)
			r.SigPrevious = ""
			return r
		}(), "not signed by a key we pinned for op-b"},
		{"own origin, a stranger's key as previous", func() session.Rotation {
			r := base("stranger", "op-b")
			r.Previous, _ = stranger.PublicKey()
			return signed(r, stranger, newKey)
		}(), "is not a key pinned for op-b"},
		{"own origin, a lifted signature", lifted, "does not verify"},
	}
	mark := e.log.mark()
	for i, a := range attacks {
		announce(a.r)
		waitFor(t, 10*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(answers) < i+1 {
				return fmt.Errorf("%s: no answer from A", a.name)
			}
			return nil
		})
		mu.Lock()
		got := answers[i]
		mu.Unlock()
		assert.Equal(t, session.TypeKeyRefuse, got.Type, a.name)
		assert.Equal(t, string(reject.BadKeyRotation), got.Reason, a.name)
		assert.Contains(t, got.Text, a.why, a.name)
		assert.Equal(t, a.r.ID, got.Rotation.ID, a.name)
		t.Logf("%s: refused: %s", a.name, got.Text)
	}
	assert.Equal(t, len(attacks), e.obs.rejections("op-b", reject.BadKeyRotation), "counted per peer and reason")
	assert.Equal(t, len(attacks), e.a.PeerKeys("op-b").Refused)
	e.requireRefusalLogged(t, mark, reject.BadKeyRotation)
	assert.Equal(t, pinnedB, e.a.PeerKeys("op-b").Pinned, "op-b's pin stays")
	assert.Equal(t, pinnedC, e.a.PeerKeys("op-c").Pinned, "op-c's pin stays")
	s := e.a.Session("op-b")
	assert.Equal(t, session.Established, s.State)
	assert.Equal(t, flaps, s.Flaps, "the session stays up")
	// op-b's signals under its pinned key, and op-c's, are still taken.
	bSignal := func(id string) *signal.Event {
		ev := congestion("op-b", id)
		ev.Subject, ev.Path = "vpn-acme/"+id, []string{"op-b"}
		return ev
	}
	ev := bSignal("b-pinned")
	require.NoError(t, e.signerB.Sign(ev))
	assert.True(t, x.send(t, atkLinkSubject("op-b", ev, "congestion"), ev.Encode()).OK())
	e.opCFlows(t)

	// A signal signed with the new key before A knows it: held.
	early := bSignal("b-new-early")
	ns, err := origin.NewSigner(newKey)
	require.NoError(t, err)
	require.NoError(t, ns.Sign(early))
	ans := x.send(t, atkLinkSubject("op-b", early, "congestion"), early.Encode())
	require.Equal(t, string(reject.KeyHeld), ans.Reason, "%+v", ans)
	require.Zero(t, e.fromB.count(early.ID))

	// The real rotation, signed by the pinned key: accepted, and the
	// held signal is stored at once.
	announce(signed(base("real", "op-b"), operatorKey(t, "op-b"), newKey))
	waitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if i := slices.IndexFunc(answers, func(m session.Message) bool { return m.Rotation.ID == "real" }); i < 0 {
			return fmt.Errorf("no answer to the real rotation")
		} else if answers[i].Type != session.TypeKeyAccept {
			return fmt.Errorf("the real rotation answered %+v", answers[i])
		}
		return nil
	})
	assert.Equal(t, []string{pub(t, "op-b"), newPub}, e.a.PeerKeys("op-b").Pinned)
	waitFor(t, 10*time.Second, func() error {
		if e.fromB.count(early.ID) != 1 {
			return fmt.Errorf("the held signal is not stored at A")
		}
		return nil
	})
	assert.Equal(t, uint64(1), peerState(t, e.a, "op-b").KeyHeld.Released)
	assert.Equal(t, len(attacks), e.obs.rejections("op-b", reject.BadKeyRotation), "the real one is not refused")
	late := bSignal("b-new-late")
	require.NoError(t, ns.Sign(late))
	assert.True(t, x.send(t, atkLinkSubject("op-b", late, "congestion"), late.Encode()).OK(), "signed by the new key")
	assert.Equal(t, pinnedC, e.a.PeerKeys("op-c").Pinned)
	e.opCFlows(t)
	for _, l := range e.log.since(mark) {
		if strings.Contains(atkStr(l, "message"), "rotation accepted") {
			return
		}
	}
	t.Error("A did not log the accepted rotation")
}
