package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// The Adj-RIB-In (soft reconfiguration inbound): op-a exports faults and
// congestions to op-b, whose import policy refuses faults. What op-b
// keeps of the refused faults lets a wider import policy admit them
// without op-a sending anything again.

// ribInPeer is op-b's Adj-RIB-In counts for op-a.
func ribInPeer(t *testing.T, n *node.Node) inbound.RibInStats {
	t.Helper()
	for _, p := range n.Peers(context.Background()) {
		if p.ID == "op-a" {
			return p.AdjRibIn
		}
	}
	t.Fatal("no peer op-a")
	return inbound.RibInStats{}
}

// faultsHeld is what op-b holds of op-a's faults: resource -> signal id.
func faultsHeld(n *node.Node) map[string]string {
	out := map[string]string{}
	for _, c := range n.Conditions(conditions.Filter{Peer: "op-a", Class: "fault", IncludeStale: true}) {
		out[c.Subject] = c.ID
	}
	return out
}

// publishFaults has op-a raise pe-1 and pe-2 (updated), raise and clear
// pe-3, and raise one congestion, and waits until op-b decided all of it.
func publishFaults(t *testing.T, na, nb *node.Node) {
	t.Helper()
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	for _, s := range []struct {
		res, id string
		st      signal.State
	}{{"pe-1", "f1", signal.Raised}, {"pe-2", "f2", signal.Raised}, {"pe-3", "f3", signal.Raised}, {"pe-2", "f2u", signal.Updated}, {"pe-3", "f3c", signal.Cleared}} {
		ev := faultEvent("op-a", s.id)
		ev.Subject, ev.State = "vpn-acme/"+s.res, s.st
		require.True(t, publish(t, pa, ev).OK())
	}
	require.True(t, publish(t, pa, congestion("op-a", "c1")).OK())
	waitFor(t, 15*time.Second, func() error {
		if bl, err := na.Backlog(context.Background(), "op-b"); err != nil || bl != 0 {
			return fmt.Errorf("op-a's backlog to op-b: %d %v", bl, err)
		}
		if n := nb.Table().Len("op-a"); n != 1 {
			return fmt.Errorf("op-b holds %d conditions of op-a, want the congestion", n)
		}
		if st := ribInPeer(t, nb); st.Held != 2 {
			return fmt.Errorf("op-b keeps %+v", st)
		}
		return nil
	})
	require.Empty(t, faultsHeld(nb), "refused by op-b's import policy")
}

// TestSoftReconfigurationInbound: op-b widens its import policy to faults
// without a restart (node.ReapplyImport): it holds pe-1 (f1) and pe-2
// (its update, f2u) from what it kept, not pe-3 (cleared meanwhile), and
// op-a puts nothing on the link. Narrowed again, pe-1 and pe-2 are
// withdrawn (and kept); widened again, they are back. Before the
// Adj-RIB-In, the wider policy took effect only with the next refresh
// (TestImportLoosenedRevealsAtRefresh: op-a re-sends its export).
func TestSoftReconfigurationInbound(t *testing.T) {
	b, nb, na := restartablePair(t, []string{"congestion"}, []string{"fault", "congestion"})
	waitFor(t, 15*time.Second, func() error {
		if s := na.Session("op-b"); s == nil || s.RefreshesSent == 0 || s.LastRefresh == nil {
			return fmt.Errorf("op-a's refresh at establishment not done: %+v", s)
		}
		return nil
	})
	var sent atomic.Int64
	stop, err := na.WatchExports(func(node.Export) { sent.Add(1) })
	require.NoError(t, err)
	defer stop()
	publishFaults(t, na, nb)
	before := sent.Load()
	require.Equal(t, int64(6), before, "op-a sent its six signals once")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wide := b.Peers[0].Import
	wide.Classes = []string{"congestion", "fault"}
	st, err := nb.ReapplyImport(ctx, "op-a", &wide)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Read)
	assert.Equal(t, 2, st.Admitted)
	waitFor(t, 10*time.Second, func() error {
		if got := faultsHeld(nb); fmt.Sprint(got) != fmt.Sprint(map[string]string{"vpn-acme/pe-1": "f1", "vpn-acme/pe-2": "f2u"}) {
			return fmt.Errorf("op-b holds faults %v", got)
		}
		return nil
	})
	assert.Zero(t, ribInPeer(t, nb).Held, "admitted: no longer kept")

	narrow := b.Peers[0].Import
	st, err = nb.ReapplyImport(ctx, "op-a", &narrow)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Withdrawn)
	assert.Empty(t, faultsHeld(nb), "withdrawn: the import policy refuses faults again")
	assert.Equal(t, 1, nb.Table().Len("op-a"), "the congestion stays")
	assert.Equal(t, int64(2), ribInPeer(t, nb).Held)

	st, err = nb.ReapplyImport(ctx, "op-a", &wide)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Admitted)
	waitFor(t, 10*time.Second, func() error {
		if got := faultsHeld(nb); len(got) != 2 {
			return fmt.Errorf("op-b holds faults %v", got)
		}
		return nil
	})
	time.Sleep(300 * time.Millisecond) // anything op-a would send has had time to show
	assert.Equal(t, before, sent.Load(), "op-a sent nothing again")
	assert.Equal(t, uint64(2), ribInPeer(t, nb).Withdrawn)
}

