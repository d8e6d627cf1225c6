package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const httpBase = "operator:\n  id: op-a\nstorage:\n  dir: data\n"

func TestHTTPDefaultsToLoopback(t *testing.T) {
	cfg, err := Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(httpBase))
	require.NoError(t, err)
	assert.Equal(t, DefaultHTTPListen, cfg.HTTP.Listen)
	assert.Empty(t, cfg.HTTP.TokenFile)
}

func TestHTTPEmptyListenDisables(t *testing.T) {
	cfg, err := Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(httpBase+"http:\n  listen: \"\"\n"))
	require.NoError(t, err)
	assert.Empty(t, cfg.HTTP.Listen)
}

func TestHTTPTokenFileResolvedAndRead(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ingest.token"), []byte("0123456789abcdef0123\n"), 0o600))
	cfg, err := Parse(filepath.Join(dir, "p.yaml"), []byte(httpBase+"http:\n  listen: 127.0.0.1:0\n  token_file: ingest.token\n"))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "ingest.token"), cfg.HTTP.TokenFile)
	tok, err := ReadToken(cfg.HTTP.TokenFile)
	require.NoError(t, err)
	assert.Equal(t, "0123456789abcdef0123", tok)
}

func TestHTTPErrorsCarryLines(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "short.token"), []byte("abc"), 0o600))
	for name, tc := range map[string]struct {
		yaml, path, msg string
		line            int
	}{
		"bad listen":       {"http:\n  listen: localhost\n", "http.listen", "invalid address", 6},
		"bad port":         {"http:\n  listen: 127.0.0.1:99999\n", "http.listen", "invalid port", 6},
		"missing token":    {"http:\n  token_file: nope.token\n", "http.token_file", "cannot read the token file", 6},
		"short token":      {"http:\n  token_file: short.token\n", "http.token_file", "want at least 16", 6},
		"unknown http key": {"http:\n  listen: 127.0.0.1:1\n  tokenfile: x\n", "http.tokenfile", "unknown key", 7},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, "p.yaml")
			_, err := Parse(file, []byte(httpBase+tc.yaml))
			require.Error(t, err)
			var e *Error
			require.True(t, errors.As(err, &e), err)
			assert.Equal(t, file, e.File)
			assert.Equal(t, tc.line, e.Line, err.Error())
			assert.Equal(t, tc.path, e.Path)
			assert.Contains(t, e.Msg, tc.msg)
			assert.NotEmpty(t, e.Hint)
		})
	}
}

func TestHTTPWarnsOffLoopback(t *testing.T) {
	cfg, err := Parse(filepath.Join(t.TempDir(), "p.yaml"), []byte(httpBase+"http:\n  listen: 0.0.0.0:8440\n"))
	require.NoError(t, err)
	var found bool
	for _, w := range cfg.Warnings() {
		if w.Path == "http.listen" && strings.Contains(w.Msg, "without a token") {
			found = true
			assert.Equal(t, 6, w.Line)
		}
	}
	assert.True(t, found, "a warning for an HTTP server reachable from other machines: %v", cfg.Warnings())
}
