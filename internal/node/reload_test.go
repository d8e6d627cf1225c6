package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// reloadLab is op-a, which reloads its policy while it runs, and its
// peers op-b and op-c, which dial it and never reload.
type reloadLab struct {
	t      *testing.T
	na     *node.Node
	pa     *nats.Conn
	peers  map[string]*node.Node
	cfg    *config.Config // op-a's policy in force
	seq    int
	before map[string]int // session flaps at the start, by "x<-y"
}

func newReloadLab(t *testing.T) *reloadLab {
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{reloadPeer(t, "op-b")}
	l := &reloadLab{t: t, cfg: a, peers: map[string]*node.Node{}}
	l.na = startNode(t, a)
	var err error
	l.pa, err = l.na.Connect()
	require.NoError(t, err)
	t.Cleanup(l.pa.Close)
	l.startPeer("op-b")
	return l
}

// reloadPeer is op-a's peering with id: id dials op-a, op-a exports it
// congestions of every service.
func reloadPeer(t *testing.T, id string) config.Peer {
	return config.Peer{
		ID: id, Accept: &config.Accept{User: id, Password: "secret-" + id + "-123"},
		Export:     config.ExportPolicy{Classes: []string{"congestion"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"*"}},
		SigningKey: pub(t, id),
	}
}

// startPeer starts id's node, dialling op-a with the credentials op-a
// issues it in reloadPeer (whether op-a has them yet or not).
func (l *reloadLab) startPeer(id string) {
	c := baseConfig(l.t, id)
	c.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: l.na.LeafURL(), User: id, Password: "secret-" + id + "-123"},
		Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"*"}},
		SigningKey: pub(l.t, "op-a"),
	}}
	l.peers[id] = startNode(l.t, c)
}

// established waits until op-a and id hold their session established.
func (l *reloadLab) established(id string) {
	l.t.Helper()
	waitFor(l.t, 20*time.Second, func() error {
		for _, s := range []*node.SessionView{l.na.Session(id), l.peers[id].Session("op-a")} {
			if s == nil || s.State != session.Established {
				return fmt.Errorf("session op-a<->%s not established: %+v", id, s)
			}
		}
		return nil
	})
}

// flaps are the session flaps of op-a's peering with id, at both ends.
func (l *reloadLab) flaps(id string) int {
	f := 0
	if s := l.na.Session(id); s != nil {
		f += s.Flaps
	}
	if s := l.peers[id].Session("op-a"); s != nil {
		f += s.Flaps
	}
	return f
}

// reload applies edit to a copy of op-a's policy and reloads it.
func (l *reloadLab) reload(edit func(*config.Config)) *node.ReloadResult {
	l.t.Helper()
	next := *l.cfg
	next.Peers = slices.Clone(l.cfg.Peers)
	edit(&next)
	res, err := l.na.Reload(context.Background(), &next)
	require.NoError(l.t, err)
	l.cfg = &next
	return res
}

// raise publishes a congestion raised at op-a on subject svc/res.
func (l *reloadLab) raise(svc, res string) {
	l.t.Helper()
	l.seq++
	ev := congestion("op-a", fmt.Sprintf("r%d", l.seq))
	ev.Subject = svc + "/" + res
	a := publish(l.t, l.pa, ev)
	require.True(l.t, a.OK(), "%+v", a)
}

// held is what id holds from op-a: its subjects, sorted.
func (l *reloadLab) held(id string) []string {
	var out []string
	for _, c := range l.peers[id].Conditions(conditions.Filter{Peer: "op-a"}) {
		out = append(out, c.Subject)
	}
	sort.Strings(out)
	return out
}

// waitHeld waits until id holds exactly want from op-a; it returns how
// long that took.
func (l *reloadLab) waitHeld(id string, want ...string) time.Duration {
	l.t.Helper()
	start := time.Now()
	sort.Strings(want)
	waitFor(l.t, 20*time.Second, func() error {
		if got := l.held(id); !slices.Equal(got, want) {
			return fmt.Errorf("%s holds %v from op-a, want %v", id, got, want)
		}
		return nil
	})
	return time.Since(start)
}

