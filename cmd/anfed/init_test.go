package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// initOperator runs anfed init for id in a temporary directory, on free
// loopback ports, and returns the directory and the HTTP address.
func initOperator(t *testing.T, id string) (dir, httpAddr, clientAddr, leafAddr string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), id)
	httpAddr, clientAddr, leafAddr = natstest.FreeAddr(t), natstest.FreeAddr(t), natstest.FreeAddr(t)
	mustRun(t, "init", "--id", id, "--dir", dir, "--http-listen", httpAddr, "--client-listen", clientAddr, "--leaf-listen", leafAddr)
	return dir, httpAddr, clientAddr, leafAddr
}

// serveInProcess runs anfed serve --config policy until the test ends.
func serveInProcess(t *testing.T, policy string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out nodetest.Output
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", policy}, &out, &out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			assert.Equal(t, exitOK, code, "serve stops cleanly:\n%s", tail(out.String(), 20))
		case <-time.After(60 * time.Second):
			t.Error("serve still running 60 s after its context ended")
		}
		if t.Failed() {
			t.Logf("serve %s:\n%s", policy, tail(out.String(), 40))
		}
	})
}

// waitReady waits until the node serving HTTP on httpAddr answers
// /readyz with 200: its intake answers, its links have pipelines.
func waitReady(t *testing.T, httpAddr string) {
	t.Helper()
	natstest.WaitFor(t, 60*time.Second, func() error {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// congestionOf is a valid congestion signal of origin.
func congestionOf(origin, service string) []byte {
	return []byte(fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"anfed://%s/assurance","type":"net.anfed.congestion.v1",
"subject":"%s/ic-paris-1","time":%q,"datacontenttype":"application/json","anfedorigin":%q,"anfedstate":"raised",
"data":{"link":{"id":"ic-paris-1","kind":"interconnect"},"direction":"egress","utilisationPercent":93,"packetLossPercent":0.6,"queueDelayMs":11,"trafficClasses":["AF41"]}}`,
		nuid.Next(), origin, service, time.Now().UTC().Format(time.RFC3339), origin))
}

// anfed init makes a directory that anfed serve runs from as it is, with
// mutual TLS on the leaf listener and the HTTP ingest on, its files
// readable only by the owner where they hold secrets.
func TestInitThenServe(t *testing.T) {
	dir, httpAddr, _, _ := initOperator(t, "acme")
	for name, mode := range map[string]os.FileMode{
		"policy.yaml": 0o600, "signing.nk": 0o600, "ca-key.pem": 0o600, "leaf-key.pem": 0o600, "ingest.token": 0o600,
		"ca.pem": 0o644, "leaf.pem": 0o644,
	} {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), name)
	}
	policy := filepath.Join(dir, "policy.yaml")
	cfg, err := config.Load(policy)
	require.NoError(t, err)
	require.NotNil(t, cfg.NATS.LeafNodes.TLS)
	assert.NotEmpty(t, cfg.NATS.LeafNodes.TLS.CA, "mutual TLS on the leaf listener")
	assert.Contains(t, readFile(t, policy), "\n  # Signs every signal we originate", "the policy explains itself")

	code, _, stderr := runCmd("init", "--id", "acme", "--dir", dir)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "policy.yaml exists")
	assert.Equal(t, cfg.HTTP.TokenFile, filepath.Join(dir, "ingest.token"), "the files are untouched")

	serveInProcess(t, policy)
	waitReady(t, httpAddr)
	token := strings.TrimSpace(readFile(t, filepath.Join(dir, "ingest.token")))
	req, err := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/v1/events", bytes.NewReader(congestionOf("acme", "vpn-x")))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode, "%s", body)
	var ans struct{ Status, Subject string }
	require.NoError(t, json.Unmarshal(body, &ans))
	assert.Equal(t, "accepted", ans.Status)
	assert.Equal(t, "an.sig.acme.congestion.vpn-x.ic-paris-1", ans.Subject)
}

// A port in use is named, with its policy key, at once: not after the
// NATS server's 10 s readiness wait.
func TestServeBusyPort(t *testing.T) {
	for _, key := range []string{"nats.client.listen", "nats.leafnodes.listen", "http.listen"} {
		t.Run(key, func(t *testing.T) {
			dir, httpAddr, clientAddr, leafAddr := initOperator(t, "acme")
			busy := map[string]string{"nats.client.listen": clientAddr, "nats.leafnodes.listen": leafAddr, "http.listen": httpAddr}[key]
			l, err := net.Listen("tcp", busy)
			require.NoError(t, err)
			defer l.Close()
			start := time.Now()
			code, _, stderr := runCmd("serve", "--config", filepath.Join(dir, "policy.yaml"))
			took := time.Since(start)
			assert.Equal(t, exitFail, code)
			assert.Contains(t, stderr, key+": "+busy+": the port is in use")
			assert.Less(t, took, 3*time.Second, "named at once")
		})
	}
}
