package bridge_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

const bearer = "Bearer " + token

type vesAnswer struct {
	Results []bridge.VESResult `json:"results"`
}

func vesBridges(t *testing.T) config.Bridges {
	return config.Bridges{VES: &config.VESBridge{
		User: "ves-collector", PasswordFile: writeFile(t, "ves.password", "ves-password-0123456789"),
		TokenFile: writeFile(t, "ves.token", token),
		KPIs: []config.VESKPI{
			{Field: "5g-kpis/DRB.UEThpDl", KPI: "throughput.dl", Unit: "Mbit/s", Expected: 200, Threshold: 150, Crossing: "below"},
			{Field: "meanRequestLatency", KPI: "latency.request.mean", Unit: "ms", Expected: 20, Threshold: 40, Crossing: "above"},
		},
	}}
}

func basic(user, pw string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
}

// A VES fault becomes a fault signal at the node and crosses to the peer;
// its NORMAL clears it there; a resend is a duplicate, stored once.
func TestVESFaultCrossesToPeer(t *testing.T) {
	a, b := pair(t, vesBridges(t), nil)
	const subj = "ves/scfx0001vm002cap001/PilotNumberPoolExhaustion"

	code, body := post(t, a.url+bridge.VESPath, basic("ves-collector", "ves-password-0123456789"), sample(t, "ves-fault.json"))
	require.Equal(t, 202, code, body)
	var ans vesAnswer
	decode(t, body, &ans)
	require.Len(t, ans.Results, 1)
	assert.Equal(t, "accepted", ans.Results[0].Outcome)
	require.Len(t, ans.Results[0].Signals, 1)
	assert.Equal(t, subj, ans.Results[0].Signals[0].Subject)
	assert.Equal(t, "raised", ans.Results[0].Signals[0].State)

	c := condition(t, a, "op-a", "fault", subj, true)
	assert.Equal(t, 21, c.Severity, "CRITICAL is FATAL 21")
	c = condition(t, b, "op-a", "fault", subj, true)
	assert.Equal(t, "anfed://op-a/ves", c.Source)
	assert.Equal(t, "scfx0001vm002cap001/fault0000245/0", c.ID)

	// The same event again: stored once.
	code, body = post(t, a.url+bridge.VESPath, bearer, sample(t, "ves-fault.json"))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	assert.Equal(t, "duplicate", ans.Results[0].Outcome)

	code, body = post(t, a.url+bridge.VESPath, bearer, sample(t, "ves-fault-normal.json"))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	assert.Equal(t, string(signal.Cleared), ans.Results[0].Signals[0].State)
	condition(t, b, "op-a", "fault", subj, false)
	condition(t, a, "op-a", "fault", subj, false)

	m := nodetest.Scrape(t, a.url)
	assert.Equal(t, 2.0, m[`anfed_bridge_signals_total{bridge="ves",result="accepted"}`])
	assert.Equal(t, 1.0, m[`anfed_bridge_signals_total{bridge="ves",result="duplicate"}`])
}

// Measurement events raise a performance-deviation per watched KPI across
// its threshold, update it while it stays across, and clear it when back.
func TestVESMeasurementThresholds(t *testing.T) {
	a, b := pair(t, vesBridges(t), nil)
	const dl = "ves/ibcx0001vm002ssc001/throughput.dl"
	const lat = "ves/ibcx0001vm002ssc001/latency.request.mean"

	code, body := post(t, a.url+bridge.VESPath, bearer, sample(t, "ves-measurement.json"))
	require.Equal(t, 202, code, body)
	var ans vesAnswer
	decode(t, body, &ans)
	require.Len(t, ans.Results[0].Signals, 2, body)
	for _, s := range ans.Results[0].Signals {
		assert.Equal(t, "performance-deviation", s.Class)
		assert.Equal(t, "raised", s.State)
	}
	condition(t, b, "op-a", "performance-deviation", dl, true)
	condition(t, b, "op-a", "performance-deviation", lat, true)

	// Next interval: throughput back above its threshold, latency still high.
	next := strings.NewReplacer(`"eventId": "mmc0000034"`, `"eventId": "mmc0000035"`,
		`"DRB.UEThpDl": "125.4"`, `"DRB.UEThpDl": "190.0"`, `"meanRequestLatency": 42.5`, `"meanRequestLatency": 55`).
		Replace(string(sample(t, "ves-measurement.json")))
	code, body = post(t, a.url+bridge.VESPath, bearer, []byte(next))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	states := map[string]string{}
	for _, s := range ans.Results[0].Signals {
		states[s.Subject] = s.State
	}
	assert.Equal(t, map[string]string{dl: "cleared", lat: "updated"}, states)
	condition(t, b, "op-a", "performance-deviation", dl, false)
	condition(t, b, "op-a", "performance-deviation", lat, true)

	// Within both thresholds, latency cleared; then nothing more to say.
	calm := strings.NewReplacer(`"eventId": "mmc0000034"`, `"eventId": "mmc0000036"`,
		`"DRB.UEThpDl": "125.4"`, `"DRB.UEThpDl": "210.0"`, `"meanRequestLatency": 42.5`, `"meanRequestLatency": 18`).
		Replace(string(sample(t, "ves-measurement.json")))
	code, body = post(t, a.url+bridge.VESPath, bearer, []byte(calm))
	require.Equal(t, 202, code, body)
	condition(t, b, "op-a", "performance-deviation", lat, false)
	calm = strings.Replace(calm, `"mmc0000036"`, `"mmc0000037"`, 1)
	code, body = post(t, a.url+bridge.VESPath, bearer, []byte(calm))
	require.Equal(t, 202, code, body)
	decode(t, body, &ans)
	assert.Equal(t, "ignored", ans.Results[0].Outcome)
	assert.Contains(t, ans.Results[0].Reason, "within-threshold")
	assert.Equal(t, 1.0, nodetest.Scrape(t, a.url)[`anfed_bridge_ignored_total{bridge="ves",reason="within-threshold"}`])
}

