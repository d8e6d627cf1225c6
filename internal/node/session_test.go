package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// sessionLab is op-b, which stays up, and op-a, which dials it through a
// proxy that can cut the link and restarts with a new policy when a test
// says so: op-a exports to op-b.
type sessionLab struct {
	t     *testing.T
	a     *config.Config
	na    *node.Node
	nb    *node.Node
	proxy *natstest.Proxy
	pa    *nats.Conn
}

func newSessionLab(t *testing.T, editA, editB func(*config.Config)) *sessionLab {
	t.Helper()
	b := baseConfig(t, "op-b")
	b.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	b.Peers = []config.Peer{{
		ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-a-123"},
		Import:     config.ImportPolicy{Classes: []string{"*"}, MaxRate: 100000},
		SigningKey: pub(t, "op-a"),
	}}
	if editB != nil {
		editB(b)
	}
	l := &sessionLab{t: t, nb: startNode(t, b)}
	l.proxy = natstest.StartProxy(t, l.nb.LeafURL()[len("nats-leaf://"):])
	a := baseConfig(t, "op-a")
	a.Peers = []config.Peer{{
		ID: "op-b", Dial: &config.Dial{URL: "nats-leaf://" + l.proxy.Addr(), User: "op-a", Password: "secret-a-123"},
		Export:     config.ExportPolicy{Classes: []string{"fault", "congestion"}, Services: []string{"*"}},
		SigningKey: pub(t, "op-b"),
	}}
	if editA != nil {
		editA(a)
	}
	l.a = a
	l.startA()
	return l
}

func (l *sessionLab) startA() {
	l.t.Helper()
	l.na = startNode(l.t, l.a) // its cleanup stops it again: Stop is idempotent
	var err error
	l.pa, err = l.na.Connect()
	require.NoError(l.t, err)
	l.t.Cleanup(l.pa.Close)
	l.established()
}

// restartA stops op-a and starts it again on the same store with edit
// applied to its policy.
func (l *sessionLab) restartA(edit func(*config.Config)) {
	l.t.Helper()
	l.pa.Close()
	l.na.Stop()
	if edit != nil {
		edit(l.a)
	}
	l.startA()
}

// established waits until both ends hold the session established.
func (l *sessionLab) established() {
	l.t.Helper()
	waitFor(l.t, 15*time.Second, func() error {
		for _, s := range []*node.SessionView{l.na.Session("op-b"), l.nb.Session("op-a")} {
			if s == nil || s.State != session.Established {
				return fmt.Errorf("session not established: %+v", s)
			}
		}
		return nil
	})
}

// refreshed waits until op-b took n more End-of-RIBs from op-a than eor.
func (l *sessionLab) refreshed(eor int) {
	l.t.Helper()
	waitFor(l.t, 15*time.Second, func() error {
		if s := l.nb.Session("op-a"); s.EndOfRIBs <= eor {
			return fmt.Errorf("no End-of-RIB yet: %+v", s)
		}
		return nil
	})
}

func (l *sessionLab) eors() int { return l.nb.Session("op-a").EndOfRIBs }

func (l *sessionLab) publish(class, res, id string, st signal.State) {
	l.t.Helper()
	ev := faultEvent("op-a", id)
	if class == "congestion" {
		ev = congestion("op-a", id)
	}
	ev.Subject, ev.State = "vpn-acme/"+res, st
	a := publish(l.t, l.pa, ev)
	require.True(l.t, a.OK(), "%+v", a)
}

// held is what op-b holds from op-a: resource -> status.
func (l *sessionLab) held() map[string]string {
	out := map[string]string{}
	for _, c := range l.nb.Conditions(conditions.Filter{Peer: "op-a", IncludeStale: true}) {
		out[c.Class+" "+c.Subject] = string(c.Status)
	}
	return out
}

func (l *sessionLab) waitHeld(want map[string]string) {
	l.t.Helper()
	waitFor(l.t, 15*time.Second, func() error {
		if got := l.held(); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("op-b holds %v, want %v", got, want)
		}
		return nil
	})
}

