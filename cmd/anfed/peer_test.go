package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/origin"
)

// operatorDir is one operator's directory: its policy, keys and files.
type operatorDir struct {
	id, dir, policy string
}

func newOperator(t *testing.T, id, nats string) operatorDir {
	dir := t.TempDir()
	o := operatorDir{id: id, dir: dir, policy: filepath.Join(dir, id+".yaml")}
	body := fmt.Sprintf("# %s's policy: the operator's own comment.\noperator:\n  id: %s\n  signing_key_file: keys/signing.nk\n%s\nstorage:\n  dir: ./data   # JetStream\n", id, id, nats)
	require.NoError(t, os.WriteFile(o.policy, []byte(body), 0o600))
	return o
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCmd(args...)
	require.Equal(t, exitOK, code, "anfed %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout, stderr)
	return stdout
}

// The whole peering, as two operators would make it: op-a invites op-b,
// op-b adds the bundle, op-a pins op-b's key. Both policies then validate,
// list each other, and the NATS servers derived from them link up over
// mutual TLS.
func TestPeeringRoundTrip(t *testing.T) {
	ca := natstest.NewCA(t)
	leafCert, leafKey := ca.Issue(t, "leaf.op-a", net.ParseIP("127.0.0.1"))
	leafAddr := natstest.FreeAddr(t)
	a := newOperator(t, "op-a", fmt.Sprintf("nats:\n  client: {listen: \"127.0.0.1:0\"}\n  leafnodes:\n    listen: %s\n    tls:\n      cert: %s\n      key: %s\n      ca: %s",
		leafAddr, leafCert, leafKey, ca.File))
	b := newOperator(t, "op-b", "nats:\n  client: {listen: \"127.0.0.1:0\"}")

	pubA := strings.TrimSpace(mustRun(t, "keys", "init", "--dir", filepath.Join(a.dir, "keys")))
	pubB := strings.TrimSpace(mustRun(t, "keys", "init", "--dir", filepath.Join(b.dir, "keys")))
	assert.True(t, origin.ValidPublicKey(pubA), pubA)
	assert.Equal(t, pubA, strings.TrimSpace(mustRun(t, "keys", "show", "--config", a.policy)))

	bundle := filepath.Join(a.dir, "op-b.peering.yaml")
	// The CA is the test's, its key elsewhere: the client certificate
	// comes from that PKI, as it would from an operator's own.
	code, _, stderr := runCmd("peer", "invite", "--config", a.policy, "op-b", "--out", bundle)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "the CA's key is not at "+strings.TrimSuffix(ca.File, ".pem")+"-key.pem: name it with --ca-key FILE, or pass --no-client-cert")
	out := mustRun(t, "peer", "invite", "--config", a.policy, "op-b", "--out", bundle, "--expires", "2099-01-01T00:00:00Z", "--no-client-cert")
	assert.Contains(t, out, "invited op-b: added it to "+a.policy+" (accept, user peer-op-b) and wrote "+bundle)
	assert.Contains(t, out, "note: the listener asks for a client certificate, and the bundle holds none: op-b needs one signed by "+ca.File+" (CN op-b)")
	assert.Contains(t, out, "note: op-b's signing key is not pinned yet")
	assert.Contains(t, out, "anfed peer pin --config "+a.policy+" op-b KEY")
	text := readFile(t, bundle)
	assert.Contains(t, text, "leaf_url: tls://"+leafAddr+"\n", "the leaf URL comes from the TLS listener")
	assert.Contains(t, text, "signing_key: "+pubA+"\n")

	// Until op-b's key is pinned, op-a's node refuses its policy, and
	// the tools still read it.
	code, _, stderr = runCmd("validate", a.policy)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "peers[0].signing_key: required")
	assert.Equal(t, pubA, strings.TrimSpace(mustRun(t, "keys", "show", "--config", a.policy)))

	out = mustRun(t, "peer", "add", "--config", b.policy, bundle)
	assert.Contains(t, out, "added op-a to "+b.policy+": we dial tls://"+leafAddr+" as peer-op-b, and pinned its signing key "+pubA)
	assert.Equal(t, string(ca.PEM(t)), readFile(t, filepath.Join(b.dir, "op-a-ca.pem")))

	assert.Equal(t, pubB, strings.TrimSpace(mustRun(t, "keys", "show", "--config", b.policy)))
	out = mustRun(t, "peer", "pin", "--config", a.policy, "op-b", pubB)
	assert.Equal(t, "pinned op-b's signing key "+pubB+" in "+a.policy+"\n", out)

	out = mustRun(t, "validate", a.policy, b.policy)
	assert.Contains(t, out, a.policy+": ok: policy of op-a with 1 peer(s)")
	assert.Contains(t, out, b.policy+": ok: policy of op-b with 1 peer(s)")
	assert.Contains(t, readFile(t, a.policy), "# op-a's policy: the operator's own comment.\n", "comments survive")
	assert.Contains(t, readFile(t, b.policy), "# JetStream")

	lines := strings.Split(strings.TrimSpace(mustRun(t, "peer", "list", "--config", a.policy)), "\n")
	require.Len(t, lines, 2)
	assert.Regexp(t, `^ID\s+NAME\s+LINK\s+URL/USER\s+SIGNING KEY\s+EXPIRES\s+EXPORT\s+IMPORT$`, lines[0])
	assert.Regexp(t, `^op-b\s+op-b\s+accept\s+peer-op-b\s+`+pubB[:8]+`\.\.\.`+pubB[52:]+`\s+2099-01-01T00:00:00Z\s+\(none\)\s+\(none\)$`, lines[1])
	lines = strings.Split(strings.TrimSpace(mustRun(t, "peer", "list", "--config", b.policy)), "\n")
	require.Len(t, lines, 2)
	assert.Regexp(t, `^op-a\s+-\s+dial\s+tls://`+leafAddr+` as peer-op-b\s+`+pubA[:8]+`\.\.\.\S+\s+2099-01-01T00:00:00Z\s+\(none\)\s+\(none\)$`, lines[1])

	// op-a's listener asks for a client certificate: op-b adds its own,
	// and the derived NATS servers link up.
	cert, key := ca.Issue(t, "op-b")
	policyB := readFile(t, b.policy)
	require.Contains(t, policyB, "        ca: op-a-ca.pem\n")
	policyB = strings.Replace(policyB, "        ca: op-a-ca.pem\n", "        ca: op-a-ca.pem\n        cert: "+cert+"\n        key: "+key+"\n", 1)
	require.NoError(t, os.WriteFile(b.policy, []byte(policyB), 0o600))
	sa, sb := serveFrom(t, a.policy), serveFrom(t, b.policy)
	natstest.WaitFor(t, 10*time.Second, func() error {
		if sa.NumLeafNodes() != 1 || sb.NumLeafNodes() != 1 {
			return fmt.Errorf("leaf link not up: op-a %d, op-b %d", sa.NumLeafNodes(), sb.NumLeafNodes())
		}
		return nil
	})
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// serveFrom runs a bare NATS server from the configuration derived from
// the policy at path.
func serveFrom(t *testing.T, path string) *server.Server {
	t.Helper()
	cfg, err := config.Load(path)
	require.NoError(t, err)
	sec, err := natsconf.NewSecrets(cfg)
	require.NoError(t, err)
	opts := &server.Options{}
	require.NoError(t, opts.ProcessConfigString(natsconf.Generate(cfg, sec)))
	return natstest.StartServer(t, opts)
}

func TestKeysInitRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runCmd("keys", "init", "--dir", dir)
	require.Equal(t, exitOK, code, stderr)
	assert.Contains(t, stderr, "wrote "+filepath.Join(dir, "signing.nk"))
	first := readFile(t, filepath.Join(dir, "signing.nk"))
	code, _, stderr = runCmd("keys", "init", "--dir", dir)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "the file exists; anfed never overwrites a key")
	assert.Equal(t, first, readFile(t, filepath.Join(dir, "signing.nk")))
	assert.True(t, origin.ValidPublicKey(strings.TrimSpace(stdout)))

	code, _, stderr = runCmd("keys", "init")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, "want --dir DIR")
	code, _, stderr = runCmd("keys", "renew")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr, `unknown command "renew"`)
}

func TestKeysShowWithoutKey(t *testing.T) {
	o := newOperator(t, "op-a", "")
	code, _, stderr := runCmd("keys", "show", "--config", o.policy)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "read signing key")
}

func TestPeerCommandsRefuse(t *testing.T) {
	setup := func(t *testing.T) (a, b operatorDir, bundle string) {
		a = newOperator(t, "op-a", "nats:\n  leafnodes: {listen: \"127.0.0.1:7422\"}")
		b = newOperator(t, "op-b", "nats:\n  leafnodes: {listen: \"127.0.0.1:7423\"}")
		mustRun(t, "keys", "init", "--dir", filepath.Join(a.dir, "keys"))
		mustRun(t, "keys", "init", "--dir", filepath.Join(b.dir, "keys"))
		bundle = filepath.Join(a.dir, "op-b.peering.yaml")
		mustRun(t, "peer", "invite", "--config", a.policy, "--out", bundle, "op-b")
		return a, b, bundle
	}
	t.Run("invite an existing peer", func(t *testing.T) {
		a, _, _ := setup(t)
		before := readFile(t, a.policy)
		other := filepath.Join(a.dir, "again.yaml")
		code, _, stderr := runCmd("peer", "invite", "--config", a.policy, "--out", other, "op-b")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "already a peer")
		assert.NoFileExists(t, other)
		assert.Equal(t, before, readFile(t, a.policy))
	})
	t.Run("invite onto an existing bundle file", func(t *testing.T) {
		a, _, bundle := setup(t)
		before := readFile(t, a.policy)
		code, _, stderr := runCmd("peer", "invite", "--config", a.policy, "--out", bundle, "op-c")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "never overwrites a bundle")
		assert.Equal(t, before, readFile(t, a.policy), "the policy is not changed either")
	})
	t.Run("invite without a reachable address", func(t *testing.T) {
		a := newOperator(t, "op-a", "nats:\n  leafnodes:\n    listen: 0.0.0.0:7422\n    tls: {cert: c.pem, key: k.pem, ca: ca.pem}")
		code, _, stderr := runCmd("peer", "invite", "--config", a.policy, "op-b")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "--leaf-url is required")
	})
	t.Run("invite into an invalid policy", func(t *testing.T) {
		a := newOperator(t, "op-a", "nats:\n  leafnodes: {listen: \"127.0.0.1:7422\"}\n  users: [{name: x, password: short}]")
		code, _, stderr := runCmd("peer", "invite", "--config", a.policy, "op-b")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "nats.users[0].password: too short")
	})
	t.Run("bad expires", func(t *testing.T) {
		a, _, _ := setup(t)
		code, _, stderr := runCmd("peer", "invite", "--config", a.policy, "--expires", "tomorrow", "op-c")
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, stderr, "want an RFC 3339 time")
	})
	t.Run("add a bundle issued to another operator", func(t *testing.T) {
		a, _, bundle := setup(t)
		c := newOperator(t, "op-c", "")
		code, _, stderr := runCmd("peer", "add", "--config", c.policy, bundle)
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "was issued by op-a to op-b, and "+c.policy+" is the policy of op-c")
		code, _, stderr = runCmd("peer", "add", "--config", a.policy, bundle)
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "was issued by op-a to op-b")
	})
	t.Run("add twice", func(t *testing.T) {
		_, b, bundle := setup(t)
		mustRun(t, "peer", "add", "--config", b.policy, bundle)
		code, _, stderr := runCmd("peer", "add", "--config", b.policy, bundle)
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "op-a is already a peer in "+b.policy)
	})
	t.Run("add a bundle from a peer we accept", func(t *testing.T) {
		// op-b invited op-a too: op-a's bundle then only gives op-b its key.
		a, b, bundle := setup(t)
		mustRun(t, "peer", "invite", "--config", b.policy, "--leaf-url", "tls://leaf.op-b.example:7422", "--out", filepath.Join(b.dir, "x.yaml"), "op-a")
		out := mustRun(t, "peer", "add", "--config", b.policy, bundle)
		assert.Contains(t, out, "op-a already dials us (accept): pinned its signing key")
		pubA := strings.TrimSpace(mustRun(t, "keys", "show", "--config", a.policy))
		assert.Contains(t, readFile(t, b.policy), "signing_key: "+pubA)
	})
	t.Run("pin", func(t *testing.T) {
		a, b, _ := setup(t)
		pubA := strings.TrimSpace(mustRun(t, "keys", "show", "--config", a.policy))
		pubB := strings.TrimSpace(mustRun(t, "keys", "show", "--config", b.policy))
		code, _, stderr := runCmd("peer", "pin", "--config", a.policy, "op-b", "SOAIZ4ZIYFJJVRVAQJE4ECC24YPRCXQKXNCTTJ7SGL52CF2J7EOU4232UI")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "is not an operator public key")
		code, _, stderr = runCmd("peer", "pin", "--config", a.policy, "op-b", pubA)
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "this operator's own key")
		code, _, stderr = runCmd("peer", "pin", "--config", a.policy, "op-z", pubB)
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "no peer op-z")
		mustRun(t, "peer", "pin", "--config", a.policy, "op-b", pubB)
		assert.Contains(t, mustRun(t, "peer", "pin", "--config", a.policy, "op-b", pubB), "already pinned")
		other := "OD5KQILEBXWKMDICOMCTDWZSR726JIY7I5KQOGFPDF3RZZFLW3FTNU2U"
		code, _, stderr = runCmd("peer", "pin", "--config", a.policy, "op-b", other)
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "--force")
		mustRun(t, "peer", "pin", "--config", a.policy, "--force", "op-b", other)
		cfg, err := config.Load(a.policy)
		require.NoError(t, err)
		assert.Equal(t, other, cfg.Peers[0].SigningKey)
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"peer"}, {"peer", "invite"}, {"peer", "add"}, {"peer", "pin", "op-b"}, {"peer", "frob"}} {
			code, _, _ := runCmd(args...)
			assert.Equal(t, exitUsage, code, "%v", args)
		}
		code, _, stderr := runCmd("peer", "list")
		assert.Equal(t, exitFail, code)
		assert.Contains(t, stderr, "--config FILE is required")
	})
}

