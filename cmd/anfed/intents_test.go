package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
)

// TestIntentsCommand: anfed intents talks to a served node's TMF921 API
// with the policy's address and token: an empty list, the node's 400
// naming the field of a bad intent, a 404, and a refused token.
func TestIntentsCommand(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "http.token"), []byte("intents-cli-token-0123456789\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wrong.token"), []byte("not-the-token-0123456789\n"), 0o600))
	addr := natstest.FreeAddr(t)
	p := filepath.Join(dir, "op-a.yaml")
	cfg := fmt.Sprintf("operator:\n  id: op-a\nnats:\n  client:\n    listen: \"\"\nstorage:\n  dir: ./data\nhttp:\n  listen: %s\n  token_file: http.token\nintents: {}\n", addr)
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	serveInProcess(t, p)
	waitReady(t, addr)

	code, out, errs := runCmd("intents", "--config", p)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "0 intent(s)")

	bad := filepath.Join(dir, "intent.json")
	raw, err := os.ReadFile("../../internal/intent/testdata/intent-vpn-acme.json")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, raw, 0o600))
	code, _, errs = runCmd("intents", "create", bad, "--config", p)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, `anfed intents create: 400: expression.expressionValue.partner: "op-b" is not a peer of this node`)

	code, _, errs = runCmd("intents", "show", "nope", "--url", "http://"+addr, "--token-file", filepath.Join(dir, "http.token"))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, `404: no intent "nope" on this node`)

	code, _, errs = runCmd("intents", "--url", "http://"+addr, "--token-file", filepath.Join(dir, "wrong.token"))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "401: wrong bearer token")

	code, _, errs = runCmd("intents", "frob", "--config", p)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, `unknown verb "frob"`)
}