// TestDriftExportStopsThenClear: op-a stops exporting fault to op-b,
// restarts, and clears fault pe-1; the clear is filtered by class and the
// fault has no expiry. Before sessions, op-b held pe-1 raised for good.
// Then op-a exports faults again: op-b must learn pe-2, active at op-a all
// along (before sessions it never did).
func TestDriftExportStopsThenClear(t *testing.T) {
	l := newSessionLab(t, nil, nil)
	l.publish("fault", "pe-1", "f1", signal.Raised)
	l.publish("congestion", "ic-1", "c1", signal.Raised)
	l.waitHeld(map[string]string{"fault vpn-acme/pe-1": "active", "congestion vpn-acme/ic-1": "active"})

	eor := l.eors()
	l.restartA(func(c *config.Config) { c.Peers[0].Export.Classes = []string{"congestion"} })
	l.refreshed(eor)
	l.publish("fault", "pe-1", "f1c", signal.Cleared)
	l.publish("fault", "pe-2", "f2", signal.Raised)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "active"})

	eor = l.eors()
	l.restartA(func(c *config.Config) { c.Peers[0].Export.Classes = []string{"fault", "congestion"} })
	l.refreshed(eor)
	l.waitHeld(map[string]string{"fault vpn-acme/pe-2": "active", "congestion vpn-acme/ic-1": "active"})
	got := l.nb.Conditions(conditions.Filter{Peer: "op-a", Class: "fault"})
	require.Len(t, got, 1)
	assert.Equal(t, "f2", got[0].ID, "the latest signal of the condition, as op-a holds it")
}

// TestDriftClearDroppedAtBufferBound: a clear dropped for op-b at its
// buffer bound (export.buffer.max_age) while the link was cut. Before
// sessions, op-b held the condition raised for good.
func TestDriftClearDroppedAtBufferBound(t *testing.T) {
	l := newSessionLab(t, func(c *config.Config) {
		c.Peers[0].Export.Buffer.MaxAge = config.Duration(300 * time.Millisecond)
	}, nil)
	l.publish("congestion", "ic-1", "c1", signal.Raised)
	l.publish("congestion", "ic-2", "c2", signal.Raised)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "active", "congestion vpn-acme/ic-2": "active"})
	l.proxy.Cut()
	l.inFlight()
	l.publish("congestion", "ic-1", "c1c", signal.Cleared)
	time.Sleep(600 * time.Millisecond) // older than max_age when the link is back: dropped
	eor := l.eors()
	l.proxy.Restore()
	l.refreshed(eor)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-2": "active", "congestion vpn-acme/ic-9": "active"})
	_, overAge := dropped(t, l.na, "op-b")
	assert.NotZero(t, overAge, "the clear was dropped at the buffer bound: the test's premise")
}

