package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// y drops the newline after the opening backquote, so that line 1 of the
// YAML is the line below it.
func y(s string) string { return strings.TrimPrefix(s, "\n") }

// Operators' public signing keys. Test YAML writes them as $B, $C, $D, $E,
// which keys() replaces, so that the columns of the YAML stay readable.
const (
	keyB = "OD5KQILEBXWKMDICOMCTDWZSR726JIY7I5KQOGFPDF3RZZFLW3FTNU2U"
	keyC = "ODSJJKVYMBDBJTXUEI2KWVDKP4UFOALRVP7XVPLZKNOJCEUUELYKEPXW"
	keyD = "OAUS5S5CV2CMAX24TAG6MUHUFKGO4RSSUFLSKCCC6ZWHQDP6BNKS3OAP"
	keyE = "OAVWARQKMDOHJFLLR3E364JS6YDUCYFMCITHAFALREOUF5SAB75VW57Q"
)

var keys = strings.NewReplacer("$B", keyB, "$C", keyC, "$D", keyD, "$E", keyE).Replace

var validYAML = keys(y(`
operator:
  id: op-a
  name: Operator A
  signing_key_file: keys/signing.nk
nats:
  leafnodes:
    listen: 0.0.0.0:7422
    tls:
      cert: tls/leaf.pem
      key: tls/leaf-key.pem
      ca: /etc/anfed/peers-ca.pem
  users:
    - name: assurance
      password: assurance-secret
storage:
  dir: ./data/op-a
peers:
  - id: op-b
    accept:
      user: peer-op-b
      password: issued-to-op-b
    export:
      classes: [congestion, fault]
      services: ["enterprise-*"]
    import:
      classes: ["*"]
    signing_key: $B
    expires: 2099-01-01T00:00:00Z
  - id: op-c
    dial:
      url: tls://leaf.op-c.example:7422
      user: peer-op-a
      password: issued-by-op-c
      tls:
        ca: op-c-ca.pem
        cert: tls/client.pem
        key: tls/client-key.pem
    export:
      classes: ["*"]
      transit: true
    import:
      classes: [fault]
      transit: true
    signing_key: $C
origins:
  - id: op-d
    signing_key: $D
`))

func TestLoadValid(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "op-a.yaml")
	require.NoError(t, os.WriteFile(file, []byte(validYAML), 0o600))

	cfg, err := Load(file)
	require.NoError(t, err)

	assert.Equal(t, file, cfg.File)
	assert.Equal(t, Operator{ID: "op-a", Name: "Operator A", SigningKeyFile: filepath.Join(dir, "keys", "signing.nk")}, cfg.Operator,
		"signing_key_file resolved against the config file")
	assert.Equal(t, "127.0.0.1:4222", cfg.NATS.Client.Listen, "client listener defaults when the client key is absent")
	require.NotNil(t, cfg.NATS.LeafNodes)
	assert.Equal(t, "0.0.0.0:7422", cfg.NATS.LeafNodes.Listen)
	assert.Equal(t, &TLS{
		Cert: filepath.Join(dir, "tls", "leaf.pem"),
		Key:  filepath.Join(dir, "tls", "leaf-key.pem"),
		CA:   "/etc/anfed/peers-ca.pem",
	}, cfg.NATS.LeafNodes.TLS, "TLS files resolved against the config file; absolute ones kept")
	assert.Equal(t, []User{{Name: "assurance", Password: "assurance-secret"}}, cfg.NATS.Users)
	assert.Equal(t, Storage{
		Dir:             filepath.Join(dir, "data", "op-a"),
		MaxAge:          Duration(72 * time.Hour),
		MaxBytes:        1 << 30,
		DuplicateWindow: Duration(2 * time.Minute),
	}, cfg.Storage)

	b, ok := cfg.Peer("op-b")
	require.True(t, ok)
	assert.Equal(t, &Accept{User: "peer-op-b", Password: "issued-to-op-b"}, b.Accept)
	assert.Nil(t, b.Dial)
	assert.Equal(t, ExportPolicy{Classes: []string{"congestion", "fault"}, Services: []string{"enterprise-*"}}, b.Export)
	assert.Equal(t, []string{"*"}, b.Import.Classes)
	assert.Equal(t, keyB, b.SigningKey)
	require.NotNil(t, b.Expires)
	assert.True(t, b.Expires.Equal(time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)), "%v", b.Expires)

	c, ok := cfg.Peer("op-c")
	require.True(t, ok)
	assert.Equal(t, &Dial{URL: "tls://leaf.op-c.example:7422", User: "peer-op-a", Password: "issued-by-op-c", TLS: &TLS{
		CA:   filepath.Join(dir, "op-c-ca.pem"),
		Cert: filepath.Join(dir, "tls", "client.pem"),
		Key:  filepath.Join(dir, "tls", "client-key.pem"),
	}}, c.Dial)
	assert.True(t, c.Export.Transit)
	assert.Equal(t, keyC, c.SigningKey)
	assert.Nil(t, c.Expires)
	assert.Same(t, &cfg.Peers[1], c, "Peer returns the config's own peer")
	assert.Equal(t, []Origin{{ID: "op-d", SigningKey: keyD}}, cfg.Origins)

	_, ok = cfg.Peer("op-z")
	assert.False(t, ok)
	assert.Empty(t, cfg.Warnings())
	assert.NoError(t, cfg.Validate())
}

