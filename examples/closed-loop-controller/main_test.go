package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/demo"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const user, password = "closed-loop", "loop-pass-123"

// federation starts op-a and op-b of the demo's policies (op-a exports
// congestion on vpn-acme to op-b, op-b exports mitigation back) as two
// nodes over a real leaf link, each with a TCP client listener and a
// local user.
func federation(t *testing.T) (a, b *node.Node) {
	t.Helper()
	return federationWith(t, nil)
}

// federationWith is federation with edit applied to op-b's policy.
func federationWith(t *testing.T, edit func(*config.Config)) (a, b *node.Node) {
	t.Helper()
	cfgs, err := demo.Configs(t.TempDir())
	require.NoError(t, err)
	cfgs["op-b"].Peers = cfgs["op-b"].Peers[:1] // op-c is not needed here
	if edit != nil {
		edit(cfgs["op-b"])
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	start := func(id string) *node.Node {
		c := cfgs[id]
		c.NATS.Client = config.Listener{Listen: "127.0.0.1:0"}
		c.NATS.Users = []config.User{{Name: user, Password: password}}
		n := node.New(c, node.WithLogger(log))
		require.NoError(t, n.Start(context.Background()))
		t.Cleanup(n.Stop)
		return n
	}
	a = start("op-a")
	cfgs["op-b"].Peers[0].Dial.URL = a.LeafURL()
	b = start("op-b")
	natstest.WaitFor(t, 15*time.Second, func() error {
		if !a.LinkUp("op-b") || !b.LinkUp("op-a") {
			return fmt.Errorf("leaf link not up")
		}
		return nil
	})
	return a, b
}

// publishCongestion publishes a congestion signal at op-a as its assurance would
// and requires it accepted.
func publishCongestion(t *testing.T, nc *nats.Conn, id, res, kind string, st signal.State, util float64) {
	t.Helper()
	data := fmt.Sprintf(`{"link":{"id":%q,"kind":%q,"peer":"op-b"},"direction":"egress","utilisationPercent":%g,"packetLossPercent":0.4,"queueDelayMs":9.5,"trafficClasses":["AF41","BE"]}`, res, kind, util)
	ev := &signal.Event{
		ID: id, Source: "anfed://op-a/assurance", Type: "net.anfed.congestion.v1",
		Subject: "vpn-acme/" + res, Time: time.Now().UTC(),
		Origin: "op-a", State: st, Data: json.RawMessage(data),
	}
	m, err := nc.Request("an.pub", ev.Encode(), 10*time.Second)
	require.NoError(t, err)
	a, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	require.Equal(t, signal.StatusAccepted, a.Status, "%s: %s %s", id, a.Reason, a.Error)
}

// mitigations collects, at op-a, the mitigations op-b's signals carry
// across the border, as a closed loop at op-a would see them.
type mitigations struct {
	mu  sync.Mutex
	got []*signal.Event
}

func watchMitigations(t *testing.T, nc *nats.Conn) *mitigations {
	t.Helper()
	w := &mitigations{}
	sub, err := nc.Subscribe("an.sig.op-b.mitigation.>", func(m *nats.Msg) {
		ev, err := signal.DecodeStructured(m.Data)
		if !assert.NoError(t, err) {
			return
		}
		w.mu.Lock()
		w.got = append(w.got, ev)
		w.mu.Unlock()
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return w
}

func (w *mitigations) list() []*signal.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*signal.Event(nil), w.got...)
}

func (w *mitigations) wait(t *testing.T, n int) []*signal.Event {
	t.Helper()
	natstest.WaitFor(t, 20*time.Second, func() error {
		if got := len(w.list()); got < n {
			return fmt.Errorf("%d of %d mitigations at op-a", got, n)
		}
		return nil
	})
	return w.list()
}

// startRun runs the controller until the returned stop is called.
func startRun(t *testing.T, o options, out *nodetest.Output) (stop func()) {
	t.Helper()
	stop = nodetest.Run(t, 15*time.Second, func(ctx context.Context) error { return run(ctx, o, out) })
	natstest.WaitFor(t, 15*time.Second, func() error {
		if !strings.Contains(out.String(), "active reroutes") {
			return fmt.Errorf("controller not started: %s", out.String())
		}
		return nil
	})
	return stop
}

// data reads a mitigation's data.
func data(t *testing.T, ev *signal.Event) map[string]any {
	var d map[string]any
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	return d
}

// Congestion raised at op-a crosses to op-b; the controller there raises a
// reroute mitigation that crosses back to op-a; congestion that hovers
// between the two bounds changes nothing; the clear clears it. Restarted
// while a reroute is active, the controller finds it on the bus and clears
// it when the congestion it missed clears.
func TestControllerReroutesAcrossTheBorder(t *testing.T) {
	a, b := federation(t)
	ncA, err := nats.Connect(a.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer ncA.Close()
	seen := watchMitigations(t, ncA)

	o := options{URL: b.ClientURL(), User: user, Password: password, Operator: "op-b", Durable: "ctl", Raise: 85, Clear: 70}
	out := &nodetest.Output{}
	stop := startRun(t, o, out)

	// Under the raise bound, and congestion inside op-a's network: nothing.
	publishCongestion(t, ncA, "c1-low", "ic-paris-1", "interconnect", signal.Raised, 60)
	publishCongestion(t, ncA, "c2-inner", "par-core-3", "link", signal.Raised, 99)
	// Over it: a reroute.
	publishCongestion(t, ncA, "c1-high", "ic-paris-1", "interconnect", signal.Updated, 92.5)
	got := seen.wait(t, 1)
	m := got[0]
	assert.Equal(t, "op-b", m.Origin)
	assert.Equal(t, signal.Raised, m.State)
	assert.Equal(t, "vpn-acme/ic-paris-1", m.Subject)
	assert.Equal(t, "c1-high", m.CausationID)
	assert.Equal(t, []string{"op-b"}, m.Path, "crossed once, from op-b")
	d := data(t, m)
	assert.Equal(t, "reroute", d["action"])
	assert.Equal(t, "in-progress", d["status"])
	assert.Equal(t, []any{map[string]any{"source": "anfed://op-a/assurance", "id": "c1-high"}}, d["respondsTo"])
	assert.Equal(t, map[string]any{"id": "ic-paris-1", "type": "interconnect"}, d["target"])

	// Between the bounds: the reroute stays, nothing is said.
	publishCongestion(t, ncA, "c1-mid", "ic-paris-1", "interconnect", signal.Updated, 78)
	publishCongestion(t, ncA, "c1-higher", "ic-paris-1", "interconnect", signal.Updated, 97)
	// Cleared: the reroute is withdrawn.
	publishCongestion(t, ncA, "c1-cleared", "ic-paris-1", "interconnect", signal.Cleared, 40)
	got = seen.wait(t, 2)
	m = got[1]
	assert.Equal(t, signal.Cleared, m.State)
	assert.Equal(t, "vpn-acme/ic-paris-1", m.Subject)
	assert.Equal(t, "c1-cleared", m.CausationID)
	d = data(t, m)
	assert.Equal(t, "completed", d["status"])
	assert.Len(t, d["respondsTo"], 2, "names the congestion that caused the reroute and the one that ended it")

	// Under the clear bound without a clear also withdraws it.
	publishCongestion(t, ncA, "c3-high", "ic-lyon-2", "interconnect", signal.Raised, 88)
	got = seen.wait(t, 3)
	assert.Equal(t, signal.Raised, got[2].State)
	assert.Equal(t, "vpn-acme/ic-lyon-2", got[2].Subject)
	publishCongestion(t, ncA, "c3-low", "ic-lyon-2", "interconnect", signal.Updated, 65)
	got = seen.wait(t, 4)
	assert.Equal(t, signal.Cleared, got[3].State)
	assert.Equal(t, "c3-low", got[3].CausationID)

	// A reroute active when the controller stops; its congestion clears
	// while it is away; restarted, it resumes and clears the reroute.
	publishCongestion(t, ncA, "c4-high", "ic-milan-1", "interconnect", signal.Raised, 99)
	got = seen.wait(t, 5)
	assert.Equal(t, "c4-high", got[4].CausationID)
	stop()
	publishCongestion(t, ncA, "c4-cleared", "ic-milan-1", "interconnect", signal.Cleared, 30)
	// Same durable: it resumes with what it missed.
	out2 := &nodetest.Output{}
	stop2 := startRun(t, o, out2)
	assert.Contains(t, out2.String(), "1 active reroutes", "its state is read from the bus")
	t.Cleanup(func() { t.Logf("restarted controller:\n%s", out2.String()) })
	got = seen.wait(t, 6)
	assert.Equal(t, signal.Cleared, got[5].State)
	assert.Equal(t, "vpn-acme/ic-milan-1", got[5].Subject)
	stop2()

	// A new durable (a fresh deployment) reads the current state: nothing
	// is active, every congestion is cleared or under the bound: silence.
	o.Durable = "ctl-2"
	out3 := &nodetest.Output{}
	stop3 := startRun(t, o, out3)
	time.Sleep(time.Second)
	stop3()
	assert.Contains(t, out3.String(), "0 active reroutes")
	time.Sleep(500 * time.Millisecond) // anything late would show now
	all := seen.list()
	t.Logf("controller output:\n%s%s%s", out.String(), out2.String(), out3.String())
	require.Len(t, all, 6, "one raise and one clear per congested interconnect, nothing twice")

	// Every mitigation op-a received is stored at op-a, as imported.
	js, err := jetstream.New(ncA)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), "ANFED_SIGNALS")
	require.NoError(t, err)
	for _, ev := range all {
		_, err := st.GetLastMsgForSubject(context.Background(), "an.sig.op-b.mitigation."+strings.ReplaceAll(ev.Subject, "/", "."))
		assert.NoError(t, err, ev.Subject)
	}
}

