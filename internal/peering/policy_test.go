package peering_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/peering"
)

const keyC = "ODSJJKVYMBDBJTXUEI2KWVDKP4UFOALRVP7XVPLZKNOJCEUUELYKEPXW"

const policyA = `# Operator A's policy.
operator:
  id: op-a
  name: Operator A
  signing_key_file: signing.nk   # made by anfed keys init

nats:
  leafnodes:
    listen: 127.0.0.1:7422
    # TLS comes later.

storage:
  dir: ./data
`

func writePolicy(t *testing.T, body string) string {
	path := filepath.Join(t.TempDir(), "op-a.yaml")
	require.NoError(t, os.WriteFile(path, []byte(body), 0o640))
	return path
}

func invitation(peer string) *peering.Bundle {
	return &peering.Bundle{Format: peering.Format, Issuer: "op-a", Peer: peer, LeafURL: "nats-leaf://127.0.0.1:7422",
		User: "peer-" + peer, Password: "fresh-password-for-" + peer, SigningKey: keyA}
}

func TestInviteThenPin(t *testing.T) {
	path := writePolicy(t, policyA)
	p, err := peering.OpenPolicy(path)
	require.NoError(t, err)
	assert.Equal(t, "op-a", p.OperatorID())
	require.NoError(t, p.AddInvited(invitation("op-b"), "", ""))
	pending, err := p.Save()
	require.NoError(t, err)
	assert.Equal(t, []string{"op-b"}, pending)

	data, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(data)
	for _, c := range []string{"# Operator A's policy.\n", "# made by anfed keys init", "# TLS comes later."} {
		assert.Contains(t, text, c, "the operator's comments survive")
	}
	assert.Contains(t, text, "  dir: ./data\n\npeers:\n  - id: op-b\n    name: op-b\n    # Credentials we issued to op-b (anfed peer invite, ")
	assert.Contains(t, text, "\n    accept:\n      user: peer-op-b\n      password: fresh-password-for-op-b\n")
	assert.Contains(t, text, "\n    export:\n      classes: []\n      services: []\n    import:\n      classes: []\n")
	assert.Contains(t, text, `signing_key: "" # paste the O... key from op-b`)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a policy that holds a leaf password is the owner's alone")

	// The node refuses the policy until the key is pinned...
	_, err = config.Load(path)
	require.Error(t, err)
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1)
	assert.Equal(t, "peers[0].signing_key", errs[0].Path)
	// ...but the editing tools can read it.
	p, err = peering.OpenPolicy(path)
	require.NoError(t, err)
	cfg, pending, err := p.Load()
	require.NoError(t, err)
	assert.Equal(t, []string{"op-b"}, pending)
	require.Len(t, cfg.Peers, 1)
	assert.Empty(t, cfg.Peers[0].SigningKey)
	assert.Equal(t, filepath.Join(filepath.Dir(path), "signing.nk"), cfg.Operator.SigningKeyFile)

	old, err := p.Pin("op-b", keyC)
	require.NoError(t, err)
	assert.Empty(t, old)
	pending, err = p.Save()
	require.NoError(t, err)
	assert.Empty(t, pending)
	cfg, err = config.Load(path)
	require.NoError(t, err)
	assert.Equal(t, keyC, cfg.Peers[0].SigningKey)
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "paste the O... key", "the reminder goes with the empty key")

	_, err = p.Pin("op-z", keyC)
	assert.ErrorContains(t, err, "no peer op-z in "+path)
}

func TestAddDialing(t *testing.T) {
	path := writePolicy(t, policyA)
	p, err := peering.OpenPolicy(path)
	require.NoError(t, err)
	b := invitation("op-a")
	b.Issuer, b.IssuerName, b.LeafURL, b.SigningKey = "op-c", "Operator C", "tls://leaf.op-c.example:7422", keyC
	require.NoError(t, p.AddDialing(b, config.TLS{CA: "op-c-ca.pem"}))
	_, err = p.Save()
	require.NoError(t, err)

	cfg, err := config.Load(path)
	require.NoError(t, err)
	c, ok := cfg.Peer("op-c")
	require.True(t, ok)
	assert.Equal(t, "Operator C", c.Name)
	assert.Equal(t, &config.Dial{URL: "tls://leaf.op-c.example:7422", User: "peer-op-a", Password: "fresh-password-for-op-a",
		TLS: &config.TLS{CA: filepath.Join(filepath.Dir(path), "op-c-ca.pem")}}, c.Dial)
	assert.Equal(t, keyC, c.SigningKey)

	exists, accept := p.HasPeer("op-c")
	assert.True(t, exists)
	assert.False(t, accept)
	assert.ErrorContains(t, p.AddDialing(b, config.TLS{}), "peer op-c is already in")
	assert.ErrorContains(t, p.AddInvited(invitation("op-c"), "", ""), "peer op-c is already in")
}

