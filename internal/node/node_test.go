package node_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// keys are the operators' signing keys, the same for the whole test binary.
var keys nodetest.Keys

func operatorKey(t testing.TB, id string) nkeys.KeyPair { return keys.Operator(t, id) }

// pub is id's public signing key.
func pub(t testing.TB, id string) string { return keys.Public(t, id) }

// signAs signs ev with id's key, as id's node would.
func signAs(t testing.TB, id string, ev *signal.Event) { keys.Sign(t, id, ev) }

func baseConfig(t testing.TB, id string) *config.Config { return nodetest.BaseConfig(t, id) }

// pair returns A (accepting B on its leaf listener) and B (dialling A).
func pair(t *testing.T, exportAB, importBA []string, optsB ...node.Option) (*node.Node, *node.Node) {
	t.Helper()
	return pairWith(t, exportAB, importBA, func(*config.Config) {}, optsB...)
}

// pairWith is pair with edit applied to both configs before start.
func pairWith(t *testing.T, exportAB, importBA []string, edit func(*config.Config), optsB ...node.Option) (*node.Node, *node.Node) {
	t.Helper()
	a := baseConfig(t, "op-a")
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID:         "op-b",
		Accept:     &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export:     config.ExportPolicy{Classes: exportAB, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"mitigation"}},
		SigningKey: pub(t, "op-b"),
	}}
	edit(a)
	na := startNode(t, a)
	b := baseConfig(t, "op-b")
	b.Peers = []config.Peer{{
		ID:         "op-a",
		Dial:       &config.Dial{URL: na.LeafURL(), User: "op-b", Password: "secret-b-123"},
		Export:     config.ExportPolicy{Classes: []string{"mitigation"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: importBA},
		SigningKey: pub(t, "op-a"),
	}}
	edit(b)
	nb := startNode(t, b, optsB...)
	waitFor(t, 10*time.Second, func() error {
		if !na.LinkUp("op-b") || !nb.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	return na, nb
}

func startNode(t *testing.T, cfg *config.Config, opts ...node.Option) *node.Node {
	t.Helper()
	return nodetest.Start(t, &keys, cfg, append([]node.Option{node.WithLogger(zerolog.New(zerolog.NewTestWriter(t)).Level(testLogLevel))}, opts...)...)
}

// startNodeB starts a node for a benchmark.
func startNodeB(b *testing.B, cfg *config.Config) *node.Node {
	b.Helper()
	return nodetest.Start(b, &keys, cfg)
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	natstest.WaitFor(t, d, f)
}

func congestion(origin, id string) *signal.Event { return nodetest.Congestion(origin, id) }

func faultEvent(origin, id string) *signal.Event { return nodetest.Fault(origin, id) }

func publish(t *testing.T, nc *nats.Conn, ev *signal.Event) signal.Answer {
	t.Helper()
	return nodetest.Publish(t, nc, ev)
}

type collector struct {
	mu   sync.Mutex
	msgs []*nats.Msg
}

// collect subscribes to subj on n, for the rest of the test, and returns
// what arrives.
func collect(t *testing.T, n *node.Node, subj string) *collector {
	t.Helper()
	nc, err := n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	got := &collector{}
	_, err = nc.Subscribe(subj, got.add)
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	return got
}

func (c *collector) add(m *nats.Msg) { c.mu.Lock(); c.msgs = append(c.msgs, m); c.mu.Unlock() }
func (c *collector) n() int          { c.mu.Lock(); defer c.mu.Unlock(); return len(c.msgs) }

func TestSignalCrossesBoundary(t *testing.T) {
	na, nb := pair(t, []string{"congestion"}, []string{"congestion"})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	cb, err := nb.Connect()
	require.NoError(t, err)
	defer cb.Close()
	got := &collector{}
	_, err = cb.Subscribe("an.sig.op-a.>", got.add)
	require.NoError(t, err)
	require.NoError(t, cb.Flush())

	ev := congestion("op-a", "e-1")
	a := publish(t, pa, ev)
	require.True(t, a.OK(), a.Error)

	waitFor(t, 10*time.Second, func() error {
		if got.n() == 0 {
			return fmt.Errorf("not received")
		}
		return nil
	})
	m := got.msgs[0]
	assert.Equal(t, "an.sig.op-a.congestion.vpn-acme.ic-paris-1", m.Subject)
	rx, err := signal.DecodeStructured(m.Data)
	require.NoError(t, err)
	want := *ev
	want.Path = []string{"op-a"}
	want.DataSchema = "https://anfed.net/schemas/v1/congestion.json"
	assert.NotEmpty(t, rx.DSSEMaterial, "signed by op-a")
	assert.Equal(t, "anfedorigin,anfedstate,expirytime,severitytext,severitynumber,correlationid,causationid,sequence", rx.SignedExtAttrs)
	want.DSSEMaterial, want.SignedExtAttrs = rx.DSSEMaterial, rx.SignedExtAttrs
	assert.Equal(t, &want, rx)
}

var testLogLevel = zerolog.ErrorLevel
