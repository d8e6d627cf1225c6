package explain_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/explain"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
)

// key returns a fresh operator key pair and its public key.
func key(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	return kp, pub
}

// policyA is op-a's policy: op-b dials it (no transit accepted), op-c is
// dialled (transit both ways, lossy), op-d's peering has ended.
const policyA = `
operator: {id: op-a, signing_key_file: a.nk}
storage: {dir: ./d}
nats: {leafnodes: {listen: "127.0.0.1:7422"}}
peers:
  - id: op-b
    accept: {user: op-b, password: secret-b-123}
    signing_key: %[1]s
    export:
      classes: [congestion, fault]
      services: ["vpn-*"]
      redact: [/data/link/peer]
      min_severity: 13
      max_rate: 5
    import:
      classes: [mitigation]
      max_conditions: {limit: 10}
  - id: op-c
    role: customer
    dial: {url: "nats-leaf://127.0.0.1:7423", user: op-a, password: secret-a-123}
    signing_key: %[2]s
    export:
      classes: ["*"]
      services: ["*"]
      transit: true
      delivery: lossy
    import:
      classes: ["*"]
      transit: true
  - id: op-d
    accept: {user: op-d, password: secret-d-123}
    signing_key: %[3]s
    expires: 2020-01-01T00:00:00Z
    export: {classes: ["*"], services: ["*"]}
    import: {classes: ["*"]}
origins:
  - id: op-x
    signing_key: %[4]s
`

type fixture struct {
	cfg  *config.Config
	ex   *explain.Explainer
	keys map[string]nkeys.KeyPair
	cat  *schemacheck.Catalog
}

func newFixture(t *testing.T, opts ...explain.Option) *fixture {
	t.Helper()
	f := &fixture{keys: map[string]nkeys.KeyPair{}}
	var pubs []any
	for _, id := range []string{"op-b", "op-c", "op-d", "op-x"} {
		kp, pub := key(t)
		f.keys[id] = kp
		pubs = append(pubs, pub)
	}
	cfg, err := config.Parse("a.yaml", []byte(fmt.Sprintf(policyA, pubs...)))
	require.NoError(t, err)
	f.cfg = cfg
	f.cat, err = schemacheck.Load()
	require.NoError(t, err)
	f.ex, err = explain.New(cfg, f.cat, opts...)
	require.NoError(t, err)
	return f
}

const congestionData = `{"link":{"id":"ic-1","kind":"interconnect","peer":"op-z"},"direction":"egress","utilisationPercent":97.5,"packetLossPercent":0.8,"queueDelayMs":14.2,"trafficClasses":["AF41","BE"]}`
const faultData = `{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"linkDown","specificProblem":"LOS","alarmedObject":{"id":"ic-1","type":"interconnect"},"alarmRaisedTime":"2026-11-25T17:00:00Z"}`
const mitigationData = `{"action":"reroute","detail":"moved","status":"completed","respondsTo":[{"source":"anfed://op-a/x","id":"1"}],"target":{"id":"ic-1","type":"interconnect"},"expectedEffect":"less"}`

func ev(origin, class, subj string, sev int, st signal.State, data string) *signal.Event {
	return &signal.Event{ID: "e-1", Source: "anfed://" + origin + "/t", Type: "net.anfed." + class + ".v1", Subject: subj,
		Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC), Origin: origin, State: st, SeverityNumber: sev, Data: json.RawMessage(data)}
}

func verdict(t *testing.T, r *explain.Report, peer string) explain.Verdict {
	t.Helper()
	for _, v := range r.Peers {
		if v.Peer == peer {
			return v
		}
	}
	t.Fatalf("no verdict for %s in %+v", peer, r.Peers)
	return explain.Verdict{}
}

