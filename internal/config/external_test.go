package config

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadExternal(t *testing.T) {
	cfg, err := Parse("/etc/anfed/op-a.yaml", []byte(y(`
operator: {id: op-a}
nats:
  external:
    urls: [nats://nats-1:4222, "tls://nats-2.example:4222"]
    credentials_dir: nats-creds
    tls: {ca: ca.pem, cert: node.pem, key: node-key.pem}
  leafnodes: {listen: "127.0.0.1:7422"}
storage:
  replicas: 3
`)))
	require.NoError(t, err)
	e := cfg.NATS.External
	require.NotNil(t, e)
	assert.Equal(t, []string{"nats://nats-1:4222", "tls://nats-2.example:4222"}, e.URLs)
	assert.Equal(t, filepath.FromSlash("/etc/anfed/nats-creds"), e.CredentialsDir)
	assert.Equal(t, filepath.FromSlash("/etc/anfed/ca.pem"), e.TLS.CA)
	assert.Equal(t, 3, cfg.Storage.Replicas)
	assert.Empty(t, cfg.NATS.Client.Listen, "no client listener of our own in external mode")
	assert.Empty(t, cfg.Storage.Dir, "storage.dir is optional in external mode")
}

func TestParseExternalErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		line       int
		path       string
		msg, hint  string
	}{
		{
			name: "replicas without external",
			yaml: y(`
operator: {id: op-a}
storage:
  dir: ./data
  replicas: 3
`),
			line: 4, path: "storage.replicas", msg: "need a NATS cluster, and nats.external is not set", hint: "set nats.external",
		},
		{
			name: "replicas out of range",
			yaml: y(`
operator: {id: op-a}
nats: {external: {urls: ["nats://n1:4222"], credentials_dir: c}}
storage: {replicas: 7}
`),
			line: 3, path: "storage.replicas", msg: "1 to 5 servers", hint: "3 on a cluster",
		},
		{
			name: "replicas zero",
			yaml: y(`
operator: {id: op-a}
nats: {external: {urls: ["nats://n1:4222"], credentials_dir: c}}
storage: {replicas: 0}
`),
			line: 3, path: "storage.replicas", msg: "0 replicas", hint: "1 (the default)",
		},
		{
			name: "client listener with external",
			yaml: y(`
operator: {id: op-a}
nats:
  client: {listen: "127.0.0.1:4222"}
  external: {urls: ["nats://n1:4222"], credentials_dir: c}
`),
			line: 3, path: "nats.client", msg: "only for the embedded server", hint: "remove nats.client",
		},
		{
			name: "leaf listener on port 0 with external",
			yaml: y(`
operator: {id: op-a}
nats:
  leafnodes: {listen: "127.0.0.1:0"}
  external: {urls: ["nats://n1:4222"], credentials_dir: c}
`),
			line: 3, path: "nats.leafnodes.listen", msg: "port 0", hint: "fixed port",
		},
		{
			name: "no urls",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    credentials_dir: c
`),
			line: 4, path: "nats.external.urls", msg: "required", hint: "client URLs",
		},
		{
			name: "bad scheme",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["nats-leaf://n1:7422"]
    credentials_dir: c
`),
			line: 4, path: "nats.external.urls[0]", msg: `unsupported scheme "nats-leaf"`, hint: "client URLs",
		},
		{
			name: "credentials in url",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["nats://node:secret@n1:4222"]
    credentials_dir: c
`),
			line: 4, path: "nats.external.urls[0]", msg: "carries credentials", hint: "NKeys in credentials_dir",
		},
		{
			name: "no port",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["nats://n1"]
    credentials_dir: c
`),
			line: 4, path: "nats.external.urls[0]", msg: "needs host:port", hint: "client URLs",
		},
		{
			name: "duplicate url",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["nats://n1:4222", "nats://n1:4222"]
    credentials_dir: c
`),
			line: 4, path: "nats.external.urls[1]", msg: "duplicate url", hint: "once",
		},
		{
			name: "no credentials dir",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["nats://n1:4222"]
`),
			line: 4, path: "nats.external.credentials_dir", msg: "required", hint: "anfed natsconf",
		},
		{
			name: "tls cert without key",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["tls://n1:4222"]
    credentials_dir: c
    tls: {cert: node.pem}
`),
			line: 6, path: "nats.external.tls.key", msg: "required with tls.cert", hint: "private key",
		},
		{
			name: "unknown key",
			yaml: y(`
operator: {id: op-a}
nats:
  external:
    urls: ["nats://n1:4222"]
    credentials_dir: c
    credential: x
`),
			line: 6, path: "nats.external.credential", msg: "unknown", hint: "credentials_dir",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("op-a.yaml", []byte(tc.yaml))
			require.Error(t, err)
			assert.Nil(t, cfg)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "%v", err)
			e := errs[0]
			assert.Equal(t, tc.line, e.Line, "line")
			assert.Equal(t, tc.path, e.Path, "path")
			assert.Contains(t, e.Msg, tc.msg)
			assert.Contains(t, e.Hint, tc.hint)
		})
	}
}