// TestReloadLive: op-a reloads its policy five times while op-b and op-c
// stay peered with it; the peering a change does not touch never flaps,
// and no session flaps for a policy change either.
//
//	(d) op-c added: its account, user and leaf link come up on the
//	    running server, and signals cross;
//	(a) op-b's export filter tightened: op-b withdraws what no longer
//	    passes;
//	(b) loosened again: op-b learns what op-a holds and now exports;
//	(c) a bad file: an error with file and line, nothing changed;
//	(e) op-c removed: its link cut, its conditions withdrawn at op-a.
func TestReloadLive(t *testing.T) {
	l := newReloadLab(t)
	l.established("op-b")
	l.raise("vpn-acme", "ic-1")
	l.raise("vpn-beta", "ic-2")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-beta/ic-2")

	// (d) a new peer at runtime.
	l.startPeer("op-c") // dials op-a, which does not know it yet
	time.Sleep(500 * time.Millisecond)
	require.False(t, l.na.LinkUp("op-c"), "op-a has no user for op-c yet: the premise")
	flapsB := l.flaps("op-b")
	start := time.Now()
	res := l.reload(func(c *config.Config) { c.Peers = append(c.Peers, reloadPeer(t, "op-c")) })
	assert.Equal(t, []string{"op-c"}, res.Added)
	l.established("op-c")
	l.waitHeld("op-c", "vpn-acme/ic-1", "vpn-beta/ic-2")
	t.Logf("(d) op-c added: session established and op-a's refresh held at op-c %s after the reload (reload took %s)", time.Since(start), res.Took)
	// Signals cross both ways on the new link.
	nc, err := l.peers["op-c"].Connect()
	require.NoError(t, err)
	defer nc.Close()
	f := faultEvent("op-c", "fc-1")
	require.True(t, publish(t, nc, f).OK())
	waitFor(t, 10*time.Second, func() error {
		if len(l.na.Conditions(conditions.Filter{Peer: "op-c", Class: "fault"})) != 1 {
			return fmt.Errorf("op-c's fault not at op-a yet")
		}
		return nil
	})
	assert.Equal(t, flapsB, l.flaps("op-b"), "op-b's peering flapped while op-c was added")

	// (a) tighten the export filter towards op-b.
	flapsC := l.flaps("op-c")
	start = time.Now()
	res = l.reload(func(c *config.Config) {
		p := &c.Peers[0]
		p.Export.Filter = "subject LIKE 'vpn-acme/%'"
	})
	assert.Equal(t, map[string][]string{"op-b": {"export"}}, res.Changed)
	l.waitHeld("op-b", "vpn-acme/ic-1")
	t.Logf("(a) tightened: op-b withdrew vpn-beta/ic-2 %s after the reload (reload took %s)", time.Since(start), res.Took)
	l.raise("vpn-beta", "ic-3") // not exported to op-b now
	l.raise("vpn-acme", "ic-4")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-acme/ic-4")

	// (b) loosen it again: op-b learns ic-2 and ic-3, active at op-a.
	start = time.Now()
	l.reload(func(c *config.Config) { c.Peers[0].Export.Filter = "" })
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-beta/ic-2", "vpn-beta/ic-3", "vpn-acme/ic-4")
	t.Logf("(b) loosened: op-b learned vpn-beta/ic-2 and ic-3 %s after the reload", time.Since(start))

	// (c) a bad file: file and line, nothing changed.
	bad := filepath.Join(t.TempDir(), "op-a.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("operator:\n  id: op-a\nstorage:\n  dir: /tmp/x\npeers:\n  - id: op-b\n    accept: {user: op-b, password: short}\n    bogus: 1\n"), 0o600))
	okBefore, failedBefore, _ := l.na.Reloads()
	_, err = l.na.ReloadFile(context.Background(), bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+":8:", "the error names the file and line of the unknown key")
	ok, failed, last := l.na.Reloads()
	assert.Equal(t, okBefore, ok)
	assert.Equal(t, failedBefore+1, failed)
	assert.Contains(t, last.Error, "nothing was changed")
	assert.Same(t, l.cfg, l.na.Config(), "the policy in force is the one before the bad file")
	// A change a reload cannot make is refused whole.
	next := *l.cfg
	next.Storage.Dir = t.TempDir()
	next.Peers = append(slices.Clone(l.cfg.Peers), reloadPeer(t, "op-d"))
	_, err = l.na.Reload(context.Background(), &next)
	require.ErrorContains(t, err, "storage")
	assert.Len(t, l.na.Config().Peers, 2, "op-d was not added by a refused reload")

	assert.Equal(t, flapsC, l.flaps("op-c"), "op-c's peering flapped while op-b's policy changed")

	// (e) remove op-c: cut at once, its conditions withdrawn at op-a.
	flapsB = l.flaps("op-b")
	start = time.Now()
	res = l.reload(func(c *config.Config) { c.Peers = c.Peers[:1] })
	assert.Equal(t, []string{"op-c"}, res.Removed)
	assert.Empty(t, l.na.Conditions(conditions.Filter{Peer: "op-c", IncludeStale: true}), "op-c's fault withdrawn at once")
	waitFor(t, 10*time.Second, func() error {
		if l.na.LinkUp("op-c") || l.peers["op-c"].LinkUp("op-a") {
			return fmt.Errorf("op-c's link still up")
		}
		return nil
	})
	t.Logf("(e) op-c removed: link down %s after the reload", time.Since(start))
	waitFor(t, 10*time.Second, func() error {
		if s := l.peers["op-c"].Session("op-a"); !strings.Contains(s.LastDown, "removed") {
			return fmt.Errorf("op-c's session: %+v", s)
		}
		return nil
	})
	time.Sleep(time.Second) // op-c redials: it must stay out
	assert.False(t, l.na.LinkUp("op-c"), "op-c is refused after its removal")

	// Untouched peerings never flapped; no policy change flapped a
	// session.
	assert.Equal(t, flapsB, l.flaps("op-b"), "op-b's peering flapped while op-c was removed")
	assert.Zero(t, l.flaps("op-b"), "op-b's session flapped")
	l.raise("vpn-acme", "ic-5")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-beta/ic-2", "vpn-beta/ic-3", "vpn-acme/ic-4", "vpn-acme/ic-5")
	ok, failed, _ = l.na.Reloads()
	assert.Equal(t, 4, ok)
	assert.Equal(t, 2, failed)
}

// startDialled starts id's node with a leaf listener that op-a dials
// (op-a's policy gets the peering at its next reload).
func (l *reloadLab) startDialled(id string) config.Peer {
	c := baseConfig(l.t, id)
	c.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	c.Peers = []config.Peer{{
		ID: "op-a", Accept: &config.Accept{User: "op-a", Password: "secret-op-a-123"},
		Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"*"}},
		SigningKey: pub(l.t, "op-a"),
	}}
	l.peers[id] = startNode(l.t, c)
	p := reloadPeer(l.t, id)
	p.Accept, p.Dial = nil, &config.Dial{URL: l.peers[id].LeafURL(), User: "op-a", Password: "secret-op-a-123"}
	return p
}

