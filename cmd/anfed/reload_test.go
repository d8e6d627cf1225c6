package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// TestReloadEntryPoints: `anfed reload`, POST /v1/reload and SIGHUP each
// apply the edited policy file to a running `anfed serve`; a local user
// added to the file can connect afterwards (the embedded NATS server took
// the change), and one removed is refused; a bad file changes nothing and
// says where; the endpoint wants the admin token; reloads are counted.
func TestReloadEntryPoints(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "op-a.yaml")
	client, httpAddr := natstest.FreeAddr(t), natstest.FreeAddr(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "admin.token"), []byte("admin-token-0123456789\n"), 0o600))
	policy := func(users ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "operator:\n  id: op-a\nnats:\n  client:\n    listen: %s\n  users:\n", client)
		for _, u := range users {
			fmt.Fprintf(&b, "    - name: %s\n      password: %s-pass-123\n", u, u)
		}
		fmt.Fprintf(&b, "storage:\n  dir: ./data\nhttp:\n  listen: %s\n  admin_token_file: admin.token\n", httpAddr)
		return b.String()
	}
	write := func(body string) { require.NoError(t, os.WriteFile(p, []byte(body), 0o600)) }
	write(policy("loop"))
	var stdout, stderr nodetest.Output
	stop := nodetest.Run(t, 20*time.Second, func(ctx context.Context) error {
		if code := run(ctx, []string{"serve", "--config", p}, &stdout, &stderr); code != exitOK {
			return fmt.Errorf("serve exited %d", code)
		}
		return nil
	})
	natstest.WaitFor(t, 15*time.Second, func() error {
		if !strings.Contains(stderr.String(), "http: serving") {
			return fmt.Errorf("not serving yet: %s", stderr.String())
		}
		return nil
	})
	connect := func(user string) error {
		nc, err := nats.Connect("nats://"+client, nats.UserInfo(user, user+"-pass-123"), nats.NoReconnect())
		if err == nil {
			nc.Close()
		}
		return err
	}
	require.NoError(t, connect("loop"))
	require.Error(t, connect("ops2"), "no such user yet: the premise")

	code, out, errOut := runCmd("reload", "--config", p)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "the policy is unchanged")

	// anfed reload: a new local user.
	write(policy("loop", "ops2"))
	code, out, errOut = runCmd("reload", "--config", p)
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "node: nats.users")
	assert.NoError(t, connect("ops2"), "the user added by the reload")

	// A bad file: anfed reload says where and sends nothing; the
	// endpoint, asked anyway, changes nothing and says where.
	write(policy("loop") + "peers:\n  - id: op-b\n    bogus: 1\n")
	code, _, errOut = runCmd("reload", "--config", p)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, p+":")
	assert.Contains(t, errOut, "nothing was sent")
	code, _, errOut = runCmd("reload", "--url", "http://"+httpAddr, "--token-file", filepath.Join(dir, "admin.token"))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, p+":16:", "the unknown key's line")
	assert.Contains(t, errOut, "nothing was changed")
	assert.NoError(t, connect("ops2"), "the bad file changed nothing")

	// The endpoint wants the admin token.
	for _, tok := range []string{"", "wrong-token-0123456789"} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/v1/reload", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "token %q", tok)
	}

	// SIGHUP: ops2 removed.
	write(policy("loop"))
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
	natstest.WaitFor(t, 15*time.Second, func() error {
		if connect("ops2") == nil {
			return fmt.Errorf("ops2 still connects")
		}
		return nil
	})
	assert.NoError(t, connect("loop"))
	assert.Contains(t, stderr.String(), "SIGHUP: reloading the policy")

	m := nodetest.Scrape(t, "http://"+httpAddr)
	assert.Equal(t, 3.0, m[`anfed_reloads_total{result="ok"}`])
	assert.Equal(t, 1.0, m[`anfed_reloads_total{result="failed"}`])

	// anfed drain: the notice (no peers here to tell:
	// node/TestPlannedRestartKeepsConditions has them).
	code, out, errOut = runCmd("drain", "--config", p, "--for", "10m")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "0 peers told: planned restart, back by")
	code, _, errOut = runCmd("drain", "--config", p)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "--for DURATION is required")
	code, _, errOut = runCmd("drain", "--config", p, "--for", "2h")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errOut, "want a duration from 1s to 1h0m0s")
	// SIGTERM (the context's end) announces the planned restart.
	stop()
	assert.Contains(t, stderr.String(), "planned restart announced to the peers")
}

// TestPeerDisableEnableCommand: anfed peer disable sets
// peers[].disabled.reason in the file (its text kept elsewhere) and
// enable clears it; a missing or overlong reason is refused and writes
// nothing. (What the node does with it: node/TestPeerDisableEnable.)
func TestPeerDisableEnableCommand(t *testing.T) {
	a, _, _, _ := initOperator(t, "acme")
	pa := filepath.Join(a, "policy.yaml")
	key := strings.TrimSpace(mustRun(t, "keys", "init", "--dir", t.TempDir()))
	mustRun(t, "peer", "invite", "--config", pa, "globex", "--signing-key", key, "--out", filepath.Join(t.TempDir(), "b.peering.yaml"))
	before := readFile(t, pa)

	code, _, stderr := runCmd("peer", "disable", "--config", pa, "globex")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--reason TEXT is required")
	code, _, stderr = runCmd("peer", "disable", "--config", pa, "globex", "--reason", strings.Repeat("x", 256), "--no-reload")
	assert.Equal(t, exitFail, code)
	assert.Regexp(t, `policy\.yaml:\d+:\d+: peers\[0\]\.disabled\.reason: 256 bytes, over 255`, stderr)
	assert.Equal(t, before, readFile(t, pa), "a refused edit writes nothing")

	out := mustRun(t, "peer", "disable", "--config", pa, "globex", "--reason", "maintenance until 14:00 UTC", "--no-reload")
	assert.Contains(t, out, "globex disabled: maintenance until 14:00 UTC")
	assert.Contains(t, readFile(t, pa), "    disabled:\n      reason: maintenance until 14:00 UTC\n")
	// Without --no-reload and no admin token, the file is edited and the
	// node not reached: said so.
	code, _, stderr = runCmd("peer", "enable", "--config", pa, "globex")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "no admin token")
	assert.Equal(t, before, readFile(t, pa), "enable gives the file back as it was")
}
