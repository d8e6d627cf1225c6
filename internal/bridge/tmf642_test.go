package bridge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

func tmfBridges() config.Bridges {
	return config.Bridges{TMF642: &config.TMF642Bridge{}}
}

const tmfListener = bridge.TMF642Listener

// TMF642 create, attribute change and clear notifications become a fault
// raised, updated and cleared at the node and at its peer.
func TestTMF642ListenerCrossesToPeer(t *testing.T) {
	a, b := pair(t, tmfBridges(), nil)
	const subj = "vpn-acme/par-pe-2:et-0/0/3/ALM-7731"

	code, body := post(t, a.url+tmfListener+"alarmCreateEvent", bearer, sample(t, "tmf642-alarm-create.json"))
	require.Equal(t, 202, code, body)
	var ans bridge.TMFAnswer
	decode(t, body, &ans)
	assert.Equal(t, "accepted", ans.Status)
	assert.Equal(t, "raised", ans.Signal.State)
	assert.Equal(t, subj, ans.Signal.Subject)
	c := condition(t, b, "op-a", "fault", subj, true)
	assert.Equal(t, 17, c.Severity, "MAJOR is ERROR 17")
	assert.Equal(t, "evt-ALM-7731-1", c.ID)
	assert.Equal(t, "anfed://op-a/tmf642", c.Source)

	code, body = post(t, a.url+tmfListener+"alarmAttributeValueChangeEvent", bearer, sample(t, "tmf642-alarm-change.json"))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	assert.Equal(t, "updated", ans.Signal.State)
	waitSeverity(t, b, subj, 21)

	// The OSS resends the change: a duplicate, stored once.
	code, body = post(t, a.url+tmfListener+"alarmAttributeValueChangeEvent", bearer, sample(t, "tmf642-alarm-change.json"))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	assert.Equal(t, "duplicate", ans.Status)

	code, body = post(t, a.url+tmfListener+"alarmStateChangeEvent", bearer, sample(t, "tmf642-alarm-clear.json"))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	assert.Equal(t, "cleared", ans.Signal.State)
	condition(t, b, "op-a", "fault", subj, false)

	m := nodetest.Scrape(t, a.url)
	assert.Equal(t, 3.0, m[`anfed_bridge_signals_total{bridge="tmf642",result="accepted"}`])
	assert.Equal(t, 1.0, m[`anfed_bridge_signals_total{bridge="tmf642",result="duplicate"}`])
}

func waitSeverity(t *testing.T, s *site, subj string, sev int) {
	t.Helper()
	natstest.WaitFor(t, 20*time.Second, func() error {
		for _, c := range s.n.Conditions(conditions.Filter{Origin: "op-a", Class: "fault"}) {
			if c.Subject == subj && c.Severity == sev {
				return nil
			}
		}
		return fmt.Errorf("no fault %s of severity %d", subj, sev)
	})
}

// Bad notifications get a 4xx in the TMF630 error format naming the
// field, are counted, and store nothing.
func TestTMF642ListenerBadInput(t *testing.T) {
	a := start(t, func() *config.Config { c := baseConfig(t, "op-a"); c.Bridges = tmfBridges(); return c }())
	create := string(sample(t, "tmf642-alarm-create.json"))
	for _, tc := range []struct {
		name, res, authz, body string
		code                   int
		reason, want           string
	}{
		{"no token", "alarmCreateEvent", "", create, 401, "unauthorized", "missing credentials"},
		{"not JSON", "alarmCreateEvent", bearer, `{"eventId": `, 400, "malformed", "not valid JSON"},
		{"wrong listener", "alarmCreateEvent", bearer, strings.Replace(create, `"AlarmCreateEvent"`, `"AlarmStateChangeEvent"`, 1), 422, "bad-field", `eventType: "AlarmStateChangeEvent" POSTed to listener/alarmCreateEvent`},
		{"no alarm", "alarmCreateEvent", bearer, `{"eventId": "e1", "eventType": "AlarmCreateEvent", "event": {}}`, 422, "bad-field", "event.alarm: required"},
		{"bad alarm type", "alarmCreateEvent", bearer, strings.Replace(create, `"communicationsAlarm"`, `"weatherAlarm"`, 1), 422, "bad-field", `event.alarm.alarmType: "weatherAlarm"`},
		{"bad severity", "alarmCreateEvent", bearer, strings.Replace(create, `"MAJOR"`, `"SEVERE"`, 1), 422, "bad-field", `event.alarm.perceivedSeverity: "SEVERE"`},
		{"no alarmed object", "alarmCreateEvent", bearer, strings.Replace(create, `"alarmedObject"`, `"alarmedThing"`, 1), 422, "bad-field", "event.alarm.alarmedObject.id: required"},
		{"bad raised time", "alarmCreateEvent", bearer, strings.Replace(create, `"2026-03-14T08:58:41Z"`, `"14/03/2026"`, 1), 422, "bad-field", `event.alarm.alarmRaisedTime: "14/03/2026": want an RFC 3339 time`},
		{"unknown listener", "alarmEscalateEvent", bearer, create, 404, "unknown-event", "listener/alarmEscalateEvent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := `anfed_bridge_rejected_total{bridge="tmf642",reason="` + tc.reason + `"}`
			before := nodetest.Scrape(t, a.url)[key]
			code, body := post(t, a.url+tmfListener+tc.res, tc.authz, []byte(tc.body))
			assert.Equal(t, tc.code, code, body)
			var e struct{ Code, Reason, Message, Status string }
			decode(t, body, &e)
			assert.Contains(t, e.Message, tc.want)
			assert.Equal(t, tc.reason, e.Reason)
			assert.Equal(t, before+1, nodetest.Scrape(t, a.url)[key])
		})
	}
	assert.Empty(t, a.n.Conditions(conditionsFault()))

	// An alarm our own hub delivered, echoed back by an OSS: not taken.
	echo := strings.Replace(create, `"sourceSystemId": "oss-paris"`, `"sourceSystemId": "anfed://op-b"`, 1)
	code, body := post(t, a.url+tmfListener+"alarmCreateEvent", bearer, []byte(echo))
	require.Equal(t, 202, code, body)
	var ans bridge.TMFAnswer
	decode(t, body, &ans)
	assert.Equal(t, "ignored", ans.Status)
	assert.Contains(t, ans.Reason, "no loops")
	assert.Equal(t, 1.0, nodetest.Scrape(t, a.url)[`anfed_bridge_ignored_total{bridge="tmf642",reason="echo"}`])
	assert.Empty(t, a.n.Conditions(conditionsFault()))

	code, body = post(t, a.url+tmfListener+"alarmCreateEvent", bearer, []byte(create))
	require.Equal(t, 202, code, body)
	condition(t, a, "op-a", "fault", "vpn-acme/par-pe-2:et-0/0/3/ALM-7731", true)
}
