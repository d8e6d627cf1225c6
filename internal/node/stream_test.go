package node_test

// Stream delivery (export.delivery: stream): telemetry published on
// an.tel is checked, signed and handed to the stream peers over a real
// leaf link, checked again at the peer and published there to local
// subscribers only: never stored at either end, never in the condition
// table, never to a durable peer; losses counted at both ends.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// watchTelemetry records the telemetry n's local subscribers get
// (an.telsig.>), each checked against the origins' pinned keys.
func watchTelemetry(t *testing.T, n *node.Node, origins ...string) *arrivals {
	t.Helper()
	pins := map[string]string{}
	for _, o := range origins {
		pins[o] = pub(t, o)
	}
	ver, err := origin.NewVerifier(pins)
	require.NoError(t, err)
	return watchSubject(t, n, subject.Telemetry, ver)
}

func (a *arrivals) count() int { a.mu.Lock(); defer a.mu.Unlock(); return len(a.ids) }

// publishTelemetry publishes n congestion telemetry signals of op-a on
// an.tel, each answered accepted (checked and handed on), and returns
// their ids.
func publishTelemetry(t *testing.T, nc *nats.Conn, prefix string, n int) []string {
	t.Helper()
	return publishEach(t, prefix, n, func(ev *signal.Event) signal.Answer {
		a := nodetest.PublishTelemetry(t, nc, ev)
		require.Equal(t, "an.telsig.op-a.congestion.vpn-acme.ic-paris-1", a.Subject)
		return a
	})
}

// untilTelemetryCrosses publishes telemetry until one reaches arr: the
// peer's interest crosses the link shortly after it comes up.
func untilTelemetryCrosses(t *testing.T, nc *nats.Conn, arr *arrivals, prefix string) {
	t.Helper()
	untilCrosses(t, arr, prefix, func(p string) string { return publishTelemetry(t, nc, p, 1)[0] })
}

func streamPeer(c *config.Config) { c.Peers[0].Export.Delivery = config.DeliveryStream }

