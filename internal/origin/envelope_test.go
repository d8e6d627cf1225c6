package origin

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// signedEnvelope is the DSSE envelope Sign writes for a small signal.
func signedEnvelope(t testing.TB) []byte {
	kp, err := NewSigningKey()
	require.NoError(t, err)
	s, err := NewSigner(kp)
	require.NoError(t, err)
	ev := &signal.Event{ID: "1", Source: "anfed://op-a/x", Type: "net.anfed.fault.v1", Subject: "vpn/r",
		Origin: "op-a", State: signal.Raised, Data: json.RawMessage(`{"a":1}`)}
	require.NoError(t, s.Sign(ev))
	raw, err := base64.StdEncoding.DecodeString(ev.DSSEMaterial)
	require.NoError(t, err)
	return raw
}

// Sign writes the DSSE envelope byte for byte as encoding/json would.
func TestSignEnvelopeIsJSONMarshal(t *testing.T) {
	raw := signedEnvelope(t)
	var env envelope
	require.NoError(t, json.Unmarshal(raw, &env))
	want, err := json.Marshal(env)
	require.NoError(t, err)
	require.Equal(t, string(want), string(raw))
}

func BenchmarkSignVerify(b *testing.B) {
	kp, err := NewSigningKey()
	require.NoError(b, err)
	s, err := NewSigner(kp)
	require.NoError(b, err)
	pub, err := kp.PublicKey()
	require.NoError(b, err)
	v, err := NewVerifier(map[string]string{"op-a": pub})
	require.NoError(b, err)
	ev := &signal.Event{ID: "0d9c1f8e-3f1e-4a7b-9d55-7c1e2f0a9b11", Source: "anfed://op-a/assurance", Type: "net.anfed.fault.v1",
		Subject: "vpn-acme/ic-paris-1", Origin: "op-a", State: signal.Raised, SeverityText: "ERROR", SeverityNumber: 17,
		CorrelationID: "corr-1", Data: json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR"}`)}
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, s.Sign(ev))
		require.NoError(b, v.Verify(ev))
	}
}

// FuzzReadEnvelope: the envelope read in place (readSigned) is exactly
// what encoding/json, the reference, reads from the same bytes; whatever
// it does not read goes to encoding/json (readEnvelope).
func FuzzReadEnvelope(f *testing.F) {
	f.Add(signedEnvelope(f))
	f.Add([]byte(`{"payload":"a\u0041","payloadType":"t","signatures":[{"keyid":"k","sig":"s"}]}`))
	f.Add([]byte(`{"payload":"a","payloadType":"t","signatures":[{"keyid":"k","sig":"s"}]} `))
	f.Add([]byte(`{"payload":"a","payloadType":"t","signatures":[{"keyid":"k","sig":"s"},{"keyid":"k","sig":"t"}]}`))
	f.Add([]byte(`{"Payload":"a","payloadType":"t","signatures":[]}`))
	f.Add([]byte(`{"payload":"a","payloadType":"\xff","signatures":[{"keyid":"","sig":""}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fast, ok := readSigned(raw)
		var env envelope
		refErr := json.Unmarshal(raw, &env)
		if ok {
			require.NoError(t, refErr, "read in place, refused by encoding/json")
			require.Equal(t, env.Payload, string(fast.payload))
			require.Equal(t, env.PayloadType, string(fast.payloadType))
			require.Len(t, env.Signatures, 1)
			require.Equal(t, 1, fast.n)
			require.Equal(t, env.Signatures[0].KeyID, string(fast.sig(0).keyID))
			require.Equal(t, env.Signatures[0].Sig, string(fast.sig(0).sig))
		}
		got, err := readEnvelope(raw)
		if refErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, env.Payload, string(got.payload))
		require.Equal(t, env.PayloadType, string(got.payloadType))
		require.Equal(t, len(env.Signatures), got.n)
		for i, s := range env.Signatures {
			require.Equal(t, s.KeyID, string(got.sig(i).keyID))
			require.Equal(t, s.Sig, string(got.sig(i).sig))
		}
	})
}
