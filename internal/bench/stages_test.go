package bench

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/exportpolicy"
	"github.com/anfed/anfed/internal/importpolicy"
	"github.com/anfed/anfed/internal/inspect"
	intakes "github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// BenchmarkLayerStages is the product code of anfed-link's two stages
// without NATS: stage A (intake.Check, the export policy's Decide,
// link.Outgoing) and stage B (inspect.Decode, link.CheckImport, the
// signal subject and Encode) of the 1 KiB fault, each alone and both.
func BenchmarkLayerStages(b *testing.B) {
	e := benchEnv(b)
	cat, err := schemacheck.Load()
	require.NoError(b, err)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	ca, cb := e.pairConfigs(0)
	self, peer := ca.Operator.ID, cb.Operator.ID
	insp := inspect.New(cat, 0)
	export := exportpolicy.ForConfig(ca, &ca.Peers[0])
	imp := importpolicy.New(peer, &cb.Peers[0])
	buf := bytes.Clone(tpl.body)
	tpl.stamp(buf)

	stageA := func() ([]byte, string) {
		ev, class, err := intakes.Check(insp, self, nil, buf)
		if err != nil {
			b.Fatal(err)
		}
		if d := export.Decide(ev, class); !d.Export {
			b.Fatal(d.Rule)
		}
		m := link.Outgoing(self, keyOf(ev, class), ev)
		return m.Data, m.Subject
	}
	stageB := func(data []byte, subj string) int {
		ev, err := insp.Decode(nil, data)
		if err != nil {
			b.Fatal(err)
		}
		class, err := link.CheckImport(insp, imp, self, subj, ev)
		if err != nil {
			b.Fatal(err)
		}
		return len(subject.Signal(keyOf(ev, class))) + len(ev.Encode())
	}
	data, subj := stageA()
	b.Run("A", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stageA()
		}
	})
	b.Run("B", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			stageB(data, subj)
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