// TestSoftReconfigurationAtRestart: op-b restarts with faults allowed
// while op-a is down: no session, no refresh, and op-b holds pe-1 and
// pe-2 from what it kept, verified as op-a signed them. Before the
// Adj-RIB-In it held no fault until op-a was back and re-sent them.
func TestSoftReconfigurationAtRestart(t *testing.T) {
	b, nb, na := restartablePair(t, []string{"congestion"}, []string{"fault", "congestion"})
	publishFaults(t, na, nb)
	na.Stop()
	nb.Stop()
	b.Peers[0].Import.Classes = []string{"congestion", "fault"}
	nb = startNode(t, b)
	waitFor(t, 15*time.Second, func() error {
		if got := faultsHeld(nb); fmt.Sprint(got) != fmt.Sprint(map[string]string{"vpn-acme/pe-1": "f1", "vpn-acme/pe-2": "f2u"}) {
			return fmt.Errorf("op-b holds faults %v", got)
		}
		return nil
	})
	assert.False(t, nb.LinkUp("op-a"), "op-a is down: nothing was asked of it")
	// The table takes an admitted signal from the store before the
	// receiver has removed it from the Adj-RIB-In.
	waitFor(t, 10*time.Second, func() error {
		if st := ribInPeer(t, nb); st.Admitted != 2 || st.Held != 0 {
			return fmt.Errorf("op-b's Adj-RIB-In: %+v", st)
		}
		return nil
	})
	nc, err := nb.Connect()
	require.NoError(t, err)
	defer nc.Close()
	assert.Empty(t, ribInKeys(t, nc, "op-a"))
}

// TestAttackAdjRibInFlood: op-a floods op-b with faults of distinct
// keys, all refused by op-b's import policy. op-b keeps at most its
// import.adj_rib_in.limit of them (the rest counted over-bound, reason
// adj-rib-in-full), answers every one refused as before, stays ready,
// and op-a's congestion sent after the flood crosses.
func TestAttackAdjRibInFlood(t *testing.T) {
	const limit, flood = 50, 400
	b, nb, na := restartablePair(t, []string{"congestion"}, []string{"fault", "congestion"})
	nb.Stop()
	b.Peers[0].Import.AdjRibIn = &config.AdjRibIn{Limit: limit}
	nb = startNode(t, b)
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	for i := range flood {
		ev := faultEvent("op-a", fmt.Sprintf("fl-%d", i))
		ev.Subject = fmt.Sprintf("vpn-acme/pe-%d", i)
		require.True(t, publish(t, pa, ev).OK())
	}
	require.True(t, publish(t, pa, congestion("op-a", "after")).OK())
	waitFor(t, 30*time.Second, func() error {
		if bl, err := na.Backlog(context.Background(), "op-b"); err != nil || bl != 0 {
			return fmt.Errorf("op-a's backlog to op-b: %d %v", bl, err)
		}
		if got := nb.Conditions(conditions.Filter{Peer: "op-a", Class: "congestion"}); len(got) != 1 || got[0].ID != "after" {
			return fmt.Errorf("op-b holds congestions %+v", got)
		}
		return nil
	})
	st := ribInPeer(t, nb)
	// The session's refresh at op-b's start may re-state faults op-a
	// stored meanwhile: some are decided twice.
	assert.Equal(t, int64(limit), st.Held)
	assert.GreaterOrEqual(t, st.Kept, uint64(limit))
	assert.GreaterOrEqual(t, st.OverBound, uint64(flood-limit))
	assert.GreaterOrEqual(t, st.Kept+st.OverBound, uint64(flood))
	assert.Empty(t, faultsHeld(nb))
	require.NoError(t, nb.Readiness())

	// What the stream holds for op-a is the bound, not the flood.
	nc, err := nb.Connect()
	require.NoError(t, err)
	defer nc.Close()
	keys := ribInKeys(t, nc, "op-a")
	assert.Len(t, keys, limit)
}

// ribInKeys reads, through the node's own stream, the conditions kept in
// peer's Adj-RIB-In.
func ribInKeys(t *testing.T, nc *nats.Conn, peer string) []string {
	t.Helper()
	m, err := nc.Request("$JS.API.STREAM.INFO."+store.RibInStream, []byte(`{"subjects_filter":"`+subject.RibInPrefix+`.`+peer+`.>"}`), 5*time.Second)
	require.NoError(t, err)
	var info struct {
		State struct {
			Subjects map[string]uint64 `json:"subjects"`
		} `json:"state"`
	}
	require.NoError(t, json.Unmarshal(m.Data, &info), string(m.Data))
	var out []string
	for k := range info.State.Subjects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
