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

var validYAML = y(`
operator:
  id: op-a
  name: Operator A
nats:
  leafnodes:
    listen: 0.0.0.0:7422
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
  - id: op-c
    dial:
      url: nats-leaf://leaf.op-c.example:7422
      user: peer-op-a
      password: issued-by-op-c
    export:
      classes: ["*"]
      transit: true
    import:
      classes: [fault]
`)

func TestLoadValid(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "op-a.yaml")
	require.NoError(t, os.WriteFile(file, []byte(validYAML), 0o600))

	cfg, err := Load(file)
	require.NoError(t, err)

	assert.Equal(t, file, cfg.File)
	assert.Equal(t, Operator{ID: "op-a", Name: "Operator A"}, cfg.Operator)
	assert.Equal(t, "127.0.0.1:4222", cfg.NATS.Client.Listen, "client listener defaults when the client key is absent")
	require.NotNil(t, cfg.NATS.LeafNodes)
	assert.Equal(t, "0.0.0.0:7422", cfg.NATS.LeafNodes.Listen)
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

	c, ok := cfg.Peer("op-c")
	require.True(t, ok)
	assert.Equal(t, &Dial{URL: "nats-leaf://leaf.op-c.example:7422", User: "peer-op-a", Password: "issued-by-op-c"}, c.Dial)
	assert.True(t, c.Export.Transit)
	assert.Same(t, &cfg.Peers[1], c, "Peer returns the config's own peer")

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
operator: {id: op-a}
storage:
  max_age: 24h
`),
		line: 3, path: "storage.dir", msg: "required", hint: "a directory for JetStream files, e.g. ./data/<id>",
	},
	{
		name: "storage absent",
		yaml: y(`
operator: {id: op-a}
`),
		line: 1, path: "storage.dir", msg: "required", hint: "a directory for JetStream files",
	},
	{
		name: "duration in days",
		yaml: y(`
operator: {id: op-a}
storage:
  dir: ./data
  max_age: 3 days
`),
		line: 4, path: "storage.max_age", msg: `invalid duration "3 days"`, hint: `3 days is "72h"`,
	},
	{
		name: "zero size",
		yaml: y(`
operator: {id: op-a}
storage:
  dir: ./data
  max_bytes: 0
`),
		line: 4, path: "storage.max_bytes", msg: "must be greater than zero", hint: "default, 1GiB",
	},
	{
		name: "negative duration",
		yaml: y(`
operator: {id: op-a}
storage:
  dir: ./data
  duplicate_window: -1m
`),
		line: 4, path: "storage.duplicate_window", msg: "must be greater than zero", hint: "default, 2m",
	},
	{
		name: "unknown size unit",
		yaml: y(`
operator: {id: op-a}
storage:
  dir: ./data
  max_bytes: 10 parsecs
`),
		line: 4, path: "storage.max_bytes", msg: `invalid size "10 parsecs"`, hint: "KiB, MiB, GiB, TiB",
	},
	{
		name: "duplicate window longer than max age",
		yaml: y(`
operator: {id: op-a}
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
operator: {id: op-a}
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
operator: {id: op-a}
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
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes: {}
`),
		line: 4, path: "nats.leafnodes.listen", msg: "required", hint: "remove nats.leafnodes",
	},
	{
		name: "user name missing",
		yaml: y(`
operator: {id: op-a}
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
operator: {id: op-a}
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
operator: {id: op-a}
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
operator: {id: op-a}
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
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
`),
		line: 4, path: "peers[0].id", msg: "required", hint: "^[a-z][a-z0-9-]{0,31}$",
	},
	{
		name: "peer id invalid",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op_b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
`),
		line: 4, path: "peers[0].id", msg: `invalid id "op_b"`, hint: "^[a-z][a-z0-9-]{0,31}$",
	},
	{
		name: "peer id repeated",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}}
  - {id: op-b, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}}
