package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
)

// Eight senders hand 4,000 records over at once to a writer on a real
// JetStream: every one is stored, in one chain that verifies, in fewer
// messages than records (what waited was written together); the peer
// filter and since pick theirs.
func TestWriterChainsEveryRecord(t *testing.T) {
	_, js := natstest.StartJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, Open(ctx, js, 0, 64<<20, 1))
	w := NewWriter(js, "op-a", zerolog.Nop())
	const senders, each = 8, 500
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				w.Sent(fmt.Sprintf("op-%d", s), fmt.Sprintf("s-%d-%d", s, i), "anfed://op-a/x", "net.anfed.congestion.v1", "svc/r", "export.classes", nil, []byte(fmt.Sprint(i)))
			}
		}()
	}
	wg.Wait()
	w.Action(Record{Peer: "op-b", Action: "act-1", Phase: "accepted", DecidedBy: "noc-alice", Reason: "agreed"})
	w.Close()
	st := w.Stats()
	assert.Equal(t, Stats{Written: senders*each + 1}, st)
	assert.Equal(t, uint64(senders*each+1), w.Head())

	recs, err := Read(ctx, js, Filter{})
	require.NoError(t, err)
	require.Len(t, recs, senders*each+1)
	rep := Verify(recs, map[string]uint64{w.Chain(): w.Head()})
	assert.True(t, rep.OK(), rep.Text())
	s, err := js.Stream(ctx, Stream)
	require.NoError(t, err)
	msgs := s.CachedInfo().State.Msgs
	assert.Less(t, msgs, uint64(senders*each), "records that waited together share a message")
	t.Logf("%d records in %d messages", len(recs), msgs)

	mine, err := Read(ctx, js, Filter{Peer: "op-3", Kind: KindSent})
	require.NoError(t, err)
	assert.Len(t, mine, each)
	for _, r := range mine {
		assert.Equal(t, "op-3", r.Peer)
		assert.Equal(t, Digest([]byte(r.Signal[len("s-3-"):])), r.Digest)
	}
	acts, err := Read(ctx, js, Filter{Kind: KindAction})
	require.NoError(t, err)
	require.Len(t, acts, 1)
	assert.Equal(t, "noc-alice", acts[0].DecidedBy)
	later, err := Read(ctx, js, Filter{Since: time.Now().Add(time.Minute)})
	require.NoError(t, err)
	assert.Empty(t, later)

	w.Sent("op-1", "late", "", "", "", "", nil, nil) // after Close: counted, not lost silently
	assert.Equal(t, uint64(1), w.Stats().Dropped)
}
