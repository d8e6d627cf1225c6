package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// acceptingYAML is a node that accepts op-b over mutual TLS (a CA) and
// dials op-c; %s is op-b's extra keys, indented under it.
const acceptingYAML = `
operator: {id: op-a, signing_key_file: a.nk}
nats:
  users: [{name: assurance, password: assurance-secret}]
  leafnodes:
    listen: 0.0.0.0:7422
    tls: {cert: leaf.pem, key: leaf-key.pem, ca: peers-ca.pem}
storage: {dir: ./data}
peers:
  - id: op-b
    accept: {user: peer-op-b, password: issued-to-op-b}
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
    signing_key: $B
`

func TestPeerLimits(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := Parse("op-a.yaml", []byte(keys(y(acceptingYAML))))
		require.NoError(t, err)
		assert.Equal(t, Limits{MaxSubscriptions: 1000, MaxPayload: 128 << 10, MaxConnections: 1}, cfg.Peers[0].Limits.WithDefaults())
		assert.Equal(t, "CN=op-b", cfg.Peers[0].CertName(), "the subject anfed peer invite issues")
	})
	t.Run("set", func(t *testing.T) {
		cfg, err := Parse("op-a.yaml", []byte(keys(y(acceptingYAML+`    limits: {max_subscriptions: 64, max_payload: 256KiB, max_connections: 3}
`))))
		require.NoError(t, err)
		assert.Equal(t, Limits{MaxSubscriptions: 64, MaxPayload: 256 << 10, MaxConnections: 3}, cfg.Peers[0].Limits.WithDefaults())
	})
	t.Run("cert_name", func(t *testing.T) {
		src := strings.Replace(acceptingYAML, "password: issued-to-op-b}", `password: issued-to-op-b, cert_name: "CN=op-b,O=Operator B"}`, 1)
		cfg, err := Parse("op-a.yaml", []byte(keys(y(src))))
		require.NoError(t, err)
		assert.Equal(t, "CN=op-b,O=Operator B", cfg.Peers[0].CertName())
	})

	bad := []struct {
		name, extra   string
		line          int
		path, msg, hy string
	}{
		{"too few subscriptions", "    limits: {max_subscriptions: 5}\n", 14, "peers[0].limits.max_subscriptions", "5 subscriptions is too few", "at least 32"},
		{"zero subscriptions", "    limits: {max_subscriptions: 0}\n", 14, "peers[0].limits.max_subscriptions", "0 subscriptions", "leave it out"},
		{"payload below the largest signal", "    limits: {max_payload: 16KiB}\n", 14, "peers[0].limits.max_payload", "out of range", "the largest signal"},
		{"payload above NATS's ceiling", "    limits: {max_payload: 1GiB}\n", 14, "peers[0].limits.max_payload", "out of range", "64MiB"},
		{"no connections", "    limits: {max_connections: 0}\n", 14, "peers[0].limits.max_connections", "0 connections is out of range", "1 (the default)"},
		{"negative connections", "    limits: {max_connections: -1}\n", 14, "peers[0].limits.max_connections", "-1 connections", "servers that dial us"},
		{"cert name of a local user", "  - id: op-c\n    accept: {user: peer-op-c, password: issued-to-op-c, cert_name: assurance}\n    export: {classes: [\"*\"], services: [\"*\"]}\n    import: {classes: [\"*\"]}\n    signing_key: $C\n",
			15, "peers[1].accept.cert_name", `certificate name "assurance" is also a local user`, "subject DN"},
		{"cert name of another peer", "  - id: op-c\n    accept: {user: peer-op-c, password: issued-to-op-c, cert_name: CN=op-b}\n    export: {classes: [\"*\"], services: [\"*\"]}\n    import: {classes: [\"*\"]}\n    signing_key: $C\n",
			15, "peers[1].accept.cert_name", `certificate name "CN=op-b" is also the certificate name of peers[0]`, "each peer's certificate names it alone"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("op-a.yaml", []byte(keys(y(acceptingYAML+tc.extra))))
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "%v", err)
			e := errs[0]
			assert.Equal(t, tc.line, e.Line, "line")
			assert.Equal(t, tc.path, e.Path)
			assert.Contains(t, e.Msg, tc.msg)
			assert.Contains(t, e.Hint, tc.hy)
		})
	}

	t.Run("warnings", func(t *testing.T) {
		// Without a CA no certificate is asked for; a dialled peer's
		// connections are bounded by its own policy.
		src := keys(y(`
operator: {id: op-a, signing_key_file: a.nk}
nats:
  leafnodes: {listen: 127.0.0.1:7422, tls: {cert: leaf.pem, key: leaf-key.pem}}
storage: {dir: ./data}
peers:
  - id: op-b
    accept: {user: peer-op-b, password: issued-to-op-b, cert_name: op-b}
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
    signing_key: $B
  - id: op-c
    dial: {url: "nats-leaf://c.example:7422", user: u, password: pppppppp}
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
    signing_key: $C
    limits: {max_connections: 2}
`))
		_, errs, warnings := Check("op-a.yaml", []byte(src))
		require.Empty(t, errs)
		var got []string
		for _, w := range warnings {
			got = append(got, w.Path+": "+w.Msg)
		}
		assert.Contains(t, got, "peers[0].accept.cert_name: ignored: the leaf listener asks for no client certificate")
		assert.Contains(t, got, "peers[1].limits.max_connections: ignored: we dial this peer")
	})
}
