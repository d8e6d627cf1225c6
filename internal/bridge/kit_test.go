package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/servetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const token = "bridge-test-token-0123456789"

// keys are the operators' signing keys, the same for the whole test binary.
var keys nodetest.Keys

func pub(t testing.TB, id string) string { return keys.Public(t, id) }

func writeFile(t *testing.T, name, content string) string {
	f := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(f, []byte(content+"\n"), 0o600))
	return f
}

func baseConfig(t *testing.T, id string) *config.Config {
	c := nodetest.BaseConfig(t, id)
	c.Storage.Sync = "2m"
	c.HTTP = config.HTTP{Listen: "127.0.0.1:0", TokenFile: writeFile(t, "ingest.token", token)}
	return c
}

// site is a started node with its HTTP server and bridges.
type site struct {
	cfg *config.Config
	n   *node.Node
	hs  *httpapi.Server
	url string
	s   *servetest.Site
}

// start starts cfg's node, its HTTP server on cfg.HTTP.Listen and its
// bridges, as `anfed serve` does.
func start(t *testing.T, cfg *config.Config) *site {
	t.Helper()
	st := servetest.Start(t, &keys, cfg, servetest.Options{
		Service: func(n *node.Node, hs *httpapi.Server, log zerolog.Logger) (servetest.Service, error) {
			return bridge.New(context.Background(), bridge.Deps{Node: n, Config: cfg.Bridges, HTTP: cfg.HTTP, Metrics: hs.Metrics().Registry(),
				Log: log, BaseURL: func() string { return "http://" + hs.Addr() }})
		}})
	return &site{cfg: cfg, n: st.Node, hs: st.HTTP, url: st.URL, s: st}
}

// stop stops the site as `anfed serve` does: HTTP, bridges, node.
func (s *site) stop() { s.s.Stop() }

// pair starts A, with bridges, and B, which dials A; A exports faults and
// performance deviations to B, which imports them. editB edits B's config.
func pair(t *testing.T, bridgesA config.Bridges, editB func(*config.Config)) (a, b *site) {
	t.Helper()
	return nodetest.Pair(t, &keys, baseConfig(t, "op-a"), baseConfig(t, "op-b"),
		nodetest.Side{Export: []string{"fault", "performance-deviation"}, Import: []string{"fault"}},
		nodetest.Side{Export: []string{"fault"}, Import: []string{"fault", "performance-deviation"}},
		func(c *config.Config) { c.Bridges = bridgesA }, editB, func(c *config.Config) *site { return start(t, c) }, nodeOf)
}

func nodeOf(s *site) *node.Node { return s.n }

// post sends body to url with the given Authorization header ("" none).
func post(t *testing.T, url, authz string, body []byte) (int, string) {
	t.Helper()
	return servetest.Do(t, http.MethodPost, url, authz, "application/json", body)
}

func sample(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// condition waits until s holds (want) or does not hold (!want) an
// active condition of origin and class on subject, and returns it.
func condition(t *testing.T, s *site, origin, class, subject string, want bool) conditions.Condition {
	t.Helper()
	var got conditions.Condition
	natstest.WaitFor(t, 20*time.Second, func() error {
		for _, c := range s.n.Conditions(conditions.Filter{Origin: origin, Class: class}) {
			if c.Subject == subject {
				got = c
				if want {
					return nil
				}
				return fmt.Errorf("%s still holds %s %s", s.n.ID(), class, subject)
			}
		}
		if want {
			return fmt.Errorf("%s holds no %s %s", s.n.ID(), class, subject)
		}
		return nil
	})
	return got
}

func decode(t *testing.T, body string, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
}

func conditionsFault() conditions.Filter { return conditions.Filter{Class: "fault"} }

func natsConn(t *testing.T, s *site) *nats.Conn {
	nc, err := s.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}