func TestExportVerdicts(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		ev    *signal.Event
		class string
		peer  string
		send  bool
		rule  string
	}{
		{"allowed", ev("op-a", "congestion", "vpn-acme/ic-1", 13, signal.Raised, congestionData), "congestion", "op-b", true, "export.classes and export.services allow it"},
		{"class not listed", ev("op-a", "mitigation", "vpn-acme/ic-1", 13, signal.Raised, mitigationData), "mitigation", "op-b", false, "export.classes does not list mitigation"},
		{"service not matched", ev("op-a", "fault", "core/ic-1", 17, signal.Raised, faultData), "fault", "op-b", false, "export.services matches no pattern for core"},
		{"below min_severity", ev("op-a", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "fault", "op-b", false, "export.min_severity is 13 and the signal's severity is 9"},
		{"no severity", ev("op-a", "fault", "vpn-acme/ic-1", 0, signal.Updated, faultData), "fault", "op-b", false, "export.min_severity is 13 and the signal's severity is 0"},
		{"a clear passes min_severity", ev("op-a", "fault", "vpn-acme/ic-1", 9, signal.Cleared, faultData), "fault", "op-b", true, "export.classes and export.services allow it"},
		{"relayed, no transit", withPath(ev("op-c", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "op-c"), "fault", "op-b", false, "export.transit is false: only our own signals are exported"},
		{"back to where it came from", withPath(ev("op-x", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "op-x", "op-c"), "fault", "op-c", false, "no-loop: op-c is already on the path"},
		{"expired peering", ev("op-a", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "fault", "op-d", false, "peers[op-d].expires 2020-01-01T00:00:00Z has passed: nothing is sent to op-d"},
		{"lossy, transit", withPath(ev("op-x", "fault", "core/ic-1", 17, signal.Raised, faultData), "op-x", "op-b"), "fault", "op-c", true,
			"export.transit relays it by roles (learned from op-b, a peer, and op-c is a customer); export.classes and export.services allow it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := f.ex.Explain(tt.ev, tt.class, "")
			require.NoError(t, err)
			require.Len(t, r.Peers, 3)
			v := verdict(t, r, tt.peer)
			assert.Equal(t, tt.send, v.Receive)
			assert.Equal(t, tt.rule, v.Rule)
		})
	}
	// RFC 9234 roles: what we learned from a peer goes to customers only.
	f.cfg.Peers[1].Role = config.RolePeer
	r, err := f.ex.Explain(withPath(ev("op-x", "fault", "core/ic-1", 17, signal.Raised, faultData), "op-x", "op-b"), "fault", "")
	require.NoError(t, err)
	v := verdict(t, r, "op-c")
	assert.False(t, v.Receive)
	assert.Equal(t, "roles: learned from op-b (role peer), relayed only to customers, and op-c is a peer (valley-free default; export.transit_from overrides it)", v.Rule)
}

func withPath(e *signal.Event, path ...string) *signal.Event {
	e.Path = path
	return e
}

func TestExportDetails(t *testing.T) {
	f := newFixture(t)
	r, err := f.ex.Explain(ev("op-a", "congestion", "vpn-acme/ic 1", 13, signal.Raised, congestionData), "congestion", "")
	require.NoError(t, err)
	b := verdict(t, r, "op-b")
	assert.Equal(t, []string{"/data/link/peer"}, b.Redacted)
	assert.Equal(t, "durable", b.Delivery)
	assert.Equal(t, "an.link.op-a.op-a.congestion.vpn-acme.ic%201", b.Subject, "the subject the sender really uses, escaped")
	assert.Contains(t, b.Pacing, "export.max_rate 5/s, burst 5")
	require.NotNil(t, b.NATS)
	assert.True(t, *b.NATS.Allowed)
	assert.Equal(t, []string{"an.link.op-a.>"}, b.NATS.Allow)
	assert.Equal(t, "op-a", b.NATS.By)

	c := verdict(t, r, "op-c")
	assert.Equal(t, "lossy", c.Delivery)
	assert.Empty(t, c.Redacted)
	require.NotNil(t, c.NATS)
	assert.True(t, *c.NATS.Allowed, "our own signal passes whatever op-c's import.transit")

	// A relayed signal to op-c, which we dial: its permission is op-c's
	// to set, and its policy is not known.
	r, err = f.ex.Explain(withPath(ev("op-x", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "op-x", "op-b"), "fault", "")
	require.NoError(t, err)
	c = verdict(t, r, "op-c")
	assert.True(t, c.Receive)
	assert.Nil(t, c.NATS.Allowed)
	assert.Contains(t, c.NATS.Detail, "--peer-config")

	// Redacting a field the schema requires: the peer will refuse it.
	f.cfg.Peers[0].Export.Redact = []string{"/data/direction", "/data/nothing"}
	r, err = f.ex.Explain(ev("op-a", "congestion", "vpn-acme/ic-1", 13, signal.Raised, congestionData), "congestion", "")
	require.NoError(t, err)
	b = verdict(t, r, "op-b")
	assert.Equal(t, []string{"/data/direction"}, b.Redacted, "only the fields the signal had")
	assert.Contains(t, strings.Join(b.Notes, "\n"), "op-b will refuse the redacted copy: schema-invalid")
}

func TestImportVerdicts(t *testing.T) {
	f := newFixture(t, explain.WithNow(func() time.Time { return time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC) }))
	signed := func(e *signal.Event) *signal.Event {
		s, err := origin.NewSigner(f.keys[e.Origin])
		require.NoError(t, err)
		require.NoError(t, s.Sign(e))
		return e
	}
	expired := ev("op-b", "mitigation", "vpn-acme/ic-1", 9, signal.Raised, mitigationData)
	expired.ExpiryTime = time.Date(2026, 11, 25, 17, 30, 0, 0, time.UTC)
	tampered := signed(ev("op-c", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData))
	tampered.Subject = "vpn-acme/ic-2"
	tests := []struct {
		name   string
		ev     *signal.Event
		class  string
		from   string
		accept bool
		reason string
		rule   string
	}{
		{"own signal of the peer", ev("op-b", "mitigation", "vpn-acme/ic-1", 9, signal.Raised, mitigationData), "mitigation", "op-b", true, "",
			"import.classes for op-b allows mitigation"},
		{"signed and verified", signed(ev("op-c", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData)), "fault", "op-c", true, "",
			"import.classes for op-c allows fault"},
		{"modified after signing", tampered, "fault", "op-c", false, "bad-signature", ""},
		{"class not imported", ev("op-b", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "fault", "op-b", false, "not-imported",
			"not-imported: import.classes for op-b does not list fault"},
		{"relayed to a peer that may not send it: NATS", withPath(ev("op-x", "mitigation", "vpn-acme/ic-1", 9, signal.Raised, mitigationData), "op-x"), "mitigation", "op-b", false, "",
			"NATS: op-b dials op-a: the leaf user op-a issues op-b may send only [an.link.op-b.op-b.> an.ack.op-a.>]: an.link.op-b.op-x.mitigation.vpn-acme.ic-1 is not among them"},
		{"relayed with transit", withPath(ev("op-x", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "op-x"), "fault", "op-c", true, "",
			"import.classes for op-c allows fault; import.transit accepts op-x's signal relayed by op-c"},
		{"origin without a pinned key", withPath(ev("op-y", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "op-y"), "fault", "op-c", false, "unknown-origin", ""},
		{"our own signal back", withPath(ev("op-a", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "op-a", "op-x"), "fault", "op-c", false, "unknown-origin", ""},
		{"loop", withPath(ev("op-x", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "op-x", "op-a"), "fault", "op-c", false, "loop", ""},
		{"expired", expired, "mitigation", "op-b", false, "expired", ""},
		{"peering ended", ev("op-d", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "fault", "op-d", false, "revoked", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := f.ex.Explain(tt.ev, tt.class, tt.from)
			require.NoError(t, err)
			require.NotNil(t, r.Import)
			im := r.Import
			assert.Equal(t, tt.accept, im.Accept, "%+v", im)
			assert.Equal(t, tt.reason, im.Reason)
			if tt.rule != "" {
				assert.Equal(t, tt.rule, im.Rule)
			}
			assert.Equal(t, tt.from, r.Signal.Path[len(r.Signal.Path)-1], "the sender's hop is on the path")
			if tt.accept {
				assert.Len(t, r.Peers, 3, "an accepted signal is explained onwards")
			} else {
				assert.Empty(t, r.Peers, "a refused signal is not held, so not exported")
			}
		})
	}
	f.cfg.Peers[0].Import.Dampening = &config.Dampening{HalfLife: config.Duration(5 * time.Minute)}
	r, err := f.ex.Explain(ev("op-b", "mitigation", "vpn-acme/ic-1", 9, signal.Raised, mitigationData), "mitigation", "op-b")
	require.NoError(t, err)
	assert.Contains(t, r.Import.Notes, "import.dampening: a condition's penalty grows 1000 a state change, half-life 5m; over 2000 it is held until under 750 (at most 1h), then its last state is delivered")
	assert.Contains(t, r.Import.Notes, "import.max_conditions.limit 10: past it a new condition is refused too-many-conditions, and op-b told with an advisory")

	_, err = f.ex.Explain(ev("op-b", "fault", "vpn-acme/ic-1", 9, signal.Raised, faultData), "fault", "op-q")
	assert.ErrorContains(t, err, "--from op-q: not a peer of op-a")
}

// TestPeerConfig: with the peers' policies, the permission a dialled peer
// sets and the peer's import side are explained too.
func TestPeerConfig(t *testing.T) {
	f := newFixture(t)
	aPub, err := f.keys["op-x"].PublicKey() // any key: op-c pins one for op-a
	require.NoError(t, err)
	_, xPub := key(t)
	peerC, err := config.Parse("c.yaml", []byte(fmt.Sprintf(`
operator: {id: op-c, signing_key_file: c.nk}
storage: {dir: ./d}
nats: {leafnodes: {listen: "127.0.0.1:7423"}}
peers:
  - id: op-a
    accept: {user: op-a, password: secret-a-123}
    signing_key: %s
    export: {classes: ["*"], services: ["*"]}
    import: {classes: [fault]}
origins:
  - {id: op-x, signing_key: %s}
`, aPub, xPub)))
	require.NoError(t, err)
	ex, err := explain.New(f.cfg, f.cat, explain.WithPeerConfig(peerC))
	require.NoError(t, err)

	// op-c's import.transit is off: its leaf user for op-a may send op-a's
	// own signals only, and NATS drops a relayed one.
	r, err := ex.Explain(withPath(ev("op-x", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "op-x", "op-b"), "fault", "")
	require.NoError(t, err)
	c := verdict(t, r, "op-c")
	assert.False(t, c.Receive)
	assert.False(t, c.Delivered())
	assert.Equal(t, "NATS: op-a dials op-c: the leaf user op-c issued op-a may send only [an.link.op-a.op-a.> an.ack.op-c.>]: an.link.op-a.op-x.fault.vpn-acme.ic-1 is not among them", c.Rule)

	// Our own fault: sent, and op-c accepts it.
	r, err = ex.Explain(ev("op-a", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "fault", "")
	require.NoError(t, err)
	c = verdict(t, r, "op-c")
	require.NotNil(t, c.PeerImport)
	assert.True(t, c.Delivered(), "%+v", c.PeerImport)
	assert.Equal(t, []string{"op-a"}, []string{c.PeerImport.From})

	// Our own congestion: sent, refused by op-c's import.classes.
	r, err = ex.Explain(ev("op-a", "congestion", "vpn-acme/ic-1", 17, signal.Raised, congestionData), "congestion", "")
	require.NoError(t, err)
	c = verdict(t, r, "op-c")
	assert.True(t, c.Receive)
	assert.False(t, c.Delivered())
	assert.Equal(t, "not-imported", c.PeerImport.Reason)
}

// TestText: the text form names every verdict and rule, and the JSON form
// holds the same report.
func TestText(t *testing.T) {
	f := newFixture(t)
	r, err := f.ex.Explain(ev("op-b", "mitigation", "vpn-acme/ic-1", 9, signal.Raised, mitigationData), "mitigation", "op-b")
	require.NoError(t, err)
	var b bytes.Buffer
	require.NoError(t, r.WriteText(&b))
	out := b.String()
	for _, want := range []string{
		"op-a: signal e-1: mitigation raised vpn-acme/ic-1, origin op-b, severity 9, path op-b\n",
		"import from op-b: accepted\n",
		"import.max_conditions.limit 10",
		"export to op-b: not sent\n  rule:     no-loop: op-b is already on the path\n",
		"export to op-c: sent\n  rule:     export.transit relays it by roles (learned from op-b, a peer, and op-c is a customer); export.classes and export.services allow it\n  delivery: lossy\n",
		"  nats:     not known here: op-a dials op-c",
		"export to op-d: not sent\n  rule:     peers[op-d].expires",
	} {
		assert.Contains(t, out, want)
	}
	j, err := json.Marshal(r)
	require.NoError(t, err)
	var back explain.Report
	require.NoError(t, json.Unmarshal(j, &back))
	assert.Equal(t, *r, back)
}

// TestTags: export.tags change the peer's copy, import.tags filter and add,
// the well-known tags stop a signal, and with the sender's policy given the
// receiver explains the copy the sender really makes.
func TestTags(t *testing.T) {
	f := newFixture(t)
	f.cfg.Peers[0].Export.Tags = config.ExportTags{Remove: []string{"op-a:internal"}, Add: []string{"op-a:gold"}}
	f.cfg.Peers[1].Import.Tags = config.ImportTags{Deny: []string{"lab"}, Add: []string{"from-c"}}

	e := ev("op-a", "congestion", "vpn-acme/ic-1", 13, signal.Raised, congestionData)
	e.Tags = []string{"op-a:internal", "x"}
	r, err := f.ex.Explain(e, "congestion", "")
	require.NoError(t, err)
	assert.Equal(t, []string{"x", "op-a:gold"}, verdict(t, r, "op-b").Tags)
	assert.Equal(t, []string{"op-a:internal", "x"}, verdict(t, r, "op-c").Tags, "other peers get it as we hold it")

	e.Tags = []string{"no-advertise"}
	r, err = f.ex.Explain(e, "congestion", "")
	require.NoError(t, err)
	assert.Equal(t, "tag no-advertise: the signal stays with the operator that holds it", verdict(t, r, "op-b").Rule)

	lab := ev("op-c", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData)
	lab.Tags = []string{"lab"}
	r, err = f.ex.Explain(lab, "fault", "op-c")
	require.NoError(t, err)
	assert.Equal(t, "filtered", r.Import.Reason)
	lab.State = signal.Cleared
	r, err = f.ex.Explain(lab, "fault", "op-c")
	require.NoError(t, err)
	assert.True(t, r.Import.Accept, "a clear passes the tag filters")
	assert.Equal(t, []string{"lab", "from-c"}, r.Signal.Tags, "import.tags.add, as stored")

	noExport := ev("op-b", "mitigation", "vpn-acme/ic-1", 9, signal.Raised, mitigationData)
	noExport.Tags = []string{"no-export"}
	r, err = f.ex.Explain(noExport, "mitigation", "op-b")
	require.NoError(t, err)
	require.True(t, r.Import.Accept)
	assert.Equal(t, "tag no-export: the operator that sent it to us asked that it go no further", verdict(t, r, "op-c").Rule)

	// With op-c's policy, what op-c's sender does decides what arrives.
	aPub, err := f.keys["op-x"].PublicKey()
	require.NoError(t, err)
	peerC, err := config.Parse("c.yaml", []byte(fmt.Sprintf(`
operator: {id: op-c, signing_key_file: c.nk}
storage: {dir: ./d}
nats: {leafnodes: {listen: "127.0.0.1:7423"}}
peers:
  - id: op-a
    accept: {user: op-a, password: secret-a-123}
    signing_key: %s
    export: {classes: [fault], services: ["*"], tags: {add: [lab]}}
    import: {classes: ["*"]}
`, aPub)))
	require.NoError(t, err)
	ex, err := explain.New(f.cfg, f.cat, explain.WithPeerConfig(peerC))
	require.NoError(t, err)
	r, err = ex.Explain(ev("op-c", "fault", "vpn-acme/ic-1", 17, signal.Raised, faultData), "fault", "op-c")
	require.NoError(t, err)
	assert.Equal(t, "filtered", r.Import.Reason, "op-c's sender tags it lab, which op-a denies: %+v", r.Import)
	r, err = ex.Explain(ev("op-c", "congestion", "vpn-acme/ic-1", 17, signal.Raised, congestionData), "congestion", "op-c")
	require.NoError(t, err)
	assert.False(t, r.Import.Accept)
	assert.Equal(t, "op-c does not send it: export.classes does not list congestion", r.Import.Rule)
}

// intents is the intents we accepted, by owner and service.
type intents map[[2]string]string

func (m intents) Accepted(owner, service string) (string, bool) {
	id, ok := m[[2]string{owner, service}]
	return id, ok
}

// TestExportIntentClasses: a class of export.intent_classes goes to a
// peer only for a service of an intent it owns that we accepted, and the
// verdict names the intent; other classes are not affected.
func TestExportIntentClasses(t *testing.T) {
	f := newFixture(t, explain.WithIntents(intents{{"op-b", "vpn-acme"}: "acme-vpn-1"}))
	f.cfg.Peers[0].Export.IntentClasses = []string{"congestion"}
	for _, tt := range []struct {
		ev    *signal.Event
		class string
		send  bool
		rule  string
	}{
		{ev("op-a", "congestion", "vpn-acme/ic-1", 13, signal.Raised, congestionData), "congestion", true,
			"export.classes and export.services allow it; export.intent_classes: intent op-b.acme-vpn-1 for vpn-acme, accepted"},
		{ev("op-a", "congestion", "vpn-other/ic-1", 13, signal.Raised, congestionData), "congestion", false,
			"export.intent_classes lists congestion: op-b owns no intent for vpn-other that we accepted and that is in force"},
		{ev("op-a", "fault", "vpn-other/ic-1", 17, signal.Raised, faultData), "fault", true, "export.classes and export.services allow it"},
	} {
		r, err := f.ex.Explain(tt.ev, tt.class, "")
		require.NoError(t, err)
		v := verdict(t, r, "op-b")
		assert.Equal(t, tt.send, v.Receive, tt.ev.Subject)
		assert.Equal(t, tt.rule, v.Rule)
	}
}