// inFlight, after a cut, publishes a signal (ic-9 raised) that the
// sender puts on the dead link: in flight, never dropped, so what follows
// waits in the buffer.
func (l *sessionLab) inFlight() {
	l.t.Helper()
	waitFor(l.t, 10*time.Second, func() error {
		if l.na.LinkUp("op-b") || l.nb.LinkUp("op-a") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	l.publish("congestion", "ic-9", "c9", signal.Raised)
	time.Sleep(200 * time.Millisecond)
}

func dropped(t *testing.T, n *node.Node, peer string) (bytes, age uint64) {
	for _, p := range n.Peers(context.Background()) {
		if p.ID == peer {
			return p.DroppedOverBytes, p.DroppedTooOld
		}
	}
	t.Fatalf("no peer %s", peer)
	return 0, 0
}

// TestDriftLinkUpDoesNotFreshenUnstated: after a cut long enough for
// op-b's conditions from op-a to go stale, the link comes back. Before
// sessions, LinkUp made every stale condition active again at once,
// including one op-a had cleared meanwhile (the clear dropped at the
// buffer bound). Now a stale condition is active again only when op-a
// re-states it, and End-of-RIB withdraws the rest.
func TestDriftLinkUpDoesNotFreshenUnstated(t *testing.T) {
	l := newSessionLab(t, func(c *config.Config) {
		c.Peers[0].Export.Buffer.MaxAge = config.Duration(300 * time.Millisecond)
	}, func(c *config.Config) {
		c.Peers[0].Import.Grace = config.Duration(200 * time.Millisecond)
		c.Peers[0].Import.WithdrawAfter = config.Duration(time.Hour)
	})
	cb, err := l.nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	changes := make(chan *nats.Msg, 256)
	_, err = cb.ChanSubscribe(subject.CondPrefix+".>", changes)
	require.NoError(t, err)
	require.NoError(t, cb.Flush())

	l.publish("congestion", "ic-1", "c1", signal.Raised)
	l.publish("congestion", "ic-2", "c2", signal.Raised)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "active", "congestion vpn-acme/ic-2": "active"})
	l.proxy.Cut()
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "stale", "congestion vpn-acme/ic-2": "stale"})
	l.inFlight()
	l.publish("congestion", "ic-1", "c1c", signal.Cleared)
	time.Sleep(600 * time.Millisecond)
	eor := l.eors()
	l.proxy.Restore()
	l.refreshed(eor)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-2": "active", "congestion vpn-acme/ic-9": "active"})
	_, overAge := dropped(t, l.na, "op-b")
	require.NotZero(t, overAge, "the clear was dropped at the buffer bound: the test's premise")

	// What local consumers were told of ic-1: stale, then withdrawn;
	// never active again.
	var ic1 []string
	for {
		select {
		case m := <-changes:
			var ch conditions.Change
			require.NoError(t, json.Unmarshal(m.Data, &ch))
			if ch.Condition.Subject == "vpn-acme/ic-1" {
				ic1 = append(ic1, string(ch.Kind))
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	assert.Equal(t, []string{"upsert", "stale", "withdraw"}, ic1)
}

// TestSessionMismatchShowsAtBothEnds: op-b pinned another key for op-a:
// the session closes with unknown-key, and both ends say so; op-b's log
// says "session not established" once per failed attempt, not on every
// tick of the link watcher.
func TestSessionMismatchShowsAtBothEnds(t *testing.T) {
	logB := &atkLog{}
	b := baseConfig(t, "op-b")
	b.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	b.Peers = []config.Peer{{
		ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-a-123"},
		Import:     config.ImportPolicy{Classes: []string{"*"}},
		SigningKey: pub(t, "op-x"), // not op-a's
	}}
	nb := startNode(t, b, node.WithLogger(zerolog.New(logB).Level(zerolog.WarnLevel)))
	a := baseConfig(t, "op-a")
	a.Peers = []config.Peer{{
		ID: "op-b", Dial: &config.Dial{URL: nb.LeafURL(), User: "op-a", Password: "secret-a-123"},
		Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"*"}},
		SigningKey: pub(t, "op-b"),
	}}
	na := startNode(t, a)
	waitFor(t, 15*time.Second, func() error {
		sa, sb := na.Session("op-b"), nb.Session("op-a")
		if sa.State == session.Established || sb.State == session.Established {
			return fmt.Errorf("established: %+v / %+v", sa, sb)
		}
		if !contains(sb.LastDown, session.ReasonUnknownKey) || !contains(sa.LastDown, session.ReasonUnknownKey) {
			return fmt.Errorf("last down at a %q, at b %q: want %s at both", sa.LastDown, sb.LastDown, session.ReasonUnknownKey)
		}
		return nil
	})
	// And the peers view carries it.
	for _, p := range nb.Peers(context.Background()) {
		require.NotNil(t, p.Session)
		assert.Contains(t, p.Session.LastDown, session.ReasonUnknownKey)
	}
	time.Sleep(1500 * time.Millisecond) // past the second a failure is reported in
	seen := map[string]int{}
	for _, l := range logB.since(0) {
		if l["message"] == "session not established" {
			seen[fmt.Sprint(l["down_at"])]++
		}
	}
	require.NotEmpty(t, seen, "a failed session is logged")
	for at, n := range seen {
		assert.Equal(t, 1, n, "the failure at %s logged %d times", at, n)
	}
}

