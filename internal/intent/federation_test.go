package intent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// waitStatus waits until s's intent id has one of the lifecycleStatus
// values want, and returns it.
func waitStatus(t *testing.T, s *site, id string, want ...string) intent.Intent {
	t.Helper()
	var in intent.Intent
	natstest.WaitFor(t, 30*time.Second, func() error {
		code, body := do(t, http.MethodGet, s.url+"/intent/"+id, bearer, "", nil)
		if code != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", id, code, body)
		}
		in = decode[intent.Intent](t, body)
		if !slices.Contains(want, in.LifecycleStatus) {
			return fmt.Errorf("%s on %s is %s (%s), want %s", id, s.n.ID(), in.LifecycleStatus, in.StatusReason, want)
		}
		return nil
	})
	return in
}

// settled waits until s's durable consumers have handled every stored
// signal they follow.
func settled(t *testing.T, s *site, consumers ...string) {
	t.Helper()
	nc, err := s.n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	natstest.WaitFor(t, 20*time.Second, func() error {
		for _, name := range consumers {
			c, err := js.Consumer(context.Background(), store.SignalStream, name)
			if err != nil {
				return err
			}
			ci, err := c.Info(context.Background())
			if err != nil {
				return err
			}
			if ci.NumPending != 0 || ci.NumAckPending != 0 {
				return fmt.Errorf("%s's %s: %d pending, %d unacknowledged", s.n.ID(), name, ci.NumPending, ci.NumAckPending)
			}
		}
		return nil
	})
}

func create(t *testing.T, s *site, body []byte) intent.Intent {
	t.Helper()
	code, out := do(t, http.MethodPost, s.url+"/intent", bearer, "application/json", body)
	require.Equal(t, http.StatusCreated, code, out)
	return decode[intent.Intent](t, out)
}