func TestLoadExample(t *testing.T) {
	cfg, err := Load(filepath.Join("testdata", "op-a.yaml"))
	require.NoError(t, err)

	assert.Equal(t, "op-a", cfg.Operator.ID)
	abs, err := filepath.Abs(filepath.Join("testdata", "data", "op-a"))
	require.NoError(t, err)
	assert.Equal(t, abs, cfg.Storage.Dir)
	b, ok := cfg.Peer("op-b")
	require.True(t, ok)
	assert.NotNil(t, b.Accept)
	c, ok := cfg.Peer("op-c")
	require.True(t, ok)
	assert.NotNil(t, c.Dial)
	assert.NotNil(t, c.Dial.TLS)
	assert.Empty(t, cfg.Warnings())
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// errorCases each hold exactly one problem. Lines count from 1 at the first
// line of the YAML.
var errorCases = []struct {
	name string
	yaml string
	line int
	path string
	msg  string
	hint string
}{
	{
		name: "operator id missing",
		yaml: y(`
operator:
  name: Operator A
storage: {dir: ./data}
`),
		line: 2, path: "operator.id", msg: "required", hint: "^[a-z][a-z0-9-]{0,31}$",
	},
	{
		name: "operator id invalid",
		yaml: y(`
operator:
  id: Op_A
storage: {dir: ./data}
`),
		line: 2, path: "operator.id", msg: `invalid id "Op_A"`, hint: "a lowercase letter",
	},
	{
		name: "storage dir missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage:
  max_age: 24h
`),
		line: 3, path: "storage.dir", msg: "required", hint: "a directory for JetStream files, e.g. ./data/<id>",
	},
	{
		name: "storage absent",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
`),
		line: 1, path: "storage.dir", msg: "required", hint: "a directory for JetStream files",
	},
	{
		name: "duration in days",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage:
  dir: ./data
  max_age: 3 days
`),
		line: 4, path: "storage.max_age", msg: `invalid duration "3 days"`, hint: `3 days is "72h"`,
	},
	{
		name: "zero size",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage:
  dir: ./data
  max_bytes: 0
`),
		line: 4, path: "storage.max_bytes", msg: "must be greater than zero", hint: "default, 1GiB",
	},
	{
		name: "negative duration",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage:
  dir: ./data
  duplicate_window: -1m
`),
		line: 4, path: "storage.duplicate_window", msg: "must be greater than zero", hint: "default, 2m",
	},
	{
		name: "unknown size unit",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage:
  dir: ./data
  max_bytes: 10 parsecs
`),
		line: 4, path: "storage.max_bytes", msg: `invalid size "10 parsecs"`, hint: "KiB, MiB, GiB, TiB",
	},
	{
		name: "duplicate window longer than max age",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage:
  dir: ./data
  max_age: 1h
  duplicate_window: 2h
`),
		line: 5, path: "storage.duplicate_window", msg: "2h is longer than max_age (1h)", hint: "shorten duplicate_window",
	},
	{
		name: "client listen without port",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  client:
    listen: localhost
`),
		line: 5, path: "nats.client.listen", msg: `invalid address "localhost"`, hint: "host:port",
	},
	{
		name: "leaf listen port out of range",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  leafnodes:
    listen: 0.0.0.0:70000
`),
		line: 5, path: "nats.leafnodes.listen", msg: `invalid port "70000"`, hint: "port 0 picks a free port",
	},
	{
		name: "leafnodes without listen",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  leafnodes: {}
`),
		line: 4, path: "nats.leafnodes.listen", msg: "required", hint: "remove nats.leafnodes",
	},
	{
		name: "user name missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  users:
    - password: long-enough
`),
		line: 5, path: "nats.users[0].name", msg: "required", hint: "needs a name",
	},
	{
		name: "user name repeated",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  users:
    - {name: ops, password: long-enough}
    - {name: ops, password: long-enough}
`),
		line: 6, path: "nats.users[1].name", msg: `duplicate user "ops"`, hint: "its own name",
	},
	{
		name: "user password short",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  users:
    - name: ops
      password: short
`),
		line: 6, path: "nats.users[0].password", msg: "too short", hint: "at least 8 characters",
	},
	{
		name: "user password empty",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  users:
    - name: ops
      password: ""
`),
		line: 6, path: "nats.users[0].password", msg: "required", hint: "at least 8 characters",
	},
	{
		name: "peer id missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
`),
		line: 4, path: "peers[0].id", msg: "required", hint: "^[a-z][a-z0-9-]{0,31}$",
	},
	{
		name: "dial url and urls both",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: "nats-leaf://b.example:7422"
      urls: ["nats-leaf://b1.example:7422", "nats-leaf://b2.example:7422"]
      user: u
      password: p
    signing_key: $B
`),
		line: 7, path: "peers[0].dial.urls", msg: "both url and urls are set", hint: "keep url for one address",
	},
	{
		name: "dial urls entry without port",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      urls: ["nats-leaf://b1.example:7422", "nats-leaf://b2.example"]
      user: u
      password: p
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.urls[1]", msg: "needs host:port", hint: "",
	},
	{
		name: "min severity out of range",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      min_severity: 30
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.min_severity", msg: "30 is not a severity number", hint: "from 1 to 24",
	},
	{
		name: "unknown role",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    role: custmer
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 5, path: "peers[0].role", msg: `unknown role "custmer"`, hint: `did you mean "customer"?`,
	},
	{
		name: "transit_from without transit",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      transit_from: [peer]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.transit_from", msg: "transit_from without transit", hint: "set export.transit: true",
	},
	{
		name: "transit_from unknown",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      transit: true
      transit_from: [customer, op-z]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.transit_from[1]", msg: `"op-z" is neither a role nor another peer`, hint: "a role (customer, peer, provider) or the id of another peer",
	},
	{
		name: "transit_from the peer itself",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      transit: true
      transit_from: [op-b]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.transit_from[0]", msg: `"op-b" is this peer itself`, hint: "never go back to it",
	},
	{
		name: "invalid export tag",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      tags:
        add: [no-export, "Op-A:Gold"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.tags.add[1]", msg: `invalid tag "Op-A:Gold"`, hint: "a tag, like a BGP community, is 1 to 64 characters",
	},
	{
		name: "import tag denied and required",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      tags:
        deny: [op-b:test]
        require:
          - op-b:gold
          - op-b:test
    signing_key: $B
`),
		line: 13, path: "peers[0].import.tags.require[1]", msg: `"op-b:test" is also in deny`, hint: "both denied and required",
	},
	{
		name: "export tag twice",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      tags: {match: [gold, gold]}
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.tags.match[1]", msg: `"gold" is also match[0]`, hint: "list each tag once",
	},
	{
		name: "unknown tags key",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      tags: {deny: [gold]}
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.tags.deny", msg: `unknown key "deny"`, hint: "match, remove, add",
	},
	{
		name: "export filter syntax error",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      filter: "severitynumber >= 17 AND"
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.filter", msg: "syntax error at column", hint: "a CloudEvents SQL (CESQL v1) condition",
	},
	{
		name: "import filter unknown function",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      filter: STARTSWITH(subject, 'vpn') = TRUE
    signing_key: $B
`),
		line: 9, path: "peers[0].import.filter", msg: "missing function error: STARTSWITH", hint: "LIKE",
	},
	{
		name: "export filter not a condition",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      filter: subject
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.filter", msg: "not a condition", hint: "CESQL",
	},
	{
		name: "export filter empty",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      filter: ""
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.filter", msg: "empty expression", hint: "CESQL",
	},
	{
		name: "unknown delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: best-effort
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.delivery", msg: `unknown delivery "best-effort"`, hint: `"durable" (the default`,
	},
	{
		name: "zero buffer bound",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      buffer:
        max_age: 0s
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.buffer.max_age", msg: "must be greater than zero", hint: "store's limits only",
	},
	{
		name: "bad buffer size",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      buffer: {max_bytes: lots}
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.buffer.max_bytes", msg: `invalid size "lots"`, hint: "KiB, MiB, GiB, TiB",
	},
	{
		name: "redact outside data",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      redact: ["/customer/name"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.redact[0]", msg: `"/customer/name" does not point into /data/`, hint: "RFC 6901",
	},
	{
		name: "redact all of data",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      redact: ["/data/"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.redact[0]", msg: `"/data/" does not point into /data/`, hint: "RFC 6901",
	},
	{
		name: "redact bad escape",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      redact: ["/data/a~2b"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.redact[0]", msg: `"/data/a~2b": "~" must be followed by 0 or 1`, hint: "RFC 6901",
	},
	{
		name: "redact twice",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      redact: ["/data/a", "/data/a"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.redact[1]", msg: `"/data/a" is also redact[0]`, hint: "list each pointer once",
	},
	{
		name: "redact with transit",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      transit: true
      redact: ["/data/a"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.redact", msg: "redact with transit: relayed signals cannot be redacted", hint: "only its origin can redact it",
	},
	{
		name: "redact with lossy delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: lossy
      redact: ["/data/a"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.redact", msg: "redact with delivery: lossy", hint: "use delivery: durable",
	},
	{
		name: "redact with stream delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: stream
      redact: ["/data/a"]
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.redact", msg: "redact with delivery: stream", hint: "use delivery: durable",
	},
	{
		name: "buffer with stream delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: stream
      buffer: {max_age: 1h}
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.buffer", msg: "not with delivery: stream", hint: "nothing waits for a peer with stream delivery",
	},
	{
		name: "export pacing with stream delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: stream
      max_rate: 50
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.max_rate", msg: "not with delivery: stream", hint: "nothing waits with stream delivery",
	},
	{
		name: "zero export rate",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      max_rate: 0
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.max_rate", msg: "must be greater than zero", hint: "signals per second",
	},
	{
		name: "negative export rate",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      max_rate: -5
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.max_rate", msg: "must be greater than zero", hint: "signals per second",
	},
	{
		name: "zero export burst",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      max_rate: 10
      max_burst: 0
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 9, path: "peers[0].export.max_burst", msg: "must be greater than zero", hint: "one second's worth",
	},
	{
		name: "export burst without rate",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      max_burst: 10
    import: {classes: ["*"]}
    signing_key: $B
`),
		line: 8, path: "peers[0].export.max_burst", msg: "max_burst without max_rate", hint: "set max_rate too",
	},
	{
		name: "zero max conditions",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 0}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.max_conditions.limit", msg: "must be greater than zero", hint: "maximum-prefix",
	},
	{
		name: "max conditions warn_at over 100%",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 100, warn_at: 120%}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.max_conditions.warn_at", msg: `invalid percentage "120%"`, hint: "a percentage of limit",
	},
	{
		name: "max conditions warn_at over limit",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 100, warn_at: 200}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.max_conditions.warn_at", msg: "200 is not between 1 and limit (100)", hint: "a count below limit",
	},
	{
		name: "zero max conditions idle",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 100, idle: 0s}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.max_conditions.idle", msg: "must be greater than zero", hint: "leave it out not to idle",
	},
	{
		name: "max conditions warn_at not a number",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 100, warn_at: soon}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.max_conditions.warn_at", msg: `invalid threshold "soon"`, hint: "a percentage of limit",
	},
	{
		name: "dampening reuse above suppress",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {suppress: 1000, reuse: 1500}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.reuse", msg: "reuse 1500 is not below suppress 1000", hint: "reuse must be below suppress",
	},
	{
		name: "dampening reuse above default suppress",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {reuse: 3000}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.reuse", msg: "reuse 3000 is not below suppress 2000", hint: "reuse must be below suppress",
	},
	{
		name: "dampening zero half-life",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {half_life: 0s}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.half_life", msg: "must be a number greater than zero", hint: "how long the penalty takes to halve",
	},
	{
		name: "dampening negative penalty",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {penalty: -5}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.penalty", msg: "must be a number greater than zero", hint: "what each state change",
	},
	{
		name: "dampening max_suppress below half_life",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {half_life: 30m, max_suppress: 10m}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.max_suppress", msg: "max_suppress 10m0s is shorter than half_life 30m0s", hint: "at least half_life",
	},
	{
		name: "dampening suppress out of reach",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {half_life: 15m, max_suppress: 15m, reuse: 750, suppress: 1600}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.suppress", msg: "suppress 1600 can never be reached", hint: "reuse×2^(max_suppress/half_life) = 1500",
	},
	{
		name: "dampening zero max_entries",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: ["*"]}
    import:
      classes: ["*"]
      dampening: {max_entries: 0}
    signing_key: $B
`),
		line: 9, path: "peers[0].import.dampening.max_entries", msg: "must be greater than zero", hint: "max_entries: 10000",
	},
	{
		name: "peer id invalid",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op_b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
`),
		line: 4, path: "peers[0].id", msg: `invalid id "op_b"`, hint: "^[a-z][a-z0-9-]{0,31}$",
	},
	{
		name: "peer id repeated",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $B}
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $C}
`),
		line: 5, path: "peers[1].id", msg: `duplicate peer "op-b" (also peers[0])`, hint: "each peer once",
	},
	{
		name: "peer is ourselves",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - {id: op-a, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $B}
`),
		line: 4, path: "peers[0].id", msg: "own operator id", hint: "operator.id names this node",
	},
	{
		name: "peer with accept and dial",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats: {leafnodes: {listen: "127.0.0.1:7422"}}
peers:
  - id: op-b
    accept: {user: peer-op-b, password: long-enough}
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
`),
		line: 5, path: "peers[0]", msg: "both accept and dial", hint: "accept: the peer dials our leafnodes listener; dial: we dial the peer",
	},
	{
		name: "peer without accept or dial",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    signing_key: $B
`),
		line: 4, path: "peers[0]", msg: "needs accept or dial", hint: "accept: the peer dials our leafnodes listener",
	},
	{
		name: "accept without leafnodes",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    accept:
      user: peer-op-b
      password: long-enough
    signing_key: $B
`),
		line: 6, path: "peers[0].accept", msg: "nats.leafnodes is not set", hint: "add nats.leafnodes",
	},
	{
		name: "accept user missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats: {leafnodes: {listen: "127.0.0.1:7422"}}
peers:
  - id: op-b
    accept:
      password: long-enough
    signing_key: $B
`),
		line: 7, path: "peers[0].accept.user", msg: "required", hint: "issue to the peer",
	},
	{
		name: "accept password short",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats: {leafnodes: {listen: "127.0.0.1:7422"}}
peers:
  - id: op-b
    accept:
      user: peer-op-b
      password: 1234567
    signing_key: $B
`),
		line: 8, path: "peers[0].accept.password", msg: "too short", hint: "at least 8 characters",
	},
	{
		name: "accept user shared by two peers",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats: {leafnodes: {listen: "127.0.0.1:7422"}}
peers:
  - {id: op-b, accept: {user: peer, password: long-enough}, signing_key: $B}
  - {id: op-c, accept: {user: peer, password: long-enough}, signing_key: $C}
`),
		line: 6, path: "peers[1].accept.user", msg: `user "peer" is also accepted for peers[0]`, hint: "its own user",
	},
	{
		name: "accept user is a local user",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
nats:
  leafnodes: {listen: "127.0.0.1:7422"}
  users: [{name: ops, password: long-enough}]
peers:
  - {id: op-b, accept: {user: ops, password: long-enough}, signing_key: $B}
`),
		line: 7, path: "peers[0].accept.user", msg: `user "ops" is also a local user`, hint: "distinct from nats.users",
	},
	{
		name: "dial url missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      user: u
      password: p
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.url", msg: "required", hint: "nats-leaf://host:port",
	},
	{
		name: "dial url scheme",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: https://b.example:7422
      user: u
      password: p
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.url", msg: `unsupported scheme "https"`, hint: "nats-leaf://host:port",
	},
	{
		name: "dial url without port",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: tls://b.example
      user: u
      password: p
      tls: {ca: ca.pem}
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.url", msg: "needs host:port", hint: "tls://host:port",
	},
	{
		name: "dial user missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: nats-leaf://b.example:7422
      password: p
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.user", msg: "required", hint: "op-b issued to us",
	},
	{
		name: "dial password missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: nats-leaf://b.example:7422
      user: u
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.password", msg: "required", hint: "op-b issued to us",
	},
	{
		name: "export class unknown",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes:
        - fault
        - congestoin
    signing_key: $B
`),
		line: 9, path: "peers[0].export.classes[1]", msg: `unknown class "congestoin"`,
		hint: `did you mean "congestion"? known classes: performance-deviation, congestion, fault,`,
	},
	{
		name: "may_originate class unknown",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    may_originate: {classes: [fault, faults], services: [vpn-*]}
    signing_key: $B
`),
		line: 6, path: "peers[0].may_originate.classes[1]", msg: `unknown class "faults"`, hint: `did you mean "fault"?`,
	},
	{
		name: "may_originate service pattern invalid",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
    import: {classes: ["*"], transit: true}
origins:
  - id: op-d
    signing_key: $C
    may_originate:
      classes: ["*"]
      services: ["vpn-[a"]
`),
		line: 13, path: "origins[0].may_originate.services[0]", msg: `invalid pattern "vpn-[a"`, hint: "path.Match glob",
	},
	{
		name: "import class unknown",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    import:
      classes: [weather]
    signing_key: $B
`),
		line: 7, path: "peers[0].import.classes[0]", msg: `unknown class "weather"`, hint: `known classes: performance-deviation`,
	},
	{
		name: "class repeated",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes:
        - fault
        - fault
    signing_key: $B
`),
		line: 9, path: "peers[0].export.classes[1]", msg: `duplicate class "fault"`, hint: "each class once",
	},
	{
		name: "service pattern malformed",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      services:
        - "roaming-[eu"
    signing_key: $B
`),
		line: 8, path: "peers[0].export.services[0]", msg: `invalid pattern "roaming-[eu"`, hint: "path.Match glob",
	},
	{
		name: "service pattern empty",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      services: ["enterprise-*", ""]
    signing_key: $B
`),
		line: 7, path: "peers[0].export.services[1]", msg: "empty pattern", hint: "path.Match glob",
	},
	{
		name: "signing key file missing with peers",
		yaml: y(`
operator:
  id: op-a
storage: {dir: ./data}
peers:
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $B}
`),
		line: 2, path: "operator.signing_key_file", msg: "required", hint: "anfed keys init --dir DIR",
	},
	{
		name: "peer signing key missing",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
`),
		line: 4, path: "peers[0].signing_key", msg: "required", hint: "the O... key in the bundle",
	},
	{
		name: "peer signing key invalid",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: UD5KQILEBXWKMDICOMCTDWZSR726JIY7I5KQOGFPDF3RZZFLW3FTNU2U
`),
		line: 6, path: "peers[0].signing_key", msg: `invalid signing key "UD5K`, hint: "the O... key in the bundle",
	},
	{
		name: "peer signing key is a seed",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: SOAIZ4ZIYFJJVRVAQJE4ECC24YPRCXQKXNCTTJ7SGL52CF2J7EOU4232UI
`),
		line: 6, path: "peers[0].signing_key", msg: "want an operator public NKey", hint: "public signing key",
	},
	{
		name: "same signing key for two operators",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $B}
origins:
  - id: op-c
    signing_key: $B
`),
		line: 7, path: "origins[0].signing_key", msg: "the same key is pinned at peers[0].signing_key", hint: "its own key",
	},
	{
		name: "expires not a time",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
    expires: next year
`),
		line: 7, path: "peers[0].expires", msg: `invalid time "next year"`, hint: "2027-01-01T00:00:00Z",
	},
	{
		name: "expires a date without time",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
    expires: 2027-01-01
`),
		line: 7, path: "peers[0].expires", msg: `invalid time "2027-01-01"`, hint: "RFC 3339",
	},
	{
		name: "origin id invalid",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
origins:
  - id: Op-D
    signing_key: $D
`),
		line: 4, path: "origins[0].id", msg: `invalid id "Op-D"`, hint: "a lowercase letter",
	},
	{
		name: "origin repeated",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
origins:
  - {id: op-d, signing_key: $D}
  - {id: op-d, signing_key: $E}
`),
		line: 5, path: "origins[1].id", msg: `duplicate origin "op-d" (also origins[0])`, hint: "each origin once",
	},
	{
		name: "origin is a peer",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $B}
