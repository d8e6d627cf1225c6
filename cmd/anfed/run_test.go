package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsage(t *testing.T) {
	code, _, stderr := runCmd()
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "anfed demo")
	code, _, stderr = runCmd("frobnicate")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)
	code, stdout, _ := runCmd("version")
	assert.Equal(t, exitOK, code)
	assert.Contains(t, stdout, "nats-server 2.")
}

func TestValidateCatalogExamples(t *testing.T) {
	files, err := filepath.Glob("../../schemas/examples/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, stdout, stderr := runCmd("validate", f)
			if strings.Contains(f, ".valid") {
				assert.Equal(t, exitOK, code, stderr)
				assert.Contains(t, stdout, ": ok: signal")
			} else {
				assert.Equal(t, exitFail, code)
				assert.Contains(t, stderr, "invalid signal: schema-invalid: data does not match")
			}
		})
	}
}

func TestValidateExamplePolicies(t *testing.T) {
	files, err := filepath.Glob("../../examples/federation/*.yaml")
	require.NoError(t, err)
	require.Len(t, files, 3)
	code, stdout, stderr := runCmd(append([]string{"validate"}, files...)...)
	assert.Equal(t, exitOK, code, stderr)
	assert.Equal(t, 3, strings.Count(stdout, ": ok: policy of"))
}

func TestValidateBadInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	tests := []struct {
		name, file, body string
		want             []string
	}{
		{"policy with several problems", "bad.yaml", "operator:\n  id: Op_A\nstorage:\n  dir: ./d\npeers:\n  - id: op-b\n    export:\n      classes: [congestoin]\n",
			[]string{"bad.yaml:2:", "operator.id", "bad.yaml:6:", "accept", "dial", "bad.yaml:8:", `did you mean "congestion"`}},
		{"policy with unknown key", "typo.yaml", "operator:\n  id: op-a\nstorage:\n  dir: ./d\n  max_agge: 1h\n",
			[]string{"typo.yaml:5:", "max_agge"}},
		{"policy that is not YAML", "syntax.yaml", "operator: [\n", []string{"syntax.yaml:"}},
		{"signal that is not JSON", "bad.json", "{not json", []string{"bad.json: invalid signal: malformed"}},
		{"signal with unknown type", "type.json", `{"specversion":"1.0","id":"1","source":"anfed://op-a/x","type":"net.anfed.nope.v1","subject":"s/r","time":"2026-11-25T17:00:00Z","anfedorigin":"op-a","anfedstate":"raised","data":{}}`,
			[]string{"unknown-type", "net.anfed.nope.v1"}},
		{"signal without origin", "origin.json", `{"specversion":"1.0","id":"1","source":"anfed://op-a/x","type":"net.anfed.fault.v1","subject":"s/r","time":"2026-11-25T17:00:00Z","anfedstate":"raised","data":{}}`,
			[]string{"missing-attribute", "anfedorigin is required"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd("validate", write(tt.file, tt.body))
			assert.Equal(t, exitFail, code)
			for _, w := range tt.want {
				assert.Contains(t, stderr, w)
			}
		})
	}
	code, _, stderr := runCmd("validate", filepath.Join(dir, "missing.yaml"))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "no such file")
}

func TestServeRefusesBadConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "op.yaml")
	require.NoError(t, os.WriteFile(p, []byte("operator:\n  id: op-a\n"), 0o600))
	code, _, stderr := runCmd("serve", "--config", p)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "op.yaml:")
	assert.Contains(t, stderr, "storage.dir")
	code, _, stderr = runCmd("serve")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--config FILE is required")
}

func TestServeRunsUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "op-a.yaml")
	cfg := fmt.Sprintf("operator:\n  id: op-a\nnats:\n  client:\n    listen: %s\n  users:\n    - name: loop\n      password: loop-pass-123\nstorage:\n  dir: ./data\n", natstest.FreeAddr(t))
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr nodetest.Output
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", p}, &stdout, &stderr) }()
	natstest.WaitFor(t, 15*time.Second, func() error {
		if !strings.Contains(stderr.String(), `"node started"`) {
			return fmt.Errorf("not started: %s", stderr.String())
		}
		return nil
	})
	assert.DirExists(t, filepath.Join(dir, "data", "jetstream"), "storage resolved against the config file")
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, exitOK, code)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	assert.Contains(t, stderr.String(), `"node stopped"`)
}

