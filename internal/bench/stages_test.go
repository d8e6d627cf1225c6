package bench

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/signal"
)

// BenchmarkLayerStages is the product code of anfed-link's two stages
// without NATS: stage A (intake.Check, the export policy's Decide,
// link.Outgoing) and stage B (inspect.Decode, link.CheckImport, the
// signal subject and Encode) of the 1 KiB fault, each alone and both.
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
		m, err := st.a(nil, buf)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	stageB := func(m *nats.Msg) int {
		subj, body, err := st.b(m)
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
