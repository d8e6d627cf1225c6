package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/servetest"
	"github.com/anfed/anfed/internal/signal"
)

// keys are the operators' signing keys, the same for the whole test binary.
var keys nodetest.Keys

func pub(t testing.TB, id string) string { return keys.Public(t, id) }

func baseConfig(t testing.TB, id string) *config.Config {
	c := nodetest.BaseConfig(t, id)
	c.Operator.Name = "Operator " + strings.ToUpper(id[3:])
	c.Storage.Sync = "2m"
	return c
}

// served is a started node and its HTTP server.
type served struct {
	n   *node.Node
	hs  *httpapi.Server
	nc  *nats.Conn // a local producer's connection
	url string
}

// serve starts cfg's node and its HTTP server on a free loopback port.
func serve(t *testing.T, cfg *config.Config, tokenFile string) *served {
	t.Helper()
	return serveLog(t, cfg, tokenFile, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel))
}

// serveLog is serve with the node logging to log.
func serveLog(t *testing.T, cfg *config.Config, tokenFile string, log zerolog.Logger) *served {
	t.Helper()
	st := servetest.Start(t, &keys, cfg, servetest.Options{NodeLog: &log, TokenFile: tokenFile, Tick: 200 * time.Millisecond})
	nc, err := st.Node.Connect(nats.Timeout(10 * time.Second))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return &served{n: st.Node, hs: st.HTTP, nc: nc, url: st.URL}
}

// pair starts A (accepting B) and B, whose link to A passes through a
// proxy the test controls. Both export and import every class, except
// that B does not import faults and A imports only mitigations; both
// peers' conditions go stale 1 s after a link cut.
func pair(t *testing.T) (a, b *served, proxy *natstest.Proxy) {
	t.Helper()
	return pairWith(t, nil)
}

// pairWith is pair with editB applied to B's config before it starts.
func pairWith(t *testing.T, editB func(*config.Config)) (a, b *served, proxy *natstest.Proxy) {
	t.Helper()
	return pairEdits(t, "", nil, editB)
}

// pairEdits is pair with A's ingest token file, and editA and editB
// applied to the configs before the nodes start.
func pairEdits(t *testing.T, tokenA string, editA, editB func(*config.Config)) (a, b *served, proxy *natstest.Proxy) {
	t.Helper()
	ca := baseConfig(t, "op-a")
	ca.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	ca.Peers = []config.Peer{{
		ID: "op-b", Name: "Operator B", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export:     config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"mitigation"}, Grace: config.Duration(time.Second), WithdrawAfter: config.Duration(time.Minute)},
		SigningKey: pub(t, "op-b"),
	}}
	if editA != nil {
		editA(ca)
	}
	a = serve(t, ca, tokenA)
	proxy = natstest.StartProxy(t, strings.TrimPrefix(a.n.LeafURL(), "nats-leaf://"))
	cb := baseConfig(t, "op-b")
	cb.Peers = []config.Peer{{
		ID: "op-a", Name: "Operator A", Dial: &config.Dial{URL: "nats-leaf://" + proxy.Addr(), User: "op-b", Password: "secret-b-123"},
		Export:     config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}},
		Import:     config.ImportPolicy{Classes: []string{"congestion", "mitigation"}, Grace: config.Duration(time.Second), WithdrawAfter: config.Duration(time.Minute)},
		SigningKey: pub(t, "op-a"),
	}}
	if editB != nil {
		editB(cb)
	}
	b = serve(t, cb, "")
	natstest.WaitFor(t, 10*time.Second, func() error {
		if !a.n.LinkUp("op-b") || !b.n.LinkUp("op-a") {
			return fmt.Errorf("link not up")
		}
		return nil
	})
	return a, b, proxy
}

const (
	congestionData = `{"link":{"id":"ic-paris-1","kind":"interconnect","peer":"op-b"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["AF41","BE"]}`
	faultData      = `{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"linkDown","specificProblem":"LOS on ic-paris-1","alarmedObject":{"id":"ic-paris-1","type":"interconnect"},"alarmRaisedTime":"2026-11-25T17:00:00Z"}`
	slaRiskData    = `{"slaId":"sla-acme-gold-2026","metric":"latency.one-way.p95","objective":{"comparator":"<=","target":30,"unit":"ms"},"predictedValue":41.5,"probability":0.82,"horizon":"2026-12-14T11:00:00Z","confidence":0.7,"model":"seasonal-arima-2.3"}`
	mitigationData = `{"action":"reroute","status":"in-progress","respondsTo":[{"source":"anfed://op-a/assurance","id":"c-1"}],"target":{"id":"ic-paris-1","type":"interconnect"},"expectedEffect":"utilisation below 80% within 5 minutes"}`
)

var seq int64
var seqMu sync.Mutex

// event is a signal of class from origin on subj (service/resource).
func event(origin, class, subj, data string) *signal.Event {
	seqMu.Lock()
	seq++
	n := seq
	seqMu.Unlock()
	return &signal.Event{
		ID: fmt.Sprintf("%s-%d-%d", class, time.Now().UnixNano(), n), Source: "anfed://" + origin + "/assurance",
		Type: "net.anfed." + class + ".v1", Subject: subj, Time: time.Now().UTC().Truncate(time.Millisecond),
		DataContentType: "application/json", Origin: origin, State: signal.Raised,
		SeverityText: "WARN", SeverityNumber: 13, Data: json.RawMessage(data),
	}
}

// publish sends ev to s's intake and requires it stored.
func publish(t *testing.T, s *served, ev *signal.Event) {
	t.Helper()
	a := nodetest.Publish(t, s.nc, ev)
	require.True(t, a.OK(), "%+v", a)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func writeToken(t *testing.T, tok string) string {
	f := t.TempDir() + "/ingest.token"
	require.NoError(t, os.WriteFile(f, []byte(tok+"\n"), 0o600))
	return f
}
