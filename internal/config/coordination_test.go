package config

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCoordinationParse(t *testing.T) {
	yaml := httpBase + `coordination:
  hold_down: 2m
  deny:
    - kinds: [restart]
  require_human:
    - kinds: [drain]
  auto_accept:
    - from: [op-b]
      kinds: [reroute, rate-limit]
      services: ["vpn-*"]
      classes: [congestion]
      hours: "22:00-06:00"
      max_duration: 30m
`
	cfg, err := Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(yaml))
	require.NoError(t, err)
	co := cfg.Coordination.WithDefaults()
	assert.Equal(t, DefaultLeaseMax, co.LeaseMax)
	assert.Equal(t, Duration(2*time.Minute), co.HoldDown)
	assert.Equal(t, CoordinationHuman, co.Default)
	require.Len(t, co.AutoAccept, 1)
	assert.Equal(t, Duration(30*time.Minute), co.AutoAccept[0].MaxDuration)
	assert.Equal(t, []string{"restart"}, co.Deny[0].Kinds)
	from, to, err := ParseHours(co.AutoAccept[0].Hours)
	require.NoError(t, err)
	assert.Equal(t, [2]int{22 * 60, 6 * 60}, [2]int{from, to})
}

// Every mistake in coordination: comes back with its line and a hint.
func TestCoordinationErrorsCarryLines(t *testing.T) {
	for name, tc := range map[string]struct {
		yaml, path, msg string
		line            int
	}{
		"default":        {"coordination:\n  default: accept\n", "coordination.default", "unknown outcome", 6},
		"hold_down":      {"coordination:\n  hold_down: -1m\n", "coordination.hold_down", "negative", 6},
		"kind":           {"coordination:\n  auto_accept:\n    - kinds: [Reroute]\n", "coordination.auto_accept[0].kinds[0]", "invalid kind", 7},
		"from":           {"coordination:\n  deny:\n    - from: [Op-B]\n", "coordination.deny[0].from[0]", "invalid operator id", 7},
		"class":          {"coordination:\n  auto_accept:\n    - classes: [congestoin]\n", "coordination.auto_accept[0].classes[0]", "unknown class", 7},
		"service":        {"coordination:\n  auto_accept:\n    - services: [\"vpn-[\"]\n", "coordination.auto_accept[0].services[0]", "invalid pattern", 7},
		"hours":          {"coordination:\n  auto_accept:\n    - kinds: [reroute]\n      hours: 8-18\n", "coordination.auto_accept[0].hours", "not HH:MM-HH:MM", 8},
		"empty hours":    {"coordination:\n  auto_accept:\n    - kinds: [reroute]\n      hours: \"08:00-08:00\"\n", "coordination.auto_accept[0].hours", "empty window", 8},
		"max_duration":   {"coordination:\n  deny:\n    - kinds: [reroute]\n      max_duration: 5m\n", "coordination.deny[0].max_duration", "only auto_accept", 8},
		"unknown key":    {"coordination:\n  auto_accpet: []\n", "coordination.auto_accpet", "unknown key", 6},
		"lease negative": {"coordination:\n  lease_max: -5m\n", "coordination.lease_max", "positive", 6},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "p.yaml")
			_, err := Parse(file, []byte(httpBase+tc.yaml))
			require.Error(t, err)
			var found *Error
			var es Errors
			require.True(t, errors.As(err, &es), err)
			for _, e := range es {
				if e.Path == tc.path {
					found = e
				}
			}
			require.NotNil(t, found, "no error at %s in %v", tc.path, err)
			assert.Equal(t, file, found.File)
			assert.Equal(t, tc.line, found.Line, err.Error())
			assert.Contains(t, found.Msg, tc.msg)
			assert.NotEmpty(t, found.Hint)
		})
	}
}

func TestCoordinationWarnings(t *testing.T) {
	yaml := httpBase + "coordination:\n  auto_accept:\n    - {}\n    - from: [op-q]\n"
	cfg, warnings, err := func() (*Config, []*Error, error) {
		c, errs, w := Check(filepath.Join(t.TempDir(), "p.yaml"), []byte(yaml))
		if len(errs) > 0 {
			return nil, nil, errs
		}
		return c, w, nil
	}()
	require.NoError(t, err)
	require.NotNil(t, cfg)
	var msgs []string
	for _, w := range warnings {
		msgs = append(msgs, w.Path+": "+w.Msg)
	}
	assert.Contains(t, msgs, "coordination.auto_accept[0]: matches every proposal: any peer's action on our resources is accepted")
	assert.Contains(t, msgs, `coordination.auto_accept[1].from[0]: "op-q" is neither a peer nor a pinned origin: its proposals never reach us`)
}
