//go:build unix

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/nodetest"
)

// The command examples of README.md and docs/*.md marked
// "<!-- test: federation -->" run as written, in the order of the files
// (README.md first), against the example federation: in a directory that
// holds examples/federation (copied, its loopback ports moved to free
// ones, as TestFederationExampleRunsThreeProcesses does), examples/policy
// and schemas, with the anfed under test as ./anfed, on PATH, and as
// $ANFED for run.sh. A line ending in & starts in the background and is
// stopped with SIGTERM at the end; every other line must exit 0.
func TestDocsOnExampleFederation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs the example federation")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not on PATH")
	}
	for _, tool := range []string{"curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not on PATH: the docs' examples use it", tool)
		}
	}
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append([]string{"../../README.md"}, files...)
	var cmds []docCommand
	var where []string
	for _, f := range files {
		for _, c := range docCommands(t, f) {
			if c.mode == "federation" {
				cmds = append(cmds, c)
				where = append(where, filepath.Base(f))
			}
		}
	}
	require.GreaterOrEqual(t, len(cmds), 6, "the marked examples")
	require.Contains(t, cmds[1].line, "run.sh &", "README.md starts the federation first")

	bin := buildAnfed(t)
	fed, addr := copyFederationExample(t)
	root := t.TempDir()
	repo, err := filepath.Abs("../..")
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(root, "examples"), 0o755))
	require.NoError(t, os.Rename(fed, filepath.Join(root, "examples", "federation")))
	for _, l := range []string{"schemas", "examples/policy"} {
		require.NoError(t, os.Symlink(filepath.Join(repo, l), filepath.Join(root, l)))
	}
	require.NoError(t, os.Symlink(bin, filepath.Join(root, "anfed")))
	path := filepath.Dir(bin) + string(os.PathListSeparator) + os.Getenv("PATH")
	if nats, err := exec.LookPath("nats"); err == nil {
		path += string(os.PathListSeparator) + filepath.Dir(nats)
	}
	env := append(os.Environ(), "PATH="+path, "ANFED="+bin)
	loopback := regexp.MustCompile(`127\.0\.0\.1:(\d{4})\b`)
	background := regexp.MustCompile(`^(.*[^&])&\s*(#.*)?$`) // "cmd &", "cmd &  # comment"

	var bg []*exec.Cmd
	var bgOut []*nodetest.Output
	t.Cleanup(func() {
		for i, c := range bg {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = c.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
				<-done
			}
			if t.Failed() {
				t.Logf("background:\n%s", tail(bgOut[i].String(), 40))
			}
		}
	})
	for i, c := range cmds {
		line := loopback.ReplaceAllStringFunc(c.line, func(m string) string {
			role, ok := federationPorts[loopback.FindStringSubmatch(m)[1]]
			require.True(t, ok, "%s:%d: a loopback port the example does not have: %s", where[i], c.at, m)
			return addr[role]
		})
		if strings.HasPrefix(strings.TrimSpace(line), "nats ") {
			if _, err := exec.LookPath("nats"); err != nil && os.Getenv("ANFED_REQUIRE_NATSCLI") == "" {
				t.Logf("%s:%d: natscli is not on PATH: not run: %s", where[i], c.at, c.line)
				continue
			}
		}
		if m := background.FindStringSubmatch(line); m != nil {
			bgLine := m[1]
			var out nodetest.Output
			cmd := exec.Command(bash, "-c", "exec "+bgLine)
			cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = root, env, &out, &out
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			require.NoError(t, cmd.Start())
			bg, bgOut = append(bg, cmd), append(bgOut, &out)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		cmd := exec.CommandContext(ctx, bash, "-o", "pipefail", "-c", line)
		cmd.Dir, cmd.Env, cmd.WaitDelay = root, env, time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		require.NoError(t, err, "%s:%d: %s\n%s", where[i], c.at, line, out)
		t.Logf("%s:%d: %s\n%s", where[i], c.at, c.line, out)
		assert.NotContains(t, string(out), `"status":"rejected"`)
	}
}
