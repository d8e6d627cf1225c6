package config

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAuditDefaultsAndErrors(t *testing.T) {
	cfg, err := Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(httpBase))
	require.NoError(t, err)
	assert.False(t, cfg.Audit.Off)
	assert.Equal(t, 90*24*time.Hour, cfg.Audit.Retention())
	cfg, err = Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(httpBase+"audit:\n  off: true\n  max_age: 720h\n"))
	require.NoError(t, err)
	assert.True(t, cfg.Audit.Off)
	assert.Equal(t, 720*time.Hour, cfg.Audit.Retention())

	for name, tc := range map[string]struct{ yaml, path, msg string }{
		"negative":    {"audit:\n  max_age: -1h\n", "audit.max_age", "greater than zero"},
		"zero":        {"audit:\n  max_age: 0s\n", "audit.max_age", "greater than zero"},
		"unknown key": {"audit:\n  maxage: 1h\n", "audit.maxage", "unknown key"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "p.yaml")
			_, err := Parse(file, []byte(httpBase+tc.yaml))
			var es Errors
			require.True(t, errors.As(err, &es), err)
			var found *Error
			for _, e := range es {
				if e.Path == tc.path {
					found = e
				}
			}
			require.NotNil(t, found, "no error at %s in %v", tc.path, err)
			assert.Equal(t, 6, found.Line, err.Error())
			assert.Contains(t, found.Msg, tc.msg)
			assert.NotEmpty(t, found.Hint)
		})
	}
}
