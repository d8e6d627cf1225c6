package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/signal"
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
	ev1 := &signal.Event{Source: "anfed://op-a/x", ID: "1"}
	dup, err := st.Put(ctx, subj, ev1, []byte(`{"n":1}`))
	require.NoError(t, err)
	assert.False(t, dup)
	dup, err = st.Put(ctx, subj, ev1, []byte(`{"n":1}`))
	require.NoError(t, err)
	assert.True(t, dup, "the same key again")

	for key, want := range map[string]bool{ev1.Key(): true, "anfed://op-a/x 2": false} {
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

// Put reuses its message: a write costs what JetStream's publish of the
// same message costs, and its subject (the store's an.store.<...>).
func TestPutReusesItsMessage(t *testing.T) {
	s, _ := natstest.StartJetStream(t)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ctx := context.Background()
	st, err := store.Open(ctx, nc, store.Limits{DuplicateWindow: time.Minute, MaxBytes: 256 << 20})
	require.NoError(t, err)
	const subj = "an.sig.op-a.fault.vpn.r1"
	ev := &signal.Event{Source: "anfed://op-a/x", ID: "1"}
	body := []byte(`{"n":1}`)
	_, err = st.Put(ctx, subj, ev, body)
	require.NoError(t, err)
	// The same write by hand (a duplicate, as Put's are from here on).
	byHand := nats.NewMsg("an.store.op-a.fault.vpn.r1")
	byHand.Header.Set(jetstream.MsgIDHeader, ev.Key())
	byHand.Header.Set(jetstream.ExpectedStreamHeader, store.SignalStream)
	byHand.Data = body
	// AllocsPerRun counts every goroutine's: the least of a few runs.
	least := func(f func()) float64 {
		n := math.Inf(1)
		for range 5 {
			n = min(n, testing.AllocsPerRun(50, f))
		}
		return n
	}
	js := st.JetStream()
	publish := least(func() {
		_, err := js.PublishMsg(ctx, byHand)
		require.NoError(t, err)
	})
	put := least(func() {
		dup, err := st.Put(ctx, subj, ev, body)
		require.NoError(t, err)
		require.True(t, dup)
	})
	if raceDetector {
		return
	}
	// +2: its subject (an.store.<...>) and its dedup key (ev.Key(): Put
	// takes the event, which it tells the store's feed of; its callers
	// made the key before).
	assert.LessOrEqual(t, put, publish+2, "Put %v, JetStream's publish %v", put, publish)
}
