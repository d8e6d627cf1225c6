package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// readStream reads every message of stream at n, in order.
func readStream(t *testing.T, n *node.Node, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js, err := jetstream.New(n.StoreConn())
	require.NoError(t, err)
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	var out []jetstream.Msg
	for left := cons.CachedInfo().NumPending; left > 0; {
		b, err := cons.Fetch(int(min(left, 500)), jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range b.Messages() {
			out = append(out, m)
			got++
		}
		require.NoError(t, b.Error())
		require.NotZero(t, got)
		left -= min(uint64(got), left)
	}
	return out
}

// storedFrom returns the ids of origin's signals stored at n, in store
// order.
func storedFrom(t *testing.T, n *node.Node, org string) []string {
	t.Helper()
	var ids []string
	for _, m := range readStream(t, n, store.SignalStream) {
		ev, err := signal.Decode(nats.Header(m.Headers()), m.Data())
		require.NoError(t, err)
		if ev.Origin == org {
			ids = append(ids, ev.ID)
		}
	}
	return ids
}

// deadLettersFrom counts n's dead letters from peer by reason.
func deadLettersFrom(t *testing.T, n *node.Node, peer string) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range readStream(t, n, store.DLQStream) {
		if m.Headers().Get(store.HeaderFrom) == peer {
			out[m.Headers().Get(store.HeaderReason)]++
		}
	}
	return out
}

// condView is what two tables must agree on for a condition.
type condView struct {
	Subject string
	State   signal.State
	ID      string
	Changes int
}

func faultView(cs []conditions.Condition) []condView {
	out := make([]condView, 0, len(cs))
	for _, c := range cs {
		out = append(out, condView{c.Subject, c.State, c.ID, c.Changes})
	}
	return out
}

// TestKeyChangeHeldThenReleasedInOrder: op-a signs with a new key op-b
// has not pinned. Five faults — pe-1 raised, updated, updated, cleared,
// then pe-2 raised — are answered key-held by op-b, not dead-lettered
// and not stored. op-b pins the new key and restarts: the five are
// checked again and stored in the order they came, before the session's
// refresh (which alone re-states pe-2 and nothing of pe-1's history).
// op-b's table then equals op-a's, changes counted, and op-b holds no
// dead letter from op-a.
func TestKeyChangeHeldThenReleasedInOrder(t *testing.T) {
	newKey, err := origin.NewSigningKey()
	require.NoError(t, err)
	newPub, err := newKey.PublicKey()
	require.NoError(t, err)

	b, nb, na := restartablePair(t, []string{"*"}, []string{"fault"}, node.WithSigningKey(newKey))
	waitFor(t, 15*time.Second, func() error {
		if s := nb.Session("op-a"); !contains(s.LastDown, session.ReasonUnknownKey) {
			return fmt.Errorf("op-b's session: %+v", s)
		}
		return nil
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	steps := []struct {
		id, res string
		state   signal.State
	}{
		{"f1", "pe-1", signal.Raised},
		{"f2", "pe-1", signal.Updated},
		{"f3", "pe-1", signal.Updated},
		{"f4", "pe-1", signal.Cleared},
		{"f5", "pe-2", signal.Raised},
	}
	var want []string
	for _, s := range steps {
		ev := faultEvent("op-a", s.id)
		ev.Subject, ev.State = "vpn-acme/"+s.res, s.state
		require.True(t, publish(t, pa, ev).OK())
		want = append(want, s.id)
	}
	waitFor(t, 15*time.Second, func() error {
		if bl, err := na.Backlog(context.Background(), "op-b"); err != nil || bl != 0 {
			return fmt.Errorf("backlog %d %v", bl, err)
		}
		return nil
	})
	require.Zero(t, nb.Table().Len("op-a"), "held: op-b has not pinned the new key")
	require.Empty(t, storedFrom(t, nb, "op-a"))
	require.Empty(t, deadLettersFrom(t, nb, "op-a"), "held, not dead-lettered")
	assert.Equal(t, uint64(5), peerState(t, nb, "op-a").KeyHeld.Held)

	nb.Stop()
	b.Peers[0].SigningKey = newPub
	nb = startNode(t, b)
	waitFor(t, 20*time.Second, func() error {
		if got := storedFrom(t, nb, "op-a"); len(got) != len(want) {
			return fmt.Errorf("op-b stored %v of %v", got, want)
		}
		return nil
	})
	assert.Equal(t, want, storedFrom(t, nb, "op-a"), "stored in the order they came")
	wantTable := faultView(na.Conditions(conditions.Filter{Origin: "op-a", Class: "fault"}))
	require.NotEmpty(t, wantTable)
	waitFor(t, 20*time.Second, func() error {
		if got := faultView(nb.Conditions(conditions.Filter{Peer: "op-a", Class: "fault"})); !assert.ObjectsAreEqual(wantTable, got) {
			return fmt.Errorf("op-b's table %+v, op-a's %+v", got, wantTable)
		}
		return nil
	})
	assert.Empty(t, deadLettersFrom(t, nb, "op-a"))
	assert.Equal(t, uint64(5), peerState(t, nb, "op-a").KeyHeld.Released)
}

// TestAttackUnknownKeyFloodBounded: op-a floods op-b with signals under a
// key op-b never pinned. op-b holds store.KeyHeldPerPeer of them, refuses
// the rest as before (bad-signature, dead-lettered, counted over the
// bound), and op-c's signals to op-b are stored all along.
func TestAttackUnknownKeyFloodBounded(t *testing.T) {
	const extra = 10
	rogue, err := origin.NewSigningKey()
	require.NoError(t, err)
	b := baseConfig(t, "op-b")
	b.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	b.Peers = []config.Peer{
		{ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-a-123"}, Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-a")},
		{ID: "op-c", Accept: &config.Accept{User: "op-c", Password: "secret-c-123"}, Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-c")},
	}
	nb := startNode(t, b)
	dial := func(id, pw string, opts ...node.Option) *node.Node {
		c := baseConfig(t, id)
		c.Peers = []config.Peer{{
			ID: "op-b", Dial: &config.Dial{URL: nb.LeafURL(), User: id, Password: pw},
			Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"*"}},
			SigningKey: pub(t, "op-b"),
		}}
		return startNode(t, c, opts...)
	}
	na := dial("op-a", "secret-a-123", node.WithSigningKey(rogue))
	nc := dial("op-c", "secret-c-123")
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	pc, err := nc.Connect()
	require.NoError(t, err)
	defer pc.Close()
	total := store.KeyHeldPerPeer + extra
	for i := range total {
		ev := faultEvent("op-a", fmt.Sprintf("a%d", i))
		ev.Subject = fmt.Sprintf("vpn-acme/pe-%d", i)
		require.True(t, publish(t, pa, ev).OK())
		if i%50 == 0 {
			ev := faultEvent("op-c", fmt.Sprintf("c%d", i))
			ev.Subject = fmt.Sprintf("vpn-acme/pc-%d", i)
			require.True(t, publish(t, pc, ev).OK())
		}
	}
	waitFor(t, 60*time.Second, func() error {
		if bl, err := na.Backlog(context.Background(), "op-b"); err != nil || bl != 0 {
			return fmt.Errorf("op-a's backlog %d %v", bl, err)
		}
		if bl, err := nc.Backlog(context.Background(), "op-b"); err != nil || bl != 0 {
			return fmt.Errorf("op-c's backlog %d %v", bl, err)
		}
		return nil
	})
	st := peerState(t, nb, "op-a").KeyHeld
	assert.Equal(t, uint64(store.KeyHeldPerPeer), st.Held)
	assert.Equal(t, uint64(extra), st.OverBound)
	assert.Equal(t, map[string]int{"bad-signature": extra}, deadLettersFrom(t, nb, "op-a"))
	assert.Zero(t, nb.Table().Len("op-a"))
	assert.Zero(t, peerState(t, nb, "op-c").KeyHeld.Held)
	assert.Len(t, storedFrom(t, nb, "op-c"), (total+49)/50, "op-c's signals stored all along")
	assert.Empty(t, deadLettersFrom(t, nb, "op-c"))
}

