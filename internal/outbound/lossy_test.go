package outbound_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// A lossy sender takes from the store only the subjects its export policy
// may send, so signals for no lossy peer cost it nothing (issue 8: cost
// flat in the peers a signal is not exported to), and it forwards exactly
// what Decide allows.
func TestLossySenderTakesOnlyItsPolicySubjects(t *testing.T) {
	var got atomic.Int64
	snd, pub := startLossy(t, outbound.LossyConfig{}, func(m *nats.Msg) {
		ev, err := signal.DecodeStructured(m.Data)
		if assert.NoError(t, err) {
			assert.Equal(t, []string{"op-a"}, ev.Path)
			assert.Equal(t, "net.anfed.congestion.v1", ev.Type)
		}
		got.Add(1)
	})

	// Interest is registered when Run has subscribed: publish a probe until it
	// is taken.
	stored := func(class, service string, i int) { publishAt(t, pub, subject.Signal, class, service, i) }
	natstest.WaitFor(t, 5*time.Second, func() error {
		stored("congestion", "vpn-1", 0)
		require.NoError(t, pub.Flush())
		if got.Load() == 0 {
			return fmt.Errorf("lossy sender not subscribed yet")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // the probes still on their way
	base, sentBase := snd.Delivered(), got.Load()

	// 300 stored signals for classes and services this peer never gets,
	// 20 it does.
	for i := range 100 {
		stored("fault", "vpn-1", i)
		stored("congestion", "vpn-2", i)
		stored("sla-risk", "vpn-1", i)
	}
	for i := range 20 {
		stored("congestion", "vpn-1", i+1)
	}
	require.NoError(t, pub.Flush())
	natstest.WaitFor(t, 5*time.Second, func() error {
		if n := got.Load() - sentBase; n < 20 {
			return fmt.Errorf("%d of 20 crossed", n)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // anything else that was going to be taken
	assert.Equal(t, uint64(20), snd.Delivered()-base, "the sender took only its policy's subjects")
	assert.Equal(t, int64(20), got.Load()-sentBase, "and forwarded each of them once")
}

// startLossy runs a lossy sender of op-a to op-b (export: congestion on
// vpn-1) made from cfg, on an in-process server, with link messages
// handed to onLink; pub publishes what the sender reads.
func startLossy(t *testing.T, cfg outbound.LossyConfig, onLink nats.MsgHandler) (snd *outbound.LossySender, pub *nats.Conn) {
	t.Helper()
	srv := natstest.StartServer(t, &server.Options{DontListen: true})
	conn := func() *nats.Conn {
		nc, err := nats.Connect("", nats.InProcessServer(srv))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	src, peerSide, watch := conn(), conn(), conn()
	pub = conn()
	sub, err := watch.Subscribe(subject.LinkFrom("op-a"), onLink)
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	require.NoError(t, watch.Flush())

	cfg.Self, cfg.Peer, cfg.Source, cfg.Conn, cfg.Log = "op-a", "op-b", src, peerSide, zerolog.Nop()
	cfg.Policy = exportpolicy.New("op-a", &config.Peer{ID: "op-b", Export: config.ExportPolicy{
		Classes: []string{"congestion"}, Services: []string{"vpn-1"},
	}})
	snd = outbound.NewLossySender(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})
	return snd, pub
}

// publishAt publishes a signal of op-a of class on service (resource
// r<i>) on the subject where names: the store's republish
// (subject.Signal) or checked telemetry (subject.TelemetrySignal).
func publishAt(t *testing.T, pub *nats.Conn, where func(subject.Key) (string, error), class, service string, i int) {
	t.Helper()
	ev := &signal.Event{
		ID: fmt.Sprintf("%s-%s-%d", class, service, i), Source: "anfed://op-a/probe",
		Type: "net.anfed." + class + ".v1", Subject: service + "/r1",
		Origin: "op-a", State: signal.Raised, Data: []byte(`{}`),
	}
	subj, err := where(subject.Key{Origin: "op-a", Class: class, Service: service, Resource: fmt.Sprintf("r%d", i)})
	require.NoError(t, err)
	require.NoError(t, pub.Publish(subj, ev.Encode()))
}

// A stream sender forwards our telemetry (an.telsig) marked as such
// beside the stored signals, and numbers every message of the link, the
// ones it drops while the link is down included, so the receiver's count
// of the gaps equals its count of the drops.
func TestStreamSenderNumbersEveryMessage(t *testing.T) {
	var (
		up   atomic.Bool
		mu   sync.Mutex
		msgs []*nats.Msg
	)
	up.Store(true)
	snd, pub := startLossy(t, outbound.LossyConfig{Stream: true, LinkUp: up.Load}, func(m *nats.Msg) {
		mu.Lock()
		msgs = append(msgs, m)
		mu.Unlock()
	})
	arrived := func(n int) {
		t.Helper()
		natstest.WaitFor(t, 5*time.Second, func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(msgs) < n {
				return fmt.Errorf("%d of %d on the link", len(msgs), n)
			}
			return nil
		})
	}
	// Until the sender has subscribed, what is published is not taken.
	natstest.WaitFor(t, 5*time.Second, func() error {
		publishAt(t, pub, subject.TelemetrySignal, "congestion", "vpn-1", 0)
		require.NoError(t, pub.Flush())
		if snd.Stats().Sent == 0 {
			return fmt.Errorf("stream sender not subscribed yet")
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	msgs = nil
	mu.Unlock()

	// In turn, so the order is known: stored, telemetry, telemetry not
	// for this peer's policy (another service), a drop while down.
	publishOne := func(where func(subject.Key) (string, error), service string, i int) {
		publishAt(t, pub, where, "congestion", service, i)
		require.NoError(t, pub.Flush())
	}
	publishOne(subject.Signal, "vpn-1", 1)
	arrived(1)
	publishOne(subject.TelemetrySignal, "vpn-1", 2)
	arrived(2)
	publishOne(subject.TelemetrySignal, "vpn-2", 3) // not exported: no number taken
	up.Store(false)
	time.Sleep(150 * time.Millisecond) // the sender's view of the link is 100 ms old at most
	for i := range 3 {
		publishOne(subject.TelemetrySignal, "vpn-1", 10+i)
	}
	natstest.WaitFor(t, 5*time.Second, func() error {
		if d := snd.Stats().DroppedLinkDown; d < 3 {
			return fmt.Errorf("%d of 3 dropped", d)
		}
		return nil
	})
	up.Store(true)
	time.Sleep(150 * time.Millisecond)
	publishOne(subject.TelemetrySignal, "vpn-1", 20)
	arrived(3)

	mu.Lock()
	defer mu.Unlock()
	var gaps link.Gaps
	var seqs []string
	for _, m := range msgs {
		seqs = append(seqs, m.Header.Get(link.HeaderStreamSeq))
		ok, anomaly := gaps.See(time.Now(), m.Header.Get)
		assert.True(t, ok)
		assert.Empty(t, anomaly)
		assert.NotEmpty(t, m.Header.Get(link.HeaderStreamEpoch))
	}
	require.Len(t, msgs, 3, "seqs %v", seqs)
	assert.Empty(t, msgs[0].Header.Get(link.HeaderTelemetry), "a stored signal is not telemetry")
	assert.Equal(t, "1", msgs[1].Header.Get(link.HeaderTelemetry))
	assert.Equal(t, "1", msgs[2].Header.Get(link.HeaderTelemetry))
	n := func(i int) uint64 { v, _ := strconv.ParseUint(seqs[i], 10, 64); return v }
	assert.Equal(t, n(0)+1, n(1), "numbers follow each other while the link is up")
	assert.Equal(t, n(1)+4, n(2), "the three dropped while down took their numbers")
	assert.EqualValues(t, 3, gaps.Lost, "the receiver counts the drops as the gap")
	st := snd.Stats()
	assert.EqualValues(t, 3, st.DroppedLinkDown)
	assert.Positive(t, st.Telemetry)
}

// With a TelemetryFeed (in process, the node's) a stream sender takes
// our telemetry from the feed, not from an.telsig: what its export
// policy's telemetry subjects match is forwarded, marked, numbered in
// turn with the stored signals it still takes from the store's
// republish, the feed's signal left as it was (each sender changes a
// copy of its own); what they do not match is not taken; telemetry
// published on an.telsig by anyone is not taken either. Once Run ends,
// the sender is off the feed.
func TestStreamSenderTakesTelemetryFromTheFeed(t *testing.T) {
	var (
		mu   sync.Mutex
		msgs []*nats.Msg
	)
	feed := &outbound.TelemetryFeed{}
	t.Cleanup(func() { assert.Zero(t, feed.Senders(), "the sender left the feed when Run ended") })
	snd, pub := startLossy(t, outbound.LossyConfig{Stream: true, Feed: feed}, func(m *nats.Msg) {
		mu.Lock()
		msgs = append(msgs, m)
		mu.Unlock()
	})
	onLink := func() int { mu.Lock(); defer mu.Unlock(); return len(msgs) }
	arrived := func(n int) {
		t.Helper()
		natstest.WaitFor(t, 5*time.Second, func() error {
			if got := onLink(); got < n {
				return fmt.Errorf("%d of %d on the link", got, n)
			}
			return nil
		})
	}
	offer := func(service string, i int) *signal.Event {
		t.Helper()
		ev := &signal.Event{
			ID: fmt.Sprintf("tel-%s-%d", service, i), Source: "anfed://op-a/probe",
			Type: "net.anfed.congestion.v1", Subject: service + "/r1",
			Origin: "op-a", State: signal.Raised, Data: []byte(`{}`), Tags: []string{"kpi"},
		}
		subj, err := subject.TelemetrySignal(subject.Key{Origin: "op-a", Class: "congestion", Service: service, Resource: "r1"})
		require.NoError(t, err)
		feed.Offer(subj, ev)
		return ev
	}
	// The stored signals' subscriptions are up once one crosses.
	natstest.WaitFor(t, 5*time.Second, func() error {
		publishAt(t, pub, subject.Signal, "congestion", "vpn-1", 0)
		require.NoError(t, pub.Flush())
		if onLink() == 0 {
			return fmt.Errorf("lossy sender not subscribed yet")
		}
		return nil
	})
	require.Equal(t, 1, feed.Senders())
	time.Sleep(100 * time.Millisecond) // the probes still on their way
	mu.Lock()
	msgs = nil
	mu.Unlock()
	base := snd.Delivered()

	// Telemetry on an.telsig, not through the feed: not taken.
	publishAt(t, pub, subject.TelemetrySignal, "congestion", "vpn-1", 1)
	require.NoError(t, pub.Flush())
	ev := offer("vpn-1", 2)
	arrived(1)
	publishAt(t, pub, subject.Signal, "congestion", "vpn-1", 3)
	require.NoError(t, pub.Flush())
	arrived(2)
	offer("vpn-2", 4) // not this peer's service: not taken
	offer("vpn-1", 5)
	arrived(3)
	time.Sleep(100 * time.Millisecond) // anything else that was going to cross
	assert.Empty(t, ev.Path, "the feed's signal is left as it was")

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, msgs, 3)
	var ids []string
	for _, m := range msgs {
		got, err := signal.DecodeStructured(m.Data)
		require.NoError(t, err)
		ids = append(ids, got.ID)
		assert.Equal(t, []string{"op-a"}, got.Path)
	}
	assert.Equal(t, []string{"tel-vpn-1-2", "congestion-vpn-1-3", "tel-vpn-1-5"}, ids)
	assert.Equal(t, "1", msgs[0].Header.Get(link.HeaderTelemetry))
	assert.Empty(t, msgs[1].Header.Get(link.HeaderTelemetry), "a stored signal is not telemetry")
	assert.Equal(t, "1", msgs[2].Header.Get(link.HeaderTelemetry))
	var seqs []uint64
	for _, m := range msgs {
		n, err := strconv.ParseUint(m.Header.Get(link.HeaderStreamSeq), 10, 64)
		require.NoError(t, err)
		seqs = append(seqs, n)
		assert.NotEmpty(t, m.Header.Get(link.HeaderStreamEpoch))
		assert.NotEmpty(t, m.Header.Get(link.HeaderSent))
	}
	assert.Equal(t, []uint64{seqs[0], seqs[0] + 1, seqs[0] + 2}, seqs, "one numbering for the feed's and the store's")
	assert.EqualValues(t, 3, snd.Delivered()-base, "taken: the two offers it matches and the stored signal")
	st := snd.Stats()
	assert.EqualValues(t, 2, st.Telemetry)
	assert.Zero(t, st.DroppedSlow)
}