origins:
  - {id: op-b, signing_key: $C}
`),
		line: 6, path: "origins[0].id", msg: `"op-b" is a peer`, hint: "peers[0].signing_key",
	},
	{
		name: "origin is ourselves",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
origins:
  - {id: op-a, signing_key: $D}
`),
		line: 4, path: "origins[0].id", msg: "own operator id", hint: "other operators",
	},
	{
		name: "origin key missing",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
origins:
  - id: op-d
`),
		line: 4, path: "origins[0].signing_key", msg: "required", hint: "anfed keys show",
	},
	{
		name: "origin key invalid",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
origins:
  - id: op-d
    signing_key: not-a-key
`),
		line: 5, path: "origins[0].signing_key", msg: `invalid signing key "not-a-key"`, hint: "anfed keys show",
	},
	{
		name: "client tls",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  client:
    listen: 127.0.0.1:4222
    tls: {cert: c.pem, key: k.pem}
`),
		line: 6, path: "nats.client.tls", msg: "not supported", hint: "loopback",
	},
	{
		name: "leaf listener on every interface without tls",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes:
    listen: 0.0.0.0:7422
`),
		line: 5, path: "nats.leafnodes.tls", msg: "required: the leaf listener 0.0.0.0:7422 is not on a loopback address",
		hint: "peers' links cross administrative boundaries: configure nats.leafnodes.tls",
	},
	{
		name: "leaf listener on every interface, short form, without tls",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes: {listen: ":7422"}
`),
		line: 4, path: "nats.leafnodes.tls", msg: "not on a loopback address", hint: "configure nats.leafnodes.tls",
	},
	{
		name: "leaf tls without cert",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes:
    listen: 0.0.0.0:7422
    tls:
      key: leaf-key.pem
      ca: peers-ca.pem
`),
		line: 7, path: "nats.leafnodes.tls.cert", msg: "required", hint: "certificate our leaf listener presents",
	},
	{
		name: "leaf tls without key",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes:
    listen: 0.0.0.0:7422
    tls:
      cert: leaf.pem
      ca: peers-ca.pem
`),
		line: 7, path: "nats.leafnodes.tls.key", msg: "required", hint: "private key of tls.cert",
	},
	{
		name: "tls url without dial tls",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: tls://b.example:7422
      user: u
      password: p
    signing_key: $B
`),
		line: 6, path: "peers[0].dial.tls", msg: "required for the tls:// url", hint: "the CA certificate that verifies op-b's leaf listener",
	},
	{
		name: "dial tls without ca",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: tls://b.example:7422
      user: u
      password: p
      tls:
        cert: client.pem
        key: client-key.pem
    signing_key: $B
`),
		line: 10, path: "peers[0].dial.tls.ca", msg: "required", hint: "anfed peer add",
	},
	{
		name: "dial tls cert without key",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: nats-leaf://b.example:7422
      user: u
      password: p
      tls: {ca: b-ca.pem, cert: client.pem}
    signing_key: $B
`),
		line: 9, path: "peers[0].dial.tls.key", msg: "required with tls.cert", hint: "private key",
	},
	{
		name: "dial tls key without cert",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: nats-leaf://b.example:7422
      user: u
      password: p
      tls: {ca: b-ca.pem, key: client-key.pem}
    signing_key: $B
`),
		line: 9, path: "peers[0].dial.tls.cert", msg: "required with tls.key", hint: "client certificate",
	},
	{
		name: "unknown top-level key",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peer:
  - id: op-b
`),
		line: 3, path: "peer", msg: `unknown key "peer"`, hint: `did you mean "peers"? valid keys here: operator, nats, storage, peers`,
	},
	{
		name: "unknown peer key",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    expor:
      classes: [fault]
    signing_key: $B
`),
		line: 6, path: "peers[0].expor", msg: `unknown key "expor"`, hint: `did you mean "export"? valid keys here: id, name, accept, dial, export, import`,
	},
	{
		name: "wrong type",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      transit: maybe
    signing_key: $B
`),
		line: 7, path: "peers[0].export.transit", msg: `want true or false, got "maybe"`,
	},
	{
		name: "scalar instead of list",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    import:
      classes: fault
    signing_key: $B
`),
		line: 7, path: "peers[0].import.classes", msg: `want a list, got "fault"`, hint: "[a, b]",
	},
	{
		name: "key given twice",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
storage: {dir: ./other}
`),
		line: 3, path: "storage", msg: "given twice (first at line 2)", hint: "keep one",
	},
	{
		name: "yaml syntax",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: [dir: ./data
`),
		line: 2, msg: "YAML syntax",
	},
	{
		name: "second document",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
---
peers: []
`),
		line: 3, msg: "a second YAML document", hint: "one document",
	},
	{
		name: "empty file",
		yaml: "# nothing here\n",
		msg:  "the file is empty", hint: "operator.id and storage.dir",
	},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("op-a.yaml", []byte(keys(tc.yaml)))
			require.Error(t, err)
			assert.Nil(t, cfg)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1, "%v", err)
			e := errs[0]
			assert.Equal(t, "op-a.yaml", e.File)
			assert.Equal(t, tc.line, e.Line, "line")
			assert.Equal(t, tc.path, e.Path, "path")
			assert.Contains(t, e.Msg, tc.msg)
			assert.Contains(t, e.Hint, tc.hint)
			assert.Equal(t, e.Error(), err.Error(), "one problem prints alone")
		})
	}
}

