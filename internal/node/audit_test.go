package node_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/audit"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
)

// sentTo is op-a's audit records of signals sent to peer.
func sentTo(t *testing.T, n *node.Node, peer string) []audit.Stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs, err := n.Audit(ctx, audit.Filter{Peer: peer, Kind: audit.KindSent})
	require.NoError(t, err)
	return recs
}

// TestAuditTrailSent on real nodes: op-a sends op-b 20 congestions,
// export.redact removing /data/link/peer. Each signal op-b received off
// the link has op-a's record of it, whose digest is the SHA-256 of the
// bytes op-b received, naming the redaction and the export rule; the
// chain verifies. Then one stored record is altered through the stream
// (deleted and written again with the redaction left out): verify fails
// naming that record. A record deleted from the middle shows too.
func TestAuditTrailSent(t *testing.T) {
	na, nb := pairWith(t, []string{"congestion"}, []string{"congestion"}, func(c *config.Config) {
		if c.Operator.ID == "op-a" {
			c.Peers[0].Export.Redact = []string{"/data/link/peer"}
		}
	})
	// What op-b receives on the link, as the bytes came.
	received := map[string]map[string]bool{} // signal id → digests
	got := make(chan *nats.Msg, 1024)
	sub, err := nb.PeerConn("op-a").ChanSubscribe("an.link.op-a.op-a.congestion.>", got)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(t, nb.PeerConn("op-a").Flush())

	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	const n = 20
	for i := range n {
		a := publish(t, pa, condEv("op-a", fmt.Sprintf("au-%d", i), fmt.Sprintf("r%d", i), signal.Raised))
		require.True(t, a.OK(), a.Error)
	}
	waitFor(t, 15*time.Second, func() error {
		for {
			select {
			case m := <-got:
				ev, err := signal.DecodeStructured(m.Data)
				require.NoError(t, err)
				sum := sha256.Sum256(m.Data)
				if received[ev.ID] == nil {
					received[ev.ID] = map[string]bool{}
				}
				received[ev.ID]["sha256:"+hex.EncodeToString(sum[:])] = true
				assert.NotContains(t, string(ev.Data), `"peer"`, "redacted on the wire")
				continue
			default:
			}
			break
		}
		if len(received) < n {
			return fmt.Errorf("op-b received %d of %d", len(received), n)
		}
		recorded := map[string]bool{}
		for _, r := range sentTo(t, na, "op-b") {
			recorded[r.Signal] = true
		}
		if len(recorded) < n {
			return fmt.Errorf("op-a recorded %d of %d", len(recorded), n)
		}
		return nil
	})
	// One record per signal and sender run: resends within a run carry
	// the same bytes and are not recorded again; a sender that starts
	// again (a resume, a reconnect; seen under -race) records what it
	// sends again, with the same digest.
	recs := sentTo(t, na, "op-b")
	require.GreaterOrEqual(t, len(recs), n)
	for _, r := range recs {
		assert.Equal(t, "op-a", r.Node)
		assert.Equal(t, "op-b", r.Peer)
		assert.True(t, received[r.Signal][r.Digest], "%s: digest %s is not of what op-b received (%v)", r.Signal, r.Digest, received[r.Signal])
		assert.Len(t, received[r.Signal], 1, "every copy op-b received of %s has the same bytes", r.Signal)
		assert.Equal(t, []string{"/data/link/peer"}, r.Redacted)
		assert.NotEmpty(t, r.Rule)
		assert.Equal(t, "net.anfed.congestion.v1", r.Type)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := na.VerifyAudit(ctx)
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.Text())
	assert.GreaterOrEqual(t, rep.Records, n)

	// Tamper: record 5 of the chain loses its redaction, in the stored
	// message that holds it (the writer stores what waited together).
	js, err := jetstream.New(na.StoreConn())
	require.NoError(t, err)
	st, err := js.Stream(ctx, audit.Stream)
	require.NoError(t, err)
	victim := recs[4]
	rewrite := func(seq uint64, edit func(r *audit.Record)) (stored uint64) {
		t.Helper()
		raw, err := st.GetMsg(ctx, seq)
		require.NoError(t, err)
		var out []byte
		for _, line := range strings.Split(strings.TrimSpace(string(raw.Data)), "\n") {
			var r audit.Record
			require.NoError(t, json.Unmarshal([]byte(line), &r))
			edit(&r)
			b, err := json.Marshal(r)
			require.NoError(t, err)
			out = append(append(out, b...), '\n')
		}
		require.NoError(t, st.DeleteMsg(ctx, seq))
		ack, err := js.Publish(ctx, raw.Subject, out)
		require.NoError(t, err)
		return ack.Sequence
	}
	altered := rewrite(victim.Seq, func(r *audit.Record) {
		if r.N == victim.N {
			r.Redacted = nil
		}
	})
	rep, err = na.VerifyAudit(ctx)
	require.NoError(t, err)
	require.False(t, rep.OK(), "an altered record must break the chain")
	require.Len(t, rep.Problems, 1, rep.Text())
	assert.Equal(t, victim.Chain, rep.Problems[0].Chain)
	assert.Equal(t, victim.N, rep.Problems[0].N)
	assert.Contains(t, rep.Problems[0].What, "does not match its hash")
	t.Logf("altered: %s", strings.TrimSpace(rep.Text()))

	// ... and with its hash computed again, the next record's link breaks.
	rewrite(altered, func(r *audit.Record) {
		if r.N == victim.N {
			r.Hash = r.Sum()
		}
	})
	rep, err = na.VerifyAudit(ctx)
	require.NoError(t, err)
	require.Len(t, rep.Problems, 1, rep.Text())
	assert.Equal(t, victim.N+1, rep.Problems[0].N)
	assert.Contains(t, rep.Problems[0].What, "names previous hash")

	// A stored message removed from the middle: its records show as missing.
	recs = sentTo(t, na, "op-b")
	gone := recs[12]
	require.NoError(t, st.DeleteMsg(ctx, gone.Seq))
	rep, err = na.VerifyAudit(ctx)
	require.NoError(t, err)
	found := false
	for _, p := range rep.Problems {
		var from, to uint64
		if _, err := fmt.Sscanf(p.What, "records %d to %d before it are missing", &from, &to); err == nil && from <= gone.N && gone.N <= to {
			found = true
		}
	}
	assert.True(t, found, "record %d's removal: %s", gone.N, rep.Text())
}

