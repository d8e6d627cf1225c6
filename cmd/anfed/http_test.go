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
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// TestServeHTTP runs anfed serve with an http section: readiness, the
// ingest with the token from token_file, metrics, and a clean stop.
func TestServeHTTP(t *testing.T) {
	dir := t.TempDir()
	const token = "serve-test-token-0123456789"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ingest.token"), []byte(token+"\n"), 0o600))
	addr := natstest.FreeAddr(t)
	p := filepath.Join(dir, "op-a.yaml")
	cfg := fmt.Sprintf("operator:\n  id: op-a\nnats:\n  client:\n    listen: \"\"\nstorage:\n  dir: ./data\nhttp:\n  listen: %s\n  token_file: ingest.token\n", addr)
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr nodetest.Output
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", p}, &stdout, &stderr) }()
	base := "http://" + addr
	waitReady(t, addr)
	assert.Contains(t, stderr.String(), "http://"+addr+"/", "the log names the dashboard's URL")

	raw, err := os.ReadFile("../../schemas/examples/congestion.valid.json") // op-a's congestion
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	delete(m, "expirytime") // the example's has passed
	ev, err := json.Marshal(m)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(ev))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusAccepted, resp.StatusCode, string(body))

	resp, err = http.Get(base + "/metrics")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `anfed_local_signals_total{result="accepted"} 1`)
	assert.Contains(t, string(body), "anfed_ready 1")

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitOK, code, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	_, err = http.Get(base + "/healthz")
	assert.Error(t, err, "the HTTP server stops with the node")
}

// TestServeHTTPAddressTaken: an http.listen that cannot be bound stops
// serve with an error naming it.
func TestServeHTTPAddressTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	p := filepath.Join(t.TempDir(), "op-a.yaml")
	cfg := fmt.Sprintf("operator:\n  id: op-a\nnats:\n  client:\n    listen: \"\"\nstorage:\n  dir: ./data\nhttp:\n  listen: %s\n", ln.Addr())
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	code, _, stderr := runCmd("serve", "--config", p)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "http.listen: "+ln.Addr().String()+": the port is in use", "named before the node starts (checkPorts)")
}
