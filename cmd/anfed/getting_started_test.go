//go:build unix

package main

import (
	"bufio"
	"fmt"
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

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// docCommand is one command of a guide, with how the reader runs it.
type docCommand struct {
	mode string // run, serve, follow or federation
	line string
	at   int // line number in the doc
}

// docCommands reads the commands of the fenced sh blocks that follow a
// "<!-- test: MODE -->" line: run (in order, each must exit 0), serve
// (keeps running, in its own terminal), follow (in its own terminal,
// ends by itself) or federation (run against the example federation).
// Lines ending in \ or | continue on the next; comments and blank lines
// are skipped. Blocks without a marker are not commands.
func docCommands(t *testing.T, path string) []docCommand {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	marker := regexp.MustCompile(`^<!-- test: (run|serve|follow|federation) -->$`)
	var out []docCommand
	mode, inBlock, cont := "", false, ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case !inBlock && marker.MatchString(l):
			mode = marker.FindStringSubmatch(l)[1]
		case !inBlock && mode != "" && l == "```sh":
			inBlock = true
		case !inBlock && mode != "" && strings.TrimSpace(l) != "":
			t.Fatalf("%s:%d: a test marker must stand right before a ```sh block", path, n)
		case inBlock && l == "```":
			require.Empty(t, cont, "%s:%d: a block ends in a continued line", path, n)
			inBlock, mode = false, ""
		case inBlock:
			if s := strings.TrimSpace(l); s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			if strings.HasSuffix(l, `\`) {
				cont += strings.TrimSuffix(l, `\`) + " "
				continue
			}
			if strings.HasSuffix(strings.TrimSpace(l), "|") {
				cont += l + " "
				continue
			}
			out = append(out, docCommand{mode: mode, line: cont + l, at: n})
			cont = ""
		}
	}
	require.NoError(t, sc.Err())
	return out
}

// docs/getting-started.md as a reader runs it: every command of its
// marked blocks, exactly as written and in order, through bash, with the
// anfed under test on PATH, in an empty directory. Only the loopback ports
// the guide names are moved to free ones.
func TestGettingStarted(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anfed and runs two nodes as processes")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not on PATH")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not on PATH: the guide uses it")
	}
	cmds := docCommands(t, "../../docs/getting-started.md")
	for _, c := range cmds {
		require.NotEqual(t, "federation", c.mode, "line %d: the guide starts from empty directories", c.at)
	}
	count := map[string]int{}
	for _, c := range cmds {
		count[c.mode]++
	}
	require.GreaterOrEqual(t, count["run"], 10, "the guide's commands")
	require.Equal(t, 2, count["serve"], "two nodes")
	require.Equal(t, 1, count["follow"], "one tail at globex")

	bin := buildAnfed(t)
	work := t.TempDir()
	ports := map[string]string{}
	for _, p := range []string{"4222", "7422", "8440", "4232", "7432", "8450"} {
		ports[p] = natstest.FreeAddr(t)
	}
	loopback := regexp.MustCompile(`127\.0\.0\.1:(\d{4})\b`)
	env := append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))

	type bg struct {
		c    docCommand
		cmd  *exec.Cmd
		out  *nodetest.Output
		done chan error
	}
	var serves, follows []*bg
	start := func(c docCommand, line string) *bg {
		b := &bg{c: c, out: &nodetest.Output{}, done: make(chan error, 1)}
		b.cmd = exec.Command(bash, "-c", "exec "+line)
		b.cmd.Dir, b.cmd.Env, b.cmd.Stdout, b.cmd.Stderr = work, env, b.out, b.out
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		require.NoError(t, b.cmd.Start(), "line %d: %s", c.at, line)
		go func() { b.done <- b.cmd.Wait() }()
		return b
	}
	t.Cleanup(func() {
		for _, b := range append(follows, serves...) {
			_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		}
		if t.Failed() {
			for _, b := range append(serves, follows...) {
				t.Logf("line %d: %s\n%s", b.c.at, b.c.line, tail(b.out.String(), 40))
			}
		}
	})
	for _, c := range cmds {
		line := loopback.ReplaceAllStringFunc(c.line, func(m string) string {
			addr, ok := ports[loopback.FindStringSubmatch(m)[1]]
			require.True(t, ok, "line %d: a loopback port the test does not know: %s", c.at, m)
			return addr
		})
		switch c.mode {
		case "run":
			cmd := exec.Command(bash, "-c", line)
			cmd.Dir, cmd.Env = work, env
			t0 := time.Now()
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "line %d: %s\n%s", c.at, line, out)
			t.Logf("line %d (%v): %s\n%s", c.at, time.Since(t0).Round(time.Millisecond), c.line, out)
		case "serve":
			serves = append(serves, start(c, line))
		case "follow":
			b := start(c, line)
			follows = append(follows, b)
			// As a reader would: go on once it says it follows.
			natstest.WaitFor(t, 30*time.Second, func() error {
				if !strings.Contains(b.out.String(), "following ") {
					return fmt.Errorf("line %d: not following yet: %q", c.at, b.out.String())
				}
				return nil
			})
		}
	}
	for _, b := range follows {
		select {
		case err := <-b.done:
			require.NoError(t, err, "line %d: %s", b.c.at, b.c.line)
		case <-time.After(60 * time.Second):
			t.Fatalf("line %d still running 60 s after the guide's last command: %s", b.c.at, b.c.line)
		}
		// The tail at globex saw acme's congestion, signed and verified.
		assert.Regexp(t, `acme\s+congestion\s+raised\s+WARN\s+vpn-paris/ic-1`, b.out.String())
	}
	for _, b := range serves {
		require.NoError(t, b.cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-b.done:
			assert.NoError(t, err, "line %d: %s stops cleanly on SIGTERM", b.c.at, b.c.line)
		case <-time.After(60 * time.Second):
			t.Errorf("line %d: still running 60 s after SIGTERM", b.c.at)
		}
	}
	// What the guide says crossed did cross over mutual TLS.
	assert.Contains(t, readFile(t, filepath.Join(work, "globex", "policy.yaml")), "acme-client.pem")
	// Every file that holds a secret is the owner's alone.
	for _, f := range []string{"acme/policy.yaml", "globex/policy.yaml", "globex.peering.yaml", "globex/acme-client-key.pem",
		"acme/ca-key.pem", "acme/signing.nk", "acme/ingest.token"} {
		fi, err := os.Stat(filepath.Join(work, f))
		if assert.NoError(t, err) {
			assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), f)
		}
	}
}
