package signal_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/signal"
)

var jsonStrings = []string{
	"", "plain", "vpn-acme/ic-paris-1", "with space", `quo"te`, `back\slash`, "<b>&amp;</b>",
	"tab\tnl\n", "\x00\x1f\x7f", "é日本", "\xff\xfe bad utf-8", "\u2028\u2029", "~!@#$%^*()_+{}|:?",
}

// AppendJSONString writes exactly what encoding/json writes for a string.
func TestAppendJSONStringIsJSONMarshal(t *testing.T) {
	for _, s := range jsonStrings {
		want, err := json.Marshal(s)
		assert.NoError(t, err)
		assert.Equal(t, string(want), string(signal.AppendJSONString([]byte("x"), s))[1:], "%q", s)
	}
}

// Answer.Encode writes exactly what encoding/json writes for an Answer.
func TestAnswerEncodeIsJSONMarshal(t *testing.T) {
	for _, a := range []signal.Answer{
		{Status: signal.StatusAccepted, Subject: "an.sig.op-a.fault.vpn.r"},
		{Status: signal.StatusRejected, Reason: "schema-invalid", Error: `data/x: want "a" <or> & b` + "\n"},
		{Status: signal.StatusAlive, Last: 18446744073709551615},
		{Status: signal.StatusAlive},
		{},
	} {
		want, err := json.Marshal(a)
		assert.NoError(t, err)
		assert.Equal(t, string(want), string(a.Encode()))
	}
}

func BenchmarkAnswerEncode(b *testing.B) {
	a := signal.Answer{Status: signal.StatusAccepted, Subject: "an.sig.op-a.fault.vpn-acme.ic-paris-1"}
	b.ReportAllocs()
	for b.Loop() {
		_ = a.Encode()
	}
}

// FuzzParseAnswer: ParseAnswer reads what encoding/json reads (the
// answers Encode writes without encoding/json, the rest with it).
func FuzzParseAnswer(f *testing.F) {
	for _, a := range []signal.Answer{
		{Status: signal.StatusAccepted, Subject: "an.sig.op-a.fault.vpn.r"},
		{Status: signal.StatusRejected, Reason: "schema-invalid", Error: `data/x: want "a" <or> & b` + "\n"},
		{Status: signal.StatusRejected, Reason: "out-of-order", Error: "plain"},
		{Status: signal.StatusAlive, Last: 18446744073709551615},
		{Status: signal.StatusAlive},
		{Status: "other"},
	} {
		f.Add(a.Encode())
	}
	f.Add([]byte(`{"status":"alive","last":01}`))
	f.Add([]byte(`{"status":"alive","last":18446744073709551616}`))
	f.Add([]byte(`{"status":"alive","last":-1}`))
	f.Add([]byte(`{"status":"alive"} `))
	f.Add([]byte(`{"status":"alive","status":"rejected"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var want signal.Answer
		wantErr := json.Unmarshal(b, &want)
		got, err := signal.ParseAnswer(b)
		if wantErr != nil {
			assert.Error(t, err)
			return
		}
		assert.Equal(t, want, got)
	})
}

func BenchmarkParseAnswer(b *testing.B) {
	for name, a := range map[string]signal.Answer{
		"accepted": {Status: signal.StatusAccepted, Subject: "an.sig.op-a.fault.vpn-acme.ic-paris-1"},
		"alive":    {Status: signal.StatusAlive, Last: 123456},
	} {
		enc := a.Encode()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := signal.ParseAnswer(enc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