// The dialler keeps its key: anfed peer csr makes it and a request, the
// issuer signs the request (peer invite --csr), and the bundle carries the
// certificate only. The two nodes' NATS servers then link over mutual TLS,
// the certificate naming the dialler.
func TestPeeringWithCSR(t *testing.T) {
	a, _, _, _ := initOperator(t, "acme")
	b, _, _, _ := initOperator(t, "globex")
	pa, pb := filepath.Join(a, "policy.yaml"), filepath.Join(b, "policy.yaml")
	csr := filepath.Join(b, "globex.csr")
	out := mustRun(t, "peer", "csr", "--config", pb, "acme", "-o", csr)
	assert.Contains(t, out, "anfed peer invite --config FILE globex --csr globex.csr")
	keyFile := filepath.Join(b, "acme-client-key.pem")
	fi, err := os.Stat(keyFile)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	bundle := filepath.Join(t.TempDir(), "globex.peering.yaml")
	out = mustRun(t, "peer", "invite", "--config", pa, "globex", "--csr", csr, "--out", bundle, "--name", "Globex Transit")
	assert.Contains(t, out, "the bundle holds globex's client certificate, signed from its request")
	text := readFile(t, bundle)
	assert.Contains(t, text, "client_cert_pem:")
	assert.NotContains(t, text, "PRIVATE KEY", "the dialler's key never left it")
	assert.Contains(t, readFile(t, pa), "    name: Globex Transit\n")

	out = mustRun(t, "peer", "add", "--config", pb, bundle)
	assert.Contains(t, out, "our client certificate to "+filepath.Join(b, "acme-client.pem"))
	pub := strings.TrimSpace(mustRun(t, "keys", "show", "--config", pb))
	mustRun(t, "peer", "pin", "--config", pa, "globex", pub)
	cfg, err := config.Load(pb)
	require.NoError(t, err)
	acme, ok := cfg.Peer("acme")
	require.True(t, ok)
	assert.Equal(t, &config.TLS{CA: filepath.Join(b, "acme-ca.pem"), Cert: filepath.Join(b, "acme-client.pem"), Key: keyFile}, acme.Dial.TLS)

	sa, sb := serveFrom(t, pa), serveFrom(t, pb)
	natstest.WaitFor(t, 10*time.Second, func() error {
		if sa.NumLeafNodes() != 1 || sb.NumLeafNodes() != 1 {
			return fmt.Errorf("leaf link not up: acme %d, globex %d", sa.NumLeafNodes(), sb.NumLeafNodes())
		}
		return nil
	})

	// A request signed for someone else's key: add refuses it.
	other := filepath.Join(t.TempDir(), "other.csr")
	c, _, _, _ := initOperator(t, "initech")
	mustRun(t, "peer", "csr", "--config", filepath.Join(c, "policy.yaml"), "acme", "-o", other)
	bundle2 := filepath.Join(t.TempDir(), "wrong.peering.yaml")
	d, _, _, _ := initOperator(t, "hooli")
	mustRun(t, "peer", "invite", "--config", pa, "hooli", "--csr", other, "--out", bundle2)
	mustRun(t, "peer", "csr", "--config", filepath.Join(d, "policy.yaml"), "acme", "-o", filepath.Join(d, "hooli.csr"))
	code, _, stderr := runCmd("peer", "add", "--config", filepath.Join(d, "policy.yaml"), bundle2)
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "the key is not the certificate's")
}

