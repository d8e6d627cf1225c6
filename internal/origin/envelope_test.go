package origin

import (
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// Sign writes the DSSE envelope byte for byte as encoding/json would.
func TestSignEnvelopeIsJSONMarshal(t *testing.T) {
	kp, err := NewSigningKey()
	require.NoError(t, err)
	s, err := NewSigner(kp)
	require.NoError(t, err)
	ev := &signal.Event{ID: "1", Source: "anfed://op-a/x", Type: "net.anfed.fault.v1", Subject: "vpn/r",
		Origin: "op-a", State: signal.Raised, Data: json.RawMessage(`{"a":1}`)}
	require.NoError(t, s.Sign(ev))
	raw, err := base64.StdEncoding.DecodeString(ev.DSSEMaterial)
	require.NoError(t, err)
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
