package intent_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// getIntent is s's intent id as its API shows it.
func getIntent(t *testing.T, s *site, id string) intent.Intent {
	t.Helper()
	code, body := do(t, http.MethodGet, s.url+"/intent/"+id, bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	return decode[intent.Intent](t, body)
}

// TestIntentValidForStartsAndEnds: op-a's vpn-acme intent with a
// validFor a few seconds ahead is accepted by op-b but not in force
// before its startDateTime (op-b's 48.2 ms is not evaluated, no
// intent-scoped export); once in force the same measurement breaches
// it, notCompliant at op-a, and opens a proposal op-a accepts. op-a is
// then stopped; at the endDateTime op-b ends the intent by itself
// (terminated, its breach cleared, the proposal completed, out of the
// view); op-a, restarted after the end, ends its own copy from its
// stored records, releases the lease and holds op-b's report of the end.
func TestIntentValidForStartsAndEnds(t *testing.T) {
	a, b := timelinePair(t)
	leaf := strings.TrimPrefix(a.n.LeafURL(), "nats-leaf://")
	bnc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(bnc.Close)
	const subj = "vpn-acme/acme-vpn-1/lat"
	from := time.Now().UTC().Add(8 * time.Second).Truncate(time.Second)
	end := from.Add(8 * time.Second)
	create(t, a, edit(t, func(m map[string]any) {
		m["id"] = "acme-vpn-1"
		m["validFor"] = map[string]any{"startDateTime": from.Format(time.RFC3339), "endDateTime": end.Format(time.RFC3339)}
	}))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)

	// Accepted, not in force yet: not evaluated, no intent-scoped export.
	require.True(t, nodetest.Publish(t, bnc, latency(1, 48.2, signal.Raised)).OK())
	settled(t, b, "intents-sla")
	_, accepted := b.view.Accepted("op-a", "vpn-acme")
	_, breached := breach(b, "op-b", subj)
	in := getIntent(t, b, "op-a.acme-vpn-1")
	require.True(t, time.Now().Before(from), "the machine took more than 8 s to get here: the check before the start proves nothing")
	require.False(t, accepted, "in the view before its startDateTime")
	require.False(t, breached, "evaluated before its startDateTime")
	require.Equal(t, intent.InProgress, in.LifecycleStatus)

	// In force: the same measurement breaches it, and opens a proposal.
	natstest.WaitFor(t, 20*time.Second, func() error {
		if _, ok := b.view.Accepted("op-a", "vpn-acme"); !ok {
			return fmt.Errorf("not in op-b's view at %s (start %s)", time.Now().UTC().Format(time.RFC3339Nano), from)
		}
		return nil
	})
	require.True(t, nodetest.Publish(t, bnc, latency(2, 48.2, signal.Updated)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.NotCompliant)
	natstest.WaitFor(t, 20*time.Second, func() error {
		acts := actionsBy(t, a, "op-b")
		if len(acts) != 1 || acts[0].Decisions["op-a"].Phase != coordination.Accepted {
			return fmt.Errorf("op-a's actions by op-b: %+v", acts)
		}
		if _, ok := breach(a, "op-b", subj); !ok {
			return fmt.Errorf("op-a holds no breach of %s", subj)
		}
		return nil
	})
	require.True(t, time.Now().Before(end), "the machine took more than 8 s from the start to the proposal: raise the test's validFor")

	// op-a down; at the end op-b ends it by itself.
	a.stop()
	natstest.WaitFor(t, 30*time.Second, func() error {
		in := getIntent(t, b, "op-a.acme-vpn-1")
		if in.LifecycleStatus != intent.Terminated {
			return fmt.Errorf("op-b's copy is %s (%s)", in.LifecycleStatus, in.StatusReason)
		}
		if _, ok := breach(b, "op-b", subj); ok {
			return fmt.Errorf("op-b still holds its breach of %s", subj)
		}
		return nil
	})
	require.False(t, time.Now().Before(end), "ended before its endDateTime")
	_, accepted = b.view.Accepted("op-a", "vpn-acme")
	require.False(t, accepted, "still in op-b's view after its end")
	require.Contains(t, getIntent(t, b, "op-a.acme-vpn-1").StatusReason, "validFor ended at "+end.Format(time.RFC3339))

	// op-a back (same leaf port): its timer, rebuilt from the stored
	// records, ends its own copy; op-b's clears and its end reach it.
	cfg := a.cfg
	cfg.NATS.LeafNodes = &config.Listener{Listen: leaf}
	a = start(t, cfg)
	got := waitStatus(t, a, "acme-vpn-1", intent.Terminated)
	require.Contains(t, got.StatusReason, "validFor ended at "+end.Format(time.RFC3339))
	natstest.WaitFor(t, 30*time.Second, func() error {
		if _, ok := breach(a, "op-b", subj); ok {
			return fmt.Errorf("op-a still holds op-b's breach of %s", subj)
		}
		acts := actionsBy(t, a, "op-b")
		if len(acts) != 1 || acts[0].Decisions["op-a"].Phase != coordination.Released {
			return fmt.Errorf("op-a's actions by op-b: %+v", acts)
		}
		for _, r := range reportsOf(t, a, "acme-vpn-1") {
			v := r.Expression.ExpressionValue
			if v.From == "op-b" && v.LifecycleStatus == intent.Terminated && strings.Contains(v.Reason, "validFor ended") {
				return nil
			}
		}
		return fmt.Errorf("op-a has no report of op-b ending the intent")
	})
}

// TestIntentTimeWindows: op-a's intent holds on weekdays 07:00-19:00
// UTC only; op-b's 48.2 ms measured on a Saturday, on a Monday at 06:59
// and at 19:00 is not counted (no breach, still inProgress); the same
// measured on the Monday at 10:00 breaches it, notCompliant at op-a;
// 22 ms at 19:30 does not update the breach; the deviation's clear
// clears it whenever it comes.
func TestIntentTimeWindows(t *testing.T) {
	a, b := slaPair(t)
	create(t, a, edit(t, func(m map[string]any) {
		m["id"] = "acme-vpn-1"
		ev(m)["timeWindows"] = []any{map[string]any{"days": []any{"mon", "tue", "wed", "thu", "fri"}, "start": "07:00", "end": "19:00"}}
	}))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)
	nc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	const subj = "vpn-acme/acme-vpn-1/lat"
	measured := func(n int, ms float64, state signal.State, at string) {
		t.Helper()
		e := latency(n, ms, state)
		tm, err := time.Parse(time.RFC3339, at)
		require.NoError(t, err)
		e.Time = tm
		require.True(t, nodetest.Publish(t, nc, e).OK())
		settled(t, b, "intents-sla")
	}
	for i, at := range []string{"2026-12-05T10:00:00Z", "2026-12-07T06:59:00Z", "2026-12-07T19:00:00Z"} {
		state := signal.Updated
		if i == 0 {
			state = signal.Raised
		}
		measured(i, 48.2, state, at)
		_, breached := breach(b, "op-b", subj)
		require.False(t, breached, "48.2 ms at %s, outside the window, breached the intent", at)
		require.Equal(t, intent.InProgress, getIntent(t, b, "op-a.acme-vpn-1").LifecycleStatus, "after 48.2 ms at %s", at)
	}
	measured(3, 48.2, signal.Updated, "2026-12-07T10:00:00Z")
	waitStatus(t, a, "acme-vpn-1", intent.NotCompliant)
	_, ok := breach(b, "op-b", subj)
	require.True(t, ok, "48.2 ms at 10:00 on a Monday did not breach the intent")
	// 22 ms counted would make it degraded (within 20 % of 20 ms).
	measured(4, 22, signal.Updated, "2026-12-07T19:30:00Z")
	handled := getIntent(t, b, "op-a.acme-vpn-1")
	require.Equal(t, intent.NotCompliant, handled.LifecycleStatus, "22 ms at 19:30, outside the window, was counted")
	require.Equal(t, "op-b's measurements: lat 48.2 ms misses <= 20", handled.StatusReason)
	measured(5, 22, signal.Cleared, "2026-12-07T20:00:00Z")
	natstest.WaitFor(t, 20*time.Second, func() error {
		if _, ok := breach(a, "op-b", subj); ok {
			return fmt.Errorf("op-a still holds the breach after the deviation's clear")
		}
		return nil
	})
	waitStatus(t, a, "acme-vpn-1", intent.Compliant)
}
