package natsconf_test

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
)

var loopback = net.ParseIP("127.0.0.1")

// tlsAcceptor is op-a accepting op-b on a mutual-TLS leaf listener.
func tlsAcceptor(t *testing.T, ca *natstest.CA) *config.Config {
	cert, key := ca.Issue(t, "leaf.op-a", loopback)
	return &config.Config{
		Operator: config.Operator{ID: "op-a"},
		NATS: config.NATS{
			Client: config.Listener{Listen: "127.0.0.1:0"},
			LeafNodes: &config.Listener{Listen: "127.0.0.1:0",
				TLS: &config.TLS{Cert: cert, Key: key, CA: ca.File}},
		},
		Storage: config.Storage{Dir: t.TempDir()},
		Peers: []config.Peer{{
			ID:     "op-b",
			Accept: &config.Accept{User: "peer-op-b", Password: "issued-to-op-b"},
		}},
	}
}

// tlsDialer is op-b dialling op-a at leafURL, trusting ca and presenting
// a client certificate it signed.
func tlsDialer(t *testing.T, ca *natstest.CA, leafURL string) *config.Config {
	cert, key := ca.Issue(t, "op-b")
	return &config.Config{
		Operator: config.Operator{ID: "op-b"},
		NATS:     config.NATS{Client: config.Listener{Listen: "127.0.0.1:0"}},
		Storage:  config.Storage{Dir: t.TempDir()},
		Peers: []config.Peer{{
			ID: "op-a",
			Dial: &config.Dial{URL: leafURL, User: "peer-op-b", Password: "issued-to-op-b",
				TLS: &config.TLS{Cert: cert, Key: key, CA: ca.File}},
		}},
	}
}

func tlsOptions(t *testing.T, cfg *config.Config, now time.Time) *server.Options {
	t.Helper()
	sec, err := natsconf.NewSecrets(cfg)
	require.NoError(t, err)
	out := natsconf.GenerateAt(cfg, sec, now)
	opts := &server.Options{}
	require.NoError(t, opts.ProcessConfigString(out), "generated config:\n%s", out)
	return opts
}

// serveGenerated runs a real server from cfg's generated configuration.
func serveGenerated(t *testing.T, cfg *config.Config) (*server.Server, *server.Options) {
	t.Helper()
	opts := tlsOptions(t, cfg, time.Now())
	return natstest.StartServer(t, opts), opts
}

func TestGenerateLeafListenerTLS(t *testing.T) {
	ca := natstest.NewCA(t)
	t.Run("mutual TLS with a CA", func(t *testing.T) {
		opts := tlsOptions(t, tlsAcceptor(t, ca), time.Now())
		tc := opts.LeafNode.TLSConfig
		require.NotNil(t, tc)
		assert.Equal(t, tls.RequireAndVerifyClientCert, tc.ClientAuth, "verify: peers must present a certificate")
		assert.True(t, opts.LeafNode.TLSMap, "verify_and_map: the certificate names the leaf user")
		var users []string
		for _, u := range opts.Users {
			users = append(users, u.Username)
		}
		assert.Equal(t, []string{"CN=op-b"}, users, "the leaf user is the peer's certificate name, not accept.user")
		assert.NotNil(t, tc.ClientCAs)
		assert.Len(t, tc.Certificates, 1)
		assert.Equal(t, 2.0, opts.LeafNode.TLSTimeout)
	})
	t.Run("server TLS only without a CA", func(t *testing.T) {
		cfg := tlsAcceptor(t, ca)
		cfg.NATS.LeafNodes.TLS.CA = ""
		tc := tlsOptions(t, cfg, time.Now()).LeafNode.TLSConfig
		require.NotNil(t, tc)
		assert.Equal(t, tls.NoClientCert, tc.ClientAuth)
		assert.Nil(t, tc.ClientCAs)
	})
	t.Run("no TLS", func(t *testing.T) {
		cfg := tlsAcceptor(t, ca)
		cfg.NATS.LeafNodes.TLS = nil
		assert.Nil(t, tlsOptions(t, cfg, time.Now()).LeafNode.TLSConfig)
	})
}

