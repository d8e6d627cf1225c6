package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
)

// startTail runs `anfed tail args...` until it has printed n items or the
// test ends; wait returns its output.
func startTail(t *testing.T, args ...string) (wait func() (code int, stdout string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr nodetest.Output
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"tail"}, args...), &stdout, &stderr) }()
	t.Cleanup(cancel)
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !strings.Contains(stderr.String(), "following") {
			return fmt.Errorf("tail not following: %s", stderr.String())
		}
		return nil
	})
	return func() (int, string) {
		select {
		case code := <-done:
			return code, stdout.String()
		case <-time.After(10 * time.Second):
			cancel()
			<-done
			t.Errorf("tail %v did not finish: %s", args, stdout.String())
			return -1, stdout.String()
		}
	}
}

func exampleData(t *testing.T, class string) string {
	t.Helper()
	b, err := os.ReadFile("../../schemas/examples/" + class + ".valid.json")
	require.NoError(t, err)
	var x struct {
		Data json.RawMessage `json:"data"`
	}
	require.NoError(t, json.Unmarshal(b, &x))
	return string(x.Data)
}

func TestPublishAndTail(t *testing.T) {
	_, flags := serveOpA(t)
	faults := startTail(t, append([]string{"--class", "fault", "-n", "1", "--color", "always"}, flags...)...)
	asJSON := startTail(t, append([]string{"--json", "--service", "vpn-*", "--state", "raised", "-n", "2"}, flags...)...)
	refused := startTail(t, append([]string{"--rejects", "-n", "1"}, flags...)...)

	// One signal from flags.
	code, out, errs := runCmd(append([]string{"publish", "--origin", "op-a", "--class", "congestion", "--subject", "vpn-acme/ic-paris-1",
		"--severity", "warn", "--expires", "1h", "--data", exampleData(t, "congestion")}, flags...)...)
	require.Equal(t, exitOK, code, "%s%s", out, errs)
	assert.Contains(t, out, "accepted an.sig.op-a.congestion.vpn-acme.ic-paris-1")

	// A file; sent again, a duplicate.
	code, out, errs = runCmd(append([]string{"publish", "--file", "../../schemas/examples/fault.valid.json"}, flags...)...)
	require.Equal(t, exitOK, code, "%s%s", out, errs)
	assert.Contains(t, out, "accepted an.sig.op-a.fault.")
	code, out, _ = runCmd(append([]string{"publish", "--file", "../../schemas/examples/fault.valid.json"}, flags...)...)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "duplicate")

	c, got := faults()
	assert.Equal(t, exitOK, c)
	assert.Contains(t, got, "op-a")
	assert.Contains(t, got, "\x1b[1mfault\x1b[0m", "class in bold with --color always")
	assert.Contains(t, got, "\x1b[31mraised\x1b[0m", "raised in red")
	assert.Contains(t, got, "a7f1c2d3-1111-4e5f-8a9b-0c1d2e3f4a5b")

	c, got = asJSON()
	assert.Equal(t, exitOK, c)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	require.Len(t, lines, 2, got)
	for _, l := range lines {
		ev, err := signal.DecodeStructured([]byte(l))
		require.NoError(t, err, l)
		assert.Equal(t, "op-a", ev.Origin)
		assert.Equal(t, signal.Raised, ev.State)
	}

	// A batch file: progress and a summary.
	var batch []json.RawMessage
	for i := range 3 {
		ev := &signal.Event{ID: fmt.Sprintf("batch-%d", i), Source: "anfed://op-a/cli-test", Type: "net.anfed.congestion.v1",
			Subject: fmt.Sprintf("vpn-acme/ic-%d", i), Time: time.Now().UTC(), Origin: "op-a", State: signal.Raised,
			Data: json.RawMessage(exampleData(t, "congestion"))}
		batch = append(batch, ev.Encode())
	}
	bf := filepath.Join(t.TempDir(), "batch.json")
	b, _ := json.Marshal(batch)
	require.NoError(t, os.WriteFile(bf, b, 0o600))
	code, out, errs = runCmd(append([]string{"publish", "--file", bf}, flags...)...)
	require.Equal(t, exitOK, code, "%s%s", out, errs)
	assert.Contains(t, out, "published 3 signal(s)")
	assert.Contains(t, out, "3 accepted, 0 duplicate, 0 refused")

	// Invalid: nothing is sent, and the answer says what is wrong.
	code, _, errs = runCmd(append([]string{"publish", "--file", "../../schemas/examples/fault.invalid.json"}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "invalid")
	assert.Contains(t, errs, "nothing sent")
	code, _, errs = runCmd(append([]string{"publish", "--class", "fault", "--subject", "x"}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "--origin is required")
	assert.Contains(t, errs, "want <service>/<resource>")

	// Valid but refused by the node (another operator's origin): exit 1,
	// the reason printed, and the refusal seen by tail --rejects.
	code, out, _ = runCmd(append([]string{"publish", "--origin", "op-z", "--class", "congestion", "--subject", "vpn-acme/ic-9",
		"--data", exampleData(t, "congestion")}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, out, "rejected (wrong-origin)")
	c, got = refused()
	assert.Equal(t, exitOK, c)
	assert.Contains(t, got, "wrong-origin")

	code, _, errs = runCmd(append([]string{"tail", "--state", "open"}, flags...)...)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "want raised, updated or cleared")
}

// tail --raw writes a signal's stored bytes exactly: its origin's
// signature verifies over them. --json re-encodes the data (compacts it),
// so that the digest over data no longer matches.
func TestTailRawIsVerifiable(t *testing.T) {
	dir, httpAddr, _, _ := initOperator(t, "acme")
	policy := filepath.Join(dir, "policy.yaml")
	serveInProcess(t, policy)
	waitReady(t, httpAddr)
	raw := startTail(t, "--config", policy, "--raw", "-n", "1")
	asJSON := startTail(t, "--config", policy, "--json", "-n", "1")

	// Data as a producer may write it: with spaces.
	ev := strings.Replace(string(congestionOf("acme", "vpn-x")), `"data":{"link":{"id":"ic-paris-1"`, `"data": { "link": { "id": "ic-paris-1"`, 1)
	require.Contains(t, ev, `"data": { "link": {`)
	code, out, errs := runCmd("publish", "--config", policy, "--file", writeTemp(t, ev))
	require.Equal(t, exitOK, code, "%s%s", out, errs)

	pub := strings.TrimSpace(mustRun(t, "keys", "show", "--config", policy))
	v, err := origin.NewVerifier(map[string]string{"acme": pub})
	require.NoError(t, err)
	c, got := raw()
	require.Equal(t, exitOK, c)
	require.True(t, strings.HasSuffix(got, "\n"))
	stored, err := signal.DecodeStructured([]byte(strings.TrimSuffix(got, "\n")))
	require.NoError(t, err, got)
	assert.Contains(t, string(stored.Data), `{ "link": { "id": "ic-paris-1"`, "the data as its producer wrote it")
	assert.NoError(t, v.Verify(stored), "the signature verifies over the bytes --raw wrote")

	c, got = asJSON()
	require.Equal(t, exitOK, c)
	reencoded, err := signal.DecodeStructured([]byte(strings.TrimSpace(got)))
	require.NoError(t, err, got)
	assert.Error(t, v.Verify(reencoded), "--json is for reading, not for verifying")
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "signal.json")
	require.NoError(t, os.WriteFile(f, []byte(body), 0o600))
	return f
}

