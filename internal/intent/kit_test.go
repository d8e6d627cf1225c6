package intent_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/servetest"
)

const token = "intent-test-token-0123456789"

// keys are the operators' signing keys, the same for the whole test binary.
var keys nodetest.Keys

func baseConfig(t *testing.T, id string) *config.Config {
	c := nodetest.BaseConfig(t, id)
	c.Storage.Sync = "2m"
	f := filepath.Join(t.TempDir(), "http.token")
	require.NoError(t, os.WriteFile(f, []byte(token+"\n"), 0o600))
	c.HTTP = config.HTTP{Listen: "127.0.0.1:0", TokenFile: f}
	c.Intents = &config.Intents{}
	return c
}

// site is a started node with its HTTP server and intents, as `anfed
// serve` runs them.
type site struct {
	cfg  *config.Config
	n    *node.Node
	hs   *httpapi.Server
	view *intent.View // the intents in force the senders read
	url  string       // the intent API's base
	s    *servetest.Site
}

func start(t *testing.T, cfg *config.Config) *site {
	t.Helper()
	view := intent.NewView()
	var peers []string
	for _, p := range cfg.Peers {
		peers = append(peers, p.ID)
	}
	st := servetest.Start(t, &keys, cfg, servetest.Options{Node: []node.Option{node.WithIntents(view)},
		Service: func(n *node.Node, hs *httpapi.Server, log zerolog.Logger) (servetest.Service, error) {
			return intent.New(context.Background(), intent.Deps{Node: n, Config: cfg.Intents, HTTP: cfg.HTTP, Metrics: hs.Metrics().Registry(), Log: log,
				BaseURL: func() string { return "http://" + hs.Addr() }, Peers: peers,
				View: view, Refresh: func(ctx context.Context, peer string) error { return n.RefreshPeer(ctx, peer, false, true) }})
		}})
	return &site{cfg: cfg, n: st.Node, hs: st.HTTP, view: view, url: st.URL + intent.BasePath, s: st}
}

// stop stops the site as `anfed serve` does: HTTP, intents, node.
func (s *site) stop() { s.s.Stop() }

// do sends a request with the test's token (authz "" for none) and
// returns the status and body.
func do(t *testing.T, method, url, authz, contentType string, body []byte) (int, string) {
	t.Helper()
	return servetest.Do(t, method, url, authz, contentType, body)
}

const bearer = "Bearer " + token

func sample(t *testing.T) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "intent-vpn-acme.json"))
	require.NoError(t, err)
	return b
}

// edit returns the sample with f applied to its decoded form.
func edit(t *testing.T, f func(m map[string]any)) []byte {
	var m map[string]any
	require.NoError(t, json.Unmarshal(sample(t), &m))
	f(m)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	return b
}

func ev(m map[string]any) map[string]any {
	return m["expression"].(map[string]any)["expressionValue"].(map[string]any)
}

func exp(m map[string]any, i int) map[string]any {
	return ev(m)["expectations"].([]any)[i].(map[string]any)
}

func decode[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

// pair starts op-a, which accepts op-b's link, and op-b; both export and
// import the intent classes; editA and editB edit their configs.
func pair(t *testing.T, editA, editB func(*config.Config)) (a, b *site) {
	t.Helper()
	return nodetest.Pair(t, &keys, baseConfig(t, "op-a"), baseConfig(t, "op-b"),
		nodetest.Side{Export: []string{"intent"}, Import: []string{"intent", "intent-report"}},
		nodetest.Side{Export: []string{"intent", "intent-report"}, Import: []string{"intent"}},
		editA, editB, func(c *config.Config) *site { return start(t, c) }, func(s *site) *node.Node { return s.n })
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