// A batch: the fault is stored, the heartbeat acknowledged and counted as
// not bridged.
func TestVESBatch(t *testing.T) {
	a, b := pair(t, vesBridges(t), nil)
	code, body := post(t, a.url+bridge.VESBatchPath, bearer, sample(t, "ves-batch.json"))
	require.Equal(t, 202, code, body)
	var ans vesAnswer
	decode(t, body, &ans)
	require.Len(t, ans.Results, 2)
	assert.Equal(t, "accepted", ans.Results[0].Outcome)
	assert.Equal(t, "ignored", ans.Results[1].Outcome)
	assert.Contains(t, ans.Results[1].Reason, "heartbeat")
	c := condition(t, b, "op-a", "fault", "ves/par-pe-2/linkDown", true)
	assert.Equal(t, 17, c.Severity)
	assert.Equal(t, 1.0, nodetest.Scrape(t, a.url)[`anfed_bridge_ignored_total{bridge="ves",reason="domain-not-bridged"}`])
}

// Bad requests get a 4xx naming what was wrong, are counted, and harm
// nothing: a batch with one bad event stores none of it, and a good event
// afterwards is stored.
func TestVESBadInput(t *testing.T) {
	a := start(t, func() *config.Config { c := baseConfig(t, "op-a"); c.Bridges = vesBridges(t); return c }())
	fault := string(sample(t, "ves-fault.json"))
	batch := string(sample(t, "ves-batch.json"))
	for _, tc := range []struct {
		name, path, authz, body string
		code                    int
		reason, want            string
	}{
		{"no credentials", bridge.VESPath, "", fault, 401, "unauthorized", "missing credentials"},
		{"wrong token", bridge.VESPath, "Bearer nope-nope-nope-nope", fault, 401, "unauthorized", "wrong credentials"},
		{"wrong password", bridge.VESPath, basic("ves-collector", "guess-guess-guess"), fault, 401, "unauthorized", "wrong credentials"},
		{"not JSON", bridge.VESPath, bearer, "{event", 400, "malformed", "not valid JSON"},
		{"no event", bridge.VESPath, bearer, `{"events": []}`, 400, "malformed", "event is missing"},
		{"no header", bridge.VESPath, bearer, `{"event": {"faultFields": {}}}`, 422, "bad-field", "event.commonEventHeader: required"},
		{"bad severity", bridge.VESPath, bearer, strings.Replace(fault, `"CRITICAL"`, `"SEVERE"`, 1), 422, "bad-field", `event.faultFields.eventSeverity: "SEVERE": want CRITICAL, MAJOR, MINOR, WARNING or NORMAL`},
		{"no fault fields", bridge.VESPath, bearer, strings.Replace(fault, `"faultFields"`, `"faultFieldz"`, 1), 422, "bad-field", "event.faultFields: required for domain fault"},
		{"VES 5", bridge.VESPath, bearer, strings.Replace(fault, `"7.2.1"`, `"5.4.1"`, 1), 422, "bad-field", "vesEventListenerVersion"},
		{"bad epoch", bridge.VESPath, bearer, strings.Replace(fault, `"lastEpochMicrosec": 1413378172000000`, `"lastEpochMicrosec": "yesterday"`, 1), 422, "bad-field", `lastEpochMicrosec: "yesterday": want microseconds`},
		{"no source", bridge.VESPath, bearer, strings.Replace(fault, `"sourceName": "scfx0001vm002cap001"`, `"sourceName": ""`, 1), 422, "bad-field", "event.commonEventHeader.sourceName: required"},
		{"batch with a bad event", bridge.VESBatchPath, bearer, strings.Replace(batch, `"heartbeat"`, `""`, 1), 422, "bad-field", "eventList[1].commonEventHeader.domain: required"},
		{"empty batch", bridge.VESBatchPath, bearer, `{"eventList": []}`, 400, "malformed", "empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := nodetest.Scrape(t, a.url)[`anfed_bridge_rejected_total{bridge="ves",reason="`+tc.reason+`"}`]
			code, body := post(t, a.url+tc.path, tc.authz, []byte(tc.body))
			assert.Equal(t, tc.code, code, body)
			var e struct {
				RequestError struct {
					ServiceException struct {
						MessageID string `json:"messageId"`
						Text      string `json:"text"`
					} `json:"serviceException"`
				} `json:"requestError"`
			}
			decode(t, body, &e)
			assert.Contains(t, e.RequestError.ServiceException.Text, tc.want)
			assert.Equal(t, before+1, nodetest.Scrape(t, a.url)[`anfed_bridge_rejected_total{bridge="ves",reason="`+tc.reason+`"}`])
		})
	}
	// The batch's good first event was not stored.
	condition(t, a, "op-a", "fault", "ves/par-pe-2/linkDown", false)
	// And the listener still takes good events.
	code, body := post(t, a.url+bridge.VESBatchPath, bearer, []byte(batch))
	require.Equal(t, 202, code, body)
	condition(t, a, "op-a", "fault", "ves/par-pe-2/linkDown", true)
}

