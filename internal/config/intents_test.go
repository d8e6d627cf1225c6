package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIntentsParse(t *testing.T) {
	dir := tokenDir(t, "i.token")
	cfg, err := Parse(filepath.Join(dir, "p.yaml"), []byte(httpBase+`intents:
  token_file: i.token
  accept:
    - services: [vpn-*]
      bounds: {min_latency_ms: 10, max_availability_percent: 99.9}
`))
	require.NoError(t, err)
	require.NotNil(t, cfg.Intents)
	assert.Equal(t, filepath.Join(dir, "i.token"), cfg.Intents.TokenFile)
	require.Len(t, cfg.Intents.Accept, 1)
	assert.Equal(t, 10.0, *cfg.Intents.Accept[0].Bounds.MinLatencyMs)
	assert.Nil(t, cfg.Intents.Accept[0].Bounds.MinJitterMs)
	assert.Equal(t, 0.1, cfg.Intents.RiskMargin(), "the default margin")
	assert.Equal(t, 5*time.Minute, cfg.Intents.Every(), "the default report interval")

	cfg, err = Parse(filepath.Join(dir, "p.yaml"), []byte(httpBase+`intents:
  token_file: i.token
  risk_margin_percent: 15
  report_interval: 30s
  propose:
    - on: [sla-risk, notCompliant]
      services: [vpn-*]
      action: reroute
      duration: 10m
`))
	require.NoError(t, err)
	assert.Equal(t, 0.15, cfg.Intents.RiskMargin())
	assert.Equal(t, 30*time.Second, cfg.Intents.Every())
	require.Len(t, cfg.Intents.Propose, 1)
	assert.Equal(t, IntentPropose{On: []string{"sla-risk", "notCompliant"}, Services: []string{"vpn-*"}, Action: "reroute", Duration: Duration(10 * time.Minute)}, cfg.Intents.Propose[0])
}

func TestIntentsErrorsCarryLines(t *testing.T) {
	dir := tokenDir(t, "b.token")
	withToken := "http:\n  token_file: b.token\n"
	for name, tc := range map[string]struct {
		yaml, path, msg string
		line            int
	}{
		"no token":     {"intents: {}\n", "intents.token_file", "required", 5},
		"unknown key":  {withToken + "intents:\n  acept: []\n", "intents.acept", "unknown key", 8},
		"unknown peer": {withToken + "intents:\n  accept:\n    - from: [op-z]\n      services: [vpn-*]\n", "intents.accept[0].from[0]", `unknown peer "op-z"`, 9},
		"no services":  {withToken + "intents:\n  accept:\n    - bounds: {min_latency_ms: 5}\n", "intents.accept[0].services", "required", 9},
		"bad glob":     {withToken + "intents:\n  accept:\n    - services: [\"[vpn\"]\n", "intents.accept[0].services[0]", "invalid pattern", 9},
		"bad bound":    {withToken + "intents:\n  accept:\n    - services: [vpn-*]\n      bounds:\n        min_loss_percent: 150\n", "intents.accept[0].bounds.min_loss_percent", "out of range: 150", 11},
		"bad trigger":  {withToken + "intents:\n  propose:\n    - on: [notcompliant]\n      action: reroute\n", "intents.propose[0].on[0]", `unknown trigger "notcompliant"`, 9},
		"no trigger":   {withToken + "intents:\n  propose:\n    - action: reroute\n", "intents.propose[0].on", "required", 9},
		"no action":    {withToken + "intents:\n  propose:\n    - on: [sla-risk]\n", "intents.propose[0].action", "required", 9},
		"bad action":   {withToken + "intents:\n  propose:\n    - on: [sla-risk]\n      action: Re-Route\n", "intents.propose[0].action", `invalid kind "Re-Route"`, 10},
		"bad duration": {withToken + "intents:\n  propose:\n    - on: [sla-risk]\n      action: reroute\n      duration: -5m\n", "intents.propose[0].duration", "must not be negative", 11},
		"bad margin":   {withToken + "intents:\n  risk_margin_percent: 150\n", "intents.risk_margin_percent", "out of range: 150", 8},
		"short report": {withToken + "intents:\n  report_interval: 10ms\n", "intents.report_interval", "10ms is too short", 8},
		"no http":      {"http:\n  listen: \"\"\n  token_file: b.token\nintents: {}\n", "intents", "http.listen is empty", 8},
	} {
		t.Run(name, func(t *testing.T) {
			requireErrorAt(t, filepath.Join(dir, "p.yaml"), httpBase+tc.yaml, tc.path, tc.msg, tc.line)
		})
	}
}

// export.intent_classes only narrows: a class it lists that
// export.classes does not is an error at its line.
func TestIntentClassesNeverWiden(t *testing.T) {
	src := strings.Replace(acceptingYAML, `export: {classes: ["*"], services: ["*"]}`, `export: {classes: [congestion], services: ["*"], intent_classes: [performance-deviation]}`, 1)
	_, err := Parse("op-a.yaml", []byte(keys(y(src))))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1, "%v", err)
	assert.Equal(t, "peers[0].export.intent_classes[0]", errs[0].Path)
	assert.Equal(t, 11, errs[0].Line)
	assert.Equal(t, "performance-deviation is not in export.classes", errs[0].Msg)
	assert.Contains(t, errs[0].Hint, "an intent never widens the export policy")
	src = strings.Replace(acceptingYAML, `export: {classes: ["*"], services: ["*"]}`, `export: {classes: ["*"], services: ["*"], intent_classes: [performance-deviation]}`, 1)
	cfg, err := Parse("op-a.yaml", []byte(keys(y(src))))
	require.NoError(t, err)
	assert.Equal(t, []string{"performance-deviation"}, cfg.Peers[0].Export.IntentClasses)
}

// intents.propose with no peer exporting action: a warning, not an error.
func TestIntentsProposeWarnsWithoutActionExport(t *testing.T) {
	dir := tokenDir(t, "i.token")
	_, errs, warnings := Check(filepath.Join(dir, "p.yaml"), []byte(httpBase+`intents:
  token_file: i.token
  propose:
    - on: [sla-risk]
      action: reroute
`))
	require.Empty(t, errs)
	var msgs []string
	for _, w := range warnings {
		msgs = append(msgs, w.Path+": "+w.Msg)
	}
	assert.Contains(t, msgs, "intents.propose: no peer's export policy passes action: the proposals reach no intent's owner")
}
