package origin_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

func newKey(t *testing.T) (nkeys.KeyPair, string) {
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	return kp, pub
}

func sample() *signal.Event {
	return &signal.Event{
		ID: "e-1", Source: "anfed://op-a/assurance", Type: "net.anfed.fault.v1",
		Subject: "vpn-acme/ic-paris-1", Time: time.Date(2026, 11, 25, 17, 0, 0, 123456789, time.UTC),
		DataSchema: "https://anfed.net/schemas/v1/fault.json",
		Data:       json.RawMessage(`{"perceivedSeverity": "MAJOR",  "x": [1, 2]}`),
		Origin:     "op-a", State: signal.Raised,
		ExpiryTime:   time.Date(2026, 11, 25, 18, 0, 0, 0, time.UTC),
		SeverityText: "ERROR", SeverityNumber: 17,
		CorrelationID: "inc-1", CausationID: "c-0", Sequence: "00000000000000000042",
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Path:        []string{"op-a"},
	}
}

// specDigest is the verifiability extension's verification material,
// written from the extension's text (cloudevents/extensions/verifiability.md,
// "Signature" protocol step 4 and 5), independently of the production code.
func specDigest(ev map[string]any, data []byte, signed []string) []byte {
	var seq []byte
	d := func(b []byte) { h := sha256.Sum256(b); seq = append(seq, h[:]...) }
	str := func(k string) []byte { s, _ := ev[k].(string); return []byte(s) }
	for _, k := range []string{"id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject"} {
		d(str(k))
	}
	tm, _ := time.Parse(time.RFC3339Nano, ev["time"].(string))
	d([]byte(tm.UTC().Format("2006-01-02T15:04:05Z07:00"))) // RFC 3339, Zulu
	d(data)
	for _, n := range signed {
		d([]byte(n))
		switch v := ev[n].(type) {
		case string:
			d([]byte(v))
		case float64:
			d([]byte(fmt.Sprintf("%d", int64(v))))
		default:
			d(nil)
		}
	}
	h := sha256.Sum256(seq)
	return h[:]
}

