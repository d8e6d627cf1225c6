package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

var coordKeys nodetest.Keys

// A person on op-a lists op-b's pending drain with `anfed actions
// --pending` and accepts it with `anfed action accept`; op-b's closed
// loop gets the lease, and `anfed actions` shows it held.
func TestActionCommands(t *testing.T) {
	act := []string{"action"}
	a := nodetest.WithClient(nodetest.BaseConfig(t, "op-a"), "noc", "noc-pass-123")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Coordination = &config.Coordination{RequireHuman: []config.CoordinationRule{{Kinds: []string{"drain"}}}}
	a.Peers = []config.Peer{{ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: act, Services: []string{"*"}}, Import: config.ImportPolicy{Classes: act}, SigningKey: coordKeys.Public(t, "op-b")}}
	na := nodetest.Start(t, &coordKeys, a)
	b := nodetest.BaseConfig(t, "op-b")
	b.Coordination = &config.Coordination{}
	b.Peers = []config.Peer{{ID: "op-a", Dial: &config.Dial{URL: na.LeafURL(), User: "op-b", Password: "secret-b-123"},
		Export: config.ExportPolicy{Classes: act, Services: []string{"*"}}, Import: config.ImportPolicy{Classes: act}, SigningKey: coordKeys.Public(t, "op-a")}}
	nb := nodetest.Start(t, &coordKeys, b)
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	pw := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pw, []byte("noc-pass-123\n"), 0o600))
	flags := []string{"--server", na.ClientURL(), "--user", "noc", "--password-file", pw}

	nc, err := nb.Connect()
	require.NoError(t, err)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan *coordination.Action, 1)
	go func() {
		act, err := coordination.NewClient(nc, "op-b", "closed-loop").Propose(ctx, coordination.Proposal{ActionID: "b-drain-cli", Kind: "drain",
			Resources: []coordination.Resource{{ID: "ic-paris-1", Type: "interconnect"}}, Services: []string{"vpn-acme"}, Affected: []string{"op-a"},
			Causes: []coordination.Cause{{Source: "anfed://op-a/assurance", ID: "c-1"}}, ExpectedEffect: "drain ic-paris-1", Duration: 10 * time.Minute})
		assert.NoError(t, err)
		done <- act
	}()
	var out string
	natstest.WaitFor(t, 10*time.Second, func() error {
		var code int
		var errs string
		code, out, errs = runCmd(append([]string{"actions", "--pending"}, flags...)...)
		if code != exitOK || !strings.Contains(out, "1 action(s)") {
			return fmt.Errorf("%d %s %s", code, out, errs)
		}
		return nil
	})
	assert.Regexp(t, `(?m)^b-drain-cli\s+op-b\s+drain\s+ic-paris-1\s+proposed\s+op-a: waiting for a decision \(coordination.require_human\[0\]\)`, out)

	code, _, errs := runCmd(append([]string{"action", "accept"}, flags...)...)
	assert.Equal(t, exitUsage, code, errs)
	code, out, errs = runCmd(append([]string{"action", "accept", "b-drain-cli", "--reason", "ok for the window", "--by", "noc-alice"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "b-drain-cli: op-a:accepted (human)")
	a2 := <-done
	require.True(t, a2.Accepted(), "%+v", a2.Decisions)
	assert.Equal(t, "noc-alice", a2.Decisions["op-a"].DecidedBy)

	code, out, errs = runCmd(append([]string{"actions"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	assert.Regexp(t, `(?m)^ic-paris-1\s+op-a\s+op-b\s+b-drain-cli\s+\d{4}-`, out)
	assert.Contains(t, out, "1 lease(s) held")
	code, _, errs = runCmd(append([]string{"action", "decline", "b-drain-cli"}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "no decision of ours is pending")

	// the action's trace on op-a: op-b's proposal, through op-b, and op-a's decision
	code, out, errs = runCmd(append([]string{"trace", "b-drain-cli"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	assert.Regexp(t, `(?m)^\+0\s+op-b\s+op-b\s+action\s+raised\s+vpn-acme/ic-paris-1\s`, out)
	assert.Regexp(t, `(?m)^\+0\s+op-a\s+local\s+action\s+raised\s+vpn-acme/ic-paris-1\s`, out)
	assert.Contains(t, out, "2 signal(s) in the chain")
	code, _, errs = runCmd(append([]string{"trace", "no-such-id"}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "no stored signal has that id")
	code, _, _ = runCmd("trace")
	assert.Equal(t, exitUsage, code)

	// op-a's audit trail, as a local user reads it: the proposal and the
	// accept, as JSON Lines; the chains verify; a bad --since is refused
	natstest.WaitFor(t, 10*time.Second, func() error {
		code, out, errs := runCmd(append([]string{"audit", "--kind", "action", "--since", "1h"}, flags...)...)
		if code != exitOK {
			return fmt.Errorf("%d %s", code, errs)
		}
		if !strings.Contains(out, `"action":"b-drain-cli","phase":"proposed"`) || !strings.Contains(out, `"phase":"accepted","decided_by":"noc-alice"`) {
			return fmt.Errorf("no proposal or accept in %s", out)
		}
		return nil
	})
	code, out, errs = runCmd(append([]string{"audit", "--peer", "op-b", "--kind", "sent"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, `"peer":"op-b","signal":"op-a/b-drain-cli/accepted`)
	code, out, errs = runCmd(append([]string{"audit", "--verify"}, flags...)...)
	require.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "audit trail verified")
	code, _, errs = runCmd(append([]string{"audit", "--since", "yesterday"}, flags...)...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "RFC 3339")
}