func TestDecideHysteresis(t *testing.T) {
	c := &controller{o: options{Raise: 85, Clear: 70}, active: map[string]reroute{}}
	ic := func(u float64) congestion {
		var d congestion
		d.Link.Kind, d.Utilisation = "interconnect", u
		return d
	}
	steps := []struct {
		state string
		util  float64
		want  decision
	}{
		{"raised", 84.9, keep},
		{"updated", 85, raise},
		{"updated", 99, keep},
		{"updated", 70, keep}, // at the clear bound: still on
		{"updated", 69.9, clearIt},
		{"updated", 80, keep}, // under the raise bound: still off
		{"updated", 90, raise},
		{"cleared", 90, clearIt}, // a clear clears whatever the figure
		{"cleared", 95, keep},
	}
	for i, s := range steps {
		got := c.decide("op-a/vpn-acme/ic-1", s.state, ic(s.util))
		assert.Equal(t, s.want, got, "step %d: %s %.1f", i, s.state, s.util)
		switch got {
		case raise:
			c.active["op-a/vpn-acme/ic-1"] = reroute{}
		case clearIt:
			delete(c.active, "op-a/vpn-acme/ic-1")
		}
	}
	var link congestion
	link.Link.Kind, link.Utilisation = "link", 100
	assert.Equal(t, keep, c.decide("op-a/vpn-acme/core-1", "raised", link))
	assert.ErrorContains(t, run(context.Background(), options{Raise: 70, Clear: 85}, &bytes.Buffer{}), "would flap")
}

