package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
)

var updateDocs = flag.Bool("update-docs", false, "TestPolicyDocs: write the real output into docs/policy.md")

// TestPolicyCheckBadFiles: every kind of problem is reported with the line
// it is on, all of a file's problems together, with the warnings, as text
// and as JSON; exit status 1 on any problem, 0 otherwise.
func TestPolicyCheckBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	const key = "OAVUUTDRWJ2SUAWQGGFHVLAZVTYCMXTE6A7LOMQJYYHVCNAQ7Y5MXVOR"
	// The signing key the policies name, readable by the node only.
	kp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	require.NoError(t, origin.WriteSigningKey(filepath.Join(dir, "k.nk"), kp))
	type found struct {
		line int
		path string
		msg  string
	}
	tests := []struct {
		name, body string
		errs       []found
		warnings   []found
	}{
		{"YAML syntax", "operator:\n  id: op-a\n  name: [a\nstorage: {dir: d}\n",
			[]found{{3, "", "YAML syntax"}}, nil},
		{"empty file", "# nothing\n", []found{{0, "", "the file is empty"}}, nil},
		{"second document", "operator: {id: op-a}\nstorage: {dir: d}\n---\nx: 1\n", []found{{3, "", "a second YAML document"}}, nil},
		{"unknown key, wrong type, repeated key", "operator:\n  id: op-a\n  nmae: A\nstorage:\n  dir: d\n  max_age: forever\nhttp: {listen: \"\"}\nhttp: {listen: \"\"}\n",
			[]found{{3, "operator.nmae", `unknown key "nmae"`}, {6, "storage.max_age", ""}, {8, "http", `key "http" given twice (first at line 7)`}}, nil},
		{"semantic problems", "operator:\n  id: Op_A\n  signing_key_file: k.nk\nstorage:\n  dir: d\nhttp: {listen: \"\"}\npeers:\n  - id: op-b\n    signing_key: " + key + "\n    export:\n      classes: [congestoin]\n      services: [\"[\"]\n      redact: [/name]\n      min_severity: 30\n",
			[]found{{2, "operator.id", `invalid id "Op_A"`}, {8, "peers[0]", "needs accept or dial"}, {11, "peers[0].export.classes[0]", `unknown class "congestoin"`}, {12, "peers[0].export.services[0]", "invalid pattern"}, {13, "peers[0].export.redact[0]", "does not point into /data/"}, {14, "peers[0].export.min_severity", "30 is not a severity number"}},
			[]found{{8, "peers[0].import.classes", "empty: nothing is accepted from op-b"}}},
		{"warnings only", "operator:\n  id: op-a\n  signing_key_file: k.nk\nstorage: {dir: d}\nhttp: {listen: \"\"}\nnats:\n  leafnodes: {listen: \"127.0.0.1:7422\"}\npeers:\n  - id: op-b\n    signing_key: " + key + "\n    accept: {user: op-b, password: secret-b-123}\n    import: {classes: [fault]}\n",
			nil, []found{{7, "nats.leafnodes.tls", "not set"}, {9, "peers[0].export.classes", "empty: nothing is exported to op-b"}}},
		{"signing key missing", "operator:\n  id: op-a\n  signing_key_file: gone.nk\nstorage: {dir: d}\nhttp: {listen: \"\"}\n",
			[]found{{3, "operator.signing_key_file", "gone.nk does not exist"}}, nil},
		{"signing key a device", "operator:\n  id: op-a\n  signing_key_file: /dev/zero\nstorage: {dir: d}\nhttp: {listen: \"\"}\n",
			[]found{{3, "operator.signing_key_file", "/dev/zero is a character device"}}, nil},
		{"TLS files missing", "operator:\n  id: op-a\n  signing_key_file: k.nk\nstorage: {dir: d}\nhttp: {listen: \"\"}\nnats:\n  leafnodes:\n    listen: \"127.0.0.1:7422\"\n    tls: {cert: leaf.pem, key: leaf-key.pem, ca: ca.pem}\n",
			[]found{{9, "nats.leafnodes.tls.cert", "leaf.pem does not exist"}, {9, "nats.leafnodes.tls.key", "leaf-key.pem does not exist"}, {9, "nats.leafnodes.tls.ca", "ca.pem does not exist"}}, nil},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := write(fmt.Sprintf("p%d.yaml", i), tt.body)
			code, stdout, stderr := runCmd("policy", "check", "--json", f)
			want := exitOK
			if len(tt.errs) > 0 {
				want = exitFail
			}
			require.Equal(t, want, code, stderr)
			var got []FileCheck
			require.NoError(t, json.Unmarshal([]byte(stdout), &got), stdout)
			require.Len(t, got, 1)
			fc := got[0]
			assert.Equal(t, len(tt.errs) == 0, fc.OK)
			match := func(kind string, want []found, got []Problem) {
				require.Len(t, got, len(want), "%s: %+v", kind, got)
				for j, w := range want {
					assert.Equal(t, w.line, got[j].Line, "%s %d: %+v", kind, j, got[j])
					assert.Equal(t, w.path, got[j].Path, "%s %d", kind, j)
					assert.Contains(t, got[j].Message, w.msg, "%s %d", kind, j)
				}
			}
			match("errors", tt.errs, fc.Errors)
			match("warnings", tt.warnings, fc.Warnings)
			for _, e := range fc.Errors {
				if e.Path != "" && !strings.Contains(e.Path, "max_age") && e.Path != "http" {
					assert.NotEmpty(t, e.Hint, "every semantic problem says how to fix it: %+v", e)
				}
			}

			// The text form: problems on stderr, file:line first; warnings
			// on stdout.
			code, stdout, stderr = runCmd("policy", "check", f)
			assert.Equal(t, want, code)
			for _, e := range tt.errs {
				prefix := f + ":"
				if e.line > 0 {
					prefix = fmt.Sprintf("%s:%d:", f, e.line)
				}
				assert.Contains(t, stderr, prefix, stderr)
			}
			for _, w := range tt.warnings {
				assert.Contains(t, stdout, fmt.Sprintf("warning: %s:%d:", f, w.line))
			}
			if len(tt.errs) > 1 {
				assert.Contains(t, stderr, fmt.Sprintf("%d problems in %s:", len(tt.errs), f))
			}
		})
	}
}