// The signature on an encoded signal verifies with a DSSE v1 check written
// here from the DSSE protocol text, against the raw ed25519 public key.
func TestSignatureMatchesSpecIndependently(t *testing.T) {
	kp, pub := newKey(t)
	s, err := origin.NewSigner(kp)
	require.NoError(t, err)
	ev := sample()
	require.NoError(t, s.Sign(ev))

	wire := ev.Encode()
	var m map[string]any
	require.NoError(t, json.Unmarshal(wire, &m))
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(wire, &raw))
	signed := strings.Split(m["signedextattrs"].(string), ",")
	assert.Subset(t, signed, []string{"anfedorigin", "anfedstate", "expirytime", "severitytext", "severitynumber", "correlationid", "causationid", "sequence"})
	assert.NotContains(t, signed, "anfedpath", "the path is hop-level")

	envJSON, err := base64.StdEncoding.DecodeString(m["dssematerial"].(string))
	require.NoError(t, err)
	var env struct {
		Payload     string `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	require.NoError(t, json.Unmarshal(envJSON, &env))
	assert.Equal(t, "https://cloudevents.io/verifiability/dsse/v0.1", env.PayloadType)
	require.Len(t, env.Signatures, 1)
	assert.Equal(t, pub, env.Signatures[0].KeyID)
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	require.NoError(t, err)
	assert.Equal(t, specDigest(m, raw["data"], signed), payload, "verification material per the spec")

	// DSSE v1: PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
	pae := fmt.Appendf(nil, "DSSEv1 %d %s %d ", len(env.PayloadType), env.PayloadType, len(payload))
	pae = append(pae, payload...)
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	require.NoError(t, err)
	rawPub, err := nkeys.Decode(nkeys.PrefixByteOperator, []byte(pub))
	require.NoError(t, err)
	assert.True(t, ed25519.Verify(ed25519.PublicKey(rawPub), pae, sig), "ed25519 over DSSE PAE")
}

// A relayed signal keeps its origin's signature: another hop on the path,
// and re-encoding between content modes, do not break it.
func TestSignatureSurvivesRelayAndModes(t *testing.T) {
	kp, pub := newKey(t)
	s, err := origin.NewSigner(kp)
	require.NoError(t, err)
	v, err := origin.NewVerifier(map[string]string{"op-a": pub})
	require.NoError(t, err)
	ev := sample()
	require.NoError(t, s.Sign(ev))

	relayed, err := signal.DecodeStructured(ev.Encode())
	require.NoError(t, err)
	relayed.Path = append(relayed.Path, "op-b", "op-c")
	require.NoError(t, v.Verify(relayed))
	// Tags are hop-by-hop too: a relay adds and removes them.
	relayed.Tags = []string{"no-export", "op-b:transit"}
	require.NoError(t, v.Verify(relayed))
	assert.NotContains(t, relayed.SignedExtAttrs, signal.AttrTags)

	// Binary mode: ce- headers and the data as the body.
	hdr := nats.Header{}
	var m map[string]any
	require.NoError(t, json.Unmarshal(relayed.Encode(), &m))
	for k, val := range m {
		if k == "data" {
			continue
		}
		hdr.Set("ce-"+k, fmt.Sprint(val))
	}
	bin, err := signal.DecodeBinary(hdr, relayed.Data)
	require.NoError(t, err)
	require.NoError(t, v.Verify(bin))
}

func TestVerifyRefuses(t *testing.T) {
	kpA, pubA := newKey(t)
	_, pubB := newKey(t)
	kpX, _ := newKey(t)
	sA, err := origin.NewSigner(kpA)
	require.NoError(t, err)
	sX, err := origin.NewSigner(kpX)
	require.NoError(t, err)
	v, err := origin.NewVerifier(map[string]string{"op-a": pubA, "op-b": pubB})
	require.NoError(t, err)

	signed := func() *signal.Event {
		ev := sample()
		require.NoError(t, sA.Sign(ev))
		return ev
	}
	tests := []struct {
		name   string
		mutate func(*signal.Event)
		reason reject.Reason
		text   string
	}{
		{"unsigned", func(e *signal.Event) { e.DSSEMaterial, e.SignedExtAttrs = "", "" }, reject.BadSignature, "missing"},
		{"data changed", func(e *signal.Event) { e.Data = json.RawMessage(`{"perceivedSeverity":"MINOR"}`) }, reject.BadSignature, "modified after signing"},
		{"data whitespace changed", func(e *signal.Event) { e.Data = json.RawMessage(`{"perceivedSeverity":"MAJOR","x":[1,2]}`) }, reject.BadSignature, "modified"},
		{"state changed", func(e *signal.Event) { e.State = signal.Cleared }, reject.BadSignature, "modified"},
		{"severity changed", func(e *signal.Event) { e.SeverityNumber = 21 }, reject.BadSignature, "modified"},
		{"subject changed", func(e *signal.Event) { e.Subject = "vpn-acme/other" }, reject.BadSignature, "modified"},
		{"time changed by a second", func(e *signal.Event) { e.Time = e.Time.Add(time.Second) }, reject.BadSignature, "modified"},
		{"unsigned attribute added", func(e *signal.Event) {
			e.CausationID = ""
			require.NoError(t, sA.Sign(e))
			e.CausationID = "forged"
		}, reject.BadSignature, "carried but not signed"},
		{"attribute dropped from the signed list", func(e *signal.Event) {
			e.SignedExtAttrs = strings.Replace(e.SignedExtAttrs, ",sequence", "", 1)
		}, reject.BadSignature, "carried but not signed"},
		{"core attribute listed", func(e *signal.Event) { e.SignedExtAttrs += ",id" }, reject.BadSignature, "may not be listed"},
		{"repeated name", func(e *signal.Event) { e.SignedExtAttrs += ",anfedstate" }, reject.BadSignature, "repeated"},
		{"path listed as signed", func(e *signal.Event) { e.SignedExtAttrs += ",anfedpath" }, reject.BadSignature, "hop-level"},
		{"tags listed as signed", func(e *signal.Event) { e.SignedExtAttrs += ",anfedtags" }, reject.BadSignature, "hop-level"},
		{"signed by another key", func(e *signal.Event) { require.NoError(t, sX.Sign(e)) }, reject.BadSignature, "pinned key"},
		{"claims another origin", func(e *signal.Event) { e.Origin, e.Source = "op-b", "anfed://op-b/assurance" }, reject.BadSignature, "pinned key"},
		{"origin without pinned key", func(e *signal.Event) { e.Origin = "op-z" }, reject.UnknownOrigin, "no signing key is pinned"},
		{"not base64", func(e *signal.Event) { e.DSSEMaterial = "%%%" }, reject.BadSignature, "not base64"},
		{"not an envelope", func(e *signal.Event) { e.DSSEMaterial = base64.StdEncoding.EncodeToString([]byte("[1]")) }, reject.BadSignature, "not a DSSE JSON envelope"},
		{"wrong payload type", func(e *signal.Event) {
			e.DSSEMaterial = base64.StdEncoding.EncodeToString([]byte(`{"payload":"","payloadType":"x","signatures":[]}`))
		}, reject.BadSignature, "payloadType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := signed()
			tt.mutate(ev)
			err := v.Verify(ev)
			require.Error(t, err)
			assert.Equal(t, tt.reason, reject.ReasonOf(err), err.Error())
			assert.Contains(t, err.Error(), tt.text)
		})
	}
	require.NoError(t, v.Verify(signed()), "the unmodified signal verifies")
}

func TestNewVerifierRefusesBadKeys(t *testing.T) {
	_, err := origin.NewVerifier(map[string]string{"op-a": "UABC"})
	assert.ErrorContains(t, err, "not an operator public NKey")
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	upub, _ := kp.PublicKey()
	_, err = origin.NewVerifier(map[string]string{"op-a": upub})
	assert.Error(t, err, "a user key is not an operator signing key")
}

func TestSigningKeyFiles(t *testing.T) {
	kp, pub := newKey(t)
	p := t.TempDir() + "/signing.nk"
	require.NoError(t, origin.WriteSigningKey(p, kp))
	assert.ErrorContains(t, origin.WriteSigningKey(p, kp), "never overwrites")
	got, err := origin.LoadSigningKey(p)
	require.NoError(t, err)
	gp, _ := got.PublicKey()
	assert.Equal(t, pub, gp)
	assert.True(t, origin.ValidPublicKey(pub))
}

func BenchmarkSign(b *testing.B) {
	kp, _ := origin.NewSigningKey()
	s, _ := origin.NewSigner(kp)
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Sign(ev)
	}
}

func BenchmarkVerify(b *testing.B) {
	kp, _ := origin.NewSigningKey()
	pub, _ := kp.PublicKey()
	s, _ := origin.NewSigner(kp)
	v, _ := origin.NewVerifier(map[string]string{"op-a": pub})
	ev := sample()
	_ = s.Sign(ev)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Verify(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// Unpinned tells a signature by a key pinned for no one (perhaps the
// origin's next key) from a forgery: a signature by a pinned key that
// does not verify, one lifted from another origin, or none at all.
func TestUnpinned(t *testing.T) {
	oldKP, oldPub := newKey(t)
	newKP, _ := newKey(t)
	_, otherPub := newKey(t)
	signed := func(kp nkeys.KeyPair) *signal.Event {
		s, err := origin.NewSigner(kp)
		require.NoError(t, err)
		ev := sample()
		require.NoError(t, s.Sign(ev))
		return ev
	}
	v, err := origin.NewVerifier(map[string]string{"op-a": oldPub, "op-c": otherPub})
	require.NoError(t, err)
	assert.Equal(t, oldPub, v.Pinned("op-a"))

	byNew := signed(newKP)
	require.Error(t, v.Verify(byNew))
	assert.True(t, v.Unpinned(byNew), "signed by a key pinned for no one")

	byOld := signed(oldKP)
	require.NoError(t, v.Verify(byOld))
	byOld.State = signal.Cleared // modified after signing
	require.Error(t, v.Verify(byOld))
	assert.False(t, v.Unpinned(byOld), "a pinned key's signature that does not verify is a forgery")

	lifted := signed(oldKP)
	lifted.Origin = "op-c" // op-a's signature on a signal claiming op-c
	require.Error(t, v.Verify(lifted))
	assert.False(t, v.Unpinned(lifted), "a key pinned for another origin")

	none := sample()
	assert.False(t, v.Unpinned(none), "no signature at all")

	unknownOrigin := signed(newKP)
	unknownOrigin.Origin = "op-z"
	assert.True(t, v.Unpinned(unknownOrigin), "no key pinned for its origin")
}

// Sign's one allocation is the dssematerial string: signedextattrs is
// one of the lists made once, the envelope and its base64 are built on
// the stack.
func TestSignAllocatesOnce(t *testing.T) {
	kp, err := origin.NewSigningKey()
	require.NoError(t, err)
	s, err := origin.NewSigner(kp)
	require.NoError(t, err)
	ev := sample()
	assert.Equal(t, 1.0, testing.AllocsPerRun(50, func() { require.NoError(t, s.Sign(ev)) }))
	assert.Equal(t, strings.Join(origin.SignedAttrs, ","), ev.SignedExtAttrs, "sample carries them all")
}