func TestGenerateRemoteTLS(t *testing.T) {
	ca := natstest.NewCA(t)
	remote := func(cfg *config.Config) *server.RemoteLeafOpts {
		opts := tlsOptions(t, cfg, time.Now())
		require.Len(t, opts.LeafNode.Remotes, 1)
		return opts.LeafNode.Remotes[0]
	}
	t.Run("CA and client certificate", func(t *testing.T) {
		r := remote(tlsDialer(t, ca, "tls://127.0.0.1:7422"))
		require.NotNil(t, r.TLSConfig)
		assert.NotNil(t, r.TLSConfig.RootCAs, "the CA verifies the peer's listener")
		assert.Len(t, r.TLSConfig.Certificates, 1, "our client certificate")
		assert.Equal(t, 2.0, r.TLSTimeout)
	})
	t.Run("CA only", func(t *testing.T) {
		cfg := tlsDialer(t, ca, "tls://127.0.0.1:7422")
		cfg.Peers[0].Dial.TLS = &config.TLS{CA: ca.File}
		r := remote(cfg)
		require.NotNil(t, r.TLSConfig)
		assert.NotNil(t, r.TLSConfig.RootCAs)
		assert.Empty(t, r.TLSConfig.Certificates)
	})
	t.Run("no TLS", func(t *testing.T) {
		cfg := tlsDialer(t, ca, "nats-leaf://127.0.0.1:7422")
		cfg.Peers[0].Dial.TLS = nil
		assert.Nil(t, remote(cfg).TLSConfig)
	})
}

