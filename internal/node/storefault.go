package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// A full volume makes JetStream fail a write with ENOSPC. nats-server then
// marks the stream with a write error for good and answers none of its
// later writes: producers would get no answer, and freeing space would
// not help. The node hears of it from the server's log (storeWriteFailed),
// refuses every write at once with "store full" (store.VolumeFull) instead
// of leaving each to time out, says so in Readiness, and, once the volume
// has room again, restarts JetStream, which reopens the streams from their
// files (as after a kill -9), and takes writes again.

// recoverFree is the free space the volume needs before JetStream is
// restarted: a few new message blocks.
const recoverFree = 4 << 20

// storeWriteFaults are the server's log lines that say a write to the
// store failed for good.
var storeWriteFaults = []string{"no space left on device", "critical write error", "out of space", "out of resources", "Filesystem permission denied"}

// storeWriteFailed takes a line of the server's error log; one that says
// the store cannot write puts the node in the store-full state.
func (n *Node) storeWriteFailed(msg string) {
	for _, s := range storeWriteFaults {
		if strings.Contains(msg, s) {
			err := errors.New(msg)
			if n.storeFault.CompareAndSwap(nil, &err) {
				select {
				case n.storeKick <- struct{}{}:
				default:
				}
			}
			return
		}
	}
}

// watchStore keeps the store's refusals in line with the store-full state
// and mends the store when the volume has room again. It runs until ctx
// is done.
func (n *Node) watchStore(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	backoff, next := time.Second, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.storeKick:
		case <-t.C:
		}
		f := n.storeFault.Load()
		if f == nil {
			continue
		}
		if n.store.Fault() == nil {
			n.store.VolumeFull(*f)
			n.log.Error().Err(*f).Str("dir", n.config().Storage.Dir).
				Msg("store full: every signal is answered unavailable until the volume has room again; free space on it, the node resumes by itself")
		}
		if n.external() || time.Now().Before(next) {
			continue // a cluster's servers are their operator's to mend
		}
		if free, err := freeBytes(n.config().Storage.Dir); err != nil || free < recoverFree {
			continue
		}
		if err := n.restartJetStream(ctx); err != nil {
			n.log.Warn().Err(err).Stringer("retry_in", backoff).Msg("store: JetStream did not come back")
			next = time.Now().Add(backoff)
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		n.storeFault.CompareAndSwap(f, nil)
		n.store.VolumeFreed()
		backoff, next = time.Second, time.Time{}
		n.log.Info().Msg("store writable again: the node takes signals")
	}
}

// restartJetStream shuts the embedded JetStream down and starts it again
// as the server started it; it reopens the streams and consumers from
// their files, without the write error the full volume left on them.
func (n *Node) restartJetStream(ctx context.Context) error {
	if n.srv.JetStreamEnabled() {
		if err := n.srv.ShutdownJetStream(); err != nil {
			return fmt.Errorf("shut JetStream down: %w", err)
		}
	}
	o := n.opts
	if err := n.srv.EnableJetStream(&server.JetStreamConfig{
		StoreDir: o.StoreDir, SyncInterval: o.SyncInterval, SyncAlways: o.SyncAlways, Strict: !o.NoJetStreamStrict,
		MaxMemory: o.JetStreamMaxMemory, MaxStore: o.JetStreamMaxStore, Domain: o.JetStreamDomain, CompressOK: true, UniqueTag: o.JetStreamUniqueTag,
	}); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	// The streams are back when the store can write to them.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return n.probeStore(ctx)
}

// probeStore writes the probe stream's one message and waits for
// JetStream to say it stored it.
func (n *Node) probeStore(ctx context.Context) error {
	if _, err := n.store.JetStream().Publish(ctx, store.ProbeSubject, []byte(time.Now().UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("store: not writable: %w", store.Classify(err))
	}
	return nil
}

// storeReadiness says why the store cannot take signals now: full, or
// the probe write (at most one every probeEvery) did not get through.
func (n *Node) storeReadiness() error {
	if f := n.storeFault.Load(); f != nil {
		return fmt.Errorf("store full (%s): %w", n.config().Storage.Dir, *f)
	}
	if n.store == nil {
		return nil // "store: not open" is said elsewhere
	}
	return n.probed(&n.probe.store, func(ctx context.Context) error { return n.probeStore(ctx) })
}

// intakeReadiness asks intake, the way a producer does, whether it
// answers: a probe through its subscription and stages (at most one
// every probeEvery).
func (n *Node) intakeReadiness() error {
	if n.intake == nil || n.ops == nil {
		return nil // "not started" is said elsewhere
	}
	return n.probed(&n.probe.intake, func(ctx context.Context) error {
		m := nats.NewMsg(subject.IntakePrefix)
		m.Header.Set(intake.HeaderProbe, "1")
		r, err := n.ops.RequestMsgWithContext(ctx, m)
		if err != nil {
			return fmt.Errorf("intake: not answering: %w", err)
		}
		if a, err := signal.ParseAnswer(r.Data); err != nil || a.Status != signal.StatusAlive {
			return fmt.Errorf("intake: answered a probe with %q", r.Data)
		}
		return nil
	})
}

// probeResult is a readiness probe's last result.
type probeResult struct {
	at  time.Time
	err error
}

// probed runs probe unless it ran in the last probeEvery, and returns its
// last result; concurrent callers wait for the one running.
func (n *Node) probed(r *probeResult, probe func(context.Context) error) error {
	n.probe.Lock()
	defer n.probe.Unlock()
	if time.Since(r.at) < probeEvery {
		return r.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r.err = probe(ctx)
	r.at = time.Now()
	return r.err
}

// probeEvery bounds the readiness probe's writes.
const probeEvery = 2 * time.Second
