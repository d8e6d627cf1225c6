package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// BenchmarkIntake measures a local producer's signals stored and answered,
// per sync policy, against raw JetStream async publish with the same sync
// policy in the same run (reported as ratio).
func BenchmarkIntake(b *testing.B) {
	for _, sync := range []string{"always", "2m"} {
		b.Run("sync="+sync, func(b *testing.B) {
			cfg := baseConfig(b, "op-a")
			cfg.Storage.Dir = b.TempDir()
			cfg.Storage.Sync = sync
			n := startNodeB(b, cfg)
			nc, err := n.Connect()
			require.NoError(b, err)
			defer nc.Close()
			ev := congestion("op-a", "x")
			body := ev.Encode()

			// Raw JetStream, same store and sync policy, as the ceiling.
			js, err := jetstream.New(nc)
			require.NoError(b, err)
			_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage})
			require.NoError(b, err)
			start := time.Now()
			for i := 0; i < b.N; i++ {
				for {
					_, err := js.PublishAsync("raw.x", body)
					if err == nil {
						break
					}
					// Too many in flight: let JetStream catch up.
					<-js.PublishAsyncComplete()
				}
			}
			<-js.PublishAsyncComplete()
			raw := time.Since(start)

			answers := make(chan *nats.Msg, 1<<16)
			sub, err := nc.ChanSubscribe("bench.answer.>", answers)
			require.NoError(b, err)
			defer sub.Unsubscribe()
			b.ResetTimer()
			start = time.Now()
			go func() {
				for i := 0; i < b.N; i++ {
					e := congestion("op-a", fmt.Sprintf("b-%d", i))
					_ = nc.PublishRequest("an.pub", "bench.answer."+e.ID, e.Encode())
				}
			}()
			for i := 0; i < b.N; i++ {
				<-answers
			}
			ours := time.Since(start)
			b.ReportMetric(float64(b.N)/ours.Seconds(), "signals/s")
			b.ReportMetric(raw.Seconds()/ours.Seconds(), "ratio-to-raw-js")
		})
	}
}
