package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/origin"
)

// TestPolicySizeLimit: a policy over MaxPolicySize is refused before it is
// parsed, whatever reads it (the 71 MB file of the issue took 16 s and
// 2.5 GB and printed 2.3 million problems).
func TestPolicySizeLimit(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	f, err := os.Create(big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(71<<20))
	require.NoError(t, f.Close())
	start := time.Now()
	_, err = Load(big)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is 71 MiB, over the limit of 1 MiB")
	t.Logf("Load of a 71 MiB file: %v in %v", err, time.Since(start))

	_, errs, _ := Check("op-a.yaml", make([]byte, MaxPolicySize+1))
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Msg, "over the limit of 1 MiB for a policy")
}

// TestProblemCap: a file of junk just under the size limit reports
// MaxProblems problems and a count of the rest, not one per line.
func TestProblemCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("operator: {id: op-a}\nstorage: {dir: ./data}\n")
	n := 0
	for b.Len() < MaxPolicySize-64 {
		fmt.Fprintf(&b, "junk%d: 1\n", n)
		n++
	}
	start := time.Now()
	_, errs, _ := Check("op-a.yaml", []byte(b.String()))
	took := time.Since(start)
	t.Logf("%d unknown keys in %d bytes: %d problems reported in %v", n, b.Len(), len(errs), took)
	require.Len(t, errs, MaxProblems+1)
	assert.Equal(t, fmt.Sprintf("%d more not shown", n-MaxProblems), errs[MaxProblems].Msg)
}

// fileEnv is a policy directory with a valid signing key, a TLS
// certificate, key and CA, all mode 0600.
type fileEnv struct {
	dir                string
	key, cert, tlsKey  string
	ca, fifo, notAPEM  string
	big, worldReadable string
}

func newFileEnv(t *testing.T) *fileEnv {
	t.Helper()
	dir := t.TempDir()
	e := &fileEnv{dir: dir}
	e.key = filepath.Join(dir, "signing.nk")
	kp, err := nkeys.CreateOperator()
	require.NoError(t, err)
	require.NoError(t, origin.WriteSigningKey(e.key, kp))
	ca := natstest.NewCA(t)
	e.cert, e.tlsKey = ca.Issue(t, "leaf.op-a", net.ParseIP("127.0.0.1"))
	e.ca = ca.File
	e.fifo = filepath.Join(dir, "fifo")
	require.NoError(t, syscall.Mkfifo(e.fifo, 0o600))
	e.notAPEM = filepath.Join(dir, "junk.pem")
	require.NoError(t, os.WriteFile(e.notAPEM, []byte("not a certificate\n"), 0o600))
	e.big = filepath.Join(dir, "big")
	f, err := os.Create(e.big)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(2<<20))
	require.NoError(t, f.Close())
	e.worldReadable = filepath.Join(dir, "open.nk")
	b, err := os.ReadFile(e.key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(e.worldReadable, b, 0o644))
	require.NoError(t, os.Chmod(e.worldReadable, 0o644))
	return e
}

// policy writes a policy naming key as the signing key and cert, tlsKey,
// ca as the leaf listener's TLS, with mode, and returns its path.
func (e *fileEnv) policy(t *testing.T, key, cert, tlsKey, ca string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(e.dir, fmt.Sprintf("policy-%d.yaml", time.Now().UnixNano()))
	src := fmt.Sprintf(`operator:
  id: op-a
  signing_key_file: %q
nats:
  leafnodes:
    listen: 127.0.0.1:7422
    tls:
      cert: %q
      key: %q
      ca: %q
storage: {dir: ./data}
peers:
  - id: op-b
    accept: {user: peer-op-b, password: issued-to-op-b}
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
    signing_key: %s
`, key, cert, tlsKey, ca, keyB)
	require.NoError(t, os.WriteFile(p, []byte(src), mode))
	require.NoError(t, os.Chmod(p, mode))
	return p
}

// checkAllOK runs CheckAll on the policy at p, requires no problem, and
// returns the warnings.
func checkAllOK(t *testing.T, p string) []*Error {
	t.Helper()
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	cfg, errs, warnings := CheckAll(p, data)
	require.Empty(t, errs)
	require.NotNil(t, cfg)
	return warnings
}

