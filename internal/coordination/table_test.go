package coordination

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
)

func openTable(t *testing.T, self string) (*Table, jetstream.JetStream, string) {
	t.Helper()
	s, js := natstest.StartJetStream(t)
	tb, err := OpenTable(context.Background(), js, self, time.Hour, 1<<20, 1)
	require.NoError(t, err)
	return tb, js, s.ClientURL()
}

// Grants racing for one resource, from goroutines with connections of
// their own: exactly one holds it each round, and the others are told
// who and until when.
func TestGrantRaceOneWinner(t *testing.T) {
	tb, _, url := openTable(t, "op-a")
	ctx := context.Background()
	const racers, rounds = 8, 25
	tables := make([]*Table, racers)
	for i := range tables {
		nc, err := nats.Connect(url)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		tables[i], err = OpenTable(ctx, js, "op-a", time.Hour, 1<<20, 1)
		require.NoError(t, err)
	}
	now := time.Now()
	for round := range rounds {
		res := fmt.Sprintf("ic-%d", round)
		var wg sync.WaitGroup
		won := make([]bool, racers)
		refused := make([]*Refusal, racers)
		start := make(chan struct{})
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				recs, ref, err := tables[i].Grant(ctx, Grant{ActionID: fmt.Sprintf("act-%d-%d", round, i), Holder: fmt.Sprintf("op-%c", 'b'+i), Kind: "reroute",
					Resources: []string{res, "shared-" + res}, Until: now.Add(time.Minute)}, now)
				assert.NoError(t, err)
				won[i], refused[i] = len(recs) == 2, ref
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range racers {
			if won[i] {
				winners++
				continue
			}
			require.NotNil(t, refused[i], "round %d racer %d neither won nor was refused", round, i)
			require.NotNil(t, refused[i].Conflict)
		}
		require.Equal(t, 1, winners, "round %d", round)
		ours, _, err := tb.Leases(ctx)
		require.NoError(t, err)
		holders := map[string]string{}
		for _, l := range ours {
			if l.Held(now) && (l.Resource == res || l.Resource == "shared-"+res) {
				holders[l.Resource] = l.ActionID
			}
		}
		require.Len(t, holders, 2, "round %d: both resources leased", round)
		assert.Equal(t, holders[res], holders["shared-"+res], "round %d: one action holds both", round)
		for i := range racers {
			if !won[i] {
				assert.Equal(t, holders[res], refused[i].Conflict.ActionID, "the refusal names the holder's action")
			}
		}
	}
}

// A lease holds until it is ended or runs out; a reversal of an action
// is refused for the hold-down after that action ended.
func TestGrantEndAndDampening(t *testing.T) {
	tb, _, _ := openTable(t, "op-a")
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	recs, ref, err := tb.Grant(ctx, Grant{ActionID: "b-1", Holder: "op-b", Kind: "reroute", Resources: []string{"ic-1"}, Until: t0.Add(time.Minute)}, t0)
	require.NoError(t, err)
	require.Nil(t, ref)
	require.Len(t, recs, 1)

	// op-c before the end: refused, naming op-b and until when.
	_, ref, err = tb.Grant(ctx, Grant{ActionID: "c-1", Holder: "op-c", Resources: []string{"ic-1"}, Until: t0.Add(2 * time.Minute)}, t0.Add(59*time.Second))
	require.NoError(t, err)
	require.NotNil(t, ref.Conflict)
	assert.Equal(t, Conflict{Holder: "op-b", ActionID: "b-1", Until: t0.Add(time.Minute)}, Conflict{Holder: ref.Conflict.Holder, ActionID: ref.Conflict.ActionID, Until: ref.Conflict.Until.UTC()})

	// released at t0+30s; the reversal within the 5-minute hold-down is refused, after it granted.
	ended, err := tb.End(ctx, "b-1", []string{"ic-1"}, Released, t0.Add(30*time.Second))
	require.NoError(t, err)
	require.Len(t, ended, 1)
	assert.Greater(t, ended[0].Revision, recs[0].Revision)
	rev := Grant{ActionID: "c-2", Holder: "op-c", Resources: []string{"ic-1"}, Until: t0.Add(time.Hour), Reverses: "b-1", HoldDown: 5 * time.Minute}
	_, ref, err = tb.Grant(ctx, rev, t0.Add(5*time.Minute))
	require.NoError(t, err)
	require.NotNil(t, ref)
	assert.True(t, ref.Dampened)
	assert.Equal(t, t0.Add(30*time.Second+5*time.Minute), ref.Until.UTC())
	// another action (not a reversal) is granted at once
	recs, ref, err = tb.Grant(ctx, Grant{ActionID: "c-3", Holder: "op-c", Resources: []string{"ic-2"}, Until: t0.Add(time.Hour)}, t0.Add(31*time.Second))
	require.NoError(t, err)
	require.Nil(t, ref)
	require.Len(t, recs, 1)
	recs, ref, err = tb.Grant(ctx, rev, t0.Add(5*time.Minute+31*time.Second))
	require.NoError(t, err)
	require.Nil(t, ref)
	require.Len(t, recs, 1)
}

// A refusal on the second resource gives the first back as it was.
func TestGrantUndoesPartial(t *testing.T) {
	tb, _, _ := openTable(t, "op-a")
	ctx := context.Background()
	now := time.Now()
	_, ref, err := tb.Grant(ctx, Grant{ActionID: "b-1", Holder: "op-b", Resources: []string{"r-2"}, Until: now.Add(time.Minute)}, now)
	require.NoError(t, err)
	require.Nil(t, ref)
	_, ref, err = tb.Grant(ctx, Grant{ActionID: "c-1", Holder: "op-c", Resources: []string{"r-2", "r-1"}, Until: now.Add(time.Minute)}, now)
	require.NoError(t, err)
	require.NotNil(t, ref)
	assert.Equal(t, "r-2", ref.Resource)
	ours, _, err := tb.Leases(ctx)
	require.NoError(t, err)
	for _, l := range ours {
		assert.NotEqual(t, "c-1", l.ActionID, "r-1 was given back")
	}
	_, ref, err = tb.Grant(ctx, Grant{ActionID: "d-1", Holder: "op-d", Resources: []string{"r-1"}, Until: now.Add(time.Minute)}, now)
	require.NoError(t, err)
	assert.Nil(t, ref, "r-1 is free")
}

// A view keeps the grantor's latest word whatever order its decisions
// arrive in.
func TestViewKeepsHighestRevision(t *testing.T) {
	tb, _, _ := openTable(t, "op-c")
	ctx := context.Background()
	now := time.Now()
	held := LeaseRecord{Grantor: "op-a", Resource: "ic-1", Holder: "op-b", ActionID: "b-1", Until: now.Add(time.Minute), Revision: 5}
	released := held
	released.Ended, released.EndReason, released.Revision = now, Released, 7
	ok, err := tb.View(ctx, released)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = tb.View(ctx, held) // late, older
	require.NoError(t, err)
	assert.False(t, ok)
	_, views, err := tb.Leases(ctx)
	require.NoError(t, err)
	require.Len(t, views, 1)
	assert.False(t, views[0].Held(now))
}