// TestControllerUndoesRerouteWhenWithdrawn: a reroute is active for
// op-a's congestion; op-a goes away for good (its node stops), so op-b's
// table withdraws the congestion after its grace and withdraw times. The
// controller hears it on an.cond.withdraw and clears its mitigation:
// before, the reroute stayed in place for a peer gone for hours.
func TestControllerUndoesRerouteWhenWithdrawn(t *testing.T) {
	a, b := federationWith(t, func(c *config.Config) {
		c.Peers[0].Import.Grace = config.Duration(200 * time.Millisecond)
		c.Peers[0].Import.WithdrawAfter = config.Duration(300 * time.Millisecond)
	})
	ncA, err := nats.Connect(a.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer ncA.Close()
	ncB, err := nats.Connect(b.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer ncB.Close()
	atB := &mitigations{}
	sub, err := ncB.Subscribe("an.sig.op-b.mitigation.>", func(m *nats.Msg) {
		if ev, err := signal.DecodeStructured(m.Data); err == nil {
			atB.mu.Lock()
			atB.got = append(atB.got, ev)
			atB.mu.Unlock()
		}
	})
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, ncB.Flush())

	o := options{URL: b.ClientURL(), User: user, Password: password, Operator: "op-b", Durable: "ctl", Raise: 85, Clear: 70}
	out := &nodetest.Output{}
	startRun(t, o, out)
	publishCongestion(t, ncA, "w1-high", "ic-paris-1", "interconnect", signal.Raised, 95)
	got := atB.wait(t, 1)
	require.Equal(t, signal.Raised, got[0].State)

	ncA.Close()
	a.Stop()
	got = atB.wait(t, 2)
	m := got[1]
	assert.Equal(t, signal.Cleared, m.State)
	assert.Equal(t, "vpn-acme/ic-paris-1", m.Subject)
	assert.Equal(t, "completed", data(t, m)["status"])
	assert.Contains(t, out.String(), "clear   reroute op-a/vpn-acme/ic-paris-1: the peer's congestion was withdrawn")
}