// anfed publish --telemetry sends to an.tel and is answered accepted with
// the an.telsig subject (handed on, not stored); anfed tail --telemetry
// follows it.
func TestPublishAndTailTelemetry(t *testing.T) {
	_, flags := serveOpA(t)
	tel := startTail(t, append([]string{"--telemetry", "--class", "congestion", "-n", "1"}, flags...)...)
	stored := startTail(t, append([]string{"--class", "congestion", "-n", "1"}, flags...)...)
	args := []string{"publish", "--telemetry", "--origin", "op-a", "--class", "congestion", "--subject", "vpn-acme/ic-paris-1", "--data", exampleData(t, "congestion")}
	code, out, errs := runCmd(append(args, flags...)...)
	require.Equal(t, exitOK, code, "%s%s", out, errs)
	assert.Contains(t, out, "accepted an.telsig.op-a.congestion.vpn-acme.ic-paris-1")
	c, got := tel()
	assert.Equal(t, exitOK, c)
	assert.Contains(t, got, "op-a")
	assert.Contains(t, got, "congestion")

	// The stored signals' tail saw none of it: its first is the one
	// published to an.pub now.
	code, out, errs = runCmd(append([]string{"publish", "--origin", "op-a", "--class", "congestion", "--subject", "vpn-acme/ic-stored", "--data", exampleData(t, "congestion")}, flags...)...)
	require.Equal(t, exitOK, code, "%s%s", out, errs)
	c, got = stored()
	assert.Equal(t, exitOK, c)
	assert.Contains(t, got, "ic-stored")
	assert.NotContains(t, got, "ic-paris-1")
}
