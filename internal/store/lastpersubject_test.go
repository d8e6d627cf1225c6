package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
)

func jetStreamServer(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.StartJetStream(t)
	return js
}

// 2,500 subjects, each written twice in a row (k0 v1, k0 v2, k1 v1, ...):
// the last per subject is 2,500 messages, every one a second version,
// each subject once — more than one Fetch of 1,000.
func TestLastPerSubjectReadsEveryKeyOnce(t *testing.T) {
	js := jetStreamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"k.>"}})
	require.NoError(t, err)
	const keys = 2500
	// In batches of 1,000 messages, each waited for: 5,000 at once go
	// over nats.go's 4,000 outstanding and stall past its 200 ms wait on
	// a loaded machine ("stalled with too many outstanding async
	// published messages", seen in CI at load 15).
	for k := range keys {
		for v := 1; v <= 2; v++ {
			_, err := js.PublishAsync(fmt.Sprintf("k.%d", k), []byte(fmt.Sprint(v)))
			require.NoError(t, err)
		}
		if k%500 == 499 || k == keys-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
				t.Fatal("publish")
			}
		}
	}

	seen := map[string]int{}
	n, err := LastPerSubject(ctx, js, "S", "k.>", func(m jetstream.Msg) {
		require.Equal(t, "2", string(m.Data()), "%s: a superseded version came back", m.Subject())
		seen[m.Subject()]++
	})
	require.NoError(t, err)
	require.Equal(t, keys, n)
	require.Len(t, seen, keys, "every subject read")
	for s, c := range seen {
		require.Equal(t, 1, c, "%s read more than once", s)
	}
	st, err := js.Stream(ctx, "S")
	require.NoError(t, err)
	si, err := st.Info(ctx)
	require.NoError(t, err)
	require.Zero(t, si.State.Consumers, "the consumer is deleted afterwards")

	// The reason for the helper: nats.go's ordered consumer, read the
	// same way, brings superseded versions back after its first Fetch.
	oc, err := js.OrderedConsumer(ctx, "S", jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"k.>"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy})
	require.NoError(t, err)
	stale := 0
	for left := keys; left > 0; {
		b, err := oc.Fetch(min(left, 1000), jetstream.FetchMaxWait(2*time.Second))
		require.NoError(t, err)
		got := 0
		for m := range b.Messages() {
			got++
			if string(m.Data()) != "2" {
				stale++
			}
		}
		if got == 0 {
			break
		}
		left -= got
	}
	t.Logf("ordered consumer, same reads: %d superseded versions among %d reads", stale, keys)
	require.NotZero(t, stale, "nats.go's ordered consumer no longer re-creates itself per Fetch: LastPerSubject could go back to it")
}