func TestDemoCommand(t *testing.T) {
	code, stdout, stderr := runCmd("demo", "--duration", "2s", "--interval", "100ms")
	assert.Equal(t, exitOK, code, stderr)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	assert.Regexp(t, `^summary: crossed=[1-9]\d* mitigations=[1-9]\d* rejected=\d+ lost=0 proposals=2 accepted=1 conflicts=1 intents=1 reports=[3-9]\d*$`, lines[len(lines)-1])
}

// serveOpA runs `anfed serve` for a lone op-a with a client listener and a
// local user until the test ends, and returns the flags that name it.
func serveOpA(t *testing.T) (addr string, flags []string) {
	t.Helper()
	return serveOpAWith(t, t.TempDir(), "")
}

// serveOpAWith is serveOpA with its files in dir and operator adding
// keys to the policy's operator section ("  key: value\n" lines).
func serveOpAWith(t *testing.T, dir, operator string) (addr string, flags []string) {
	t.Helper()
	p := filepath.Join(dir, "op-a.yaml")
	addr = natstest.FreeAddr(t)
	cfg := fmt.Sprintf("operator:\n  id: op-a\n"+operator+"nats:\n  client:\n    listen: %s\n  users:\n    - name: loop\n      password: loop-pass-123\nstorage:\n  dir: ./data\nhttp:\n  listen: %s\n", addr, natstest.FreeAddr(t))
	require.NoError(t, os.WriteFile(p, []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr nodetest.Output
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", p}, &stdout, &stderr) }()
	t.Cleanup(func() { cancel(); <-done })
	natstest.WaitFor(t, 15*time.Second, func() error {
		if !strings.Contains(stderr.String(), `"node started"`) {
			return fmt.Errorf("not started")
		}
		return nil
	})
	pw := filepath.Join(dir, "loop.password")
	require.NoError(t, os.WriteFile(pw, []byte("loop-pass-123\n"), 0o600))
	return addr, []string{"--server", "nats://" + addr, "--user", "loop", "--password-file", pw}
}

func TestConditionsAndPeersCommands(t *testing.T) {
	addr, flags := serveOpA(t)
	// A signal from a local producer becomes a condition.
	nc, err := nats.Connect("nats://"+addr, nats.UserInfo("loop", "loop-pass-123"))
	require.NoError(t, err)
	defer nc.Close()
	ev, err := os.ReadFile("../../schemas/examples/fault.valid.json")
	require.NoError(t, err)
	m, err := nc.Request("an.pub", ev, 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(m.Data), `"accepted"`)
	natstest.WaitFor(t, 5*time.Second, func() error {
		code, out, errs := runCmd(append([]string{"conditions"}, flags...)...)
		if code != exitOK || !strings.Contains(out, "1 condition(s)") {
			return fmt.Errorf("%d %s %s", code, out, errs)
		}
		return nil
	})
	code, out, _ := runCmd(append([]string{"conditions", "--json", "--class", "fault"}, flags...)...)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, `"class": "fault"`)
	assert.NotContains(t, out, `"expiry"`, "no expiry is no key, not 0001-01-01T00:00:00Z")
	code, out, _ = runCmd(append([]string{"conditions", "--class", "congestion"}, flags...)...)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "0 condition(s)")
	// A condition without a severity shows none, not 0.
	m, err = nc.Request("an.pub", congestionOf("op-a", "vpn-x"), 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(m.Data), `"accepted"`)
	natstest.WaitFor(t, 5*time.Second, func() error {
		code, out, _ = runCmd(append([]string{"conditions", "--class", "congestion"}, flags...)...)
		if !strings.Contains(out, "1 condition(s)") {
			return fmt.Errorf("%d %s", code, out)
		}
		return nil
	})
	assert.Regexp(t, `(?m)^local\s+op-a\s+congestion\s+vpn-x/ic-paris-1\s+active\s+raised\s+\d{4}-\d\d-\d\dT`, out)
	code, out, _ = runCmd(append([]string{"peers"}, flags...)...)
	assert.Equal(t, exitOK, code)
	assert.Contains(t, out, "PEER")
	assert.Contains(t, out, "SESSION")
	assert.Contains(t, out, "HOLDER")
	// A refresh of a peer the policy does not have is refused by the node.
	code, _, errs := runCmd(append([]string{"peer", "refresh", "op-z", "--inbound"}, flags...)...)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, `no peer "op-z"`)
	code, _, _ = runCmd(append([]string{"peer", "refresh"}, flags...)...)
	assert.Equal(t, exitUsage, code)
	code, _, errs = runCmd("peers", "--server", "nats://"+natstest.FreeAddr(t))
	assert.Equal(t, exitFail, code)
	assert.Contains(t, errs, "is the node running?")

	// The password from the environment; on the command line it still
	// works, with a warning that ps shows it.
	t.Setenv("ANFED_PASSWORD", "loop-pass-123")
	code, out, errs = runCmd("peers", "--server", "nats://"+addr, "--user", "loop")
	assert.Equal(t, exitOK, code, errs)
	assert.Contains(t, out, "PEER")
	t.Setenv("ANFED_PASSWORD", "")
	code, _, errs = runCmd("peers", "--server", "nats://"+addr, "--user", "loop")
	assert.Equal(t, exitFail, code, "no password, no connection")
	assert.Contains(t, errs, "ANFED_PASSWORD")
	code, _, errs = runCmd("peers", "--server", "nats://"+addr, "--user", "loop", "--password", "loop-pass-123")
	assert.Equal(t, exitOK, code, errs)
	assert.Contains(t, errs, "warning: --password shows in ps")
}

