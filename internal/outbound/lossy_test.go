package outbound_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
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
	srv := natstest.StartServer(t, &server.Options{DontListen: true})
	conn := func() *nats.Conn {
		nc, err := nats.Connect("", nats.InProcessServer(srv))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	src, peerSide, pub, watch := conn(), conn(), conn(), conn()

	var got atomic.Int64
	sub, err := watch.Subscribe(subject.LinkFrom("op-a"), func(m *nats.Msg) {
		ev, err := signal.DecodeStructured(m.Data)
		if assert.NoError(t, err) {
			assert.Equal(t, []string{"op-a"}, ev.Path)
			assert.Equal(t, "net.anfed.congestion.v1", ev.Type)
		}
		got.Add(1)
	})
	require.NoError(t, err)
	require.NoError(t, watch.Flush())
	_ = sub

	pol := exportpolicy.New("op-a", &config.Peer{ID: "op-b", Export: config.ExportPolicy{
		Classes: []string{"congestion"}, Services: []string{"vpn-1"},
	}})
	snd := outbound.NewLossySender(outbound.LossyConfig{Self: "op-a", Peer: "op-b", Source: src, Conn: peerSide, Policy: pol, Log: zerolog.Nop()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
	})

	// Interest is registered when Run has subscribed: publish a probe until it
	// is taken.
	stored := func(class, service string, i int) {
		ev := &signal.Event{
			ID: fmt.Sprintf("%s-%s-%d", class, service, i), Source: "anfed://op-a/probe",
			Type: "net.anfed." + class + ".v1", Subject: service + "/r1",
			Origin: "op-a", State: signal.Raised, Data: []byte(`{}`),
		}
		k := subject.Key{Origin: "op-a", Class: class, Service: service, Resource: fmt.Sprintf("r%d", i)}
		subj, err := subject.Signal(k)
		require.NoError(t, err)
		require.NoError(t, pub.Publish(subj, ev.Encode()))
	}
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