// TestValidateIsPolicyCheck: validate is an alias, for policy and signal
// files alike, and one bad file does not hide the good ones.
func TestValidateIsPolicyCheck(t *testing.T) {
	files := []string{"../../examples/policy/op-a.yaml", "../../examples/policy/signals/congestion.json", "../../schemas/examples/fault.invalid.json", "../../examples/policy/op-b.yaml"}
	c1, o1, e1 := runCmd(append([]string{"validate"}, files...)...)
	c2, o2, e2 := runCmd(append([]string{"policy", "check"}, files...)...)
	assert.Equal(t, exitFail, c1)
	assert.Equal(t, c1, c2)
	assert.Equal(t, o1, o2)
	assert.Equal(t, e1, e2)
	assert.Equal(t, 2, strings.Count(o1, ": ok: policy of"))
	assert.Contains(t, o1, "congestion.json: ok: signal ex-cong-1 (congestion)")
	assert.Contains(t, e1, "fault.invalid.json: invalid signal: schema-invalid")

	code, _, stderr := runCmd("policy", "check")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "name one or more files")
	code, _, stderr = runCmd("policy", "frobnicate")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unknown command "frobnicate"`)
}

func TestPolicyExplainErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"specversion":"1.0","id":"1"}`), 0o600))
	const cfg = "../../examples/policy/op-b.yaml"
	const sig = "../../examples/policy/signals/congestion.json"
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no config", []string{sig}, exitUsage, "want --config FILE"},
		{"no signal", []string{"--config", cfg}, exitUsage, "want --config FILE"},
		{"bad policy", []string{"--config", bad, sig}, exitFail, "bad.json"},
		{"bad signal", []string{"--config", cfg, bad}, exitFail, "bad.json: signal 1: invalid: missing-attribute"},
		{"missing signal file", []string{"--config", cfg, filepath.Join(dir, "none.json")}, exitFail, "none.json"},
		{"unknown --from", []string{"--config", cfg, "--from", "op-q", sig}, exitUsage, "--from op-q: not a peer of op-b"},
		{"--peer-config of a stranger", []string{"--config", "../../examples/policy/op-a.yaml", "--peer-config", "../../examples/policy/op-c.yaml", sig}, exitUsage, "op-c is not a peer of op-a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCmd(append([]string{"policy", "explain"}, tt.args...)...)
			assert.Equal(t, tt.code, code, stderr)
			assert.Contains(t, stderr, tt.want)
		})
	}

	// --json: one report per signal, machine-readable verdicts.
	code, stdout, stderr := runCmd("policy", "explain", "--json", "--config", cfg, "--from", "op-a",
		"../../examples/policy/signals/congestion.json", "../../examples/policy/signals/fault-info.json")
	require.Equal(t, exitOK, code, stderr)
	var reports []struct {
		Node   string
		Import struct{ Accept bool }
		Peers  []struct {
			Peer    string
			Receive bool
			Rule    string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(stdout), &reports), stdout)
	require.Len(t, reports, 2)
	assert.True(t, reports[0].Import.Accept)
	assert.Equal(t, "op-c", reports[0].Peers[1].Peer)
	assert.True(t, reports[0].Peers[1].Receive)
	assert.False(t, reports[1].Peers[1].Receive)
	assert.Equal(t, "export.min_severity is 13 and the signal's severity is 9", reports[1].Peers[1].Rule)
}