// TestAuditTrailDecisions: op-b's proposals and op-a's decisions — its
// policy's auto-accept, a person's accept with a name, a decline of a
// conflict — are each recorded at op-a and op-b with who decided and why.
func TestAuditTrailDecisions(t *testing.T) {
	s := startCoordStar(t, func(c *config.Config) {
		if c.Operator.ID == "op-a" {
			c.Coordination.RequireHuman = []config.CoordinationRule{{Kinds: []string{"drain"}}}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := s.clients["op-b"].Propose(ctx, reroute("b-audit-1", "ic-audit", 10*time.Minute))
	require.NoError(t, err)
	require.True(t, a.Accepted())
	c, err := s.clients["op-c"].Propose(ctx, reroute("c-audit-1", "ic-audit", 10*time.Minute))
	require.NoError(t, err)
	require.False(t, c.Accepted())

	p := reroute("b-audit-drain", "ic-audit-2", 10*time.Minute)
	p.Kind = "drain"
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := s.clients["op-b"].Propose(ctx, p)
		assert.NoError(t, err)
	}()
	waitFor(t, 10*time.Second, func() error {
		_, err := s.nodes["op-a"].DecideAction(ctx, node.DecideRequest{ID: "b-audit-drain", Accept: true, By: "noc-alice", Reason: "maintenance window agreed by phone"})
		return err
	})
	<-done

	type key struct{ action, phase, peer string }
	want := map[key]func(r audit.Stored) error{
		{"b-audit-1", "proposed", "op-b"}: func(r audit.Stored) error {
			if r.DecidedBy != "op-b" || !strings.Contains(r.Reason, "utilisation of ic-audit below 80%") {
				return fmt.Errorf("who/why: %q %q", r.DecidedBy, r.Reason)
			}
			return nil
		},
		{"b-audit-1", "accepted", "op-a"}: func(r audit.Stored) error {
			if r.DecidedBy != "policy" || r.Rule != "coordination.auto_accept[0]" {
				return fmt.Errorf("who/why: %q %q", r.DecidedBy, r.Rule)
			}
			return nil
		},
		{"c-audit-1", "declined", "op-a"}: func(r audit.Stored) error {
			if r.Rule != "lease-held" || !strings.Contains(r.Reason, "leased to op-b") {
				return fmt.Errorf("who/why: %q %q %q", r.DecidedBy, r.Rule, r.Reason)
			}
			return nil
		},
		{"b-audit-drain", "accepted", "op-a"}: func(r audit.Stored) error {
			if r.DecidedBy != "noc-alice" || r.Rule != "human" || r.Reason != "maintenance window agreed by phone" {
				return fmt.Errorf("who/why: %q %q %q", r.DecidedBy, r.Rule, r.Reason)
			}
			return nil
		},
	}
	for _, id := range []string{"op-a", "op-b"} {
		waitFor(t, 10*time.Second, func() error {
			recs, err := s.nodes[id].Audit(ctx, audit.Filter{Kind: audit.KindAction})
			if err != nil {
				return err
			}
			seen := map[key]audit.Stored{}
			for _, r := range recs {
				seen[key{r.Action, r.Phase, r.Peer}] = r
			}
			for k, check := range want {
				r, ok := seen[k]
				if !ok {
					return fmt.Errorf("%s: no record of %s %s by %s (%d records)", id, k.action, k.phase, k.peer, len(recs))
				}
				if err := check(r); err != nil {
					return fmt.Errorf("%s: %s %s: %w", id, k.action, k.phase, err)
				}
			}
			return nil
		})
		rep, err := s.nodes[id].VerifyAudit(ctx)
		require.NoError(t, err)
		assert.True(t, rep.OK(), "%s: %s", id, rep.Text())
	}
}