// TestIntentAcrossOperators: op-a's intents cross the real leaf link to
// op-b, whose policy decides them; the answers come back as op-a's
// lifecycle and reports. vpn-acme within bounds is accepted; a service
// op-b takes no intents for, and a latency tighter than op-b's bound, are
// rejected naming why; the rejected one, patched within bounds, is
// accepted at its new revision; a terminated intent ends at op-b too.
func TestIntentAcrossOperators(t *testing.T) {
	five := 5.0
	a, b := pair(t, nil, func(c *config.Config) {
		c.Intents.Accept = []config.IntentAccept{{From: []string{"op-a"}, Services: []string{"vpn-acme"}, Bounds: config.IntentBounds{MinLatencyMs: &five}}}
	})

	acme := create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	other := create(t, a, edit(t, func(m map[string]any) { m["id"] = "other-1"; ev(m)["service"] = "vpn-other" }))
	tight := create(t, a, edit(t, func(m map[string]any) { m["id"] = "tight-1"; exp(m, 0)["value"] = 2 }))
	for _, in := range []intent.Intent{acme, other, tight} {
		assert.Equal(t, intent.Acknowledged, in.LifecycleStatus)
	}

	// Accepted: op-a sees it in progress, with op-b's decision and a report.
	got := waitStatus(t, a, "acme-vpn-1", intent.InProgress)
	require.NotNil(t, got.PartnerDecision)
	assert.Equal(t, "accepted", got.PartnerDecision.Decision)
	assert.Equal(t, "intents.accept[0]", got.PartnerDecision.Rule)
	code, body := do(t, http.MethodGet, a.url+"/intent/acme-vpn-1/intentReport", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	reports := decode[[]intent.Report](t, body)
	require.NotEmpty(t, reports)
	assert.Equal(t, "op-b", reports[0].Expression.ExpressionValue.From)
	assert.Equal(t, intent.InProgress, reports[0].Expression.ExpressionValue.LifecycleStatus)
	assert.Equal(t, "IntentReport", reports[0].Type)
	assert.Equal(t, "acme-vpn-1", reports[0].Intent.ID)
	// op-b holds it as the intent it handles, with the owner's targets.
	handled := waitStatus(t, b, "op-a.acme-vpn-1", intent.InProgress)
	assert.Equal(t, intent.RoleHandler, handled.Role)
	assert.Equal(t, "op-a", handled.Owner)
	require.Len(t, handled.Expression.ExpressionValue.Expectations, 5)
	assert.Equal(t, 20.0, handled.Expression.ExpressionValue.Expectations[0].Value)
	code, body = do(t, http.MethodPatch, b.url+"/intent/op-a.acme-vpn-1", bearer, "application/merge-patch+json", []byte(`{"name":"mine now"}`))
	assert.Equal(t, http.StatusConflict, code, body)
	assert.Contains(t, body, "belongs to op-a: only its owner changes or terminates it")

	// Rejected: a service op-b takes no intents for.
	got = waitStatus(t, a, "other-1", intent.Rejected)
	assert.Equal(t, "no-rule", got.PartnerDecision.Rule)
	assert.Equal(t, "service vpn-other from op-a is in no intents.accept rule of op-b", got.PartnerDecision.Reason)
	assert.Equal(t, "op-b rejected it: service vpn-other from op-a is in no intents.accept rule of op-b", got.StatusReason)

	// Rejected: tighter than op-b's bound; then patched within it.
	got = waitStatus(t, a, "tight-1", intent.Rejected)
	assert.Equal(t, "expectation lat asks latency <= 2 ms, tighter than op-b takes on (intents.accept[0].bounds.min_latency_ms 5)", got.PartnerDecision.Reason)
	patch := []byte(`{"expression":` + string(mustJSON(t, func() any {
		x := got.Expression
		x.ExpressionValue.Expectations[0].Value = 8
		return x
	}())) + `}`)
	code, body = do(t, http.MethodPatch, a.url+"/intent/tight-1", bearer, "application/merge-patch+json", patch)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, intent.Acknowledged, decode[intent.Intent](t, body).LifecycleStatus)
	got = waitStatus(t, a, "tight-1", intent.InProgress)
	assert.Equal(t, 8.0, got.Expression.ExpressionValue.Expectations[0].Value)
	code, body = do(t, http.MethodGet, a.url+"/intent/tight-1/intentReport", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode[[]intent.Report](t, body), 2, "rejected at revision 1, accepted at 2")

	// op-a holds op-b's answers as op-b's conditions.
	natstest.WaitFor(t, 10*time.Second, func() error {
		if n := len(a.n.Conditions(conditions.Filter{Origin: "op-b", Class: intent.Class})); n != 3 {
			return fmt.Errorf("op-a holds %d intent conditions of op-b, want 3", n)
		}
		return nil
	})

	// Forgeries change nothing: an answer to op-a's intent and a report
	// of it by one of op-a's own producers (not the partner), and a
	// proposal by one of op-b's producers in op-a's name (not the owner).
	anc, err := a.n.Connect()
	require.NoError(t, err)
	t.Cleanup(anc.Close)
	bnc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(bnc.Close)
	forged := func(origin, class, subj, data string) *signal.Event {
		return &signal.Event{ID: fmt.Sprintf("forged-%d", time.Now().UnixNano()), Source: "anfed://" + origin + "/forger", Type: "net.anfed." + class + ".v1",
			Subject: subj, Time: time.Now().UTC().Truncate(time.Millisecond), DataContentType: "application/json", Origin: origin, State: signal.Raised,
			SeverityText: "INFO", SeverityNumber: 9, Data: json.RawMessage(data)}
	}
	require.True(t, nodetest.Publish(t, anc, forged("op-a", "intent", "vpn-acme/acme-vpn-1",
		`{"intentId":"acme-vpn-1","phase":"rejected","owner":"op-a","partner":"op-b","service":"vpn-acme","revision":1,"reason":"forged"}`)).OK())
	require.True(t, nodetest.Publish(t, anc, forged("op-a", "intent-report", "vpn-acme/acme-vpn-1",
		`{"intentId":"acme-vpn-1","compliance":"nonCompliant","expectations":[{"id":"lat","target":{"name":"latency","comparator":"<=","value":20},"result":{"observedValue":99,"conditionMet":false}}],"reportingTime":"2026-12-07T08:00:00Z"}`)).OK())
	require.True(t, nodetest.Publish(t, bnc, forged("op-b", "intent", "vpn-acme/forged-1",
		`{"intentId":"forged-1","phase":"proposed","owner":"op-a","partner":"op-b","service":"vpn-acme","revision":1,"expectations":[{"id":"lat","metric":"latency","comparator":"<=","value":20,"unit":"ms"}]}`)).OK())
	settled(t, a, "intents", "intents-reports")
	settled(t, b, "intents")
	assert.Equal(t, intent.InProgress, waitStatus(t, a, "acme-vpn-1", intent.InProgress).LifecycleStatus)
	code, body = do(t, http.MethodGet, b.url+"/intent/op-a.forged-1", bearer, "", nil)
	assert.Equal(t, http.StatusNotFound, code, body)

	// Terminated at op-a, so at op-b; op-b's answer condition clears.
	code, body = do(t, http.MethodDelete, a.url+"/intent/acme-vpn-1", bearer, "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	waitStatus(t, b, "op-a.acme-vpn-1", intent.Terminated)
	natstest.WaitFor(t, 10*time.Second, func() error {
		for _, c := range a.n.Conditions(conditions.Filter{Origin: "op-b", Class: intent.Class}) {
			if c.Subject == "vpn-acme/acme-vpn-1" {
				return fmt.Errorf("op-a still holds op-b's answer to acme-vpn-1")
			}
		}
		return nil
	})
	assert.Equal(t, intent.Terminated, waitStatus(t, a, "acme-vpn-1", intent.Terminated).LifecycleStatus)
}

// latency is op-b's own performance deviation of vpn-acme's latency.
func latency(n int, ms float64, state signal.State) *signal.Event {
	data := fmt.Sprintf(`{"kpi":"latency.one-way.p95","unit":"ms","observedValue":%v,"expectedValue":15,"threshold":20,"deviationPercent":%v,"direction":"above","window":{"duration":"PT5M"}}`,
		ms, (ms-15)/15*100)
	return &signal.Event{ID: fmt.Sprintf("pd-%d-%d", n, time.Now().UnixNano()), Source: "anfed://op-b/assurance", Type: "net.anfed.performance-deviation.v1",
		Subject: "vpn-acme/ic-paris-1", Time: time.Now().UTC().Truncate(time.Millisecond), DataContentType: "application/json",
		Origin: "op-b", State: state, SeverityText: "WARN", SeverityNumber: 13, Data: json.RawMessage(data)}
}

// held is the condition of origin's class on subj that s holds, if any.
func held(s *site, origin, class, subj string) (conditions.Condition, bool) {
	for _, c := range s.n.Conditions(conditions.Filter{Origin: origin, Class: class}) {
		if c.Subject == subj {
			return c, true
		}
	}
	return conditions.Condition{}, false
}

// breach is the sla-breach of origin on subj that s holds, if any.
func breach(s *site, origin, subj string) (conditions.Condition, bool) {
	return held(s, origin, "sla-breach", subj)
}

// slaPair is pair where op-b accepts vpn-* intents and sends its
// sla-breach signals to op-a.
func slaPair(t *testing.T) (a, b *site) {
	t.Helper()
	return pair(t, func(c *config.Config) {
		c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "sla-breach")
	}, func(c *config.Config) {
		c.Peers[0].Export.Classes = append(c.Peers[0].Export.Classes, "sla-breach")
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
	})
}