func contains(s, sub string) bool { return len(sub) > 0 && len(s) >= len(sub) && indexOf(s, sub) >= 0 }

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestPeerRefreshOnDemand: `anfed peer refresh` over the node's NATS API
// re-states op-a's state and sweeps what op-b holds that op-a does not.
func TestPeerRefreshOnDemand(t *testing.T) {
	l := newSessionLab(t, nil, nil)
	l.publish("congestion", "ic-1", "c1", signal.Raised)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "active"})
	for _, dir := range []string{`"inbound":true`, `"outbound":true`} {
		eor := l.eors()
		nc, n := l.nb, "op-a"
		if dir == `"outbound":true` {
			nc, n = l.na, "op-b"
		}
		c, err := nc.Connect()
		require.NoError(t, err)
		m, err := c.Request(subject.APIPeerRefresh, []byte(`{"peer":"`+n+`",`+dir+`}`), 5*time.Second)
		c.Close()
		require.NoError(t, err)
		require.JSONEq(t, `{"ok":true}`, string(m.Data))
		l.refreshed(eor)
	}
	s := l.na.Session("op-b")
	require.NotNil(t, s.LastRefresh)
	assert.Equal(t, 1, s.LastRefresh.Sent, "one active condition re-stated")
	c, err := l.nb.Connect()
	require.NoError(t, err)
	defer c.Close()
	m, err := c.Request(subject.APIPeerRefresh, []byte(`{"peer":"op-z"}`), 5*time.Second)
	require.NoError(t, err)
	assert.Contains(t, string(m.Data), `no peer \"op-z\"`)
}

// TestRefreshAskOverBoundServedLater: op-b asks op-a for three refreshes
// in a row (say two reloads of its import policy and an operator's
// `anfed peer refresh`); the third is over op-a's bound on REFRESH asks
// (two, then one per node.RefreshAskEvery). op-a folds it into one
// refresh it sends when the bound allows, instead of dropping it: before,
// op-b waited for that End-of-RIB for good (found by TestConvergence with
// import-policy reloads).
func TestRefreshAskOverBoundServedLater(t *testing.T) {
	l := newSessionLab(t, nil, nil)
	l.publish("congestion", "ic-1", "c1", signal.Raised)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "active"})
	refused := l.na.Session("op-b").Refused
	for range 3 {
		eor := l.eors()
		require.NoError(t, l.nb.RefreshPeer(context.Background(), "op-a", true, false))
		l.refreshed(eor)
	}
	assert.Greater(t, l.na.Session("op-b").Refused, refused, "the premise: an ask was over the bound")
	assert.Equal(t, map[string]string{"congestion vpn-acme/ic-1": "active"}, l.held())
}

// TestImportTightenedByReloadWithdrawsAtOnce: op-b holds op-a's fault and
// congestion; the link is cut (op-a's session down) and op-b reloads its
// import policy to faults only. The congestion is withdrawn at once and
// kept in the Adj-RIB-In, without op-a; loosened again, it is admitted
// from there, still without op-a. Before, a reload only asked the peer
// for a refresh, and only with the session up: the congestion stayed held
// until the link came back (found by TestConvergence).
func TestImportTightenedByReloadWithdrawsAtOnce(t *testing.T) {
	var b *config.Config
	l := newSessionLab(t, nil, func(c *config.Config) { b = c })
	l.publish("fault", "pe-1", "f1", signal.Raised)
	l.publish("congestion", "ic-1", "c1", signal.Raised)
	both := map[string]string{"fault vpn-acme/pe-1": "active", "congestion vpn-acme/ic-1": "active"}
	l.waitHeld(both)
	l.proxy.Cut()
	defer l.proxy.Restore()
	waitFor(t, 10*time.Second, func() error {
		if l.nb.LinkUp("op-a") {
			return fmt.Errorf("link still up")
		}
		return nil
	})
	reload := func(classes ...string) {
		next := *b
		next.Peers = slices.Clone(b.Peers)
		next.Peers[0].Import.Classes = classes
		_, err := l.nb.Reload(context.Background(), &next)
		require.NoError(t, err)
		b = &next
	}
	reload("fault")
	waitFor(t, 5*time.Second, func() error {
		if _, ok := l.held()["congestion vpn-acme/ic-1"]; ok {
			return fmt.Errorf("op-b still holds the congestion its import policy refuses: %v", l.held())
		}
		return nil
	})
	require.False(t, l.nb.LinkUp("op-a"), "the premise: withdrawn without the peer")
	reload("*")
	waitFor(t, 5*time.Second, func() error {
		if _, ok := l.held()["congestion vpn-acme/ic-1"]; !ok {
			return fmt.Errorf("the congestion not admitted from the Adj-RIB-In: %v", l.held())
		}
		return nil
	})
}