// op-a streams to op-b (services vpn-acme only) and exports durably to
// op-c. Telemetry crosses to op-b's local subscribers verified as op-a's,
// is stored nowhere and changes no condition table; what the export
// policy leaves out never crosses; op-c, durable, gets none of it but
// gets op-a's stored signals, and so does op-b, fire and forget.
func TestStreamTelemetryCrossesCheckedAndIsNeverStored(t *testing.T) {
	na, nb, _ := linkedEdit(t, func(c *config.Config) {
		streamPeer(c)
		c.Peers[0].Export.Services = []string{"vpn-acme"}
		c.Peers = append(c.Peers, config.Peer{
			ID: "op-c", Accept: &config.Accept{User: "op-c", Password: "secret-c-123"},
			Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, SigningKey: pub(t, "op-c"),
		})
	})
	cc := baseConfig(t, "op-c")
	cc.Peers = []config.Peer{{
		ID: "op-a", Dial: &config.Dial{URL: na.LeafURL(), User: "op-c", Password: "secret-c-123"},
		Import: config.ImportPolicy{Classes: []string{"*"}}, SigningKey: pub(t, "op-a"),
	}}
	nc := startNode(t, cc)
	waitFor(t, 10*time.Second, func() error {
		if !na.LinkUp("op-c") || !nc.LinkUp("op-a") {
			return fmt.Errorf("op-a—op-c link not up")
		}
		return nil
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	atA, atB, atC := watchTelemetry(t, na, "op-a"), watchTelemetry(t, nb, "op-a"), watchTelemetry(t, nc, "op-a")
	storedB, storedC := watchArrivals(t, nb), watchArrivals(t, nc)

	untilTelemetryCrosses(t, pa, atB, "warmup")
	other := congestion("op-a", "other-service")
	other.Subject = "vpn-other/ic-paris-1"
	require.Equal(t, signal.StatusAccepted, nodetest.PublishTelemetry(t, pa, other).Status, "checked and handed on: only the policy says no")
	ids := publishTelemetry(t, pa, "kpi", 20)
	atB.waitAll(t, ids)
	atA.waitAll(t, append(slices.Clone(ids), other.ID)) // op-a's own loops see what it checked

	// A stored signal of op-a reaches op-c (durable) and op-b (stream:
	// fire and forget, as lossy): both links work.
	stored := publishN(t, pa, "stored", 1)
	storedB.waitAll(t, stored)
	storedC.waitAll(t, stored)
	time.Sleep(300 * time.Millisecond) // anything still on its way lands

	atB.mu.Lock()
	assert.Empty(t, atB.unverified, "each signal op-b delivers verifies as op-a's")
	for _, id := range ids {
		assert.Equal(t, 1, atB.ids[id], "%s delivered once at op-b", id)
	}
	atB.mu.Unlock()
	assert.False(t, atB.has(other.ID), "telemetry the export policy leaves out never crosses")
	assert.Zero(t, atC.count(), "a durable peer gets no telemetry")
	for _, id := range ids {
		assert.False(t, storedB.has(id) || storedC.has(id), "%s was stored", id)
	}
	for _, n := range []*node.Node{na, nb, nc} {
		assert.EqualValues(t, 1, streamMsgs(t, n, store.SignalStream, ""), "%s stores only the stored signal", n.ID())
	}
	assert.Equal(t, 1, nb.Table().Len("op-a"), "op-b's table holds only the stored signal's condition")

	psA := peerState(t, na, "op-b")
	assert.Equal(t, config.DeliveryStream, psA.Delivery)
	require.NotNil(t, psA.Stream)
	assert.GreaterOrEqual(t, psA.Stream.Out.Telemetry, uint64(len(ids)+1))
	psB := peerState(t, nb, "op-a")
	require.NotNil(t, psB.Stream, "op-b's peers view shows op-a's stream")
	assert.GreaterOrEqual(t, psB.Stream.In.Telemetry, uint64(len(ids)+1))
	assert.Zero(t, psB.Stream.In.Lost, "nothing lost with the link up")
	assert.Nil(t, peerState(t, na, "op-c").Stream, "no stream with a durable peer")
	t.Logf("op-a → op-b: %+v; op-b from op-a: %+v", psA.Stream.Out, psB.Stream.In)
}

// Signals published while the stream link is down are lost: op-a counts
// them dropped, op-b the gap in the link's numbers once it hears op-a
// again. Nothing waits, nothing is resent.
func TestStreamLossCountedAtBothEnds(t *testing.T) {
	na, nb, proxy := linkedEdit(t, streamPeer)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	atB := watchTelemetry(t, nb, "op-a")

	untilTelemetryCrosses(t, pa, atB, "warmup")
	atB.waitAll(t, publishTelemetry(t, pa, "before", 20))
	cutLink(t, na, nb, proxy)
	time.Sleep(300 * time.Millisecond) // the sender's view of the link is 100 ms old at most
	lost := publishTelemetry(t, pa, "lost", 20)
	waitFor(t, 5*time.Second, func() error {
		if d := peerState(t, na, "op-b").Stream.Out.DroppedLinkDown; d < uint64(len(lost)) {
			return fmt.Errorf("op-a counted %d dropped, want %d", d, len(lost))
		}
		return nil
	})
	proxy.Restore()
	untilTelemetryCrosses(t, pa, atB, "rewarm")
	after := publishTelemetry(t, pa, "after", 20)
	atB.waitAll(t, after)

	for _, id := range lost {
		assert.False(t, atB.has(id), "%s crossed while the link was down", id)
	}
	out, in := peerState(t, na, "op-b").Stream.Out, peerState(t, nb, "op-a").Stream.In
	assert.GreaterOrEqual(t, out.DroppedLinkDown, uint64(len(lost)), "op-a counts each one dropped while down")
	assert.GreaterOrEqual(t, in.Lost, uint64(len(lost)), "op-b counts the gap once the link is back")
	assert.Zero(t, peerState(t, na, "op-b").Backlog, "nothing waits for a stream peer")
	t.Logf("op-a sent %d, dropped %d (link down); op-b received %d, lost %d", out.Sent, out.DroppedLinkDown, in.Received, in.Lost)
}

// A reload switches a peer into stream delivery and back out of it, the
// link and the session staying up: telemetry crosses only while the peer
// streams, and stored signals cross all along.
func TestStreamDeliverySwitchedByReload(t *testing.T) {
	na, nb, _ := linkedEdit(t, nil)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	atB, storedB := watchTelemetry(t, nb, "op-a"), watchArrivals(t, nb)
	deliver := func(d string) {
		t.Helper()
		cfg := *na.Config()
		cfg.Peers = slices.Clone(cfg.Peers)
		cfg.Peers[0].Export.Delivery = d
		_, err := na.Reload(context.Background(), &cfg)
		require.NoError(t, err)
		assert.Equal(t, d, peerState(t, na, "op-b").Delivery)
	}

	storedB.waitAll(t, publishN(t, pa, "durable", 3))
	none := publishTelemetry(t, pa, "durable-tel", 5)
	deliver(config.DeliveryStream)
	untilTelemetryCrosses(t, pa, atB, "stream")
	atB.waitAll(t, publishTelemetry(t, pa, "streamed", 10))
	untilOneCrosses(t, pa, storedB, "stream-stored")

	deliver(config.DeliveryDurable)
	storedB.waitAll(t, publishN(t, pa, "durable-again", 3))
	late := publishTelemetry(t, pa, "durable-again-tel", 5)
	time.Sleep(300 * time.Millisecond)
	for _, id := range append(none, late...) {
		assert.False(t, atB.has(id), "%s crossed to a durable peer", id)
	}
}

// A local producer's telemetry gets intake's checks and reasons: a
// schema-invalid one or one in another operator's name is answered
// rejected with the reason and counted, and, telemetry being never
// stored, not dead-lettered; a valid one is answered accepted with its
// an.telsig subject, and local subscribers get it signed. A local user
// may not publish on an.telsig itself.
func TestTelemetryIntakeChecksAndAnswers(t *testing.T) {
	ta := newTally()
	n := startNode(t, nodetest.WithClient(baseConfig(t, "op-a"), "kpi", "kpi-password-1"), node.WithObserver(ta))
	nc, err := n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	local := watchTelemetry(t, n, "op-a")

	bad := congestion("op-a", "bad-schema")
	bad.Data = []byte(`{"link":{"id":"ic-paris-1"},"utilisationPercent":"very high"}`)
	a := nodetest.PublishTelemetry(t, nc, bad)
	assert.Equal(t, signal.StatusRejected, a.Status)
	assert.Equal(t, string(reject.SchemaInvalid), a.Reason, a.Error)
	a = nodetest.PublishTelemetry(t, nc, congestion("op-b", "not-ours"))
	assert.Equal(t, string(reject.WrongOrigin), a.Reason, a.Error)
	assert.Equal(t, 1, ta.rejections("local", reject.SchemaInvalid))
	assert.Equal(t, 1, ta.rejections("local", reject.WrongOrigin))
	assert.Zero(t, streamMsgs(t, n, store.DLQStream, ""), "telemetry refusals are not dead-lettered")

	local.waitAll(t, publishTelemetry(t, nc, "ok", 1))
	// A local user (not the node's own) publishes telemetry on an.tel.
	kpi, err := nats.Connect(n.ClientURL(), nats.UserInfo("kpi", "kpi-password-1"))
	require.NoError(t, err)
	defer kpi.Close()
	local.waitAll(t, publishTelemetry(t, kpi, "kpi", 1))
	assert.Empty(t, local.unverified, "signed by op-a")
	assert.False(t, local.has(bad.ID))
	assert.Zero(t, streamMsgs(t, n, store.SignalStream, ""), "nothing stored")

	// The node alone writes an.telsig: a local producer's publish there
	// is refused by the server (a permissions violation), and nobody
	// gets it.
	errs := make(chan error, 1)
	pc, err := nats.Connect(n.ClientURL(), nats.UserInfo("kpi", "kpi-password-1"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	require.NoError(t, err)
	defer pc.Close()
	forged := congestion("op-a", "forged-local")
	require.NoError(t, pc.Publish("an.telsig.op-a.congestion.vpn-acme.ic-paris-1", forged.Encode()))
	select {
	case err := <-errs:
		assert.ErrorContains(t, err, "Permissions Violation")
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation for a local publish on an.telsig")
	}
	time.Sleep(100 * time.Millisecond)
	assert.False(t, local.has(forged.ID))
}

// In process, intake hands each checked telemetry signal to the node's
// stream senders directly, not through an.telsig: no connection of op-a
// subscribes there while no local loop does. Each sender still applies
// its own export policy: op-a streams to op-b (vpn-acme only) and to
// op-c (everything); a KPI of vpn-acme reaches both, once each, one of
// another service only op-c, and a local loop at op-a gets both.
func TestStreamHandOffToEveryStreamPeer(t *testing.T) {
	ns := hub(t, "op-a", []string{"op-b", "op-c"}, map[string]func(*config.Config){
		"op-a": func(c *config.Config) {
			for i := range c.Peers {
				c.Peers[i].Export.Delivery = config.DeliveryStream
			}
			peerOf(c, "op-b").Export.Services = []string{"vpn-acme"}
		},
	})
	na, nb, nc := ns[0], ns[1], ns[2]
	const telsig = "an.telsig.op-a.congestion.vpn-acme.ic-paris-1"
	assert.False(t, na.OpsInterest(telsig), "the stream senders take telemetry from intake, not from an.telsig")
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	atB, atC := watchTelemetry(t, nb, "op-a"), watchTelemetry(t, nc, "op-a")
	untilTelemetryCrosses(t, pa, atB, "warmup-b")
	untilTelemetryCrosses(t, pa, atC, "warmup-c")
	assert.False(t, na.OpsInterest(telsig))
	atA := watchTelemetry(t, na, "op-a")
	require.True(t, na.OpsInterest(telsig), "a local loop's subscription")

	other := congestion("op-a", "other-service")
	other.Subject = "vpn-other/ic-paris-1"
	require.Equal(t, signal.StatusAccepted, nodetest.PublishTelemetry(t, pa, other).Status)
	ids := publishTelemetry(t, pa, "kpi", 20)
	all := append(slices.Clone(ids), other.ID)
	atB.waitAll(t, ids)
	atC.waitAll(t, all)
	atA.waitAll(t, all)
	time.Sleep(300 * time.Millisecond) // anything still on its way lands

	assert.False(t, atB.has(other.ID), "op-b's export policy leaves out another service")
	for _, a := range []*arrivals{atB, atC} {
		a.mu.Lock()
		assert.Empty(t, a.unverified, "each signal verifies as op-a's")
		for _, id := range ids {
			assert.Equal(t, 1, a.ids[id], "%s delivered once", id)
		}
		a.mu.Unlock()
	}
	for _, peer := range []string{"op-b", "op-c"} {
		st := peerState(t, na, peer).Stream
		require.NotNil(t, st)
		assert.Zero(t, st.Out.DroppedSlow, peer)
		assert.Zero(t, st.Out.DroppedLinkDown, peer)
	}
	assert.Zero(t, peerState(t, nb, "op-a").Stream.In.Lost)
	assert.Zero(t, peerState(t, nc, "op-a").Stream.In.Lost)
}

// Telemetry op-b takes from a stream peer goes to its other stream peers
// by the same hand-off (export.transit): op-a streams to op-b, op-b to
// op-c, which gets op-a's KPIs with path [op-a, op-b], still verifying
// as op-a's; op-b's local loops get them too, and none goes back to op-a.
func TestStreamTelemetryRelayedByTransit(t *testing.T) {
	relay := relayAll(t, "op-b", "op-a", "op-c")
	ns := hub(t, "op-b", []string{"op-a", "op-c"}, map[string]func(*config.Config){
		"op-b": func(c *config.Config) {
			for i := range c.Peers {
				c.Peers[i].Export.Delivery = config.DeliveryStream
				c.Peers[i].Export.Transit = true
			}
			peerOf(c, "op-c").Role = config.RoleCustomer // valley-free: a peer's signals go to customers
		},
		"op-a": func(c *config.Config) {
			relay("op-a")(c)
			peerOf(c, "op-b").Export.Delivery = config.DeliveryStream
		},
		"op-c": relay("op-c"),
	})
	nb, na, nc := ns[0], ns[1], ns[2]
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	atC, atB, atA := watchTelemetry(t, nc, "op-a"), watchTelemetry(t, nb, "op-a"), watchTelemetry(t, na, "op-a")
	var mu sync.Mutex
	paths := map[string][]string{}
	cc, err := nc.Connect()
	require.NoError(t, err)
	defer cc.Close()
	_, err = cc.Subscribe(subject.Telemetry, func(m *nats.Msg) {
		if ev, err := signal.DecodeStructured(m.Data); err == nil {
			mu.Lock()
			paths[ev.ID] = ev.Path
			mu.Unlock()
		}
	})
	require.NoError(t, err)
	require.NoError(t, cc.Flush())

	untilTelemetryCrosses(t, pa, atC, "warmup")
	ids := publishTelemetry(t, pa, "relayed", 10)
	atC.waitAll(t, ids)
	atB.waitAll(t, ids)
	atA.waitAll(t, ids) // op-a's own loops
	time.Sleep(300 * time.Millisecond)
	atC.mu.Lock()
	assert.Empty(t, atC.unverified, "op-a's signature survives the relay")
	for _, id := range ids {
		assert.Equal(t, 1, atC.ids[id], "%s delivered once at op-c", id)
	}
	atC.mu.Unlock()
	mu.Lock()
	for _, id := range ids {
		assert.Equal(t, []string{"op-a", "op-b"}, paths[id], id)
	}
	mu.Unlock()
	atA.mu.Lock()
	for _, id := range ids {
		assert.Equal(t, 1, atA.ids[id], "%s came back to op-a", id)
	}
	atA.mu.Unlock()
	assert.Zero(t, peerState(t, na, "op-b").Stream.In.Received, "op-b sent op-a nothing on its stream")
}