// TestIntentSLAEvaluation: op-b, which accepted op-a's vpn-acme intent,
// evaluates its own latency deviations against the intent's 20 ms
// target: 48.2 ms raises an sla-breach naming the intent and reports
// notCompliant to op-a; 22 ms (10% over) updates it and reports
// degraded; the deviation's clear clears the breach and reports
// compliant. op-a's lifecycle follows each report, with op-b's values.
func TestIntentSLAEvaluation(t *testing.T) {
	a, b := slaPair(t)
	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)
	nc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	const subj = "vpn-acme/acme-vpn-1/lat"
	// What reaches op-a's store of op-b's breaches, live.
	anc, err := a.n.Connect()
	require.NoError(t, err)
	t.Cleanup(anc.Close)
	breaches := make(chan *nats.Msg, 16)
	_, err = anc.ChanSubscribe("an.sig.op-b.sla-breach.>", breaches)
	require.NoError(t, err)
	require.NoError(t, anc.Flush())
	next := func() map[string]any {
		t.Helper()
		select {
		case m := <-breaches:
			ev, err := signal.Decode(m.Header, m.Data)
			require.NoError(t, err)
			var d map[string]any
			require.NoError(t, json.Unmarshal(ev.Data, &d))
			d["state"] = string(ev.State)
			return d
		case <-time.After(20 * time.Second):
			t.Fatal("no sla-breach of op-b reached op-a")
			return nil
		}
	}

	require.True(t, nodetest.Publish(t, nc, latency(1, 48.2, signal.Raised)).OK())
	handled := waitStatus(t, b, "op-a.acme-vpn-1", intent.NotCompliant)
	assert.Equal(t, "op-b's measurements: lat 48.2 ms misses <= 20", handled.StatusReason)
	owned := waitStatus(t, a, "acme-vpn-1", intent.NotCompliant)
	assert.Equal(t, "op-b reports it nonCompliant", owned.StatusReason)
	d := next()
	assert.Equal(t, "op-a.acme-vpn-1", d["slaId"], "the breach names the intent")
	assert.Equal(t, 48.2, d["observedValue"])
	assert.Equal(t, "raised", d["state"])
	natstest.WaitFor(t, 20*time.Second, func() error {
		if _, ok := breach(a, "op-b", subj); !ok {
			return fmt.Errorf("op-a holds no sla-breach of op-b on %s", subj)
		}
		return nil
	})
	code, body := do(t, http.MethodGet, a.url+"/intent/acme-vpn-1/intentReport", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	reports := decode[[]intent.Report](t, body)
	require.NotEmpty(t, reports)
	assert.Equal(t, intent.NotCompliant, reports[0].Expression.ExpressionValue.LifecycleStatus)
	assert.JSONEq(t, `[{"id":"lat","target":{"name":"latency","comparator":"<=","value":20,"unit":"ms"},"result":{"observedValue":48.2,"conditionMet":false}}]`,
		string(reports[0].Expression.ExpressionValue.Expectations))

	require.True(t, nodetest.Publish(t, nc, latency(2, 22, signal.Updated)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.Degraded)
	d = next()
	assert.Equal(t, 22.0, d["observedValue"])
	assert.Equal(t, "updated", d["state"])

	require.True(t, nodetest.Publish(t, nc, latency(3, 18, signal.Cleared)).OK())
	waitStatus(t, b, "op-a.acme-vpn-1", intent.Compliant)
	waitStatus(t, a, "acme-vpn-1", intent.Compliant)
	d = next()
	assert.Equal(t, "cleared", d["state"])
	assert.Contains(t, d, "breachEnd")
	natstest.WaitFor(t, 20*time.Second, func() error {
		if _, ok := breach(a, "op-b", subj); ok {
			return fmt.Errorf("op-a still holds op-b's sla-breach on %s", subj)
		}
		if _, ok := breach(b, "op-b", subj); ok {
			return fmt.Errorf("op-b still holds its sla-breach on %s", subj)
		}
		return nil
	})
}

// pdOf is the performance-deviation conditions of origin s holds, by
// service.
func pdOf(s *site, origin string) map[string]bool {
	out := map[string]bool{}
	for _, c := range s.n.Conditions(conditions.Filter{Origin: origin, Class: "performance-deviation"}) {
		svc, _, _ := strings.Cut(c.Subject, "/")
		out[svc] = true
	}
	return out
}

// TestIntentScopedExport: op-b exports performance deviations to op-a
// only under export.intent_classes: none crosses before op-a's intent;
// once op-b accepts op-a's vpn-acme intent, op-b re-states its state and
// vpn-acme's deviation reaches op-a (vpn-zeta's, for which there is no
// intent, never does); when op-a terminates the intent, op-b re-states
// again and op-a withdraws it. The export policy's rule names the intent.
func TestIntentScopedExport(t *testing.T) {
	a, b := pair(t, func(c *config.Config) {
		c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "performance-deviation")
	}, func(c *config.Config) {
		c.Peers[0].Export.Classes = append(c.Peers[0].Export.Classes, "performance-deviation")
		c.Peers[0].Export.IntentClasses = []string{"performance-deviation"}
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
	})
	nc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.True(t, nodetest.Publish(t, nc, latency(1, 48.2, signal.Raised)).OK())
	zeta := latency(2, 48.2, signal.Raised)
	zeta.Subject = "vpn-zeta/ic-lyon-2"
	require.True(t, nodetest.Publish(t, nc, zeta).OK())
	settled(t, b, outbound.ConsumerName("op-a"))
	assert.Empty(t, pdOf(a, "op-b"), "no intent yet: no performance deviation crosses")

	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	// Accepted: op-b's evaluation may already have judged the stored
	// 48.2 ms deviation against the 20 ms target and reported it.
	waitStatus(t, a, "acme-vpn-1", intent.InProgress, intent.NotCompliant)
	natstest.WaitFor(t, 20*time.Second, func() error {
		if got := pdOf(a, "op-b"); !got["vpn-acme"] || got["vpn-zeta"] {
			return fmt.Errorf("op-a holds op-b's deviations for %v, want vpn-acme only", got)
		}
		return nil
	})

	code, body := do(t, http.MethodDelete, a.url+"/intent/acme-vpn-1", bearer, "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	waitStatus(t, b, "op-a.acme-vpn-1", intent.Terminated)
	natstest.WaitFor(t, 20*time.Second, func() error {
		if got := pdOf(a, "op-b"); len(got) != 0 {
			return fmt.Errorf("op-a still holds op-b's deviations for %v", got)
		}
		return nil
	})
}
