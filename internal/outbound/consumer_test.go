package outbound_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/store"
)

// TestEnsureConsumerMissesNothingJustStored: a signal is stored and, at
// once, the peer's export policy changes (the consumer is made anew with
// other filters). The new consumer must start at or before that signal.
// nats-server counts a consumer's pending messages asynchronously, so
// right after a store its NumPending can still read 0: trusting it to
// start after the stream's last message skipped the signal (a signal lost
// at an export-filter reload in TestDayInTheLife, about one run in
// twenty).
func TestEnsureConsumerMissesNothingJustStored(t *testing.T) {
	_, js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: store.SignalStream, Subjects: []string{"an.sig.>"}})
	require.NoError(t, err)
	filters := [][]string{
		{"an.sig.op-a.fault.>", "an.sig.op-a.congestion.>"},
		{"an.sig.op-a.fault.>"},
	}
	require.NoError(t, outbound.EnsureConsumer(ctx, js, "op-b", filters[0], zerolog.Nop()))
	const rounds = 300
	skipped := 0
	for i := range rounds {
		c, err := js.Consumer(ctx, store.SignalStream, outbound.ConsumerName("op-b"))
		require.NoError(t, err)
		// Decide everything so far, as a sender caught up with the peer.
		for {
			b, err := c.FetchNoWait(100)
			require.NoError(t, err)
			n := 0
			for m := range b.Messages() {
				require.NoError(t, m.DoubleAck(ctx))
				n++
			}
			if n == 0 {
				break
			}
		}
		ack, err := js.Publish(ctx, fmt.Sprintf("an.sig.op-a.fault.vpn-acme.r%d", i), []byte("x"))
		require.NoError(t, err)
		require.NoError(t, outbound.EnsureConsumer(ctx, js, "op-b", filters[(i+1)%2], zerolog.Nop()))
		c, err = js.Consumer(ctx, store.SignalStream, outbound.ConsumerName("op-b"))
		require.NoError(t, err)
		info, err := c.Info(ctx)
		require.NoError(t, err)
		if start := info.Config.OptStartSeq; start > ack.Sequence {
			skipped++
			t.Logf("round %d: signal at %d stored, the new consumer starts at %d", i, ack.Sequence, start)
		}
	}
	require.Zero(t, skipped, "of %d signals stored just before a policy change, %d were skipped", rounds, skipped)
}
