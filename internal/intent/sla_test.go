package intent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// latency is op-b's own performance deviation of vpn-acme's latency.
func latency(n int, ms float64, state signal.State) *signal.Event {
	data := fmt.Sprintf(`{"kpi":"latency.one-way.p95","unit":"ms","observedValue":%v,"expectedValue":15,"threshold":20,"deviationPercent":%v,"direction":"above","window":{"duration":"PT5M"}}`,
		ms, (ms-15)/15*100)
	return &signal.Event{ID: fmt.Sprintf("pd-%d-%d", n, time.Now().UnixNano()), Source: "anfed://op-b/assurance", Type: "net.anfed.performance-deviation.v1",
		Subject: "vpn-acme/ic-paris-1", Time: time.Now().UTC().Truncate(time.Millisecond), DataContentType: "application/json",
		Origin: "op-b", State: state, SeverityText: "WARN", SeverityNumber: 13, Data: json.RawMessage(data)}
}

// breach is the sla-breach of origin on subj that s holds, if any.
func breach(s *site, origin, subj string) (conditions.Condition, bool) {
	for _, c := range s.n.Conditions(conditions.Filter{Origin: origin, Class: "sla-breach"}) {
		if c.Subject == subj {
			return c, true
		}
	}
	return conditions.Condition{}, false
}

// TestIntentSLAEvaluation: op-b, which accepted op-a's vpn-acme intent,
// evaluates its own latency deviations against the intent's 20 ms
// target: 48.2 ms raises an sla-breach naming the intent and reports
// notCompliant to op-a; 22 ms (10% over) updates it and reports
// degraded; the deviation's clear clears the breach and reports
// compliant. op-a's lifecycle follows each report, with op-b's values.
func TestIntentSLAEvaluation(t *testing.T) {
	a, b := pair(t, func(c *config.Config) {
		c.Peers[0].Import.Classes = append(c.Peers[0].Import.Classes, "sla-breach")
	}, func(c *config.Config) {
		c.Peers[0].Export.Classes = append(c.Peers[0].Export.Classes, "sla-breach")
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
	})
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