`),
		line: 5, path: "peers[1].id", msg: `duplicate peer "op-b" (also peers[0])`, hint: "each peer once",
	},
	{
		name: "peer is ourselves",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - {id: op-a, dial: {url: "nats-leaf://b.example:7422", user: u, password: p}}
`),
		line: 4, path: "peers[0].id", msg: "own operator id", hint: "operator.id names this node",
	},
	{
		name: "peer with accept and dial",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats: {leafnodes: {listen: ":7422"}}
peers:
  - id: op-b
    accept: {user: peer-op-b, password: long-enough}
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
`),
		line: 5, path: "peers[0]", msg: "both accept and dial", hint: "accept: the peer dials our leafnodes listener; dial: we dial the peer",
	},
	{
		name: "peer without accept or dial",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
`),
		line: 4, path: "peers[0]", msg: "needs accept or dial", hint: "accept: the peer dials our leafnodes listener",
	},
	{
		name: "accept without leafnodes",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    accept:
      user: peer-op-b
      password: long-enough
`),
		line: 6, path: "peers[0].accept", msg: "nats.leafnodes is not set", hint: "add nats.leafnodes",
	},
	{
		name: "accept user missing",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats: {leafnodes: {listen: ":7422"}}
peers:
  - id: op-b
    accept:
      password: long-enough
`),
		line: 7, path: "peers[0].accept.user", msg: "required", hint: "issue to the peer",
	},
	{
		name: "accept password short",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats: {leafnodes: {listen: ":7422"}}
peers:
  - id: op-b
    accept:
      user: peer-op-b
      password: 1234567
`),
		line: 8, path: "peers[0].accept.password", msg: "too short", hint: "at least 8 characters",
	},
	{
		name: "accept user shared by two peers",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats: {leafnodes: {listen: ":7422"}}
peers:
  - {id: op-b, accept: {user: peer, password: long-enough}}
  - {id: op-c, accept: {user: peer, password: long-enough}}
`),
		line: 6, path: "peers[1].accept.user", msg: `user "peer" is also accepted for peers[0]`, hint: "its own user",
	},
	{
		name: "accept user is a local user",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
nats:
  leafnodes: {listen: ":7422"}
  users: [{name: ops, password: long-enough}]
peers:
  - {id: op-b, accept: {user: ops, password: long-enough}}
`),
		line: 7, path: "peers[0].accept.user", msg: `user "ops" is also a local user`, hint: "distinct from nats.users",
	},
	{
		name: "dial url missing",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      user: u
      password: p
`),
		line: 6, path: "peers[0].dial.url", msg: "required", hint: "nats-leaf://host:port",
	},
	{
		name: "dial url scheme",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: https://b.example:7422
      user: u
      password: p
`),
		line: 6, path: "peers[0].dial.url", msg: `unsupported scheme "https"`, hint: "nats-leaf://host:port",
	},
	{
		name: "dial url without port",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: tls://b.example
      user: u
      password: p
`),
		line: 6, path: "peers[0].dial.url", msg: "needs host:port", hint: "tls://host:port",
	},
	{
		name: "dial user missing",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: nats-leaf://b.example:7422
      password: p
`),
		line: 6, path: "peers[0].dial.user", msg: "required", hint: "op-b issued to us",
	},
	{
		name: "dial password missing",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial:
      url: nats-leaf://b.example:7422
      user: u
`),
		line: 6, path: "peers[0].dial.password", msg: "required", hint: "op-b issued to us",
	},
	{
		name: "export class unknown",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes:
        - fault
        - congestoin
`),
		line: 9, path: "peers[0].export.classes[1]", msg: `unknown class "congestoin"`,
		hint: `did you mean "congestion"? known classes: performance-deviation, congestion, fault,`,
	},
	{
		name: "import class unknown",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    import:
      classes: [weather]
`),
		line: 7, path: "peers[0].import.classes[0]", msg: `unknown class "weather"`, hint: `known classes: performance-deviation`,
	},
	{
		name: "class repeated",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes:
        - fault
        - fault
`),
		line: 9, path: "peers[0].export.classes[1]", msg: `duplicate class "fault"`, hint: "each class once",
	},
	{
		name: "service pattern malformed",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      services:
        - "roaming-[eu"
`),
		line: 8, path: "peers[0].export.services[0]", msg: `invalid pattern "roaming-[eu"`, hint: "path.Match glob",
	},
	{
		name: "service pattern empty",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      services: ["enterprise-*", ""]
`),
		line: 7, path: "peers[0].export.services[1]", msg: "empty pattern", hint: "path.Match glob",
	},
	{
		name: "unknown top-level key",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peer:
  - id: op-b
`),
		line: 3, path: "peer", msg: `unknown key "peer"`, hint: `did you mean "peers"? valid keys here: operator, nats, storage, peers`,
	},
	{
		name: "unknown peer key",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    expor:
      classes: [fault]
`),
		line: 6, path: "peers[0].expor", msg: `unknown key "expor"`, hint: `did you mean "export"? valid keys here: id, name, accept, dial, export, import`,
	},
	{
		name: "wrong type",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      transit: maybe
`),
		line: 7, path: "peers[0].export.transit", msg: `want true or false, got "maybe"`,
	},
	{
		name: "scalar instead of list",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    import:
      classes: fault
`),
		line: 7, path: "peers[0].import.classes", msg: `want a list, got "fault"`, hint: "[a, b]",
	},
	{
		name: "key given twice",
		yaml: y(`
operator: {id: op-a}
storage: {dir: ./data}
storage: {dir: ./other}
`),
		line: 3, path: "storage", msg: "given twice (first at line 2)", hint: "keep one",
	},
	{
		name: "yaml syntax",
		yaml: y(`
operator: {id: op-a}
storage: [dir: ./data
`),
		line: 2, msg: "YAML syntax",
	},
	{
		name: "second document",
		yaml: y(`
operator: {id: op-a}
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
			cfg, err := Parse("op-a.yaml", []byte(tc.yaml))
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
		"nats.client.listen",         // 4
		"nats.users[0].password",     // 6
		"storage.max_age",            // 9
		"peers[0].accept",            // 12: no nats.leafnodes
		"peers[0].export.classes[0]", // 14
		"peers[0].export.transit",    // 15
		"peers[0].imports",           // 16
	}, got)
	var lines []int
	for _, e := range errs {
		lines = append(lines, e.Line)
	}
	assert.Equal(t, []int{2, 4, 6, 9, 12, 14, 15, 16}, lines)

	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, "8 problems in op-a.yaml:\n"), msg)
	assert.Contains(t, msg, "\nop-a.yaml:14:17: peers[0].export.classes[0]: unknown class \"congestoin\" (hint: did you mean \"congestion\"?")
	assert.Len(t, strings.Split(msg, "\n"), 9)
}