// peer export and import set a peer's lists with the checks of validate:
// a class the catalog does not have is refused with its line, and the
// file stays as it was.
func TestPeerExportImport(t *testing.T) {
	a, _, _, _ := initOperator(t, "acme")
	pa := filepath.Join(a, "policy.yaml")
	bundle := filepath.Join(t.TempDir(), "b.peering.yaml")
	mustRun(t, "peer", "invite", "--config", pa, "globex", "--out", bundle)

	out := mustRun(t, "peer", "export", "--config", pa, "globex")
	assert.Equal(t, "export to globex: classes [] (nothing), services [] (nothing)\n", out)
	out = mustRun(t, "peer", "export", "--config", pa, "globex", "--classes", "congestion,fault", "--services", "vpn-*")
	assert.Contains(t, out, "export to globex: classes [congestion, fault], services [vpn-*]")
	out = mustRun(t, "peer", "import", "--config", pa, "globex", "--classes", "mitigation")
	assert.Contains(t, out, "import from globex: classes [mitigation]")
	before := readFile(t, pa)
	assert.Contains(t, before, "      classes: [congestion, fault]\n      services: [vpn-*]\n")

	code, _, stderr := runCmd("peer", "import", "--config", pa, "globex", "--classes", "mitigation,weather")
	assert.Equal(t, exitFail, code)
	assert.Regexp(t, `policy\.yaml:\d+:\d+: peers\[0\]\.import\.classes`, stderr)
	assert.Contains(t, stderr, "weather")
	assert.Equal(t, before, readFile(t, pa), "a refused edit writes nothing")

	code, _, stderr = runCmd("peer", "export", "--config", pa, "initech", "--classes", "fault")
	assert.Equal(t, exitFail, code)
	assert.Contains(t, stderr, "no peer initech in "+pa)
	code, _, _ = runCmd("peer", "import", "--config", pa, "globex", "--services", "x")
	assert.Equal(t, exitUsage, code, "import has no services list")
}
