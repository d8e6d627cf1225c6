package intent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// icCongestion is op-b's own congestion of its interconnect ic-paris-1,
// which carries vpn-acme: 12 ms of queueing delay.
func icCongestion(id string, state signal.State) *signal.Event {
	return &signal.Event{ID: id, Source: "anfed://op-b/assurance", Type: "net.anfed.congestion.v1", Subject: "vpn-acme/ic-paris-1",
		Time: time.Now().UTC().Truncate(time.Millisecond), DataContentType: "application/json", Origin: "op-b", State: state,
		SeverityText: "WARN", SeverityNumber: 13,
		Data: json.RawMessage(`{"link":{"id":"ic-paris-1","kind":"interconnect","peer":"op-a"},"direction":"egress","utilisationPercent":96.5,"packetLossPercent":0.02,"queueDelayMs":12,"trafficClasses":["AF41"]}`)}
}

// live collects the signals of a subject that reach a node, decoded.
func live(t *testing.T, s *site, subj string) <-chan *signal.Event {
	t.Helper()
	nc, err := s.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	out := make(chan *signal.Event, 64)
	_, err = nc.Subscribe(subj, func(m *nats.Msg) {
		if ev, err := signal.Decode(m.Header, m.Data); err == nil {
			out <- ev
		}
	})
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return out
}

func next(t *testing.T, ch <-chan *signal.Event, what string) *signal.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(30 * time.Second):
		t.Fatalf("no %s", what)
		return nil
	}
}

func reportsOf(t *testing.T, s *site, id string) []intent.Report {
	t.Helper()
	code, body := do(t, http.MethodGet, s.url+"/intent/"+id+"/intentReport", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	return decode[[]intent.Report](t, body)
}

// actionsBy are the actions proposer proposed, as s's coordination table
// holds them.
func actionsBy(t *testing.T, s *site, proposer string) []coordination.Record {
	t.Helper()
	recs, err := s.n.Coordination().Actions(context.Background())
	require.NoError(t, err)
	var out []coordination.Record
	for _, r := range recs {
		if r.Proposer == proposer {
			out = append(out, r)
		}
	}
	return out
}

// timelinePair is pair with what the timeline needs: op-b exports
// sla-risk, sla-breach and action to op-a, which auto-accepts op-b's
// reroutes of vpn-*; op-b accepts vpn-* intents, reports every second
// and proposes a reroute on sla-risk or notCompliant.
func timelinePair(t *testing.T) (a, b *site) {
	t.Helper()
	return pair(t, func(c *config.Config) {
		c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "sla-risk", "sla-breach", "action")
		c.Peers[0].Export.Classes = append(c.Peers[0].Export.Classes, "action")
		c.Coordination = &config.Coordination{AutoAccept: []config.CoordinationRule{{From: []string{"op-b"}, Kinds: []string{"reroute"}, Services: []string{"vpn-*"}}}}
	}, func(c *config.Config) {
		c.Peers[0].Export.Classes = append(c.Peers[0].Export.Classes, "sla-risk", "sla-breach", "action")
		c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "action")
		c.Coordination = &config.Coordination{}
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
		c.Intents.ReportInterval = config.Duration(time.Second)
		c.Intents.Propose = []config.IntentPropose{{On: []string{"sla-risk", "notCompliant"}, Services: []string{"vpn-*"}, Action: "reroute", Duration: config.Duration(10 * time.Minute)}}
	})
}