func TestParseDecodeErrorHidesSemanticOne(t *testing.T) {
	// peers[0].id fails to decode; "required" would only repeat it.
	src := y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: [op-b]
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
`)
	_, err := Parse("op-a.yaml", []byte(src))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 1, "%v", err)
	assert.Equal(t, "peers[0].id", errs[0].Path)
	assert.Equal(t, "want a string, got a list", errs[0].Msg)
}

func TestParseMergeKeys(t *testing.T) {
	src := y(`
operator: {id: op-a}
storage: {dir: ./data}
policies:
peers:
  - &base
    id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export: {classes: [fault]}
  - <<: *base
    id: op-c
    export: {classes: [congestoin]}
`)
	_, err := Parse("op-a.yaml", []byte(src))
	var errs Errors
	require.ErrorAs(t, err, &errs)
	require.Len(t, errs, 2, "%v", err)
	assert.Equal(t, "policies", errs[0].Path)
	assert.Equal(t, "peers[1].export.classes[0]", errs[1].Path)
	assert.Equal(t, 11, errs[1].Line)
}

func TestWarnings(t *testing.T) {
	src := y(`
operator: {id: op-a}
storage: {dir: ./data}
peers:
  - id: op-b
    dial: {url: "nats-leaf://b.example:7422", user: u, password: p}
    export:
      classes: []
    import:
      classes: ["*"]
`)
	cfg, err := Parse("op-a.yaml", []byte(src))
	require.NoError(t, err)
	w := cfg.Warnings()
	require.Len(t, w, 1)
	assert.Equal(t, "op-a.yaml:7:16: peers[0].export.classes: empty: nothing is exported to op-b (hint: list classes, or \"*\" for all)", w[0].Error())
}

func TestValidate(t *testing.T) {
	valid := func() *Config {
		return &Config{
			Operator: Operator{ID: "op-a"},
			Storage:  Storage{Dir: "/var/lib/anfed"},
			Peers: []Peer{{
				ID:     "op-b",
				Dial:   &Dial{URL: "nats-leaf://b.example:7422", User: "u", Password: "p"},
				Export: ExportPolicy{Classes: []string{"*"}},
				Import: ImportPolicy{Classes: []string{"fault"}},
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
		f.Add([]byte(tc.yaml))
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