// TestCheckFiles: every file the policy names must be a regular file,
// within boundedfile.MaxSize, and readable as what it should be; each
// problem is reported at the line of the key that names the file, and
// neither a FIFO nor /dev/zero blocks or exhausts anything. Before, Check
// said nothing about any of them.
func TestCheckFiles(t *testing.T) {
	e := newFileEnv(t)
	cases := []struct {
		name                  string
		key, cert, tlsKey, ca string
		line                  int
		path, msg             string
	}{
		{"signing key missing", filepath.Join(e.dir, "nope.nk"), e.cert, e.tlsKey, e.ca, 3, "operator.signing_key_file", "does not exist"},
		{"signing key /dev/zero", "/dev/zero", e.cert, e.tlsKey, e.ca, 3, "operator.signing_key_file", "is a character device"},
		{"signing key a FIFO", e.fifo, e.cert, e.tlsKey, e.ca, 3, "operator.signing_key_file", "is a FIFO"},
		{"signing key a directory", e.dir, e.cert, e.tlsKey, e.ca, 3, "operator.signing_key_file", "is a directory"},
		{"signing key too large", e.big, e.cert, e.tlsKey, e.ca, 3, "operator.signing_key_file", "is 2 MiB, over the limit of 1 MiB"},
		{"signing key not a seed", e.notAPEM, e.cert, e.tlsKey, e.ca, 3, "operator.signing_key_file", "not an NKey seed"},
		{"certificate missing", e.key, filepath.Join(e.dir, "nope.pem"), e.tlsKey, e.ca, 8, "nats.leafnodes.tls.cert", "does not exist"},
		{"TLS key a FIFO", e.key, e.cert, e.fifo, e.ca, 9, "nats.leafnodes.tls.key", "is a FIFO"},
		{"certificate and key do not match", e.key, e.cert, e.notAPEM, e.ca, 8, "nats.leafnodes.tls.cert", "tls:"},
		{"CA missing", e.key, e.cert, e.tlsKey, filepath.Join(e.dir, "nope-ca.pem"), 10, "nats.leafnodes.tls.ca", "does not exist"},
		{"CA not a PEM certificate", e.key, e.cert, e.tlsKey, e.notAPEM, 10, "nats.leafnodes.tls.ca", "holds no PEM certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := e.policy(t, tc.key, tc.cert, tc.tlsKey, tc.ca, 0o600)
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			_, errs, _ := Check(p, data)
			require.Empty(t, errs, "Check alone does not read the files")
			done := make(chan Errors, 1)
			go func() { _, errs, _ := CheckAll(p, data); done <- errs }()
			select {
			case errs = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("CheckAll blocked on a file")
			}
			require.Len(t, errs, 1, "%v", errs)
			assert.Equal(t, p, errs[0].File)
			assert.Equal(t, tc.line, errs[0].Line, "the line of the key naming the file")
			assert.Equal(t, tc.path, errs[0].Path)
			assert.Contains(t, errs[0].Msg, tc.msg)
			_, err = LoadAll(p)
			require.Error(t, err)
		})
	}

	t.Run("all present and readable by the node only", func(t *testing.T) {
		warnings := checkAllOK(t, e.policy(t, e.key, e.cert, e.tlsKey, e.ca, 0o600))
		assert.Empty(t, warnings)
	})
	t.Run("secrets readable by others: warnings", func(t *testing.T) {
		require.NoError(t, os.Chmod(e.tlsKey, 0o640))
		t.Cleanup(func() { _ = os.Chmod(e.tlsKey, 0o600) })
		warnings := checkAllOK(t, e.policy(t, e.worldReadable, e.cert, e.tlsKey, e.ca, 0o644))
		got := map[string]string{}
		for _, w := range warnings {
			got[fmt.Sprintf("%s:%d", w.Path, w.Line)] = w.Msg
		}
		assert.Contains(t, got["operator.signing_key_file:3"], "readable by others (mode 0644)")
		assert.Contains(t, got["nats.leafnodes.tls.key:9"], "readable by others (mode 0640)")
		assert.Contains(t, got[":1"], "the policy file is readable by others (mode 0644) and holds passwords")
		assert.Len(t, warnings, 3, "%v", got)
	})
	t.Run("a token file that is a FIFO", func(t *testing.T) {
		src := fmt.Sprintf("operator: {id: op-a}\nstorage: {dir: ./data}\nhttp:\n  token_file: %q\n", e.fifo)
		done := make(chan Errors, 1)
		go func() { _, errs, _ := Check("op-a.yaml", []byte(src)); done <- errs }()
		select {
		case errs := <-done:
			require.Len(t, errs, 1)
			assert.Equal(t, 4, errs[0].Line)
			assert.Contains(t, errs[0].Msg, "is a FIFO")
		case <-time.After(5 * time.Second):
			t.Fatal("Check blocked on a FIFO token file")
		}
	})
}
