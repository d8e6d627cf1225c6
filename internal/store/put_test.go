package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/store"
)

// TestPutKeepsOnceByKey: Put and PutAsync store a signal under its
// an.sig subject, once per dedup key: the second write of a key, by
// either, is a duplicate and stores nothing; another key is stored.
func TestPutKeepsOnceByKey(t *testing.T) {
	s, _ := natstest.StartJetStream(t)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, nc, store.Limits{DuplicateWindow: time.Minute, MaxBytes: 256 << 20})
	require.NoError(t, err)

	const subj = "an.sig.op-a.fault.vpn.r1"
	dup, err := st.Put(ctx, subj, "anfed://op-a/x#1", []byte(`{"n":1}`))
	require.NoError(t, err)
	assert.False(t, dup)
	dup, err = st.Put(ctx, subj, "anfed://op-a/x#1", []byte(`{"n":1}`))
	require.NoError(t, err)
	assert.True(t, dup, "the same key again")

	for key, want := range map[string]bool{"anfed://op-a/x#1": true, "anfed://op-a/x#2": false} {
		fut, err := st.PutAsync(subj, key, []byte(`{"n":2}`))
		require.NoError(t, err)
		select {
		case ack := <-fut.Ok():
			assert.Equal(t, store.SignalStream, ack.Stream)
			assert.Equal(t, want, ack.Duplicate, key)
		case err := <-fut.Err():
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatal("no ack")
		}
	}
	str, err := st.JetStream().Stream(ctx, store.SignalStream)
	require.NoError(t, err)
	info, err := str.Info(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint64(2), info.State.Msgs, "one per key")
	m, err := str.GetLastMsgForSubject(ctx, subj)
	require.NoError(t, err)
	assert.Equal(t, `{"n":2}`, string(m.Data))
}
