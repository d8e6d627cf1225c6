package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/boundedfile"
)

// TestToolsRefuseUnboundedInputs names /dev/zero, a FIFO, a directory and
// a file one byte over the bound as each file a command reads (issue 22,
// item 8): every command must fail at once, naming the flag and the file,
// rather than wait for a FIFO's writer or read /dev/zero until memory runs
// out. Each runs as a process under a 4 GiB address-space limit and is
// killed after two seconds.
func TestToolsRefuseUnboundedInputs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs it 26 times")
	}
	bin := buildAnfed(t)
	dir := t.TempDir()
	code, _, stderr := anfedCmd(t, bin, "init", "--id", "op-a", "--dir", filepath.Join(dir, "a"))
	require.Equal(t, exitOK, code, stderr)
	policy := filepath.Join(dir, "a", initPolicy)

	fifo := filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	empty := filepath.Join(dir, "empty.d")
	require.NoError(t, os.Mkdir(empty, 0o700))
	// over returns a (sparse) file one byte over limit.
	over := func(limit int64) string {
		p := filepath.Join(dir, "over-"+boundedfile.Size(limit+1))
		f, err := os.Create(p)
		require.NoError(t, err)
		require.NoError(t, f.Truncate(limit+1))
		require.NoError(t, f.Close())
		return p
	}

	commands := []struct {
		name  string
		args  func(file string) []string
		flag  string // the flag the message names
		limit int64
	}{
		{"publish --file", func(f string) []string { return []string{"publish", "--file", f} }, "--file", maxSignalsFile},
		{"publish --data @FILE", func(f string) []string {
			return []string{"publish", "--origin", "op-a", "--class", "fault", "--subject", "core/r1", "--data", "@" + f}
		}, "--data @", maxDataFile},
		// --password-file is every tool's (serverFlags).
		{"conditions --password-file", func(f string) []string {
			return []string{"conditions", "--server", "nats://127.0.0.1:1", "--user", "u", "--password-file", f}
		}, "--password-file", maxPasswordFile},
		{"peer invite --csr", func(f string) []string {
			return []string{"peer", "invite", "--config", policy, "op-b", "--csr", f, "-o", filepath.Join(dir, "op-b.peering.yaml")}
		}, "--csr", boundedfile.MaxSize},
		{"peer add BUNDLE", func(f string) []string { return []string{"peer", "add", "--config", policy, f} }, "peering bundle", 1 << 20},
		{"peer csr --out (an existing file)", func(f string) []string {
			return []string{"peer", "csr", "--config", policy, "op-c", "--out", f}
		}, "write", -1},
	}
	for _, c := range commands {
		files := []struct{ kind, path string }{{"dev-zero", "/dev/zero"}, {"FIFO", fifo}, {"directory", empty}}
		if c.limit > 0 {
			files = append(files, struct{ kind, path string }{"oversized", over(c.limit)})
		}
		for _, f := range files {
			t.Run(c.name+"/"+f.kind, func(t *testing.T) {
				code, stderr, took := boundedRun(t, bin, nil, c.args(f.path)...)
				require.NotEqual(t, exitOK, code, stderr)
				require.Contains(t, stderr, c.flag, "the message names the flag")
				require.Contains(t, stderr, f.path, "the message names the file")
				t.Logf("exit %d in %v: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
			})
		}
	}
	// publish --file - reads stdin: bounded too.
	for _, f := range []struct{ kind, path string }{{"dev-zero", "/dev/zero"}, {"oversized", over(maxSignalsFile)}} {
		t.Run("publish --file -/"+f.kind, func(t *testing.T) {
			in, err := os.Open(f.path)
			require.NoError(t, err)
			defer in.Close()
			code, stderr, took := boundedRun(t, bin, in, "publish", "--file", "-")
			require.NotEqual(t, exitOK, code, stderr)
			require.Contains(t, stderr, "--file -: stdin is over the limit of 16 MiB")
			t.Logf("exit %d in %v: %s", code, took.Round(time.Millisecond), strings.TrimSpace(stderr))
		})
	}
}

// boundedRun runs bin with args under a 4 GiB address-space limit and
// fails the test if it has not exited within two seconds.
func boundedRun(t *testing.T, bin string, stdin *os.File, args ...string) (code int, stderr string, took time.Duration) {
	t.Helper()
	const deadline = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `ulimit -v 4194304 && exec "$0" "$@"`, bin}, args...)...)
	var e strings.Builder
	cmd.Stderr = &e
	if stdin != nil {
		cmd.Stdin = stdin
	}
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("anfed %s: still running after %v (killed); stderr: %.300s", strings.Join(args, " "), deadline, e.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), e.String(), took
	}
	require.NoError(t, err)
	return 0, e.String(), took
}