// An expired peer keeps its account (the node's pipelines still use it)
// but loses its leaf user and its remote: its credentials stop working.
func TestGenerateAtDropsExpiredPeers(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	cfg := &config.Config{
		Operator: config.Operator{ID: "op-a"},
		NATS:     config.NATS{LeafNodes: &config.Listener{Listen: "127.0.0.1:0"}},
		Storage:  config.Storage{Dir: t.TempDir()},
		Peers: []config.Peer{
			{ID: "op-b", Accept: &config.Accept{User: "peer-op-b", Password: "issued-to-op-b"}, Expires: at(-time.Hour)},
			{ID: "op-c", Dial: &config.Dial{URL: "nats-leaf://c.example:7422", User: "u", Password: "issued-by-op-c"}, Expires: at(0)},
			{ID: "op-d", Accept: &config.Accept{User: "peer-op-d", Password: "issued-to-op-d"}, Expires: at(time.Hour)},
			{ID: "op-e", Dial: &config.Dial{URL: "nats-leaf://e.example:7422", User: "u", Password: "issued-by-op-e"}},
		},
	}
	opts := tlsOptions(t, cfg, now)

	var users []string
	for _, u := range opts.Users {
		users = append(users, u.Username)
	}
	assert.Equal(t, []string{"peer-op-d"}, users, "op-b expired an hour ago")
	var remotes []string
	for _, r := range opts.LeafNode.Remotes {
		remotes = append(remotes, r.LocalAccount)
	}
	assert.Equal(t, []string{natsconf.PeerAccount("op-e")}, remotes, "op-c expires exactly now")
	var accts []string
	for _, a := range opts.Accounts {
		accts = append(accts, a.Name)
	}
	for _, id := range []string{"op-b", "op-c", "op-d", "op-e"} {
		assert.Contains(t, accts, natsconf.PeerAccount(id))
	}

	// An hour and a half earlier, every peer is live.
	opts = tlsOptions(t, cfg, now.Add(-90*time.Minute))
	assert.Len(t, opts.Users, 2)
	assert.Len(t, opts.LeafNode.Remotes, 2)

	// Generate is GenerateAt now: 2027 is in the future of this test run
	// only until it is not, so use a peering that ended in 2020.
	cfg.Peers = cfg.Peers[:1]
	cfg.Peers[0].Expires = new(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	sec, err := natsconf.NewSecrets(cfg)
	require.NoError(t, err)
	o := &server.Options{}
	require.NoError(t, o.ProcessConfigString(natsconf.Generate(cfg, sec)))
	assert.Empty(t, o.Users)
}

// A real mutual-TLS leaf link between two servers run from generated
// configurations, and the ways in that must stay shut.
func TestMutualTLSLeafLink(t *testing.T) {
	ca := natstest.NewCA(t)
	a, aopts := serveGenerated(t, tlsAcceptor(t, ca))
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(aopts.LeafNode.Port))
	tlsURL, plainURL := "tls://"+addr, "nats-leaf://"+addr

	t.Run("generated dialler links up", func(t *testing.T) {
		b, _ := serveGenerated(t, tlsDialer(t, ca, tlsURL))
		natstest.WaitFor(t, 10*time.Second, func() error {
			if a.NumLeafNodes() != 1 || b.NumLeafNodes() != 1 {
				return fmt.Errorf("leaf link not up: op-a has %d, op-b has %d", a.NumLeafNodes(), b.NumLeafNodes())
			}
			return nil
		})
		b.Shutdown()
		natstest.WaitFor(t, 10*time.Second, func() error {
			if n := a.NumLeafNodes(); n != 0 {
				return fmt.Errorf("op-a still has %d leaf connection(s)", n)
			}
			return nil
		})
	})

	// The certificate names the peer (its id, the default accept.cert_name).
	clientCert, clientKey := ca.Issue(t, "op-b")
	t.Run("rogue with valid certificate and credentials links up", func(t *testing.T) {
		// The control: the refusals below are the TLS and the password
		// at work, not a rogue leaf that cannot link at all.
		r := natstest.StartRogueLeafTLS(t, tlsURL, "peer-op-b", "issued-to-op-b", ca.ClientTLS(t, clientCert, clientKey))
		r.Server.Shutdown()
		natstest.WaitFor(t, 10*time.Second, func() error {
			if n := a.NumLeafNodes(); n != 0 {
				return fmt.Errorf("op-a still has %d leaf connection(s)", n)
			}
			return nil
		})
	})

	other := natstest.NewCA(t)
	otherCert, otherKey := other.Issue(t, "op-x")
	// Right CA, wrong name: the certificate is not bound to op-b.
	strayCert, strayKey := ca.Issue(t, "rogue-op-b")
	attacks := []struct {
		name, url, password string
		tls                 *tls.Config
	}{
		{"plain leaf without TLS", plainURL, "issued-to-op-b", nil},
		{"client certificate from another CA", tlsURL, "issued-to-op-b", ca.ClientTLS(t, otherCert, otherKey)},
		{"no client certificate", tlsURL, "issued-to-op-b", ca.ClientTLS(t, "", "")},
		{"valid certificate, wrong password", tlsURL, "guessed-password", ca.ClientTLS(t, clientCert, clientKey)},
		{"certificate from the CA naming someone else", tlsURL, "issued-to-op-b", ca.ClientTLS(t, strayCert, strayKey)},
	}
	t.Run("refused", func(t *testing.T) {
		for _, at := range attacks {
			t.Run(at.name, func(t *testing.T) {
				t.Parallel()
				r := natstest.DialRogueLeaf(t, at.url, "peer-op-b", at.password, at.tls)
				r.RequireStaysDown(t, a, 2*time.Second)
			})
		}
		t.Run("leaf protocol in clear text", func(t *testing.T) {
			t.Parallel()
			ans := natstest.PlainLeafConnect(t, addr, "peer-op-b", "issued-to-op-b", 2*time.Second)
			assert.Contains(t, ans.Info, `"tls_required":true`)
			assert.True(t, ans.Closed, "the listener must hang up")
			assert.NotContains(t, string(ans.Rest), "PONG")
			assert.Zero(t, a.NumLeafNodes())
		})
	})
}