// TestIntentTimeline is the timeline over two real nodes on a real
// leaf link: op-a's intent for vpn-acme (latency <= 20 ms) is accepted by
// op-b; op-b measures 15 ms (compliant, reported to op-a); then op-b's
// interconnect ic-paris-1 congests (12 ms of queueing): op-b raises an
// sla-risk naming the intent (predicted 27 ms), caused by the congestion,
// reports to op-a, and by intents.propose opens a reroute proposal to op-a
// whose causationid is the sla-risk; op-a's coordination policy accepts
// it, and op-b's trace links congestion → sla-risk → proposal → op-a's
// decision. A breach after that (48.2 ms, notCompliant) opens no second
// proposal; when the congestion and the deviation clear, the intent is
// compliant and out of risk, op-b reports the action completed and op-a
// releases its lease. Meanwhile op-b reports every second unasked.
func TestIntentTimeline(t *testing.T) {
	a, b := timelinePair(t)
	risks := live(t, a, "an.sig.op-b.sla-risk.>")
	proposals := live(t, a, "an.sig.op-b.action.>")
	bnc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(bnc.Close)

	// t0: op-a's intent, accepted by op-b.
	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)

	// t1: 15 ms, met and outside the 10% margin: compliant, reported.
	require.True(t, nodetest.Publish(t, bnc, latency(1, 15, signal.Raised)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.Compliant)
	assert.Empty(t, actionsBy(t, a, "op-b"), "compliant and out of risk: no proposal")

	// t2: the interconnect congests.
	cong := icCongestion(fmt.Sprintf("cong-ic-paris-1-%d", time.Now().UnixNano()), signal.Raised)
	require.True(t, nodetest.Publish(t, bnc, cong).OK())
	risk := next(t, risks, "sla-risk of op-b reached op-a")
	var rd map[string]any
	require.NoError(t, json.Unmarshal(risk.Data, &rd))
	assert.Equal(t, "op-a.acme-vpn-1", rd["slaId"], "the risk names the intent")
	assert.Equal(t, 27.0, rd["predictedValue"], "15 ms measured + 12 ms queueing")
	assert.Equal(t, "anfed-congestion", rd["model"])
	assert.Equal(t, "vpn-acme/acme-vpn-1/lat", risk.Subject)
	assert.Equal(t, signal.Raised, risk.State)
	assert.Equal(t, cong.ID, risk.CausationID, "caused by the congestion")
	assert.Equal(t, "op-a.acme-vpn-1", risk.CorrelationID)

	// The report crossed: op-a's latest IntentReport is op-b's, with the
	// value measured.
	natstest.WaitFor(t, 20*time.Second, func() error {
		rs := reportsOf(t, a, "acme-vpn-1")
		if len(rs) == 0 || rs[0].Expression.ExpressionValue.From != "op-b" || len(rs[0].Expression.ExpressionValue.Expectations) == 0 {
			return fmt.Errorf("op-a holds no compliance report of op-b yet: %d reports", len(rs))
		}
		return nil
	})

	// The proposal: to op-a, caused by the risk (and, under it, the
	// congestion), accepted by op-a's policy.
	prop := next(t, proposals, "proposal of op-b reached op-a")
	st, err := coordination.ParseStep(prop)
	require.NoError(t, err)
	assert.Equal(t, coordination.Proposed, st.Phase)
	assert.Equal(t, risk.ID, prop.CausationID, "the proposal's causationid is the sla-risk")
	assert.Equal(t, "reroute", st.Kind)
	assert.Equal(t, []coordination.Resource{{ID: "ic-paris-1", Type: "interconnect"}}, st.Resources)
	assert.Equal(t, []string{"op-a"}, st.AffectedOperators)
	assert.Equal(t, []string{"vpn-acme"}, st.Services)
	require.Len(t, st.Causes, 2)
	assert.Equal(t, coordination.Cause{Source: "anfed://op-b/intents", ID: risk.ID, Class: "sla-risk"}, st.Causes[0])
	assert.Equal(t, coordination.Cause{Source: cong.Source, ID: cong.ID, Class: "congestion"}, st.Causes[1])
	assert.Contains(t, st.Detail, "intents.propose[0] of op-b on sla-risk of intent op-a.acme-vpn-1")
	natstest.WaitFor(t, 20*time.Second, func() error {
		acts := actionsBy(t, a, "op-b")
		if len(acts) != 1 || acts[0].Decisions["op-a"].Phase != coordination.Accepted {
			return fmt.Errorf("op-a's actions by op-b: %+v", acts)
		}
		return nil
	})
	assert.Equal(t, "coordination.auto_accept[0]", actionsBy(t, a, "op-b")[0].Decisions["op-a"].Rule)

	// op-b's trace from the congestion: congestion → sla-risk →
	// proposal → op-a's decision.
	type hop struct {
		origin, class string
		depth         int
	}
	natstest.WaitFor(t, 20*time.Second, func() error {
		tr, err := b.n.Trace(context.Background(), cong.ID)
		if err != nil {
			return err
		}
		var got []hop
		for _, h := range tr.Hops {
			got = append(got, hop{h.Origin, h.Class, h.Depth})
		}
		want := []hop{{"op-b", "congestion", 0}, {"op-b", "sla-risk", 1}, {"op-b", "action", 2}, {"op-a", "action", 3}}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("op-b's trace of %s: %v, want %v", cong.ID, got, want)
		}
		return nil
	})

	// From the intent: a trace of its correlation id on op-b starts
	// from every signal naming it (the intent, its answer, the risk, the
	// reports) and goes down to the proposal and op-a's decision.
	tr, err := b.n.Trace(context.Background(), "op-a.acme-vpn-1")
	require.NoError(t, err)
	classes := map[string]bool{}
	for _, h := range tr.Hops {
		classes[h.Origin+" "+h.Class] = true
	}
	for _, want := range []string{"op-a intent", "op-b intent", "op-b sla-risk", "op-b intent-report", "op-b action", "op-a action"} {
		assert.True(t, classes[want], "op-b's trace of the intent holds %s: %v", want, classes)
	}

	// t3: a breach on top: notCompliant at op-a, no second proposal.
	require.True(t, nodetest.Publish(t, bnc, latency(2, 48.2, signal.Updated)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.NotCompliant)
	settled(t, b, "intents-sla", "intents-risk")
	assert.Len(t, actionsBy(t, a, "op-b"), 1, "one proposal open per intent")

	// t4: the congestion and the deviation clear: compliant and out of
	// risk; op-b reports the action completed; op-a releases its lease.
	require.True(t, nodetest.Publish(t, bnc, icCongestion(cong.ID+"-clear", signal.Cleared)).OK())
	require.True(t, nodetest.Publish(t, bnc, latency(3, 15, signal.Cleared)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.Compliant)
	natstest.WaitFor(t, 20*time.Second, func() error {
		acts := actionsBy(t, a, "op-b")
		if len(acts) != 1 || acts[0].Decisions["op-a"].Phase != coordination.Released {
			return fmt.Errorf("op-a's actions by op-b: %+v", acts)
		}
		return nil
	})
	for {
		select {
		case ev := <-risks:
			if ev.State != signal.Cleared {
				continue
			}
			assert.Equal(t, "vpn-acme/acme-vpn-1/lat", ev.Subject)
		case <-time.After(20 * time.Second):
			t.Fatal("op-b's sla-risk never cleared at op-a")
		}
		break
	}

	// Periodic: with nothing new, op-b still reports every second.
	n := len(reportsOf(t, a, "acme-vpn-1"))
	natstest.WaitFor(t, 20*time.Second, func() error {
		if got := len(reportsOf(t, a, "acme-vpn-1")); got < n+2 {
			return fmt.Errorf("%d reports at op-a, want at least %d", got, n+2)
		}
		return nil
	})
}

// TestIntentTerminationEndsWhatItRaised: op-b's intent for op-a is
// at risk (a congestion, then 48.2 ms measured, which the held congestion
// predicts again: an sla-risk) and notCompliant (an sla-breach), and its
// proposal to op-a is accepted; op-a terminates the
// intent: op-b clears the breach and the risk (at op-b and at op-a) and
// reports the action completed, so op-a releases the lease at once.
func TestIntentTerminationEndsWhatItRaised(t *testing.T) {
	a, b := timelinePair(t)
	bnc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(bnc.Close)
	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)
	// The congestion first, with nothing measured (12 ms predicted: no
	// risk), then 48.2 ms measured: the congestion held predicts again,
	// 60.2 ms, and the risk is raised.
	require.True(t, nodetest.Publish(t, bnc, icCongestion(fmt.Sprintf("cong-%d", time.Now().UnixNano()), signal.Raised)).OK())
	settled(t, b, "intents-risk")
	require.True(t, nodetest.Publish(t, bnc, latency(1, 48.2, signal.Raised)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.NotCompliant)
	count := func(s *site, class string) int {
		n := 0
		for _, c := range s.n.Conditions(conditions.Filter{Origin: "op-b", Class: class}) {
			if strings.HasPrefix(c.Subject, "vpn-acme/acme-vpn-1/") {
				n++
			}
		}
		return n
	}
	natstest.WaitFor(t, 20*time.Second, func() error {
		acts := actionsBy(t, a, "op-b")
		if len(acts) != 1 || acts[0].Decisions["op-a"].Phase != coordination.Accepted {
			return fmt.Errorf("op-a's actions by op-b: %+v", acts)
		}
		if count(a, "sla-breach") != 1 || count(a, "sla-risk") == 0 {
			return fmt.Errorf("op-a holds %d breaches, %d risks of the intent", count(a, "sla-breach"), count(a, "sla-risk"))
		}
		return nil
	})

	code, body := do(t, http.MethodDelete, a.url+"/intent/acme-vpn-1", bearer, "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	natstest.WaitFor(t, 20*time.Second, func() error {
		for _, s := range []*site{a, b} {
			if n, m := count(s, "sla-breach"), count(s, "sla-risk"); n+m != 0 {
				return fmt.Errorf("%s still holds %d breaches, %d risks of the terminated intent", s.n.ID(), n, m)
			}
		}
		acts := actionsBy(t, a, "op-b")
		if len(acts) != 1 || acts[0].Decisions["op-a"].Phase != coordination.Released {
			return fmt.Errorf("op-a's actions by op-b: %+v", acts)
		}
		return nil
	})
}