// --log-format console colours only a terminal: a file or a pipe gets no
// escape codes.
func TestConsoleLogWithoutColourOffTerminal(t *testing.T) {
	fs := newFlagSet("x", io.Discard)
	lf := addLogFlags(fs, "info")
	require.NoError(t, fs.Parse([]string{"--log-format", "console"}))
	var buf bytes.Buffer
	log, err := lf.logger(&buf)
	require.NoError(t, err)
	log.Warn().Str("peer", "op-b").Stringer("grace", 30*time.Second).Msg("link down")
	assert.NotContains(t, buf.String(), "\x1b[")
	assert.Contains(t, buf.String(), "WRN link down grace=30s peer=op-b")
}

// Durations in logs carry their unit (grace=30s, not grace=30000):
// zerolog's Dur writes a bare number of milliseconds, so no code logs
// with it.
func TestLogDurationsHaveUnits(t *testing.T) {
	var found []string
	for _, root := range []string{"../../internal", "."} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, ".Dur(\"") {
					found = append(found, fmt.Sprintf("%s:%d", p, i+1))
				}
			}
			return nil
		})
		require.NoError(t, err)
	}
	assert.Empty(t, found, "log durations with .Stringer(key, d), which writes 30s")
}

// Every command answers -h with its help and exit status 0, in one
// format: what it does and how to call it, then "Flags:".
func TestHelpExitsZero(t *testing.T) {
	for _, c := range []string{"demo", "init", "serve", "validate", "policy check", "policy explain", "policy asyncapi", "natsconf",
		"keys init", "keys show", "peer invite", "peer add", "peer csr", "peer pin", "peer export", "peer import", "peer list",
		"conditions", "peers", "intents", "tail", "publish", "bench"} {
		t.Run(c, func(t *testing.T) {
			for _, h := range []string{"-h", "--help"} {
				code, stdout, stderr := runCmd(append(strings.Fields(c), h)...)
				assert.Equal(t, exitOK, code, "anfed %s %s", c, h)
				help := stdout + stderr
				assert.Contains(t, help, "anfed "+c, "names the command")
				assert.Contains(t, help, "\nFlags:\n", "one format")
			}
		})
	}
	for _, c := range []string{"policy", "keys", "peer"} {
		code, stdout, _ := runCmd(c, "-h")
		assert.Equal(t, exitOK, code, c)
		assert.Contains(t, stdout, "anfed "+c+" ")
	}
	// One flag for an output file: -o and --out on every command that
	// writes one.
	for _, c := range []string{"natsconf", "policy asyncapi", "peer invite", "peer csr"} {
		_, _, help := runCmd(append(strings.Fields(c), "-h")...)
		assert.Contains(t, help, "\n  -o string\n", c)
		assert.Contains(t, help, "\n  -out string\n", c)
	}
	code, _, _ := runCmd("serve", "--no-such-flag")
	assert.Equal(t, exitUsage, code, "a wrong flag is still a usage error")
}
