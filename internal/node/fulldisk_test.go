//go:build linux

package node_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// rejections counts refusals by reason.
type rejections struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *rejections) Accepted(observe.Acceptance) {}
func (r *rejections) Crossed(observe.Crossing)    {}
func (r *rejections) Rejected(x observe.Rejection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[string(x.Reason)]++
}

func (r *rejections) count(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

// A node on a volume that fills up: it starts (its streams fit in
// storage.max_bytes), a full disk is answered unavailable with "store full"
// at once, counted and shown by readiness, the node mends itself when the
// space comes back, and it stops within its bound while full.
func TestFullDisk(t *testing.T) {
	disk := natstest.SmallDisk(t, 48<<20)
	cfg := baseConfig(t, "op-a")
	cfg.Storage.Dir = filepath.Join(disk, "store")
	cfg.Storage.MaxBytes = config.ByteSize(32 << 20)
	rej := &rejections{n: map[string]int{}}
	na := startNode(t, cfg, node.WithObserver(rej))
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	require.True(t, publish(t, pa, congestion("op-a", "first")).OK())
	ballast := natstest.Fill(t, disk, 1<<20)

	last, refusedAt := fillUntilRefused(t, pa)
	t.Logf("refused at signal %d: %s %s %s", refusedAt, last.Status, last.Reason, last.Error)
	require.False(t, last.OK(), "the full disk refused a signal")
	assert.Equal(t, "unavailable", last.Reason)
	assert.Contains(t, last.Error, "store full")
	// Once the node knows, every signal is answered at once, saying why.
	waitFor(t, 15*time.Second, func() error {
		t0 := time.Now()
		a := publish(t, pa, congestion("op-a", "while-full"))
		if !strings.Contains(a.Error, "store full") || time.Since(t0) > time.Second {
			return fmt.Errorf("answered %s %s %q in %v", a.Status, a.Reason, a.Error, time.Since(t0))
		}
		return nil
	})
	assert.Positive(t, rej.count("unavailable"), "counted")
	require.Error(t, na.Readiness())
	assert.Contains(t, na.Readiness().Error(), "store full")
	t.Logf("readiness while full: %v", na.Readiness())

	// Space comes back: the node takes signals again by itself.
	require.NoError(t, os.Remove(ballast))
	freed := time.Now()
	waitFor(t, 30*time.Second, func() error {
		m, err := pa.Request(subject.IntakePrefix, congestion("op-a", "after").Encode(), 5*time.Second)
		if err != nil {
			return err
		}
		a, _ := signal.ParseAnswer(m.Data)
		if !a.OK() {
			return fmt.Errorf("after freeing space: %s %s %s", a.Status, a.Reason, a.Error)
		}
		return nil
	})
	t.Logf("accepted again %v after the space was freed; readiness %v", time.Since(freed).Round(time.Millisecond), na.Readiness())
	waitFor(t, 10*time.Second, na.Readiness)
	// Nothing accepted was lost: "first", the refusedAt before the
	// refusal, and "after".
	js, err := jetstream.New(pa)
	require.NoError(t, err)
	st, err := js.Stream(context.Background(), store.SignalStream)
	require.NoError(t, err)
	assert.EqualValues(t, refusedAt+2, st.CachedInfo().State.Msgs, "signals stored")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, na.Shutdown(ctx))
}

// fillUntilRefused publishes signals until the store refuses one, and
// returns that answer and how many were accepted before it.
func fillUntilRefused(t *testing.T, pa *nats.Conn) (signal.Answer, int) {
	t.Helper()
	var last signal.Answer
	start := time.Now()
	for i := 0; i < 5000 && time.Since(start) < 60*time.Second; i++ {
		ev := congestion("op-a", fmt.Sprintf("fill-%d", i))
		m, err := pa.Request(subject.IntakePrefix, ev.Encode(), 15*time.Second)
		require.NoError(t, err, "signal %d got no answer (full disk)", i)
		last, err = signal.ParseAnswer(m.Data)
		require.NoError(t, err)
		if !last.OK() {
			return last, i
		}
	}
	t.Fatalf("the store took every signal: the disk did not fill")
	return last, 0
}

// After a full disk is mended, a linked node's signals cross again: the
// export resumes on the restarted JetStream.
func TestFullDiskThenSignalsCross(t *testing.T) {
	disk := natstest.SmallDisk(t, 48<<20)
	na, nb, _ := linkedEdit(t, func(a *config.Config) {
		a.Storage.Dir = filepath.Join(disk, "store")
		a.Storage.MaxBytes = config.ByteSize(32 << 20)
		a.Peers[0].Export.Classes = []string{"fault"} // the fill's congestion signals stay home
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	got := collect(t, nb, "an.sig.op-a.>")
	require.True(t, publish(t, pa, faultEvent("op-a", "before")).OK())
	waitFor(t, 10*time.Second, func() error {
		if got.n() != 1 {
			return fmt.Errorf("B received %d of 1", got.n())
		}
		return nil
	})

	ballast := natstest.Fill(t, disk, 1<<20)
	last, refusedAt := fillUntilRefused(t, pa)
	require.Contains(t, last.Error, "store full")
	require.NoError(t, os.Remove(ballast))
	freed := time.Now()
	waitFor(t, 30*time.Second, func() error {
		m, err := pa.Request(subject.IntakePrefix, faultEvent("op-a", "after").Encode(), 5*time.Second)
		if err != nil {
			return err
		}
		if a, _ := signal.ParseAnswer(m.Data); !a.OK() {
			return fmt.Errorf("after freeing space: %s %s %s", a.Status, a.Reason, a.Error)
		}
		return nil
	})
	accepted := time.Since(freed)
	waitFor(t, 30*time.Second, func() error {
		if got.n() != 2 {
			return fmt.Errorf("B received %d of 2", got.n())
		}
		return nil
	})
	t.Logf("full at signal %d; after the space was freed: accepted at A in %v, at B in %v", refusedAt, accepted.Round(time.Millisecond), time.Since(freed).Round(time.Millisecond))
}
