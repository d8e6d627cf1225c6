package bench

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// BenchmarkLayerStages is the product code of anfed-link's two stages
// without NATS: stage A (intake's stages, the sender's) and stage B (the
// receiver's checks, the signal subject and Encode) of the 1 KiB fault,
// each alone and both.
func BenchmarkLayerStages(b *testing.B) {
	e := benchEnv(b)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	ca, cb := e.pairConfigs(0)
	st, err := newLayerStages(e, ca, cb, false)
	require.NoError(b, err)
	buf := bytes.Clone(tpl.body)
	tpl.stamp(buf)

	stageA := func() *nats.Msg {
		m, err := st.a(nil, buf, nil)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	stageB := func(m *nats.Msg) int {
		subj, body, err := st.b(m, nil)
		if err != nil {
			b.Fatal(err)
		}
		return len(subj) + len(body)
	}
	out := stageA()
	b.Run("A", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stageA()
		}
	})
	b.Run("B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stageB(out)
		}
	})
	b.Run("AB", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stageB(stageA())
		}
	})
}

// TestStageTimesNameEveryStage: the layer's per-stage times are the
// node's own stage lists, in their order, each one timed.
func TestStageTimesNameEveryStage(t *testing.T) {
	e := benchEnv(t)
	tpl, err := newTemplate(1024)
	require.NoError(t, err)
	ca, cb := e.pairConfigs(0)
	for _, signed := range []bool{false, true} {
		st, err := newLayerStages(e, ca, cb, signed)
		require.NoError(t, err)
		times, err := st.stageTimes(tpl, 50)
		require.NoError(t, err)
		var got []string
		for _, x := range times {
			got = append(got, x.Stage)
			assert.Positive(t, x.MicrosPerSignal, x.Stage)
		}
		want := []string{"intake/schema", "intake/local", "intake/expiry", "intake/sign",
			"outbound/peering", "outbound/export-policy", "outbound/buffer-age", "outbound/link-up", "outbound/redact", "outbound/export-tags", "outbound/link-message",
			"inbound/decode", "inbound/attributes", "inbound/signature", "inbound/schema", "inbound/link-subject", "inbound/import-policy", "inbound/import-tags", "inbound/expiry"}
		if !signed {
			want = slices.DeleteFunc(want, func(s string) bool { return s == "inbound/signature" })
		}
		assert.Equal(t, want, got, "signed %v", signed)
	}
}

// BenchmarkDecodeTemplate is signal.Decode of the 1 KiB fault.
func BenchmarkDecodeTemplate(b *testing.B) {
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := signal.Decode(nil, tpl.body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeTemplate is Event.Encode of the 1 KiB fault.
func BenchmarkEncodeTemplate(b *testing.B) {
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		tpl.event.Encode()
	}
}

// The durable row's stages are timed from the running pair's own
// policies, and the report says how much of its CPU they are and how much
// is not a stage.
func TestCrossStages(t *testing.T) {
	e, tpl, p := testPair(t)
	r := Row{Name: RowCross, CPUPerSignal: 500}
	require.NoError(t, crossStages(e, p, tpl, &r))
	var names []string
	var sum float64
	for _, x := range r.Stages {
		names = append(names, x.Stage)
		sum += x.MicrosPerSignal
	}
	assert.Contains(t, names, "intake/sign")
	assert.Contains(t, names, "inbound/signature")
	line := r.stageBudget(&Row{Name: RowRawSourcingSigned, CPUPerSignal: 300})
	assert.Contains(t, line, fmt.Sprintf("of which its stages %.1f µs", sum))
	assert.Contains(t, line, fmt.Sprintf("not a stage %.1f µs", 500-sum))
	assert.Contains(t, line, "raw-sourcing-signed: 300.0 µs CPU in all")
}