// TestPeerDisableEnable: op-a holds its peering with op-c (which op-a
// dials) administratively down with a reason, then brings it back. op-c
// is told the reason and shows it; both ends withdraw what the other told
// them at once; the link stays down; op-b never notices. Enabled, the
// link comes back and a refresh gives op-c what op-a raised meanwhile.
func TestPeerDisableEnable(t *testing.T) {
	l := newReloadLab(t)
	pc := l.startDialled("op-c")
	l.reload(func(c *config.Config) { c.Peers = append(c.Peers, pc) })
	l.established("op-b")
	l.established("op-c")
	l.raise("vpn-acme", "ic-1")
	l.waitHeld("op-b", "vpn-acme/ic-1")
	l.waitHeld("op-c", "vpn-acme/ic-1")
	nc, err := l.peers["op-c"].Connect()
	require.NoError(t, err)
	defer nc.Close()
	require.True(t, publish(t, nc, faultEvent("op-c", "fc-1")).OK())
	waitFor(t, 10*time.Second, func() error {
		if len(l.na.Conditions(conditions.Filter{Peer: "op-c"})) != 1 {
			return fmt.Errorf("op-c's fault not at op-a yet")
		}
		return nil
	})

	const why = "maintenance of ic-paris-1 until 14:00 UTC, ticket CHG-4711"
	start := time.Now()
	res := l.reload(func(c *config.Config) { c.Peers[1].Disabled = &config.Disabled{Reason: why} })
	assert.Equal(t, map[string][]string{"op-c": {"disabled"}}, res.Changed)
	waitFor(t, 10*time.Second, func() error {
		s := l.peers["op-c"].Session("op-a")
		if !strings.Contains(s.LastDown, "administrative: "+why) {
			return fmt.Errorf("op-c's session: %+v", s)
		}
		if l.na.LinkUp("op-c") || l.peers["op-c"].LinkUp("op-a") {
			return fmt.Errorf("the link is still up")
		}
		if n := len(l.held("op-c")); n != 0 {
			return fmt.Errorf("op-c still holds %d of op-a's conditions", n)
		}
		if n := len(l.na.Conditions(conditions.Filter{Peer: "op-c", IncludeStale: true})); n != 0 {
			return fmt.Errorf("op-a still holds %d of op-c's conditions", n)
		}
		return nil
	})
	t.Logf("disabled: op-c told, link down, both ends withdrawn %s after the reload", time.Since(start))
	var ps node.PeerState
	for _, p := range l.na.Peers(context.Background()) {
		if p.ID == "op-c" {
			ps = p
		}
	}
	assert.Equal(t, why, ps.Disabled, "op-a's peers view says why")
	l.raise("vpn-acme", "ic-2") // while op-c is down
	time.Sleep(1500 * time.Millisecond)
	assert.False(t, l.na.LinkUp("op-c"), "the link is held down")

	start = time.Now()
	l.reload(func(c *config.Config) { c.Peers[1].Disabled = nil })
	l.established("op-c")
	l.waitHeld("op-c", "vpn-acme/ic-1", "vpn-acme/ic-2")
	waitFor(t, 10*time.Second, func() error {
		if len(l.na.Conditions(conditions.Filter{Peer: "op-c"})) != 1 {
			return fmt.Errorf("op-c's fault not back at op-a")
		}
		return nil
	})
	t.Logf("enabled: link, session and both refreshes done %s after the reload", time.Since(start))
	assert.Zero(t, l.flaps("op-b"), "op-b's peering flapped")
	l.waitHeld("op-b", "vpn-acme/ic-1", "vpn-acme/ic-2")
}

