package intent_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/natstest"
)

// waitStatus waits until s's intent id has lifecycleStatus want, and
// returns it.
func waitStatus(t *testing.T, s *site, id, want string) intent.Intent {
	t.Helper()
	var in intent.Intent
	natstest.WaitFor(t, 30*time.Second, func() error {
		code, body := do(t, http.MethodGet, s.url+"/intent/"+id, bearer, "", nil)
		if code != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", id, code, body)
		}
		in = decode[intent.Intent](t, body)
		if in.LifecycleStatus != want {
			return fmt.Errorf("%s on %s is %s (%s), want %s", id, s.n.ID(), in.LifecycleStatus, in.StatusReason, want)
		}
		return nil
	})
	return in
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
