package signal_test

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/natstest"
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

// PublishAnswer and RespondAnswer build the answer on the stack: an
// answer per signal costs no allocation of ours, only NATS's own (it
// copies the message into its buffer before PublishMsg returns), and it
// arrives as AnswerMsg writes it.
func TestPublishAnswerAddsNoAllocation(t *testing.T) {
	srv := natstest.StartServer(t, &server.Options{DontListen: true})
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	got := make(chan *nats.Msg, 4)
	answers, err := nc.ChanSubscribe("answers", got)
	require.NoError(t, err)
	req := &nats.Msg{Subject: "requests", Reply: "answers"}
	_, err = nc.ChanSubscribe("requests", make(chan *nats.Msg, 1))
	require.NoError(t, err)
	ans := signal.Answer{Status: signal.StatusAccepted, Subject: "an.sig.op-a.fault.vpn.r"}
	for i, send := range []func() error{
		func() error { return signal.PublishAnswer(nc, "answers", ans) },
		func() error { req.Sub, _ = nc.SubscribeSync("x"); return signal.RespondAnswer(req, ans) },
	} {
		require.NoError(t, send(), i)
		select {
		case m := <-got:
			want := signal.AnswerMsg("answers", ans)
			assert.Equal(t, want.Data, m.Data, i)
			assert.Equal(t, want.Header.Get(signal.HeaderStatus), m.Header.Get(signal.HeaderStatus), i)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d: no answer", i)
		}
	}
	require.NoError(t, answers.Unsubscribe())
	req.Reply = "nobody" // from here on, answers go nowhere
	// What NATS allocates itself to publish a message with headers (it
	// encodes them into a new buffer); ours adds nothing to it.
	// AllocsPerRun counts every goroutine's (the server's, the client's
	// reader): the least of a few runs is the call's own.
	least := func(f func()) float64 {
		n := math.Inf(1)
		for range 5 {
			n = min(n, testing.AllocsPerRun(200, f))
		}
		return n
	}
	built := signal.AnswerMsg("nobody", ans)
	natsOwn := least(func() { _ = nc.PublishMsg(built) })
	assert.Equal(t, natsOwn, least(func() { _ = signal.PublishAnswer(nc, "nobody", ans) }))
	assert.Equal(t, natsOwn, least(func() { _ = signal.RespondAnswer(req, ans) }))
}
