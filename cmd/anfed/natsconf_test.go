package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
)

const externalPolicy = `
operator: {id: op-a}
nats:
  external:
    urls: ["nats://127.0.0.1:4222"]
    credentials_dir: creds
  leafnodes: {listen: "127.0.0.1:7422"}
  users: [{name: loop, password: loop-pass-123}]
storage: {replicas: 3}
`

// anfed natsconf makes the node's seeds once, and writes a configuration
// that nats-server loads from a file and serves, letting the node's OPS
// user in with JetStream.
func TestNatsconfCommand(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "op-a.yaml")
	require.NoError(t, os.WriteFile(policy, []byte(externalPolicy), 0o600))
	out := filepath.Join(dir, "anfed.conf")

	code, _, stderr := runCmd("natsconf", "--config", policy, "-o", out)
	require.Equal(t, exitOK, code, stderr)
	assert.Equal(t, 2, strings.Count(stderr, "created "), stderr) // SYS and OPS: no peers
	first, err := os.ReadFile(out)
	require.NoError(t, err)

	code, stdout, stderr := runCmd("natsconf", "--config", policy)
	require.Equal(t, exitOK, code, stderr)
	assert.NotContains(t, stderr, "created", "seeds are made once")
	nkeyLines := func(s string) (ls []string) {
		for _, l := range strings.Split(s, "\n") {
			if strings.Contains(l, "nkey:") {
				ls = append(ls, l)
			}
		}
		return ls
	}
	assert.Equal(t, nkeyLines(string(first)), nkeyLines(stdout), "the node's users are stable")

	own := filepath.Join(dir, "n1.conf")
	require.NoError(t, os.WriteFile(own, []byte("server_name: n1\nlisten: 127.0.0.1:-1\ninclude \"anfed.conf\"\n"+
		"jetstream { store_dir: \""+filepath.ToSlash(filepath.Join(dir, "js"))+"\" }\n"), 0o600))
	opts, err := server.ProcessConfigFile(own)
	require.NoError(t, err)
	opts.LeafNode.Port = -1
	srv := natstest.StartServer(t, opts)

	cfg, err := config.Load(policy)
	require.NoError(t, err)
	sec, err := natsconf.LoadSecrets(cfg)
	require.NoError(t, err)
	nc, err := nats.Connect(srv.ClientURL(), nats.Nkey(sec.Public(natsconf.OpsAccount), sec[natsconf.OpsAccount].Sign), nats.NoReconnect())
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	_, err = js.AccountInfo()
	assert.NoError(t, err)
}

func TestNatsconfCommandErrors(t *testing.T) {
	dir := t.TempDir()
	embedded := filepath.Join(dir, "embedded.yaml")
	require.NoError(t, os.WriteFile(embedded, []byte("operator: {id: op-a}\nstorage: {dir: data}\n"), 0o600))
	code, _, stderr := runCmd("natsconf", "--config", embedded)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "has no nats.external")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("operator: {id: op-a}\nstorage: {dir: data, replicas: 3}\n"), 0o600))
	code, _, stderr = runCmd("natsconf", "--config", bad)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "bad.yaml:2:")
	assert.Contains(t, stderr, "storage.replicas")

	code, _, _ = runCmd("natsconf")
	assert.Equal(t, exitUsage, code)
}
