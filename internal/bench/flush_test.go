package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
)

// BenchmarkFlushCeiling is what this disk's flushes allow with
// storage.sync always, on one nats-server (docs/benchmarks.md, "5,000/s
// with every write flushed"): 1 KB messages published asynchronously
//   - into N streams at once (streams=N): each stream flushes each write,
//     one at a time, but the file system can take several streams'
//     flushes together;
//   - in JetStream atomic batches of B messages (ADR-50, batch=B) into one
//     stream: nats-server flushes a committed batch once, after staging
//     it in a store of its own.
//
// anfed-cross makes two flushed writes per signal, one at each end, on
// one stream each, as the by-hand ceiling does.
func BenchmarkFlushCeiling(b *testing.B) {
	for _, n := range []int{1, 2, 4, 8, 16} {
		b.Run("streams="+strconv.Itoa(n), func(b *testing.B) {
			js, _ := flushServer(b)
			ctx := context.Background()
			subj := make([]string, n)
			for i := range n {
				subj[i] = fmt.Sprintf("s%d", i)
				_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: fmt.Sprintf("S%d", i), Subjects: []string{subj[i]}, Storage: jetstream.FileStorage})
				require.NoError(b, err)
			}
			body := make([]byte, 1024)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				_, err := js.PublishAsync(subj[i%n], body, jetstream.WithStallWait(time.Minute))
				require.NoError(b, err)
			}
			<-js.PublishAsyncComplete()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
	for _, size := range []int{1, 16, 64, 256} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			js, nc := flushServer(b)
			_, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "B", Subjects: []string{"b.>"}, Storage: jetstream.FileStorage, AllowAtomicPublish: true})
			require.NoError(b, err)
			body := make([]byte, 1024)
			inflight := make(chan struct{}, 32)
			var wg sync.WaitGroup
			var mu sync.Mutex
			var failed error
			b.ResetTimer()
			for i, id := 0, 0; i < b.N; i, id = i+size, id+1 {
				inflight <- struct{}{}
				bid := "b" + strconv.Itoa(id)
				reply := nats.NewInbox()
				sub, err := nc.SubscribeSync(reply)
				require.NoError(b, err)
				for j := range size {
					m := &nats.Msg{Subject: "b." + strconv.Itoa(j), Data: body, Header: nats.Header{}}
					m.Header.Set("Nats-Batch-Id", bid)
					m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(j+1))
					m.Header.Set(jetstream.MsgIDHeader, bid+"-"+strconv.Itoa(j))
					if j == size-1 {
						m.Header.Set("Nats-Batch-Commit", "1")
						m.Reply = reply
					}
					require.NoError(b, nc.PublishMsg(m))
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-inflight }()
					defer sub.Unsubscribe()
					r, err := sub.NextMsg(30 * time.Second)
					if err == nil && bytes.Contains(r.Data, []byte(`"error"`)) {
						err = fmt.Errorf("batch refused: %s", r.Data)
					}
					if err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			require.NoError(b, failed)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
		})
	}
}

// flushServer is a JetStream server on a temporary directory with every
// write flushed (sync_interval: always).
func flushServer(b *testing.B) (jetstream.JetStream, *nats.Conn) {
	s := natstest.StartServer(b, &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: b.TempDir(), SyncAlways: true})
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(b, err)
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	require.NoError(b, err)
	return js, nc
}
