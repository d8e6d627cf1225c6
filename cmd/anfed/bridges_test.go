package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// TestServeBridges runs anfed serve with a bridges section: the VES and
// TMF642 listeners are mounted, take events with basic auth and the bearer
// token, and the node stops cleanly; a bad bridges section stops serve
// with the file and line.
func TestServeBridges(t *testing.T) {
	dir := t.TempDir()
	const token = "serve-test-token-0123456789"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ingest.token"), []byte(token+"\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ves.password"), []byte("ves-password-0123456789\n"), 0o600))
	addr := natstest.FreeAddr(t)
	p := filepath.Join(dir, "op-a.yaml")
	cfg := fmt.Sprintf(`operator:
  id: op-a
nats:
  client:
    listen: ""
storage:
  dir: ./data
http:
  listen: %s
  token_file: ingest.token
bridges:
  ves:
    user: collector
    password_file: ves.password
  tmf642: {}
`, addr)
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr nodetest.Output
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", p}, &stdout, &stderr) }()
	base := "http://" + addr
	waitReady(t, addr)
	send := func(path, file string, auth func(*http.Request)) (int, string) {
		b, err := os.ReadFile(filepath.Join("../../internal/bridge/testdata", file))
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
		require.NoError(t, err)
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	code, body := send("/eventListener/v7", "ves-fault.json", func(r *http.Request) { r.SetBasicAuth("collector", "ves-password-0123456789") })
	assert.Equal(t, http.StatusAccepted, code, body)
	code, body = send("/tmf-api/alarmManagement/v4/listener/alarmCreateEvent", "tmf642-alarm-create.json", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
	assert.Equal(t, http.StatusAccepted, code, body)
	code, body = send("/eventListener/v7", "ves-fault.json", func(*http.Request) {})
	assert.Equal(t, http.StatusUnauthorized, code, body)

	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(m), `anfed_bridge_signals_total{bridge="ves",result="accepted"} 1`)
	assert.Contains(t, string(m), `anfed_bridge_signals_total{bridge="tmf642",result="accepted"} 1`)
	assert.Contains(t, string(m), `anfed_local_signals_total{result="accepted"} 2`)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitOK, code, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}

	// A bad bridges section: serve refuses with the file and line.
	bad := strings.Replace(cfg, "  tmf642: {}\n", "  tmf642:\n    upstream:\n      - url: oss.example.net\n", 1)
	require.NoError(t, os.WriteFile(p, []byte(bad), 0o600))
	var out, errOut nodetest.Output
	assert.Equal(t, exitFail, run(context.Background(), []string{"serve", "--config", p}, &out, &errOut))
	assert.Contains(t, errOut.String(), p+":17:14:")
	assert.Contains(t, errOut.String(), "bridges.tmf642.upstream[0].url: invalid URL")
}