func TestSaveRefusesInvalidPolicy(t *testing.T) {
	path := writePolicy(t, policyA)
	p, err := peering.OpenPolicy(path)
	require.NoError(t, err)
	b := invitation("op-a")
	b.Issuer, b.LeafURL, b.SigningKey = "op-c", "tls://leaf.op-c.example:7422", keyC
	require.NoError(t, p.AddDialing(b, config.TLS{})) // a tls:// url needs a CA
	_, err = p.Save()
	var errs config.Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1)
	assert.Equal(t, "peers[0].dial.tls", errs[0].Path)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, policyA, string(data), "nothing written")
}

func TestSaveRefusesChangedFile(t *testing.T) {
	path := writePolicy(t, policyA)
	p, err := peering.OpenPolicy(path)
	require.NoError(t, err)
	require.NoError(t, p.AddInvited(invitation("op-b"), "", keyC))
	require.NoError(t, os.WriteFile(path, []byte(policyA+"# edited meanwhile\n"), 0o640))
	_, err = p.Save()
	assert.ErrorContains(t, err, "the file changed since it was read")
}

func TestOpenPolicyErrors(t *testing.T) {
	_, err := peering.OpenPolicy(writePolicy(t, "operator: [\n"))
	assert.ErrorContains(t, err, "op-a.yaml:")
	_, err = peering.OpenPolicy(writePolicy(t, "- a\n- b\n"))
	assert.ErrorContains(t, err, "want a YAML mapping")
	_, err = peering.OpenPolicy(filepath.Join(t.TempDir(), "none.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestAddToExistingPeers(t *testing.T) {
	body := policyA + "peers:\n  # op-c dials us.\n  - {id: op-c, accept: {user: peer-op-c, password: issued-to-op-c}, signing_key: " + keyC + "}\n"
	path := writePolicy(t, body)
	p, err := peering.OpenPolicy(path)
	require.NoError(t, err)
	require.NoError(t, p.AddInvited(invitation("op-b"), "", ""))
	exists, accept := p.HasPeer("op-c")
	assert.True(t, exists)
	assert.True(t, accept)
	_, err = p.Save()
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(data)
	assert.Contains(t, text, "# op-c dials us.")
	assert.Less(t, strings.Index(text, "id: op-c"), strings.Index(text, "id: op-b"), "appended after the existing peers")
}

// The peer commands change the file only where they edit it: blank lines,
// comments and their alignment stay as the operator wrote them.
func TestEditsKeepTheFileText(t *testing.T) {
	body := policyA + `
peers:
  - id: op-c                    # reaches us through op-b

    signing_key: ` + keyC + `
    accept:
      user: peer-op-c
      password: issued-to-op-c  # rotate in June
    export:
      classes: [fault]          # only faults
      services: ["vpn-*"]
    import:
      classes: []
`
	path := writePolicy(t, body)
	p, err := peering.OpenPolicy(path)
	require.NoError(t, err)
	require.NoError(t, p.AddInvited(invitation("op-b"), "", ""))
	_, err = p.Save()
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(data), body+"\n  - id: op-b\n    name: op-b\n"), "the file is the original text, a blank line, and the new peer:\n%s", data)

	p, err = peering.OpenPolicy(path)
	require.NoError(t, err)
	_, err = p.Pin("op-b", keyA)
	require.NoError(t, err)
	_, err = p.Save()
	require.NoError(t, err)
	pinned, err := os.ReadFile(path)
	require.NoError(t, err)
	before, after := strings.Split(string(data), "\n"), strings.Split(string(pinned), "\n")
	require.Len(t, after, len(before))
	var changed []string
	for i := range before {
		if before[i] != after[i] {
			changed = append(changed, after[i])
		}
	}
	assert.Equal(t, []string{"    signing_key: " + keyA}, changed, "pin changes the one line")
}

// Opened and written back without an edit, every example policy is the
// same bytes; pinning a peer's key changes that one line only.
func TestExamplePoliciesRoundTrip(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			orig, err := os.ReadFile(f)
			require.NoError(t, err)
			p, err := peering.OpenPolicy(f)
			require.NoError(t, err)
			b, err := p.Bytes()
			require.NoError(t, err)
			assert.Equal(t, string(orig), string(b))
			cfg, err := config.Parse(f, orig)
			if err != nil || len(cfg.Peers) == 0 {
				return
			}
			id := cfg.Peers[len(cfg.Peers)-1].ID
			_, err = p.Pin(id, keyC)
			require.NoError(t, err)
			b, err = p.Bytes()
			require.NoError(t, err)
			before, after := strings.Split(string(orig), "\n"), strings.Split(string(b), "\n")
			require.Len(t, after, len(before))
			changed := 0
			for i := range before {
				if before[i] != after[i] {
					changed++
					assert.Contains(t, after[i], "signing_key: "+keyC)
				}
			}
			assert.Equal(t, 1, changed)
		})
	}
}
