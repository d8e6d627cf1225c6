//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// A second `anfed serve` on a running node's policy (so on its store
// directory) must not touch the store: it fails at once, naming the
// directory and the process that holds it, and the first node keeps every
// signal it acknowledged and keeps working. A kill -9 leaves the lock
// file behind, and it does not keep the next start out.
func TestSecondServeSameStore(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs it as processes")
	}
	bin := buildAnfed(t)
	f := newFederation(t, bin)
	// No HTTP: the default port may be another test's.
	b, err := os.ReadFile(f.configs["op-a"])
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f.configs["op-a"], append(b, "http:\n  listen: \"\"\n"...), 0o600))
	a := f.start("op-a")
	prod := startProducer(t, f.clientURL["op-a"], 2, 400)
	time.Sleep(1500 * time.Millisecond)
	acked := prod.finish()
	require.NotEmpty(t, acked)
	stored := func() uint64 {
		t.Helper()
		nc, err := nats.Connect(f.clientURL["op-a"], nats.UserInfo(producerUser, producerPass))
		require.NoError(t, err)
		defer nc.Close()
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := js.Stream(ctx, store.SignalStream)
		require.NoError(t, err)
		return st.CachedInfo().State.Msgs
	}
	before := stored()
	require.EqualValues(t, len(acked), before, "op-a stored what it acknowledged")

	// The second process, on the same policy file.
	var out strings.Builder
	cmd := exec.Command(bin, "serve", "--config", f.configs["op-a"])
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the second serve still ran after 15 s: %s", out.String())
	}
	took := time.Since(start)
	dir := filepath.Join(filepath.Dir(f.configs["op-a"]), "data")
	t.Logf("second serve: exit %d after %v: %s", cmd.ProcessState.ExitCode(), took.Round(time.Millisecond), strings.TrimSpace(out.String()))
	assert.NotEqual(t, 0, cmd.ProcessState.ExitCode(), "the second serve exits non-zero")
	assert.Contains(t, out.String(), dir, "the error names the store directory")
	assert.Contains(t, out.String(), "process "+strconv.Itoa(a.cmd.Process.Pid), "the error names the process holding it")
	assert.NotContains(t, out.String(), "Starting JetStream", "the second serve never opened JetStream")

	// The first node has every signal and takes more.
	assert.EqualValues(t, before, stored(), "op-a still has every signal it acknowledged")
	prod = startProducerAs(t, f.clientURL["op-a"], "op-a", producerUser, producerPass, func(origin string, s, i int) *signal.Event {
		ev := killSignal(origin, s, i)
		ev.ID = "more-" + ev.ID // not a duplicate of the first batch
		return ev
	}, 1, 100)
	time.Sleep(500 * time.Millisecond)
	more := prod.finish()
	require.NotEmpty(t, more, "op-a still accepts signals")
	assert.EqualValues(t, len(acked)+len(more), stored())
	b, _ = os.ReadFile(a.log)
	assert.NotContains(t, string(b), "loadBlock error", "op-a's store is intact")

	// kill -9: the lock file stays, the lock goes with the process.
	a.kill9(t)
	_, err = os.Stat(filepath.Join(dir, store.LockFile))
	require.NoError(t, err, "the lock file outlives the killed process")
	f.start("op-a")
	natstest.WaitFor(t, 10*time.Second, func() error {
		if got := stored(); got != uint64(len(acked)+len(more)) {
			return fmt.Errorf("op-a after kill -9 and restart has %d signals, want %d", got, len(acked)+len(more))
		}
		return nil
	})
	t.Logf("op-a acknowledged %d + %d signals; after the second serve was refused it still had %d; after kill -9 and restart, %d",
		len(acked), len(more), len(acked)+len(more), stored())
	f.procs["op-a"].term(t)
}
