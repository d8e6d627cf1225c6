//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/signal"
)

// SIGTERM ends `anfed serve` within its bound whatever state the store is
// in: here on a full volume, with a producer streaming into it. A stop
// that finishes exits 0; one that had to give work up exits 1 and says
// what it abandoned (forced with a bound too short for any stop).
func TestServeStopsWithinBoundOnFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs it as a process")
	}
	bin := buildAnfed(t)
	disk := natstest.SmallDisk(t, 48<<20)
	dir := t.TempDir()
	client := natstest.FreeAddr(t)
	cfg := filepath.Join(dir, "op-a.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf(`operator:
  id: op-a
nats:
  client:
    listen: %s
  users:
    - name: %s
      password: %s
storage:
  dir: %s
  max_bytes: 32MiB
  sync: 2m
http:
  listen: ""
`, client, producerUser, producerPass, filepath.Join(disk, "store"))), 0o600))

	for i, tc := range []struct {
		name     string
		bound    time.Duration
		wantCode int
		wantLog  string
	}{
		{"default bound", 15 * time.Second, 0, `"node stopped"`},
		{"bound too short", 2 * time.Second, 1, `stop abandoned while`},
	} {
		run := i
		t.Run(tc.name, func(t *testing.T) {
			logPath := filepath.Join(dir, fmt.Sprintf("serve.%d.log", i))
			lf, err := os.Create(logPath)
			require.NoError(t, err)
			defer lf.Close()
			cmd := exec.Command(bin, "serve", "--config", cfg, "--stop-timeout", tc.bound.String())
			cmd.Stdout, cmd.Stderr = lf, lf
			require.NoError(t, cmd.Start())
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			t.Cleanup(func() {
				select {
				case <-done:
				default:
					_ = cmd.Process.Kill()
					<-done
				}
			})
			natstest.WaitFor(t, 20*time.Second, func() error {
				if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), `"node started"`) {
					return fmt.Errorf("not started")
				}
				return nil
			})
			ballast := natstest.Fill(t, disk, 1<<20)
			defer os.Remove(ballast)
			prod := startProducerAs(t, "nats://"+client, "op-a", producerUser, producerPass, func(origin string, s, i int) *signal.Event {
				ev := killSignal(origin, s, i)
				ev.ID = fmt.Sprintf("run%d-%s", run, ev.ID)
				return ev
			}, 4, 1000)
			// Until the store is full and says so.
			natstest.WaitFor(t, 60*time.Second, func() error {
				prod.mu.Lock()
				defer prod.mu.Unlock()
				if prod.other["rejected/unavailable"] == 0 {
					return fmt.Errorf("acknowledged %d, other answers %v", len(prod.acked), prod.other)
				}
				return nil
			})
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
			start := time.Now()
			select {
			case <-done:
			case <-time.After(tc.bound + 5*time.Second):
				t.Fatalf("still running %v after SIGTERM (bound %v)", time.Since(start).Round(time.Millisecond), tc.bound)
			}
			took := time.Since(start)
			close(prod.stop)
			prod.wg.Wait()
			prod.nc.Close()
			b, _ := os.ReadFile(logPath)
			var last string
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if strings.Contains(l, "stop") {
					last = l
				}
			}
			prod.mu.Lock()
			t.Logf("full disk, %d acknowledged, other answers %v; SIGTERM -> exit %d after %v (bound %v); last stop line: %s",
				len(prod.acked), prod.other, cmd.ProcessState.ExitCode(), took.Round(time.Millisecond), tc.bound, last)
			prod.mu.Unlock()
			assert.Equal(t, tc.wantCode, cmd.ProcessState.ExitCode())
			assert.Contains(t, string(b), tc.wantLog)
			assert.Less(t, took, tc.bound+2*time.Second, "exit within the bound")
		})
	}
}