// TestReloadSigningKeyFileAfterRotation: after `anfed keys rotate`
// switched, the runbook names the new key's file in
// operator.signing_key_file; the reload takes it (nothing changes but the
// file the next start reads). A file with another key is refused, naming
// both keys. Before the fix every such reload was refused whole, so the
// operator who followed the runbook could reload nothing until a restart.
func TestReloadSigningKeyFileAfterRotation(t *testing.T) {
	a := baseConfig(t, "op-a")
	na := startNode(t, a)
	r, err := na.RotateKey(context.Background(), 2*time.Second)
	require.NoError(t, err)
	require.False(t, na.KeyRotation().SwitchedAt.IsZero(), "no peers: switched at once")

	next := *a
	next.Operator.SigningKeyFile = r.KeyFile
	res, err := na.Reload(context.Background(), &next)
	require.NoError(t, err)
	assert.Equal(t, []string{"operator.signing_key_file"}, res.Node)
	assert.Equal(t, r.Key, na.SigningKey())
	assert.Equal(t, r.KeyFile, na.Config().Operator.SigningKeyFile)

	other := filepath.Join(t.TempDir(), "other.nk")
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	require.NoError(t, origin.WriteSigningKey(other, kp))
	bad := next
	bad.Operator.SigningKeyFile = other
	_, err = na.Reload(context.Background(), &bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "operator.signing_key_file")
	assert.Contains(t, err.Error(), origin.ShortKey(r.Key), "names the key in force")
	assert.Contains(t, err.Error(), "nothing was changed")
	assert.Equal(t, r.KeyFile, na.Config().Operator.SigningKeyFile)
}

// streamConditions publishes new conditions (class mk's, subject
// svc/ic-N) into n from one source until stop is closed; the function it
// returns gives the ids accepted.
func streamConditions(t *testing.T, n *node.Node, mk func(origin, id string) *signal.Event, svc string, stop <-chan struct{}) func() []string {
	nc, err := n.Connect()
	require.NoError(t, err)
	accepted := make(chan []string, 1)
	go func() {
		defer nc.Close()
		var ok []string
		for i := 1; ; i++ {
			select {
			case <-stop:
				accepted <- ok
				return
			default:
			}
			ev := mk(n.ID(), fmt.Sprintf("x%d", i))
			ev.Subject = fmt.Sprintf("%s/ic-%d", svc, i)
			ev.Sequence = fmt.Sprintf("%020d", i)
			ev.Time = time.Now().UTC().Truncate(time.Millisecond)
			m, err := nc.Request(subject.IntakePrefix, ev.Encode(), 5*time.Second)
			if err == nil {
				if a, err := signal.ParseAnswer(m.Data); err == nil && a.OK() {
					ok = append(ok, ev.ID)
				}
			}
		}
	}()
	return func() []string { return <-accepted }
}

