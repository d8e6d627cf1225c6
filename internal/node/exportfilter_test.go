package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// exportConsumer is op-a's export consumer towards op-b, as JetStream
// reports it.
func exportConsumer(t *testing.T, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), store.SignalStream, outbound.ConsumerName("op-b"))
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	return info
}

// A peer's export consumer reads only what the export policy may send:
// JetStream never delivers to op-b's sender the faults op-a does not
// export to it, so they cost that sender nothing. When the policy
// changes, the filter follows at the restart: nothing that waited is
// lost, what the old policy decided stays decided, new signals go by the
// new policy.
func TestExportConsumerReadsOnlyWhatThePolicySends(t *testing.T) {
	leaf := natstest.FreeAddr(t)
	na, nb := pairWith(t, []string{"congestion"}, []string{"*"}, func(c *config.Config) {
		if c.Operator.ID == "op-a" {
			c.NATS.LeafNodes.Listen = leaf
		} else {
			c.Peers[0].Dial.URL = "nats-leaf://" + leaf
		}
	})
	got := watchArrivals(t, nb)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	const n = 20
	var want []string
	for i := range n {
		require.True(t, publish(t, pa, faultEvent("op-a", fmt.Sprintf("f-%d", i))).OK())
		id := fmt.Sprintf("c-%d", i)
		require.True(t, publish(t, pa, congestion("op-a", id)).OK())
		want = append(want, id)
	}
	got.waitAll(t, want)
	js, err := jetstream.New(pa)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, func() error {
		if info := exportConsumer(t, js); info.NumAckPending != 0 {
			return fmt.Errorf("%d unanswered", info.NumAckPending)
		}
		return nil
	})
	info := exportConsumer(t, js)
	assert.Equal(t, []string{"an.sig.op-a.congestion.*.>"}, info.Config.FilterSubjects)
	assert.EqualValues(t, n, info.Delivered.Consumer, "JetStream delivered only the congestion signals to op-b's sender")
	assert.Zero(t, info.NumPending)
	for i := range n {
		assert.False(t, got.has(fmt.Sprintf("f-%d", i)), "fault f-%d is not exported to op-b", i)
	}

	// The policy changes: every class. The faults already decided are
	// not sent; a new one is.
	pa.Close()
	cfg := na.Config()
	na.Stop()
	cfg.Peers[0].Export.Classes = []string{"*"}
	na = startNode(t, cfg)
	waitFor(t, 15*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	pa, err = na.Connect()
	require.NoError(t, err)
	t.Cleanup(pa.Close)
	js, err = jetstream.New(pa)
	require.NoError(t, err)
	assert.Equal(t, []string{"an.sig.op-a.*.*.>"}, exportConsumer(t, js).Config.FilterSubjects)
	require.True(t, publish(t, pa, faultEvent("op-a", "f-new")).OK())
	got.waitAll(t, []string{"f-new"})
	for i := range n {
		assert.False(t, got.has(fmt.Sprintf("f-%d", i)), "fault f-%d was decided under the old policy", i)
	}
	ev := congestion("op-a", "c-new")
	require.Equal(t, signal.StatusAccepted, publish(t, pa, ev).Status)
	got.waitAll(t, []string{"c-new"})
}
