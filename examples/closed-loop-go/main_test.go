package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// signalLines are the lines of o that describe a signal, not comments.
func signalLines(o *nodetest.Output) []string {
	var out []string
	for _, l := range o.Lines() {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

const user, password = "closed-loop", "loop-pass-123"

// startNode starts an anfed node with a TCP client listener and a local user.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	cfg := nodetest.WithClient(nodetest.BaseConfig(t, "op-b"), user, password)
	return nodetest.Start(t, new(nodetest.Keys), cfg, node.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)))
}

// publish sends a signal as a local producer would and requires it accepted.
func publish(t *testing.T, nc *nats.Conn, id, class, res string, st signal.State) {
	t.Helper()
	data := `{"link":{"id":"` + res + `","kind":"interconnect","peer":"op-a"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["BE"]}`
	if class == "fault" {
		data = `{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"linkDown","specificProblem":"LOS","alarmedObject":{"id":"` + res + `","type":"interconnect"},"alarmRaisedTime":"2026-11-25T17:00:00Z"}`
	}
	ev := &signal.Event{
		ID: id, Source: "anfed://op-b/assurance", Type: "net.anfed." + class + ".v1",
		Subject: "vpn-acme/" + res, Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		Origin: "op-b", State: st, Data: json.RawMessage(data),
	}
	m, err := nc.Request("an.pub", ev.Encode(), 5*time.Second)
	require.NoError(t, err)
	a, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	require.Equal(t, signal.StatusAccepted, a.Status, "%s: %s %s", id, a.Reason, a.Error)
}

func waitLines(t *testing.T, out *nodetest.Output, n int) []string {
	t.Helper()
	natstest.WaitFor(t, 15*time.Second, func() error {
		if got := len(signalLines(out)); got < n {
			return fmt.Errorf("%d of %d lines:\n%s", got, n, strings.Join(out.Lines(), "\n"))
		}
		return nil
	})
	return signalLines(out)
}

// startRun runs the example until the returned stop is called.
func startRun(t *testing.T, c options, out *nodetest.Output) (stop func()) {
	t.Helper()
	return nodetest.Run(t, 10*time.Second, func(ctx context.Context) error { return run(ctx, c, out) })
}

// The example, started late, prints the current state of the filtered
// condition keys first — the last signal of each, a cleared one included —
// then the live signals, each once; restarted, it resumes where it stopped.
func TestExamplePrintsCurrentStateThenLive(t *testing.T) {
	n := startNode(t)
	prod, err := nats.Connect(n.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer prod.Close()

	publish(t, prod, "c1-raised", "congestion", "ic-1", signal.Raised)
	publish(t, prod, "c2-raised", "congestion", "ic-2", signal.Raised)
	publish(t, prod, "f1-raised", "fault", "ic-1", signal.Raised) // not in the filter
	publish(t, prod, "c2-cleared", "congestion", "ic-2", signal.Cleared)
	publish(t, prod, "c1-updated", "congestion", "ic-1", signal.Updated)

	c := options{URL: n.ClientURL(), User: user, Password: password, Filter: "an.sig.*.congestion.>", Durable: "example"}
	out := &nodetest.Output{}
	stop := startRun(t, c, out)
	waitLines(t, out, 2)
	publish(t, prod, "c3-raised", "congestion", "ic-3", signal.Raised)
	publish(t, prod, "f2-raised", "fault", "ic-3", signal.Raised)
	publish(t, prod, "c1-cleared", "congestion", "ic-1", signal.Cleared)
	lines := waitLines(t, out, 4)
	time.Sleep(300 * time.Millisecond) // nothing more comes
	stop()
	lines = signalLines(out)
	t.Logf("output:\n%s", strings.Join(out.Lines(), "\n"))

	assert.Contains(t, out.Lines()[0], "current state of an.sig.*.congestion.>: 2 condition keys")
	require.Len(t, lines, 4)
	want := []struct{ kind, id, state string }{
		{"current", "c2-cleared", "cleared (not active)"},
		{"current", "c1-updated", "updated"},
		{"live", "c3-raised", "raised"},
		{"live", "c1-cleared", "cleared (not active)"},
	}
	for i, w := range want {
		assert.True(t, strings.HasPrefix(lines[i], w.kind+" "), "line %d %q: want %s", i, lines[i], w.kind)
		assert.Contains(t, lines[i], "id="+w.id, "line %d", i)
		assert.Contains(t, lines[i], w.state, "line %d", i)
		assert.Contains(t, lines[i], " op-b ", "line %d", i)
		assert.Contains(t, lines[i], " congestion ", "line %d", i)
	}

	// Restarted, the durable loop resumes: nothing twice, only what is new.
	out2 := &nodetest.Output{}
	stop2 := startRun(t, c, out2)
	publish(t, prod, "c4-raised", "congestion", "ic-4", signal.Raised)
	lines2 := waitLines(t, out2, 1)
	time.Sleep(300 * time.Millisecond)
	stop2()
	assert.Contains(t, out2.Lines()[0], "resuming")
	require.Len(t, signalLines(out2), 1, strings.Join(out2.Lines(), "\n"))
	assert.Contains(t, lines2[0], "id=c4-raised")
	assert.True(t, strings.HasPrefix(lines2[0], "live "))
}

// TestExampleSeesTheLifecycle: what no signal says reaches the example on
// the wire: a congestion raised with a short expiry is printed when it
// arrives, and again when the node's condition table expires it.
func TestExampleSeesTheLifecycle(t *testing.T) {
	n := startNode(t)
	prod, err := nats.Connect(n.ClientURL(), nats.UserInfo(user, password))
	require.NoError(t, err)
	defer prod.Close()
	c := options{URL: n.ClientURL(), User: user, Password: password, Filter: "an.sig.*.congestion.>", Durable: "life"}
	out := &nodetest.Output{}
	startRun(t, c, out)
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(strings.Join(out.Lines(), "\n"), "current state") {
			return fmt.Errorf("not started")
		}
		return nil
	})
	data := `{"link":{"id":"ic-9","kind":"interconnect","peer":"op-a"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["BE"]}`
	ev := &signal.Event{
		ID: "x1", Source: "anfed://op-b/assurance", Type: "net.anfed.congestion.v1",
		Subject: "vpn-acme/ic-9", Time: time.Now().UTC(), ExpiryTime: time.Now().Add(time.Second).UTC(),
		Origin: "op-b", State: signal.Raised, Data: json.RawMessage(data),
	}
	m, err := prod.Request("an.pub", ev.Encode(), 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(m.Data), "accepted")
	lines := waitLines(t, out, 2)
	assert.True(t, strings.HasPrefix(lines[0], "live "), lines[0])
	assert.Regexp(t, `^table\s+from=local\s+op-b\s+congestion\s+expire\s+vpn-acme/ic-9\s+id=x1$`, lines[1])
}