// restartablePair starts op-b, accepting op-a on a fixed port (so op-b
// can restart with a new policy, b, and op-a dial it again) and importing
// importB, and op-a exporting exportA to it, started with optsA.
func restartablePair(t *testing.T, importB, exportA []string, optsA ...node.Option) (b *config.Config, nb, na *node.Node) {
	t.Helper()
	b = baseConfig(t, "op-b")
	b.NATS.LeafNodes = &config.Listener{Listen: natstest.FreeAddr(t)}
	b.Peers = []config.Peer{{
		ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-a-123"},
		Import:     config.ImportPolicy{Classes: importB},
		SigningKey: pub(t, "op-a"),
	}}
	nb = startNode(t, b)
	a := baseConfig(t, "op-a")
	a.Peers = []config.Peer{{
		ID: "op-b", Dial: &config.Dial{URL: nb.LeafURL(), User: "op-a", Password: "secret-a-123"},
		Export:     config.ExportPolicy{Classes: exportA, Services: []string{"*"}},
		SigningKey: pub(t, "op-b"),
	}}
	return b, nb, startNode(t, a, optsA...)
}

// TestKeyChangeRefusedThenPinned: op-a changes its signing key before
// op-b pinned the new one. The session closes with unknown-key at both
// ends, and five faults op-a raises meanwhile are held by op-b (key-held).
// Once op-b pins the new key (and restarts with it), they are released and
// the session, established again, re-states them: before sessions none of
// the five ever arrived (TestKeyChangeHeldThenReleasedInOrder checks the
// order and the history).
func TestKeyChangeRefusedThenPinned(t *testing.T) {
	newKey, err := origin.NewSigningKey()
	require.NoError(t, err)
	newPub, err := newKey.PublicKey()
	require.NoError(t, err)

	b, nb, na := restartablePair(t, []string{"*"}, []string{"fault"}, node.WithSigningKey(newKey)) // op-a's new key
	waitFor(t, 15*time.Second, func() error {
		if s := nb.Session("op-a"); !contains(s.LastDown, session.ReasonUnknownKey) {
			return fmt.Errorf("op-b's session: %+v", s)
		}
		if s := na.Session("op-b"); !contains(s.LastDown, session.ReasonUnknownKey) {
			return fmt.Errorf("op-a's session: %+v", s)
		}
		return nil
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	for i := 1; i <= 5; i++ {
		ev := faultEvent("op-a", fmt.Sprintf("k%d", i))
		ev.Subject = fmt.Sprintf("vpn-acme/pe-%d", i)
		require.True(t, publish(t, pa, ev).OK())
	}
	waitFor(t, 15*time.Second, func() error {
		if bl, err := na.Backlog(context.Background(), "op-b"); err != nil || bl != 0 {
			return fmt.Errorf("backlog %d %v", bl, err)
		}
		return nil
	})
	require.Zero(t, nb.Table().Len("op-a"), "refused: op-b has not pinned the new key")

	nb.Stop()
	b.Peers[0].SigningKey = newPub
	nb = startNode(t, b)
	waitFor(t, 20*time.Second, func() error {
		if n := nb.Table().Len("op-a"); n != 5 {
			return fmt.Errorf("op-b holds %d of the 5 faults; session %+v", n, nb.Session("op-a"))
		}
		return nil
	})
}

// TestImportLoosenedRevealsAtRefresh: op-b imports only congestion from
// op-a, so op-a's fault pe-1 is refused (not-imported). op-b loosens its
// import policy to faults and restarts: the session's refresh brings pe-1,
// active at op-a all along (before sessions op-b never learned it). The
// session's refresh and op-b's Adj-RIB-In (TestSoftReconfigurationAtRestart)
// both bring it now; either is enough.
func TestImportLoosenedRevealsAtRefresh(t *testing.T) {
	b, nb, na := restartablePair(t, []string{"congestion"}, []string{"fault", "congestion"})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	ev := faultEvent("op-a", "f1")
	ev.Subject = "vpn-acme/pe-1"
	require.True(t, publish(t, pa, ev).OK())
	c := congestion("op-a", "c1")
	require.True(t, publish(t, pa, c).OK())
	waitFor(t, 15*time.Second, func() error {
		if n := nb.Table().Len("op-a"); n != 1 {
			return fmt.Errorf("op-b holds %d, want the congestion only", n)
		}
		return nil
	})
	nb.Stop()
	b.Peers[0].Import.Classes = []string{"congestion", "fault"}
	nb = startNode(t, b)
	waitFor(t, 20*time.Second, func() error {
		if got := nb.Conditions(conditions.Filter{Peer: "op-a", Class: "fault"}); len(got) != 1 || got[0].ID != "f1" {
			return fmt.Errorf("op-b holds faults %+v", got)
		}
		return nil
	})
}

// TestLossyPeerFreshenedAtSessionUp: a lossy export sends no refresh (it
// keeps no state to re-state), and says so in its OPEN; op-b's conditions
// from it that went stale during a cut are active again once the session
// is up, as before sessions, rather than withdrawn at the withdraw time.
func TestLossyPeerFreshenedAtSessionUp(t *testing.T) {
	l := newSessionLab(t, func(c *config.Config) {
		c.Peers[0].Export.Delivery = config.DeliveryLossy
	}, func(c *config.Config) {
		c.Peers[0].Import.Grace = config.Duration(200 * time.Millisecond)
		c.Peers[0].Import.WithdrawAfter = config.Duration(time.Hour)
	})
	waitFor(t, 10*time.Second, func() error {
		l.publish("congestion", "ic-1", fmt.Sprintf("c%d", time.Now().UnixNano()), signal.Raised)
		if len(l.held()) == 0 {
			return fmt.Errorf("nothing crossed yet")
		}
		return nil
	})
	l.proxy.Cut()
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "stale"})
	l.proxy.Restore()
	l.established()
	require.False(t, l.nb.Session("op-a").Negotiated.PeerRefreshes)
	l.waitHeld(map[string]string{"congestion vpn-acme/ic-1": "active"})
}