func TestParseManyErrors(t *testing.T) {
	src := y(`
operator:
  id: Op-A
  signing_key_file: a.nk
nats:
  client: {listen: "localhost"}
  users:
    - {name: ops, password: short}
storage:
  dir: ./data
  max_age: 3 days
peers:
  - id: op-b
    accept: {user: peer-op-b, password: long-enough}
    export:
      classes: [congestoin, fault]
      transit: maybe
    imports: {}
    signing_key: nope
`)
	_, err := Parse("op-a.yaml", []byte(src))
	var errs Errors
	require.ErrorAs(t, err, &errs)

	var got []string
	for _, e := range errs {
		got = append(got, e.Path)
	}
	assert.Equal(t, []string{
		"operator.id",                // 2
		"nats.client.listen",         // 5
		"nats.users[0].password",     // 7
		"storage.max_age",            // 10
		"peers[0].accept",            // 13: no nats.leafnodes
		"peers[0].export.classes[0]", // 15
		"peers[0].export.transit",    // 16
		"peers[0].imports",           // 17
		"peers[0].signing_key",       // 18
	}, got)
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	assert.Equal(t, []int{2, 5, 7, 10, 13, 15, 16, 17, 18}, lines)

	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "9 problems in op-a.yaml:\n"), msg)
	assert.Contains(t, msg, "\nop-a.yaml:15:17: peers[0].export.classes[0]: unknown class \"congestoin\" (hint: did you mean \"congestion\"?")
	assert.Len(t, strings.Split(msg, "\n"), 10)
}

