package peering_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/peering"
)

const keyA = "OD5KQILEBXWKMDICOMCTDWZSR726JIY7I5KQOGFPDF3RZZFLW3FTNU2U"

func sample(t *testing.T) *peering.Bundle {
	exp := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	return &peering.Bundle{
		Format:     peering.Format,
		Issuer:     "op-a",
		IssuerName: "Operator A",
		Peer:       "op-b",
		LeafURL:    "tls://leaf.op-a.example:7422",
		User:       "peer-op-b",
		Password:   "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl",
		SigningKey: keyA,
		CAPEM:      string(natstest.NewCA(t).PEM(t)),
		Expires:    &exp,
	}
}

func TestBundleRoundTrip(t *testing.T) {
	b := sample(t)
	path := filepath.Join(t.TempDir(), "op-b.peering.yaml")
	require.NoError(t, b.Write(path))

	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a bundle holds a password")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(data)
	assert.True(t, strings.HasPrefix(text, "# anfed peering bundle: op-a invites op-b to dial it.\n"), text)
	assert.Contains(t, text, "\nformat: anfed-peering/v1\nissuer: op-a\n")
	assert.Contains(t, text, "\nca_pem: |\n  -----BEGIN CERTIFICATE-----\n", "the CA reads as a PEM block")
	assert.Contains(t, text, "\nexpires: \"2027-01-01T00:00:00Z\"\n")

	got, err := peering.Read(path)
	require.NoError(t, err)
	assert.Equal(t, b, got)

	err = b.Write(path)
	assert.ErrorContains(t, err, "the file exists; anfed never overwrites a bundle")

	// A human may write the time without quotes.
	got, err = peering.Parse([]byte(strings.Replace(text, `expires: "2027-01-01T00:00:00Z"`, "expires: 2027-01-01T00:00:00Z", 1)))
	require.NoError(t, err)
	assert.Equal(t, b, got)
}

func TestBundleWithoutOptionalFields(t *testing.T) {
	b := sample(t)
	b.IssuerName, b.CAPEM, b.Expires = "", "", nil
	data, err := b.Marshal()
	require.NoError(t, err)
	assert.NotContains(t, string(data), "ca_pem")
	assert.NotContains(t, string(data), "expires")
	got, err := peering.Parse(data)
	require.NoError(t, err)
	assert.Equal(t, b, got)
}

func TestReadErrors(t *testing.T) {
	good, err := sample(t).Marshal()
	require.NoError(t, err)
	edit := func(old, new string) string {
		require.Contains(t, string(good), old)
		return strings.Replace(string(good), old, new, 1)
	}
	drop := func(keys ...string) string {
		var out []string
		for _, l := range strings.Split(string(good), "\n") {
			keep := true
			for _, k := range keys {
				if strings.HasPrefix(l, k+":") {
					keep = false
				}
			}
			if keep {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	for _, tc := range []struct {
		name, data, want string
	}{
		{"empty", "", "empty: not a peering bundle"},
		{"a policy file", "operator: {id: op-a}\nstorage: {dir: x}\n", `field operator not found`},
		{"not yaml", "format: [", "not a peering bundle"},
		{"wrong format", edit("format: anfed-peering/v1", "format: anfed-peering/v9"), `format "anfed-peering/v9": want "anfed-peering/v1"`},
		{"no format", drop("format"), `format "": want "anfed-peering/v1"`},
		{"missing fields", drop("user", "password", "signing_key"), "missing user, password, signing_key"},
		{"unknown field", edit("peer: op-b", "peer: op-b\nsecret: x"), "field secret not found"},
		{"invalid key", edit("signing_key: "+keyA, "signing_key: U"+keyA[1:]), `signing_key "UD5K`},
		{"seed as key", edit("signing_key: "+keyA, "signing_key: SOAIZ4ZIYFJJVRVAQJE4ECC24YPRCXQKXNCTTJ7SGL52CF2J7EOU4232UI"), "is not an operator public key"},
		{"issuer id", edit("issuer: op-a", "issuer: Op_A"), `issuer "Op_A" is not an operator id`},
		{"issued to itself", edit("peer: op-b", "peer: op-a"), `issuer and peer are both "op-a"`},
		{"short password", edit("password: Zm9vYmFyYmF6cXV4cXV1eGNvcmdl", "password: short"), "password shorter than 8"},
		{"url scheme", edit("tls://leaf.op-a.example:7422", "https://leaf.op-a.example:7422"), "want nats-leaf://host:port or tls://host:port"},
		{"url without port", edit("tls://leaf.op-a.example:7422", "tls://leaf.op-a.example"), "want host:port"},
		{"url with credentials", edit("tls://leaf.op-a.example:7422", "tls://u:p@leaf.op-a.example:7422"), "credentials belong in user and password"},
		{"ca not pem", edit("-----BEGIN CERTIFICATE-----", "-----BEGIN CERTIFICATX-----"), "ca_pem: no PEM certificate"},
		{"ca with a key", edit("ca_pem: |\n", "ca_pem: |\n  -----BEGIN PRIVATE KEY-----\n  AAAA\n  -----END PRIVATE KEY-----\n"), "ca_pem: holds a PRIVATE KEY block"},
		{"expires not a time", edit(`expires: "2027-01-01T00:00:00Z"`, "expires: soon"), `expires "soon"`},
		{"aliases", "format: &f anfed-peering/v1\nissuer: *f\n", "YAML aliases (*name) are not allowed"},
		{"two documents", string(good) + "---\nformat: x\n", "more than one YAML document"},
		{"too large", string(good) + "# " + strings.Repeat("x", 1<<20) + "\n", "over the limit of 1 MiB: file too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "b.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o600))
			b, err := peering.Read(path)
			assert.Nil(t, b)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "peering bundle "+path+": ", "errors name the file")
		})
	}
	_, err = peering.Read(filepath.Join(t.TempDir(), "missing.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestWriteRefusesBadBundle(t *testing.T) {
	b := sample(t)
	b.SigningKey = ""
	path := filepath.Join(t.TempDir(), "b.yaml")
	assert.ErrorContains(t, b.Write(path), "missing signing_key")
	assert.NoFileExists(t, path)
}

func FuzzRead(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("format: anfed-peering/v1\n"))
	f.Add([]byte("format: anfed-peering/v1\nissuer: op-a\npeer: op-b\nleaf_url: nats-leaf://h:1\nuser: u\npassword: 12345678\nsigning_key: " + keyA + "\n"))
	f.Add([]byte("a: &a [*a, *a]\n"))
	f.Add([]byte("ca_pem: |\n  -----BEGIN CERTIFICATE-----\n  AA==\n  -----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := peering.Parse(data)
		if err != nil {
			assert.Nil(t, b)
			assert.NotEmpty(t, err.Error())
			return
		}
		require.NoError(t, b.Check(), "a parsed bundle checks")
		out, err := b.Marshal()
		require.NoError(t, err)
		again, err := peering.Parse(out)
		require.NoError(t, err, "a parsed bundle reads back:\n%s", out)
		if b.Expires != nil {
			require.NotNil(t, again.Expires)
			assert.True(t, b.Expires.Equal(*again.Expires))
			b.Expires, again.Expires = nil, nil
		}
		assert.Equal(t, b, again)
	})
}