// TestRestartWithPeerGoneWithdrawsAtOnce: op-b restarted with op-a
// disabled, or removed from its policy, withdraws op-a's conditions it
// rebuilt from its store at start, as a disable or a removal while it runs
// does — not after the grace time (30 s), nor, for a removed peer, never.
func TestRestartWithPeerGoneWithdrawsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*config.Config)
	}{
		{"disabled", func(c *config.Config) { c.Peers[0].Disabled = &config.Disabled{Reason: "maintenance window"} }},
		{"removed", func(c *config.Config) { c.Peers = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, nb, na := restartablePair(t, []string{"*"}, []string{"fault"})
			pa, err := na.Connect()
			require.NoError(t, err)
			defer pa.Close()
			for i := 1; i <= 3; i++ {
				ev := faultEvent("op-a", fmt.Sprintf("g%d", i))
				ev.Subject = fmt.Sprintf("vpn-acme/pe-%d", i)
				require.True(t, publish(t, pa, ev).OK())
			}
			waitFor(t, 15*time.Second, func() error {
				if n := nb.Table().Len("op-a"); n != 3 {
					return fmt.Errorf("op-b holds %d of op-a's 3 faults", n)
				}
				return nil
			})
			na.Stop()
			nb.Stop()
			tc.edit(b)
			nb = startNode(t, b)
			waitFor(t, 5*time.Second, func() error {
				if got := nb.Conditions(conditions.Filter{Peer: "op-a"}); len(got) != 0 {
					return fmt.Errorf("op-b still holds %d of op-a's conditions after its restart", len(got))
				}
				return nil
			})
		})
	}
}