// TestKeyHeldWrongPinDeadLettered: signals held under op-a's new key are
// checked again when op-b's pin of op-a changes; pinned to yet another
// key they do not verify, and are dead-lettered bad-signature with the
// reason, not stored.
func TestKeyHeldWrongPinDeadLettered(t *testing.T) {
	newKey, err := origin.NewSigningKey()
	require.NoError(t, err)
	other, err := origin.NewSigningKey()
	require.NoError(t, err)
	otherPub, err := other.PublicKey()
	require.NoError(t, err)

	b, nb, na := restartablePair(t, []string{"*"}, []string{"fault"}, node.WithSigningKey(newKey))
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	for i := 1; i <= 2; i++ {
		ev := faultEvent("op-a", fmt.Sprintf("w%d", i))
		ev.Subject = fmt.Sprintf("vpn-acme/pe-%d", i)
		require.True(t, publish(t, pa, ev).OK())
	}
	waitFor(t, 15*time.Second, func() error {
		if h := peerState(t, nb, "op-a").KeyHeld.Held; h != 2 {
			return fmt.Errorf("op-b held %d", h)
		}
		return nil
	})
	nb.Stop()
	b.Peers[0].SigningKey = otherPub
	nb = startNode(t, b)
	waitFor(t, 20*time.Second, func() error {
		if got := deadLettersFrom(t, nb, "op-a"); got["bad-signature"] != 2 {
			return fmt.Errorf("op-b's dead letters from op-a: %v", got)
		}
		return nil
	})
	assert.Equal(t, uint64(2), peerState(t, nb, "op-a").KeyHeld.Refused)
	assert.Empty(t, storedFrom(t, nb, "op-a"))
	assert.Zero(t, nb.Table().Len("op-a"))
}