func TestParseDecodeErrorHidesSemanticOne(t *testing.T) {
	// peers[0].id fails to decode; "required" would only repeat it.
	src := keys(y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: [op-b]
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    signing_key: $B
`))
	_, err := Parse("op-a.yaml", []byte(src))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1, "%v", err)
	assert.Equal(t, "peers[0].id", errs[0].Path)
	assert.Equal(t, "want a string, got a list", errs[0].Msg)
}

func TestParseMergeKeys(t *testing.T) {
	src := keys(y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
policies:
peers:
  - &base
    id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: [fault]}
    signing_key: $B
  - <<: *base
    id: op-c
    export: {classes: [congestoin]}
    signing_key: $C
`))
	_, err := Parse("op-a.yaml", []byte(src))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 2, "%v", err)
	assert.Equal(t, "policies", errs[0].Path)
	assert.Equal(t, "peers[1].export.classes[0]", errs[1].Path)
	assert.Equal(t, 12, errs[1].Line)
}

// warningCases each hold exactly one warning and no error.
var warningCases = []struct {
	name, yaml string
	want       string // the warning as printed
}{
	{
		name: "nothing exported",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: []
    import:
      classes: ["*"]
    signing_key: $B
`),
		want: `op-a.yaml:7:16: peers[0].export.classes: empty: nothing is exported to op-b (hint: list classes, or "*" for all)`,
	},
	{
		name: "buffer with lossy delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: lossy
      buffer: {max_age: 1h}
    import: {classes: ["*"]}
    signing_key: $B
`),
		want: `op-a.yaml:9:15: peers[0].export.buffer: ignored with delivery: lossy (hint: nothing waits for a peer with lossy delivery: remove buffer, or use delivery: durable)`,
	},
	{
		name: "export pacing with lossy delivery",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      delivery: lossy
      max_rate: 50
    import: {classes: ["*"]}
    signing_key: $B
`),
		want: `op-a.yaml:9:17: peers[0].export.max_rate: ignored with delivery: lossy (hint: pacing delays signals, and nothing waits with lossy delivery: remove max_rate, or use delivery: durable)`,
	},
	{
		name: "buffer longer than the store keeps",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data, max_age: 24h}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      buffer: {max_age: 48h}
    import: {classes: ["*"]}
    signing_key: $B
`),
		want: `op-a.yaml:8:25: peers[0].export.buffer.max_age: 48h is longer than storage.max_age (24h): the store's bound applies first (hint: the store drops signals after storage.max_age, whatever the peer's buffer allows)`,
	},
	{
		name: "loopback leaf listener without tls",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes:
    listen: 127.0.0.1:7422
`),
		want: "op-a.yaml:5:5: nats.leafnodes.tls: not set: links to the listener on 127.0.0.1:7422 are not encrypted " +
			"(hint: fine on one machine; peers' links cross administrative boundaries: configure nats.leafnodes.tls with cert, key and ca)",
	},
	{
		name: "localhost leaf listener without tls",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes: {listen: "localhost:0"}
`),
		want: "op-a.yaml:4:14: nats.leafnodes.tls: not set: links to the listener on localhost:0 are not encrypted " +
			"(hint: fine on one machine; peers' links cross administrative boundaries: configure nats.leafnodes.tls with cert, key and ca)",
	},
	{
		name: "leaf tls without ca",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes:
    listen: 0.0.0.0:7422
    tls:
      cert: leaf.pem
      key: leaf-key.pem
`),
		want: "op-a.yaml:7:7: nats.leafnodes.tls: no ca: no mutual TLS, peers connect with a password alone " +
			"(hint: set ca to the CA certificate that signs the peers' client certificates)",
	},
	{
		name: "peer expired",
		yaml: y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}, signing_key: $B, export: {classes: [fault]}, import: {classes: [fault]}}
  - id: op-c
    dial: {url: "nats-leaf://c.example:7422", user: u, password: p}
    export: {classes: [fault]}
    import: {classes: [fault]}
    signing_key: $C
    expires: 2025-06-30T12:00:00+02:00
`),
		want: "op-a.yaml:10:14: peers[1].expires: op-c expired at 2025-06-30T12:00:00+02:00: its link is refused " +
			"(hint: issue new credentials with `anfed peer invite` and set a new expires, or remove the peer)",
	},
}