// Names that are NATS wildcards and separators stay inside their subject
// token: the fault crosses to the peer under its own subject and nothing
// else; a body over the limit is refused whole.
func TestVESAttacks(t *testing.T) {
	a, b := pair(t, vesBridges(t), nil)
	evil := strings.Replace(string(sample(t, "ves-fault.json")), `"sourceName": "scfx0001vm002cap001"`, `"sourceName": "evil.*.>"`, 1)
	evil = strings.Replace(evil, `"alarmCondition": "PilotNumberPoolExhaustion"`, `"alarmCondition": "a b\u0000c"`, 1)
	code, body := post(t, a.url+bridge.VESPath, bearer, []byte(evil))
	require.Equal(t, 202, code, body)
	condition(t, b, "op-a", "fault", "ves/evil.*.>/a b\x00c", true)
	assert.Len(t, b.n.Conditions(conditionsFault()), 1)

	huge := `{"event": {"commonEventHeader": {"domain": "fault", "eventId": "` + strings.Repeat("x", 5<<20) + `"}}}`
	code, body = post(t, a.url+bridge.VESPath, bearer, []byte(huge))
	assert.Equal(t, 413, code, body)
	assert.Equal(t, 1.0, nodetest.Scrape(t, a.url)[`anfed_bridge_rejected_total{bridge="ves",reason="malformed"}`])
}

// A KPI raised before a restart is cleared after it: the bridge reads
// what it raised from the node's condition table.
func TestVESMeasurementClearsAfterRestart(t *testing.T) {
	cfg := baseConfig(t, "op-a")
	cfg.Bridges = vesBridges(t)
	a := start(t, cfg)
	const lat = "ves/ibcx0001vm002ssc001/latency.request.mean"
	code, body := post(t, a.url+bridge.VESPath, bearer, sample(t, "ves-measurement.json"))
	require.Equal(t, 202, code, body)
	condition(t, a, "op-a", "performance-deviation", lat, true)

	a.stop()
	a = start(t, cfg)
	calm := strings.NewReplacer(`"eventId": "mmc0000034"`, `"eventId": "mmc0000040"`,
		`"DRB.UEThpDl": "125.4"`, `"DRB.UEThpDl": "210.0"`, `"meanRequestLatency": 42.5`, `"meanRequestLatency": 18`).
		Replace(string(sample(t, "ves-measurement.json")))
	code, body = post(t, a.url+bridge.VESPath, bearer, []byte(calm))
	require.Equal(t, 202, code, body)
	var ans vesAnswer
	decode(t, body, &ans)
	require.Len(t, ans.Results[0].Signals, 2, body)
	for _, s := range ans.Results[0].Signals {
		assert.Equal(t, "cleared", s.State, s.Subject)
	}
	condition(t, a, "op-a", "performance-deviation", lat, false)
}
