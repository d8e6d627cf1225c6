package node_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/session"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// refusals counts what a node refused, by who sent it and why.
type refusals struct {
	mu sync.Mutex
	m  map[string]int // "peer/reason"
}

func (r *refusals) Accepted(observe.Acceptance) {}
func (r *refusals) Crossed(observe.Crossing)    {}
func (r *refusals) Rejected(x observe.Rejection) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]int{}
	}
	r.m[x.From+"/"+string(x.Reason)]++
}

func (r *refusals) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// keyIDs is the key ids of a signal's origin signature.
func keyIDs(t *testing.T, ev *signal.Event) []string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(ev.DSSEMaterial)
	require.NoError(t, err)
	var env struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	require.NoError(t, json.Unmarshal(raw, &env))
	var out []string
	for _, s := range env.Signatures {
		out = append(out, s.KeyID)
	}
	return out
}

func waitEstablished(t *testing.T, n *node.Node, peer string) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		if s := n.Session(peer); s.State != session.Established {
			return fmt.Errorf("%s's session with %s: %+v", n.ID(), peer, s.Status)
		}
		return nil
	})
}

// storedEvents are origin's signals stored at n, in store order.
func storedEvents(t *testing.T, n *node.Node, org string) []*signal.Event {
	t.Helper()
	var out []*signal.Event
	for _, m := range readStream(t, n, store.SignalStream) {
		ev, err := signal.Decode(nats.Header(m.Headers()), m.Data())
		require.NoError(t, err)
		if ev.Origin == org {
			out = append(out, ev)
		}
	}
	return out
}

// storedCount is how many signals n's store holds.
func storedCount(t *testing.T, n *node.Node) uint64 {
	t.Helper()
	js, err := jetstream.New(n.StoreConn())
	require.NoError(t, err)
	s, err := js.Stream(context.Background(), store.SignalStream)
	require.NoError(t, err)
	return s.CachedInfo().State.Msgs
}

// waitStored waits until n's store holds at least count signals.
func waitStored(t *testing.T, n *node.Node, count uint64) {
	t.Helper()
	waitFor(t, 60*time.Second, func() error {
		if got := storedCount(t, n); got < count {
			return fmt.Errorf("%d of %d stored", got, count)
		}
		return nil
	})
}
