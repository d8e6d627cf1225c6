package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/origin"
)

// TestKeysRotateCommand: `anfed keys rotate` on a running node with no
// peers switches at once (no peer to wait for), writes the new key beside
// the old one (0600), and `anfed keys status` shows it in force; a bad
// overlap is refused by the node with the reason.
func TestKeysRotateCommand(t *testing.T) {
	dir := t.TempDir()
	code, oldPub, errs := runCmd("keys", "init", "--dir", filepath.Join(dir, "keys"))
	require.Equal(t, exitOK, code, errs)
	oldPub = strings.TrimSpace(oldPub)
	_, flags := serveOpAWith(t, dir, "  signing_key_file: keys/signing.nk\n")

	code, _, errs = runCmd(append([]string{"keys", "rotate", "--overlap", "500ms"}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "whole seconds between 1s and")

	code, out, errs := runCmd(append([]string{"keys", "rotate", "--overlap", "2s", "--wait", "10s"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	m := regexp.MustCompile(`new key (O[A-Z0-9]+) written to (\S+);`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	newPub, file := m[1], m[2]
	assert.Contains(t, out, "switched at")
	assert.Equal(t, filepath.Join(dir, "keys"), filepath.Dir(file), "beside the old key")
	fi, err := os.Stat(file)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	kp, err := origin.LoadSigningKey(file)
	require.NoError(t, err)
	pub, _ := kp.PublicKey()
	assert.Equal(t, newPub, pub)
	assert.NotEqual(t, oldPub, newPub)

	code, out, errs = runCmd(append([]string{"keys", "status"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "signing key "+newPub)
	natstest.WaitFor(t, 15*time.Second, func() error {
		_, out, _ = runCmd(append([]string{"keys", "status"}, flags...)...)
		if !strings.Contains(out, "done") {
			return assert.AnError
		}
		return nil
	})
	assert.Contains(t, out, "Set operator.signing_key_file: "+file)
}