// TestExportReloadUnderStream: op-a changes its export filter towards
// op-b ten times (a class the stream does not carry, in and out) while it
// streams congestions to op-b: each reload makes op-b's export anew, and
// every congestion op-a accepted reaches op-b's store once.
func TestExportReloadUnderStream(t *testing.T) {
	l := newReloadLab(t)
	l.established("op-b")
	stop := make(chan struct{})
	// Every other signal a fault, which the tightened filter holds back.
	n := 0
	mixed := func(origin, id string) *signal.Event {
		n++
		if n%2 == 0 {
			return faultEvent(origin, id)
		}
		return congestion(origin, id)
	}
	fromA := streamConditions(t, l.na, mixed, "vpn-acme", stop)
	// Each reload renews op-a's receiver too: op-b streams to it.
	fromB := streamConditions(t, l.peers["op-b"], faultEvent, "vpn-zeta", stop)
	// The last reload tightens: what follows goes through the tightened
	// export.
	for i := range 11 {
		time.Sleep(200 * time.Millisecond)
		l.reload(func(c *config.Config) {
			c.Peers[0].Export.Filter = []string{"type <> 'net.anfed.fault.v1'", ""}[i%2]
		})
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	t.Logf("op-b streamed %d faults meanwhile", len(fromB()))
	var want []string
	for _, id := range fromA() {
		var k int
		fmt.Sscanf(id, "x%d", &k)
		if k%2 == 1 { // the congestions: every filter passes them
			want = append(want, id)
		}
	}
	require.NotEmpty(t, want)
	var got map[string]int
	waitFor(t, 30*time.Second, func() error {
		got = map[string]int{}
		for _, ev := range storedEvents(t, l.peers["op-b"], "op-a") {
			got[ev.ID]++
		}
		for _, id := range want {
			if got[id] == 0 {
				return fmt.Errorf("op-b has %d of the %d op-a accepted; %s missing", len(got), len(want), id)
			}
		}
		return nil
	})
	for id, n := range got {
		assert.Equal(t, 1, n, "%s stored %d times at op-b", id, n)
	}
	t.Logf("%d signals across 10 export reloads, all at op-b once", len(want))
}

// TestPeerDisableUnderTraffic: op-a disables op-c while both stream new
// conditions to each other. What either sent before the cut must not be
// taken after the withdraw: a second after op-c was told, neither end
// holds any of the other's conditions (a condition taken after the
// withdraw would stay for the 30 s grace). Before the fix, op-a's export
// went on after its notice, and op-a's receiver took what op-c had sent
// after op-a withdrew: conditions came back at both ends.
func TestPeerDisableUnderTraffic(t *testing.T) {
	l := newReloadLab(t)
	pc := l.startDialled("op-c")
	l.reload(func(c *config.Config) { c.Peers = append(c.Peers, pc) })
	l.established("op-c")
	stop := make(chan struct{})
	fromA := streamConditions(t, l.na, congestion, "vpn-acme", stop)
	fromC := streamConditions(t, l.peers["op-c"], faultEvent, "vpn-zeta", stop)
	waitFor(t, 10*time.Second, func() error {
		if len(l.held("op-c")) < 50 || len(l.na.Conditions(conditions.Filter{Peer: "op-c"})) < 50 {
			return fmt.Errorf("the streams have not crossed yet")
		}
		return nil
	})
	const why = "maintenance under traffic"
	l.reload(func(c *config.Config) { c.Peers[1].Disabled = &config.Disabled{Reason: why} })
	waitFor(t, 10*time.Second, func() error {
		if s := l.peers["op-c"].Session("op-a"); !strings.Contains(s.LastDown, why) {
			return fmt.Errorf("op-c not told yet: %+v", s)
		}
		return nil
	})
	time.Sleep(time.Second)
	close(stop)
	t.Logf("accepted meanwhile: op-a %d, op-c %d", len(fromA()), len(fromC()))
	assert.Empty(t, l.held("op-c"), "op-c holds op-a's conditions after the administrative down")
	assert.Empty(t, l.na.Conditions(conditions.Filter{Peer: "op-c", IncludeStale: true}), "op-a holds op-c's conditions after disabling it")

	// Enabled again: both ends hold what the other streamed.
	l.reload(func(c *config.Config) { c.Peers[1].Disabled = nil })
	l.established("op-c")
	waitFor(t, 20*time.Second, func() error {
		if len(l.held("op-c")) == 0 || len(l.na.Conditions(conditions.Filter{Peer: "op-c"})) == 0 {
			return fmt.Errorf("not refreshed yet")
		}
		return nil
	})
}
