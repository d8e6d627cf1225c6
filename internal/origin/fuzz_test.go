package origin_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// A test-only operator key, fixed so that the fuzz corpus stays signed
// across runs. Never used outside this file.
const (
	fuzzSeed = "SOAF7XBAQJGVKR35KGKC2LTREXJ3V6YMEGUZTXXNN6ATVGEPF2PJ2BUOPI"
	fuzzPub  = "OBQ5BURXXSHQRTDZIUEMZO53N3JALHQJSUIN6CMCGT2AMOHQCWS4O4R3"
)

func fuzzSigned(f *testing.F) *signal.Event {
	kp, err := nkeys.FromSeed([]byte(fuzzSeed))
	require.NoError(f, err)
	s, err := origin.NewSigner(kp)
	require.NoError(f, err)
	ev := &signal.Event{
		ID: "f-1", Source: "anfed://op-a/assurance", Type: "net.anfed.fault.v1", Subject: "vpn-acme/ic-1",
		Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC), Origin: "op-a", State: signal.Raised,
		SeverityText: "ERROR", SeverityNumber: 17, CorrelationID: "ALM-1", Sequence: "00000000000000000001",
		ExpiryTime: time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC),
		Data:       json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR"}`),
	}
	require.NoError(f, s.Sign(ev))
	return ev
}

// FuzzVerify: a signal that decodes and verifies carries exactly what the
// origin signed — every core attribute, the data and every signed
// extension — whatever was done to its bytes, envelope included; anything
// else is refused as bad-signature (or unknown-origin), never a panic.
func FuzzVerify(f *testing.F) {
	orig := fuzzSigned(f)
	f.Add(orig.Encode())
	relayed := *orig
	relayed.Path = []string{"op-a", "op-b"}
	f.Add(relayed.Encode())
	tampered := *orig
	tampered.SeverityNumber = 9
	f.Add(tampered.Encode())
	unsigned := *orig
	unsigned.DSSEMaterial = "e30="
	f.Add(unsigned.Encode())
	v, err := origin.NewVerifier(map[string]string{"op-a": fuzzPub})
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := signal.DecodeStructured(body)
		if err != nil {
			return
		}
		err = v.Verify(ev)
		if err != nil {
			r := reject.ReasonOf(err)
			assert.Contains(t, []reject.Reason{reject.BadSignature, reject.UnknownOrigin}, r, "%v", err)
			return
		}
		assert.Equal(t, orig.ID, ev.ID)
		assert.Equal(t, orig.Source, ev.Source)
		assert.Equal(t, orig.Type, ev.Type)
		assert.Equal(t, orig.Subject, ev.Subject)
		assert.Equal(t, orig.DataSchema, ev.DataSchema)
		assert.True(t, orig.Time.Equal(ev.Time.Truncate(time.Second)) || orig.Time.Equal(ev.Time), "time %v", ev.Time)
		assert.Equal(t, string(orig.Data), string(ev.Data))
		assert.Equal(t, orig.Origin, ev.Origin)
		assert.Equal(t, orig.State, ev.State)
		assert.Equal(t, orig.SeverityText, ev.SeverityText)
		assert.Equal(t, orig.SeverityNumber, ev.SeverityNumber)
		assert.Equal(t, orig.CorrelationID, ev.CorrelationID)
		assert.Equal(t, orig.CausationID, ev.CausationID)
		assert.Equal(t, orig.Sequence, ev.Sequence)
		assert.True(t, orig.ExpiryTime.Equal(ev.ExpiryTime), "expiry %v", ev.ExpiryTime)
	})
}