func TestWarnings(t *testing.T) {
	for _, tc := range warningCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse("op-a.yaml", []byte(keys(tc.yaml)))
			require.NoError(t, err)
			w := cfg.Warnings()
			require.Len(t, w, 1, "%v", w)
			assert.Equal(t, tc.want, w[0].Error())
		})
	}
}

func TestPeerNotYetExpired(t *testing.T) {
	cfg, err := Parse("op-a.yaml", []byte(keys(y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: [fault]}
    import: {classes: [fault]}
    signing_key: $B
    expires: "2999-12-31T23:59:59Z"
`))))
	require.NoError(t, err)
	assert.Empty(t, cfg.Warnings())
	require.NotNil(t, cfg.Peers[0].Expires)
	assert.Equal(t, 2999, cfg.Peers[0].Expires.Year(), "a quoted time reads too")
}

func TestLoadResolvesPaths(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "etc", "op-a.yaml")
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o700))
	src := keys(y(`
operator: {id: op-a, signing_key_file: ../keys/a.nk}
storage: {dir: /var/lib/anfed}
nats:
  leafnodes:
    listen: 127.0.0.1:7422
    tls: {cert: leaf.pem, key: /secure/leaf-key.pem, ca: ./ca/peers.pem}
peers:
  - id: op-b
    dial: {url: "tls://b.example:7422", user: u, password: p, tls: {ca: op-b-ca.pem}}
    signing_key: $B
`))
	require.NoError(t, os.WriteFile(file, []byte(src), 0o600))
	cfg, err := Load(file)
	require.NoError(t, err)
	at := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	assert.Equal(t, at("keys", "a.nk"), cfg.Operator.SigningKeyFile)
	assert.Equal(t, "/var/lib/anfed", cfg.Storage.Dir)
	assert.Equal(t, &TLS{Cert: at("etc", "leaf.pem"), Key: "/secure/leaf-key.pem", CA: at("etc", "ca", "peers.pem")}, cfg.NATS.LeafNodes.TLS)
	assert.Equal(t, &TLS{CA: at("etc", "op-b-ca.pem")}, cfg.Peers[0].Dial.TLS)
}

func TestValidate(t *testing.T) {
	valid := func() *Config {
		return &Config{
			Operator: Operator{ID: "op-a", SigningKeyFile: "/etc/anfed/signing.nk"},
			Storage:  Storage{Dir: "/var/lib/anfed"},
			Peers: []Peer{{
				ID:         "op-b",
				Dial:       &Dial{URL: "nats-leaf://b.example:7422", User: "u", Password: "p"},
				Export:     ExportPolicy{Classes: []string{"*"}},
				Import:     ImportPolicy{Classes: []string{"fault"}},
				SigningKey: keyB,
			}},
		}
	}
	t.Run("valid, zero limits take defaults", func(t *testing.T) {
		cfg := valid()
		assert.NoError(t, cfg.Validate())
		assert.Empty(t, cfg.Warnings())
	})
	t.Run("problems carry no line", func(t *testing.T) {
		cfg := valid()
		cfg.Storage.MaxAge = Duration(-time.Second)
		cfg.Peers[0].Export.Classes = []string{"congestoin"}
		cfg.Peers[0].Import.Classes = nil
		err := cfg.Validate()
		var errs Errors
		require.ErrorAs(t, err, &errs)
		require.Len(t, errs, 2)
		for _, e := range errs {
			assert.Zero(t, e.Line)
		}
		assert.Equal(t, "storage.max_age: must be greater than zero (hint: leave it out for the default, 72h)", errs[0].Error())
		assert.True(t, strings.HasPrefix(err.Error(), "2 problems:\n"), err.Error())
		w := cfg.Warnings()
		require.Len(t, w, 1)
		assert.Equal(t, "peers[0].import.classes", w[0].Path)
	})
	t.Run("duplicate window beyond default max age", func(t *testing.T) {
		cfg := valid()
		cfg.Storage.DuplicateWindow = Duration(100 * time.Hour)
		assert.ErrorContains(t, cfg.Validate(), "storage.duplicate_window: 100h is longer than max_age (72h)")
	})
	t.Run("identity", func(t *testing.T) {
		cfg := valid()
		cfg.Operator.SigningKeyFile = ""
		cfg.Peers[0].SigningKey = keyB[:40]
		cfg.Peers[0].Expires = new(time.Now().Add(-time.Minute))
		err := cfg.Validate()
		var errs Errors
		require.ErrorAs(t, err, &errs)
		require.Len(t, errs, 2, "%v", err)
		assert.Equal(t, "operator.signing_key_file", errs[0].Path)
		assert.Equal(t, "peers[0].signing_key", errs[1].Path)
		w := cfg.Warnings()
		require.Len(t, w, 1)
		assert.Contains(t, w[0].Error(), "peers[0].expires: op-b expired at ")
	})
}

func TestMarshalRoundTrip(t *testing.T) {
	cfg, err := Parse("op-a.yaml", []byte(validYAML))
	require.NoError(t, err)
	out, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	assert.Contains(t, string(out), "max_age: 72h\n")
	assert.Contains(t, string(out), "max_bytes: 1GiB\n")
	again, err := Parse("op-a.yaml", out)
	require.NoError(t, err, "%s", out)
	assert.Equal(t, cfg, again)
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
		str  string
	}{
		{"90s", Duration(90 * time.Second), "1m30s"},
		{"72h", Duration(72 * time.Hour), "72h"},
		{"2m", Duration(2 * time.Minute), "2m"},
		{"1h30m", Duration(90 * time.Minute), "1h30m"},
		{"500ms", Duration(500 * time.Millisecond), "500ms"},
		{"0", 0, "0s"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var d Duration
			require.NoError(t, yaml.Unmarshal([]byte(tc.in), &d))
			assert.Equal(t, tc.want, d)
			assert.Equal(t, tc.str, d.String())
		})
	}
	for _, in := range []string{"3 days", "3d", "90", "[1h]", "soon"} {
		t.Run(in, func(t *testing.T) {
			var d Duration
			err := yaml.Unmarshal([]byte(in), &d)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Contains(t, e.Hint, `"72h"`)
		})
	}
}

func TestByteSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
		str  string
	}{
		{"1024", 1024, "1KiB"},
		{"1000", 1000, "1KB"},
		{"1234", 1234, "1234B"},
		{"512KiB", 512 << 10, "512KiB"},
		{"64mib", 64 << 20, "64MiB"},
		{"1GiB", 1 << 30, "1GiB"},
		{"1 GiB", 1 << 30, "1GiB"},
		{"2TiB", 2 << 40, "2TiB"},
		{"1GB", 1_000_000_000, "1GB"},
		{"500mb", 500_000_000, "500MB"},
		{"10B", 10, "10B"},
		{"0", 0, "0B"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			var b ByteSize
			require.NoError(t, yaml.Unmarshal([]byte(tc.in), &b))
			assert.Equal(t, tc.want, b)
			assert.Equal(t, tc.str, b.String())
		})
	}
	for _, in := range []string{"1.5GiB", "GiB", "10 parsecs", "-1GiB", "99999999999TiB", "[1]"} {
		t.Run(in, func(t *testing.T) {
			var b ByteSize
			err := yaml.Unmarshal([]byte(in), &b)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Contains(t, e.Hint, "MiB")
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{File: "op-a.yaml", Line: 12, Column: 7, Path: "peers[1].export.classes[0]", Msg: `unknown class "congestoin"`, Hint: "did you mean \"congestion\"?"},
			`op-a.yaml:12:7: peers[1].export.classes[0]: unknown class "congestoin" (hint: did you mean "congestion"?)`},
		{Error{File: "op-a.yaml", Line: 3, Msg: "YAML syntax: bad"}, "op-a.yaml:3: YAML syntax: bad"},
		{Error{File: "op-a.yaml", Path: "operator.id", Msg: "required"}, "op-a.yaml: operator.id: required"},
		{Error{Path: "operator.id", Msg: "required"}, "operator.id: required"},
		{Error{Msg: "bad"}, "bad"},
	} {
		assert.Equal(t, tc.want, tc.err.Error())
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(validYAML))
	for _, tc := range errorCases {
		f.Add([]byte(keys(tc.yaml)))
	}
	for _, tc := range warningCases {
		f.Add([]byte(keys(tc.yaml)))
	}
	example, err := os.ReadFile(filepath.Join("testdata", "op-a.yaml"))
	require.NoError(f, err)
	f.Add(example)
	f.Add([]byte("a: &a {<<: *a}\n"))
	f.Add([]byte("peers: &p [*p]\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			assert.Nil(t, cfg)
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.NotEmpty(t, errs)
			for _, e := range errs {
				assert.NotEmpty(t, e.Msg)
				assert.GreaterOrEqual(t, e.Line, 0)
			}
			_ = err.Error()
			return
		}
		require.NotNil(t, cfg)
		assert.NoError(t, cfg.Validate(), "a loaded config validates")
		_ = cfg.Warnings()
	})
}

func TestParseSyntaxErrorLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		line       int
	}{
		{"mapping value in a scalar", "operator: {id: op-a}\nstorage: dir\n  max_age: 1h\n", 3},
		{"tab indent", "operator: {id: op-a}\nstorage:\n\tdir: ./data\n", 3},
		{"bad indent in block mapping", "operator: {id: op-a}\nstorage:\n  dir: ./data\n max_age: 1h\n", 4},
		{"bad indent at top", "peers:\n  - id: op-b\n bad: x\n", 3},
		{"unclosed flow list", "operator: {id: op-a}\npeers: [\n  {id: op-b}\nstorage: {dir: x}\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("op-a.yaml", []byte(tc.yaml))
			var errs Errors
			require.ErrorAs(t, err, &errs)
			require.Len(t, errs, 1)
			assert.Equal(t, tc.line, errs[0].Line, "%v", err)
			assert.Contains(t, errs[0].Msg, "YAML syntax")
		})
	}
}

// TestPolicyLimits: the per-peer limits parse, with their defaults.
func TestPolicyLimits(t *testing.T) {
	cfg, err := Parse("op-a.yaml", []byte(keys(y(`
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: ["*"]
      services: ["*"]
      max_rate: 50
      max_burst: 10
      redact: ["/data/customer/name", "/data/a~1b"]
    import:
      classes: ["*"]
      max_conditions: {limit: 1000, warn_at: 90%, idle: 5m}
    signing_key: $B
  - id: op-c
    dial: {url: "nats-leaf://c.example:7422", user: u, password: p}
    export: {classes: ["*"], services: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 10, warn_at: 4}
    signing_key: $C
  - id: op-d
    dial: {url: "nats-leaf://d.example:7422", user: u, password: p}
    export: {classes: ["*"], services: ["*"]}
    import:
      classes: ["*"]
      max_conditions: {limit: 7}
      dampening: {}
    signing_key: $D
  - id: op-e
    dial: {url: "nats-leaf://e.example:7422", user: u, password: p}
    export: {classes: ["*"], services: ["*"]}
    import:
      classes: ["*"]
      dampening: {half_life: 2s, reuse: 500, max_suppress: 10s, max_entries: 100}
    signing_key: $E
`))))
	require.NoError(t, err)
	require.Empty(t, cfg.Warnings())
	b := cfg.Peers[0]
	require.Equal(t, 50.0, b.Export.MaxRate)
	require.Equal(t, 10, b.Export.MaxBurst)
	require.Equal(t, []string{"/data/customer/name", "/data/a~1b"}, b.Export.Redact)
	require.Equal(t, 1000, b.Import.MaxConditions.Limit)
	require.Equal(t, 900, b.Import.MaxConditions.WarnCount())
	require.Equal(t, Duration(5*time.Minute), b.Import.MaxConditions.Idle)
	require.Equal(t, 4, cfg.Peers[1].Import.MaxConditions.WarnCount())
	require.Equal(t, 6, cfg.Peers[2].Import.MaxConditions.WarnCount()) // 80% of 7, rounded up
	require.Nil(t, b.Import.Dampening, "no block: no dampening")
	// An empty block: RFC 2439's usual values.
	require.Equal(t, Dampening{Penalty: 1000, HalfLife: Duration(15 * time.Minute), Suppress: 2000, Reuse: 750,
		MaxSuppress: Duration(time.Hour), MaxEntries: 10000}, cfg.Peers[2].Import.Dampening.WithDefaults())
	require.InDelta(t, 12000, cfg.Peers[2].Import.Dampening.WithDefaults().Ceiling(), 1e-9)
	require.Equal(t, Dampening{Penalty: 1000, HalfLife: Duration(2 * time.Second), Suppress: 2000, Reuse: 500,
		MaxSuppress: Duration(10 * time.Second), MaxEntries: 100}, cfg.Peers[3].Import.Dampening.WithDefaults())
}
