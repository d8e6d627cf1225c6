package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// natscli finds the nats command (natscli). CI installs it and sets
// ANFED_REQUIRE_NATSCLI, so there a missing one fails the test.
func natscli(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nats"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "nats")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("ANFED_REQUIRE_NATSCLI") != "" {
		t.Fatal("natscli is required here: go install github.com/nats-io/natscli/nats@v0.5.0")
	}
	t.Skip("natscli not installed: go install github.com/nats-io/natscli/nats@v0.5.0")
	return ""
}

// A plain NATS client, natscli, publishes to a node and subscribes to its
// accepted signals and its JetStream stream: a producer or a closed loop
// needs nothing of ours.
func TestNatsCLIPublishesAndSubscribes(t *testing.T) {
	nats := natscli(t)
	addr, _ := serveOpA(t)
	url := "nats://loop:loop-pass-123@" + addr
	cli := func(args ...string) (string, error) {
		cmd := exec.Command(nats, append([]string{"--server", url, "--timeout", "5s"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}

	sub := exec.Command(nats, "--server", url, "sub", "an.sig.op-a.fault.>", "--count", "1", "--raw")
	var subOut bytes.Buffer
	sub.Stdout, sub.Stderr = &subOut, &subOut
	require.NoError(t, sub.Start())
	done := make(chan error, 1)
	go func() { done <- sub.Wait() }()
	t.Cleanup(func() { _ = sub.Process.Kill() })

	example, err := os.ReadFile("../../schemas/examples/fault.valid.json")
	require.NoError(t, err)
	ev, err := signal.DecodeStructured(example)
	require.NoError(t, err)
	// Publish until the subscriber (which subscribes in its own time) has
	// one: each attempt a new id, each answered by the node.
	var ids []string
	deadline := time.Now().Add(15 * time.Second)
	for waiting := true; waiting && time.Now().Before(deadline); {
		ev.ID = fmt.Sprintf("natscli-%d", len(ids))
		ids = append(ids, ev.ID)
		out, err := cli("req", "an.pub", string(ev.Encode()))
		require.NoError(t, err, out)
		require.Contains(t, out, `"status":"accepted"`, out)
		select {
		case err := <-done:
			require.NoError(t, err, subOut.String())
			waiting = false
		case <-time.After(300 * time.Millisecond):
		}
	}
	got := subOut.String()
	var m map[string]any
	line := got[strings.Index(got, "{"):]
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(line)), &m), got)
	assert.Contains(t, ids, m["id"], "natscli received one of the signals natscli published")
	assert.Equal(t, "op-a", m["anfedorigin"])

	// The same signal again: a duplicate, not stored twice.
	out, err := cli("req", "an.pub", string(ev.Encode()))
	require.NoError(t, err, out)
	assert.Contains(t, out, `"status":"duplicate"`)

	// An invalid one: the reason, in the answer.
	bad, err := os.ReadFile("../../schemas/examples/fault.invalid.json")
	require.NoError(t, err)
	out, err = cli("req", "an.pub", string(bad))
	require.NoError(t, err, out)
	assert.Contains(t, out, `"status":"rejected"`)
	assert.Contains(t, out, `"reason":"schema-invalid"`)

	// JetStream, through natscli: the stream holds each accepted signal.
	out, err = cli("stream", "info", "ANFED_SIGNALS", "--json")
	require.NoError(t, err, out)
	var info struct {
		State struct {
			Msgs uint64 `json:"messages"`
		} `json:"state"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &info), out)
	assert.EqualValues(t, len(ids), info.State.Msgs)

	// A local user may not delete the node's stream.
	out, err = cli("stream", "rm", "ANFED_SIGNALS", "--force")
	assert.Error(t, err, "stream rm refused: %s", out)
	out, err = cli("stream", "info", "ANFED_SIGNALS", "--json")
	require.NoError(t, err, out)
}
