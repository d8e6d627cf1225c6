package peering_test

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/peering"
)

var loopback = net.ParseIP("127.0.0.1")

// signingKey writes a fresh signing key in a temp dir and returns its
// file and public key.
func signingKey(t *testing.T) (file, pub string) {
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	file = filepath.Join(t.TempDir(), "signing.nk")
	require.NoError(t, origin.WriteSigningKey(file, kp))
	pub, err = kp.PublicKey()
	require.NoError(t, err)
	return file, pub
}

func acceptor(t *testing.T, ca *natstest.CA) (*config.Config, string) {
	keyFile, pub := signingKey(t)
	cert, key := ca.Issue(t, "leaf.op-a", loopback)
	return &config.Config{
		Operator: config.Operator{ID: "op-a", Name: "Operator A", SigningKeyFile: keyFile},
		NATS: config.NATS{LeafNodes: &config.Listener{Listen: "0.0.0.0:7422",
			TLS: &config.TLS{Cert: cert, Key: key, CA: ca.File}}},
		Storage: config.Storage{Dir: t.TempDir()},
		Peers: []config.Peer{{
			ID: "op-c", Accept: &config.Accept{User: "peer-op-c", Password: "issued-to-op-c"},
		}},
	}, pub
}

func TestNewInvite(t *testing.T) {
	ca := natstest.NewCA(t)
	cfg, pub := acceptor(t, ca)
	exp := time.Now().Add(365 * 24 * time.Hour).Truncate(time.Second)
	b, err := peering.NewInvite(cfg, peering.Invite{Peer: "op-b", LeafURL: "tls://leaf.op-a.example:7422", Expires: &exp})
	require.NoError(t, err)

	assert.Equal(t, peering.Format, b.Format)
	assert.Equal(t, "op-a", b.Issuer)
	assert.Equal(t, "Operator A", b.IssuerName)
	assert.Equal(t, "op-b", b.Peer)
	assert.Equal(t, "tls://leaf.op-a.example:7422", b.LeafURL)
	assert.Equal(t, "peer-op-b", b.User)
	assert.Len(t, b.Password, 32, "24 random bytes, base64url")
	assert.Equal(t, pub, b.SigningKey)
	assert.Equal(t, string(ca.PEM(t)), b.CAPEM)
	assert.Equal(t, &exp, b.Expires)

	again, err := peering.NewInvite(cfg, peering.Invite{Peer: "op-b", LeafURL: "tls://leaf.op-a.example:7422"})
	require.NoError(t, err)
	assert.NotEqual(t, b.Password, again.Password, "fresh credentials each time")
	assert.Nil(t, again.Expires)

	cfg.NATS.LeafNodes.TLS = nil
	plain, err := peering.NewInvite(cfg, peering.Invite{Peer: "op-b", LeafURL: "nats-leaf://127.0.0.1:7422"})
	require.NoError(t, err)
	assert.Empty(t, plain.CAPEM, "no CA to give")
}

func TestNewInviteRefuses(t *testing.T) {
	ca := natstest.NewCA(t)
	past := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name    string
		edit    func(*config.Config)
		peer    string
		url     string
		expires *time.Time
		want    string
	}{
		{name: "invalid peer id", peer: "Op_B", want: `invite "Op_B": not an operator id`},
		{name: "ourselves", peer: "op-a", want: "this node's own operator id"},
		{name: "existing peer", peer: "op-c", want: "invite op-c: already a peer"},
		{name: "no leaf listener", edit: func(c *config.Config) { c.NATS.LeafNodes = nil }, want: "no nats.leafnodes listener"},
		{name: "no signing key", edit: func(c *config.Config) { c.Operator.SigningKeyFile = "" }, want: "anfed keys init --dir DIR"},
		{name: "signing key file missing", edit: func(c *config.Config) { c.Operator.SigningKeyFile += ".gone" }, want: "read signing key"},
		{name: "user taken by a local user", edit: func(c *config.Config) { c.NATS.Users = []config.User{{Name: "peer-op-b", Password: "x"}} }, want: `leaf user "peer-op-b" is already a local user`},
		{name: "expires in the past", expires: &past, want: "is in the past"},
		{name: "bad url", url: "https://leaf.op-a.example", want: "want nats-leaf://host:port or tls://host:port"},
		{name: "listener certificate from another CA", edit: func(c *config.Config) {
			c.NATS.LeafNodes.TLS.Cert, c.NATS.LeafNodes.TLS.Key = natstest.NewCA(t).Issue(t, "leaf.op-a", loopback)
		}, want: "does not verify the listener's certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := acceptor(t, ca)
			if tc.edit != nil {
				tc.edit(cfg)
			}
			peer, url := tc.peer, tc.url
			if peer == "" {
				peer = "op-b"
			}
			if url == "" {
				url = "tls://leaf.op-a.example:7422"
			}
			b, err := peering.NewInvite(cfg, peering.Invite{Peer: peer, LeafURL: url, Expires: tc.expires})
			assert.Nil(t, b)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}
