package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBridgesParse(t *testing.T) {
	dir := tokenDir(t, "b.token")
	yaml := httpBase + `http:
  listen: 127.0.0.1:0
  token_file: b.token
bridges:
  tmf642:
    callback: https://anfed.example.net/tmf-api/alarmManagement/v4
    upstream:
      - url: https://oss.example.net/tmf-api/alarmManagement/v4
        token_file: b.token
        query: perceivedSeverity=CRITICAL,MAJOR
    delivery: {initial: 500ms, max: 1m, max_attempts: 7}
  ves:
    user: collector
    password_file: b.token
    kpis:
      - {field: meanRequestLatency, kpi: latency.request.mean, unit: ms, expected: 20, threshold: 40, crossing: above}
`
	cfg, err := Parse(filepath.Join(dir, "p.yaml"), []byte(yaml))
	require.NoError(t, err)
	tm := cfg.Bridges.TMF642
	require.NotNil(t, tm)
	assert.Equal(t, filepath.Join(dir, "b.token"), tm.Upstream[0].TokenFile)
	assert.Equal(t, 7, tm.Delivery.WithDefaults().MaxAttempts)
	assert.Equal(t, Duration(10e9), tm.Delivery.WithDefaults().Timeout)
	require.NotNil(t, cfg.Bridges.VES)
	assert.Equal(t, filepath.Join(dir, "b.token"), cfg.Bridges.VES.PasswordFile)
	assert.Equal(t, "above", cfg.Bridges.VES.KPIs[0].Crossing)
}

func TestBridgesErrorsCarryLines(t *testing.T) {
	dir := tokenDir(t, "b.token")
	withToken := "http:\n  token_file: b.token\n"
	for name, tc := range map[string]struct {
		yaml, path, msg string
		line            int
	}{
		"unknown bridge":    {"bridges:\n  snmp: {}\n", "bridges.snmp", "unknown key", 6},
		"tmf no token":      {"bridges:\n  tmf642: {service: x}\n", "bridges.tmf642.token_file", "required", 6},
		"bad upstream url":  {withToken + "bridges:\n  tmf642:\n    upstream:\n      - url: oss.example.net\n", "bridges.tmf642.upstream[0].url", "invalid URL", 10},
		"no upstream url":   {withToken + "bridges:\n  tmf642:\n    upstream:\n      - query: a=b\n", "bridges.tmf642.upstream[0].url", "required", 10},
		"bad callback":      {withToken + "bridges:\n  tmf642:\n    callback: /listener\n", "bridges.tmf642.callback", "invalid URL", 9},
		"max below initial": {withToken + "bridges:\n  tmf642:\n    delivery:\n      initial: 1m\n      max: 1s\n", "bridges.tmf642.delivery.max", "below initial", 11},
		"ves no creds":      {"bridges:\n  ves:\n    service: ran\n", "bridges.ves", "no credentials", 7},
		"ves user only":     {"bridges:\n  ves:\n    user: collector\n", "bridges.ves.password_file", "required with user", 7},
		"ves alarm type":    {withToken + "bridges:\n  ves:\n    alarm_type: comunicationsAlarm\n", "bridges.ves.alarm_type", "unknown alarm type", 9},
		"kpi crossing":      {withToken + "bridges:\n  ves:\n    kpis:\n      - {field: f, kpi: k, unit: ms, expected: 1, threshold: 2, crossing: over}\n", "bridges.ves.kpis[0].crossing", "want above or below", 10},
		"kpi threshold":     {withToken + "bridges:\n  ves:\n    kpis:\n      - {field: f, kpi: k, unit: ms, expected: 10, threshold: 2, crossing: above}\n", "bridges.ves.kpis[0].threshold", "below expected", 10},
		"kpi name":          {withToken + "bridges:\n  ves:\n    kpis:\n      - {field: f, kpi: Latency, unit: ms, expected: 1, threshold: 2, crossing: above}\n", "bridges.ves.kpis[0].kpi", "invalid kpi", 10},
		"no http":           {"http:\n  listen: \"\"\n  token_file: b.token\nbridges:\n  ves: {}\n", "bridges.ves", "http.listen is empty", 9},
	} {
		t.Run(name, func(t *testing.T) {
			requireErrorAt(t, filepath.Join(dir, "p.yaml"), httpBase+tc.yaml, tc.path, tc.msg, tc.line)
		})
	}
}

// requireErrorAt parses yaml as file and requires an error at path, on
// line, whose message holds msg, with a hint.
func requireErrorAt(t *testing.T, file, yaml, path, msg string, line int) {
	t.Helper()
	_, err := Parse(file, []byte(yaml))
	require.Error(t, err)
	var found *Error
	var es Errors
	require.True(t, errors.As(err, &es) || errors.As(err, &found), err)
	for _, e := range es {
		if e.Path == path {
			found = e
		}
	}
	require.NotNil(t, found, "no error at %s in %v", path, err)
	assert.Equal(t, file, found.File)
	assert.Equal(t, line, found.Line, err.Error())
	assert.Contains(t, found.Msg, msg)
	assert.NotEmpty(t, found.Hint)
}

// tokenDir is a directory holding a token file of that name.
func tokenDir(t *testing.T, name string) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("0123456789abcdef0123\n"), 0o600))
	return dir
}