// lyonFault is op-b's own fault of its interconnect ic-lyon-1, which
// carries vpn-acme.
func lyonFault(id, severity string, state signal.State) *signal.Event {
	return &signal.Event{ID: id, Source: "anfed://op-b/assurance", Type: "net.anfed.fault.v1", Subject: "vpn-acme/ic-lyon-1",
		Time: time.Now().UTC().Truncate(time.Millisecond), DataContentType: "application/json", Origin: "op-b", State: state,
		SeverityText: "ERROR", SeverityNumber: 17,
		Data: json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"` + severity + `","probableCause":"linkDown","specificProblem":"LOS on ic-lyon-1","alarmedObject":{"id":"ic-lyon-1","type":"interconnect"},"alarmRaisedTime":"2026-12-07T08:00:00Z","serviceAffecting":true}`)}
}

// TestIntentFaultPutsAvailabilityAtRisk: a MAJOR service-affecting fault
// of op-b on vpn-acme raises an sla-risk on the intent's availability
// expectation (and on no other), caused by the fault; its fall to MINOR
// clears it; a CRITICAL one raises it again and the fault's clear clears
// it.
func TestIntentFaultPutsAvailabilityAtRisk(t *testing.T) {
	a, b := pair(t, nil, func(c *config.Config) {
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
	})
	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)
	bnc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(bnc.Close)
	const avail = "vpn-acme/acme-vpn-1/avail"
	risks := live(t, b, "an.sig.op-b.sla-risk.>")
	at := func(want bool) {
		t.Helper()
		natstest.WaitFor(t, 20*time.Second, func() error {
			if _, ok := held(b, "op-b", "sla-risk", avail); ok != want {
				return fmt.Errorf("op-b holds an sla-risk on %s: %v, want %v", avail, ok, want)
			}
			return nil
		})
	}

	major := lyonFault(fmt.Sprintf("fault-%d", time.Now().UnixNano()), "MAJOR", signal.Raised)
	require.True(t, nodetest.Publish(t, bnc, major).OK())
	at(true)
	ev := next(t, risks, "sla-risk of the fault")
	assert.Equal(t, avail, ev.Subject, "only availability is at risk")
	assert.Equal(t, major.ID, ev.CausationID)
	var d map[string]any
	require.NoError(t, json.Unmarshal(ev.Data, &d))
	assert.Equal(t, "anfed-fault", d["model"])
	assert.Equal(t, "op-a.acme-vpn-1", d["slaId"])

	require.True(t, nodetest.Publish(t, bnc, lyonFault(major.ID+"-minor", "MINOR", signal.Updated)).OK())
	at(false)
	require.True(t, nodetest.Publish(t, bnc, lyonFault(major.ID+"-critical", "CRITICAL", signal.Updated)).OK())
	at(true)
	clear := lyonFault(major.ID+"-clear", "CLEARED", signal.Cleared)
	clear.Data = json.RawMessage(strings.Replace(string(clear.Data), `"serviceAffecting"`, `"alarmClearedTime":"2026-12-07T08:05:00Z","serviceAffecting"`, 1))
	require.True(t, nodetest.Publish(t, bnc, clear).OK())
	at(false)
	settled(t, b, "intents-faults")
	for _, c := range b.n.Conditions(conditions.Filter{Origin: "op-b", Class: "sla-risk"}) {
		assert.NotEqual(t, "raised", string(c.State), "no risk left: %s", c.Subject)
	}
}