func TestPolicyAsyncAPI(t *testing.T) {
	out := filepath.Join(t.TempDir(), "op-c.asyncapi.json")
	code, stdout, stderr := runCmd("policy", "asyncapi", "--config", "../../examples/policy/op-b.yaml", "--peer", "op-c", "-o", out)
	require.Equal(t, exitOK, code, stderr)
	assert.Empty(t, stdout)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var doc struct {
		AsyncAPI string         `json:"asyncapi"`
		Channels map[string]any `json:"channels"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, "3.0.0", doc.AsyncAPI)
	assert.Len(t, doc.Channels, 2)
	code, stdout, _ = runCmd("policy", "asyncapi", "--config", "../../examples/policy/op-b.yaml", "--peer", "op-c")
	assert.Equal(t, exitOK, code)
	assert.Equal(t, string(b), stdout)

	code, _, stderr = runCmd("policy", "asyncapi", "--config", "../../examples/policy/op-b.yaml", "--peer", "op-q")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "--peer op-q: not a peer of op-b")
	code, _, _ = runCmd("policy", "asyncapi", "--config", "../../examples/policy/op-b.yaml")
	assert.Equal(t, exitUsage, code)
}

// docsBlock finds the blocks of docs/policy.md that show `anfed policy`
// commands at work.
var docsBlock = regexp.MustCompile("(?s)<!-- cli-output: begin.*?-->\n```text\n(.*?)```\n<!-- cli-output: end -->")

// TestPolicyDocs runs every command shown in docs/policy.md (the
// explained example federation, the checked broken policy) and compares
// their output with the text there: the doc cannot drift from the code.
// Run with -update-docs after a deliberate change to rewrite the outputs.
func TestPolicyDocs(t *testing.T) {
	const doc = "../../docs/policy.md"
	b, err := os.ReadFile(doc)
	require.NoError(t, err)
	ms := docsBlock.FindAllSubmatchIndex(b, -1)
	require.Len(t, ms, 2, "docs/policy.md: the explain and check blocks")
	t.Chdir("../..") // the commands are written from the repository's root
	var updated []byte
	last := 0
	for _, m := range ms {
		block := string(b[m[2]:m[3]])
		got := runDocBlock(t, block)
		updated = append(append(updated, b[last:m[2]]...), got...)
		last = m[3]
		if !*updateDocs {
			assert.Equal(t, block, got, "docs/policy.md shows output that `anfed policy` no longer prints: run go test ./cmd/anfed -run TestPolicyDocs -update-docs and review the diff")
		}
	}
	if *updateDocs {
		updated = append(updated, b[last:]...)
		require.NoError(t, os.WriteFile("docs/policy.md", updated, 0o644))
	}
}

// runDocBlock runs the commands of one block and returns the block as
// they print it: each command, its output (standard output, then
// standard error) and, but for the last, a blank line.
func runDocBlock(t *testing.T, block string) string {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(block, "\n") {
		if strings.HasPrefix(line, "$ ") {
			require.True(t, strings.HasPrefix(line, "$ anfed policy "), "%q", line)
			cmds = append(cmds, line)
		}
	}
	require.NotEmpty(t, cmds)
	var got strings.Builder
	for i, line := range cmds {
		_, stdout, stderr := runCmd(strings.Fields(strings.TrimPrefix(line, "$ anfed "))...)
		got.WriteString(line + "\n" + stdout + stderr)
		if i < len(cmds)-1 {
			got.WriteString("\n")
		}
	}
	return got.String()
}

// TestServeRefusesBadFiles: serve checks the files its policy names before
// it derives a NATS configuration, and names the policy's line, not one of
// the generated configuration's. Before, a missing certificate stopped
// serve with a line of the generated NATS configuration, and a signing
// key at a FIFO blocked it for good.
func TestServeRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	kp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	require.NoError(t, origin.WriteSigningKey(filepath.Join(dir, "k.nk"), kp))
	fifo := filepath.Join(dir, "fifo.nk")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	const peer = "peers:\n  - id: op-b\n    signing_key: OAVUUTDRWJ2SUAWQGGFHVLAZVTYCMXTE6A7LOMQJYYHVCNAQ7Y5MXVOR\n    accept: {user: op-b, password: secret-b-123}\n    export: {classes: [fault], services: [\"*\"]}\n    import: {classes: [fault]}\n"
	for _, tc := range []struct{ name, body, line, msg string }{
		{"certificate missing", "operator:\n  id: op-a\n  signing_key_file: k.nk\nstorage: {dir: d}\nhttp: {listen: \"\"}\nnats:\n  client: {listen: \"\"}\n  leafnodes:\n    listen: \"127.0.0.1:0\"\n    tls:\n      cert: leaf.pem\n      key: k.nk\n" + peer,
			":11:13: nats.leafnodes.tls.cert: ", "leaf.pem does not exist"},
		{"signing key a FIFO", "operator:\n  id: op-a\n  signing_key_file: fifo.nk\nstorage: {dir: d}\nhttp: {listen: \"\"}\nnats:\n  client: {listen: \"\"}\n  leafnodes: {listen: \"127.0.0.1:0\"}\n" + peer,
			":3:21: operator.signing_key_file: ", "fifo.nk is a FIFO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			require.NoError(t, os.WriteFile(p, []byte(tc.body), 0o600))
			type result struct {
				code   int
				stderr string
			}
			done := make(chan result, 1)
			go func() { code, _, stderr := runCmd("serve", "--config", p); done <- result{code, stderr} }()
			select {
			case r := <-done:
				assert.Equal(t, exitFail, r.code)
				assert.Contains(t, r.stderr, p+tc.line, r.stderr)
				assert.Contains(t, r.stderr, tc.msg)
				assert.NotContains(t, r.stderr, "derived NATS configuration")
			case <-time.After(10 * time.Second):
				t.Fatal("serve did not return")
			}
		})
	}
}
