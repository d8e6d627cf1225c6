// Package nodetest is the node-level test kit: operators' signing keys, a
// base policy, a started node, publishing as a local producer, scraping
// /metrics, and running a program under test with its output. The tests of
// every package that runs nodes use it instead of keeping copies.
package nodetest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Keys are operators' signing keys, made on first use: one Keys serves a
// whole test binary, so that a peer's pinned key and its node's key agree.
type Keys struct {
	mu sync.Mutex
	m  map[string]nkeys.KeyPair
}

// Operator is id's signing key.
func (k *Keys) Operator(t testing.TB, id string) nkeys.KeyPair {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kp, ok := k.m[id]; ok {
		return kp
	}
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	if k.m == nil {
		k.m = map[string]nkeys.KeyPair{}
	}
	k.m[id] = kp
	return kp
}

// Public is id's public signing key, as a peer pins it.
func (k *Keys) Public(t testing.TB, id string) string {
	p, err := k.Operator(t, id).PublicKey()
	require.NoError(t, err)
	return p
}

// Sign signs ev with id's key, as id's node would.
func (k *Keys) Sign(t testing.TB, id string, ev *signal.Event) {
	s, err := origin.NewSigner(k.Operator(t, id))
	require.NoError(t, err)
	require.NoError(t, s.Sign(ev))
}

// BaseConfig is operator id's policy with no peers: no client listener,
// the store on a t.TempDir() bounded to an hour and 64 MiB.
func BaseConfig(t testing.TB, id string) *config.Config {
	return &config.Config{
		Operator: config.Operator{ID: id},
		NATS:     config.NATS{Client: config.Listener{Listen: ""}},
		Storage: config.Storage{
			Dir:             t.TempDir(),
			MaxAge:          config.Duration(time.Hour),
			MaxBytes:        config.ByteSize(64 << 20),
			DuplicateWindow: config.Duration(2 * time.Minute),
		},
	}
}

// WithClient gives cfg a client listener on a free loopback port and one
// local user, as a process outside the node connects.
func WithClient(cfg *config.Config, user, password string) *config.Config {
	cfg.NATS.Client = config.Listener{Listen: "127.0.0.1:0"}
	cfg.NATS.Users = append(cfg.NATS.Users, config.User{Name: user, Password: password})
	return cfg
}

// Start starts cfg's node with its operator's key from keys (and opts),
// and stops it when the test ends.
func Start(t testing.TB, keys *Keys, cfg *config.Config, opts ...node.Option) *node.Node {
	t.Helper()
	opts = append([]node.Option{node.WithSigningKey(keys.Operator(t, cfg.Operator.ID))}, opts...)
	n := node.New(cfg, opts...)
	require.NoError(t, n.Start(context.Background()))
	t.Cleanup(n.Stop)
	return n
}

// Publish publishes ev as a local producer on nc and returns the node's
// answer.
func Publish(t testing.TB, nc *nats.Conn, ev *signal.Event) signal.Answer {
	t.Helper()
	a, err := TryPublish(nc, ev)
	require.NoError(t, err)
	return a
}

// TryPublish is Publish where a test may not stop (in a goroutine): a
// request or answer that fails is returned, not fatal.
func TryPublish(nc *nats.Conn, ev *signal.Event) (signal.Answer, error) {
	return request(nc, subject.IntakePrefix, ev)
}

// PublishTelemetry publishes ev as a local producer's telemetry (an.tel,
// export.delivery: stream) on nc and returns the node's answer: accepted
// once checked, signed and handed on, never stored.
func PublishTelemetry(t testing.TB, nc *nats.Conn, ev *signal.Event) signal.Answer {
	t.Helper()
	a, err := request(nc, subject.TelemetryIntakePrefix, ev)
	require.NoError(t, err)
	return a
}

func request(nc *nats.Conn, subj string, ev *signal.Event) (signal.Answer, error) {
	m, err := nc.Request(subj, ev.Encode(), 10*time.Second)
	if err != nil {
		return signal.Answer{}, err
	}
	return signal.ParseAnswer(m.Data)
}

// Congestion is a raised congestion signal of origin on
// vpn-acme/ic-paris-1 with every optional attribute set (correlation,
// causation, an expiry an hour from now, severity, sequence, trace
// context, extensions), so that a round trip shows what is lost.
func Congestion(origin, id string) *signal.Event {
	return &signal.Event{
		ID: id, Source: "anfed://" + origin + "/assurance", Type: "net.anfed.congestion.v1",
		Subject: "vpn-acme/ic-paris-1", Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		Origin:          origin, State: signal.Raised,
		CorrelationID: "corr-1", CausationID: "cause-1",
		ExpiryTime:   time.Now().Add(time.Hour).UTC().Truncate(time.Second),
		SeverityText: "WARN", SeverityNumber: 13, Sequence: "00000000000000000001",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "anfed=1",
		Extensions: map[string]any{"vendorx": "kept", "flag": true},
		Data:       json.RawMessage(`{"link":{"id":"ic-paris-1","kind":"interconnect","peer":"op-b"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["AF41","BE"]}`),
	}
}

// Fault is a raised fault signal of origin on vpn-acme/ic-paris-1.
func Fault(origin, id string) *signal.Event {
	return &signal.Event{
		ID: id, Source: "anfed://" + origin + "/assurance", Type: "net.anfed.fault.v1",
		Subject: "vpn-acme/ic-paris-1", Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		Origin: origin, State: signal.Raised, SeverityText: "ERROR", SeverityNumber: 17,
		Data: json.RawMessage(faultData),
	}
}

// faultData is Fault's data: a major loss of signal on ic-paris-1.
const faultData = `{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"linkDown","specificProblem":"LOS on ic-paris-1","alarmedObject":{"id":"ic-paris-1","type":"interconnect"},"alarmRaisedTime":"2026-11-25T17:00:00Z"}`
