package bench

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/schemacheck"
)

// Every template is a valid signal of the requested size (or the smallest
// valid one), and the time patched into it reads back.
func TestTemplateIsAValidSignalOfItsSize(t *testing.T) {
	cat, err := schemacheck.Load()
	require.NoError(t, err)
	insp := inspect.New(cat, 0)
	for _, size := range []int{256, 700, 1024, 4096, 16384, 60000} {
		tpl, err := newTemplate(size)
		require.NoError(t, err)
		if size >= 1024 {
			require.Equal(t, size, len(tpl.body), "size %d", size)
		}
		// its data takes the compiled validator, not the generic path
		require.True(t, cat.ValidFast(tpl.event.Type, tpl.event.Data), "size %d", size)
		buf := bytes.Clone(tpl.body)
		before := time.Now().UnixNano()
		s, r := tpl.stamp(buf)
		ev, _, err := insp.Full(nil, buf)
		require.NoError(t, err, "size %d", size)
		require.Equal(t, "op-a", ev.Origin)
		require.GreaterOrEqual(t, sentAt(buf), before)
		require.Contains(t, ev.ID, "b"+string(buf[tpl.seqOff:tpl.seqOff+seqDigits]))
		require.Equal(t, s%Resources, uint64(r))
		require.Len(t, ev.ID, 1+seqDigits+1+tsDigits)
	}
	require.Zero(t, sentAt([]byte(`{"id":"x"}`)))
}

// A signal that an earlier flow sent (a late probe) does not count in
// the flow that runs when it arrives.
func TestFlowIgnoresEarlierSignals(t *testing.T) {
	before := time.Now().UnixNano()
	f := newFlow(4)
	f.arrive(before - 1)
	require.Zero(t, f.arrived.Load())
	f.arrive(time.Now().UnixNano())
	f.arrive(0) // no stamp: counted
	require.EqualValues(t, 2, f.arrived.Load())
}

func TestWindowFor(t *testing.T) {
	require.Equal(t, 1024, windowFor(1e6, 1024))
	require.Equal(t, 52, windowFor(200, 1024))
	require.Equal(t, 32, windowFor(0, 1024))
}

func benchEnv(b testing.TB) *env {
	e, err := newEnv("2m", zerolog.Nop())
	require.NoError(b, err)
	b.Cleanup(e.close)
	return e
}

// benchPair is an env, the 1 KB template, a spec of b.N signals and the
// ceiling's bare pair (stopped at cleanup, or by the caller).
func benchPair(b *testing.B) (*env, *template, spec, *barePair) {
	e := benchEnv(b)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	bp, err := e.startBarePair(context.Background())
	require.NoError(b, err)
	return e, tpl, spec{count: b.N, window: 1024}, bp
}

// BenchmarkCrossOperator sends b.N signals across the leaf link as raw
// NATS (the ceiling, untimed) and through anfed's validated, signed,
// durable path (timed), and reports the ratio. storage.sync is 2m: the
// disk's flush would otherwise bound both (see docs/benchmarks.md).
func BenchmarkCrossOperator(b *testing.B) {
	ctx := context.Background()
	e, tpl, sp, bp := benchPair(b)
	raw, err := rawNATS(ctx, bp, tpl, sp)
	bp.stop()
	require.NoError(b, err)
	p, err := e.startPair(ctx, 0)
	require.NoError(b, err)
	defer p.stop()
	b.ResetTimer()
	r, err := cross(ctx, e, p, tpl, RowCross, sp)
	b.StopTimer()
	require.NoError(b, err)
	b.ReportMetric(r.PerSec, "signals/s")
	b.ReportMetric(r.P99, "p99-µs")
	b.ReportMetric(r.CPUPerSignal, "cpu-µs/signal")
	b.ReportMetric(r.PerSec/raw.PerSec, "ratio-to-raw-nats")
}

// BenchmarkStream is telemetry in stream delivery (anfed-stream): b.N
// signals on an.tel at op-a, checked and signed, across the link fire
// and forget, checked at op-b and delivered on an.telsig. For an
// allocation profile (-memprofile) of the path.
func BenchmarkStream(b *testing.B) {
	ctx := context.Background()
	e := benchEnv(b)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	p, err := e.startPairWith(ctx, 0, config.DeliveryStream)
	require.NoError(b, err)
	defer p.stop()
	b.ReportAllocs()
	b.ResetTimer()
	r, err := cross(ctx, e, p, tpl, RowStream, spec{count: b.N, window: 1024})
	b.StopTimer()
	require.NoError(b, err)
	b.ReportMetric(r.PerSec, "signals/s")
	b.ReportMetric(r.CPUPerSignal, "cpu-µs/signal")
	b.ReportMetric(r.AllocsPerSignal, "allocs/signal")
}

// BenchmarkDurable is intake (validate, sign, store, answer) against raw
// JetStream async publish on the same server and sync policy.
func BenchmarkDurable(b *testing.B) {
	for _, sync := range []string{"always", "2m"} {
		b.Run("sync="+sync, func(b *testing.B) {
			ctx := context.Background()
			e := benchEnv(b)
			e.sync = sync
			tpl, err := newTemplate(1024)
			require.NoError(b, err)
			sp := spec{count: b.N, window: 1024}
			n, err := e.startSolo(ctx)
			require.NoError(b, err)
			defer n.Stop()
			raw, err := rawJetStream(ctx, n, tpl, sp)
			require.NoError(b, err)
			b.ResetTimer()
			r, err := intake(ctx, n, tpl, sp)
			b.StopTimer()
			require.NoError(b, err)
			b.ReportMetric(r.PerSec, "signals/s")
			b.ReportMetric(r.PerSec/raw.PerSec, "ratio-to-raw-js")
		})
	}
}

// BenchmarkSignVerify is the signature ceiling, all cores.
func BenchmarkSignVerify(b *testing.B) {
	e := benchEnv(b)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	b.ResetTimer()
	r, err := signVerify(context.Background(), e, tpl, spec{count: b.N})
	require.NoError(b, err)
	b.ReportMetric(r.PerSec, "signals/s")
}

// BenchmarkWebhook is the HTTP baseline: one POST at a time, keep-alive.
func BenchmarkWebhook(b *testing.B) {
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	b.ResetTimer()
	r, err := webhook(context.Background(), tpl, spec{count: b.N})
	require.NoError(b, err)
	b.ReportMetric(r.PerSec, "signals/s")
}

// BenchmarkValidateTemplate is the schema check of the 1 KiB fault the
// other benchmarks send (it takes the compiled validator).
func BenchmarkValidateTemplate(b *testing.B) {
	cat, err := schemacheck.Load()
	require.NoError(b, err)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if err := cat.Validate(tpl.event.Type, tpl.event.Data); err != nil {
			b.Fatal(err)
		}
	}
}

// The layer rows carry every signal through both stages over the real
// link, and a signal refused at either stage — by intake's checks, the
// export policy, the signature's verification or the import policy —
// fails the row instead of giving it a number.
func TestLayerRows(t *testing.T) {
	ctx := context.Background()
	e, tpl := testEnv(t)
	bp, err := e.startBarePair(ctx)
	require.NoError(t, err)
	defer bp.stop()
	sp := spec{count: 300, window: 64}
	for _, signed := range []bool{false, true} {
		name := RowLink
		if signed {
			name = RowSigned
		}
		r, err := layer(ctx, e, bp, tpl, name, signed, sp)
		require.NoError(t, err, name)
		assert.Equal(t, 300, r.Signals, name)
		assert.Positive(t, r.PerSec, name)
		assert.Contains(t, r.What, "not a mode", name)
	}

	refused := func(t *testing.T, signed bool, want string, change func(a, b *config.Peer)) {
		t.Helper()
		a, b := bp.ca.Peers[0], bp.cb.Peers[0]
		change(&bp.ca.Peers[0], &bp.cb.Peers[0])
		defer func() { bp.ca.Peers[0], bp.cb.Peers[0] = a, b }()
		_, err := layer(ctx, e, bp, tpl, RowLink, signed, sp)
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
	}
	t.Run("export policy", func(t *testing.T) {
		refused(t, false, "op-a: not exported: export.classes", func(a, _ *config.Peer) {
			a.Export.Classes = []string{"maintenance"}
		})
	})
	t.Run("import policy", func(t *testing.T) {
		refused(t, false, "op-b: not-imported: import.classes", func(_, b *config.Peer) {
			b.Import.Classes = []string{"maintenance"}
		})
	})
	t.Run("signature", func(t *testing.T) {
		refused(t, true, "op-b: bad-signature: no signature by op-a", func(_, b *config.Peer) {
			b.SigningKey = e.pub("op-x")
		})
	})
	t.Run("intake", func(t *testing.T) {
		// op-b's template is not op-a's signal: intake's origin check.
		other := bytes.Replace(tpl.body, []byte(`"anfedorigin":"op-a"`), []byte(`"anfedorigin":"op-b"`), 1)
		require.False(t, bytes.Equal(tpl.body, other), "the template names its origin")
		bad := *tpl
		bad.body = other
		_, err := layer(ctx, e, bp, &bad, RowLink, false, sp)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "op-a: ")
		assert.Contains(t, err.Error(), "wrong-origin")
	})
}

// Only the row named ProfileRow gets the CPU profile and the execution
// trace.
func TestProfileRow(t *testing.T) {
	o := Options{CPUProfile: io.Discard, Trace: io.Discard, ProfileRow: RowLink}
	o.fill()
	assert.NotNil(t, o.spec(RowLink, spec{}).profile)
	assert.NotNil(t, o.spec(RowLink, spec{}).trace)
	assert.Nil(t, o.spec(RowCross, spec{}).profile)
	assert.Nil(t, o.spec(RowCross, spec{}).trace)
	o = Options{CPUProfile: io.Discard}
	o.fill()
	assert.NotNil(t, o.spec(RowCross, spec{}).profile, "anfed-cross by default")
	require.NoError(t, CheckProfileRow(Paced(RowSigned, 5000), 5000))
	require.NoError(t, CheckProfileRow(Paced(RowStream, 5000), 5000))
	require.Error(t, CheckProfileRow(RowSignVerify, 5000))
	require.Error(t, CheckProfileRow("anfed-nothing", 5000))
}

// BenchmarkLayers sends b.N signals through anfed's layers over the
// ceiling's servers and link, no store: link (validated, unsigned: its
// ratio to raw NATS across the same leaf, measured untimed first) and
// signed (its ratio to the sign+verify ceiling, measured untimed first).
// These are layers of the node's path, not modes a node has.
func BenchmarkLayers(b *testing.B) {
	for _, l := range []struct {
		name, row, ceiling string
		signed             bool
	}{
		{"link", RowLink, "ratio-to-raw-nats", false},
		{"signed", RowSigned, "ratio-to-sign-verify", true},
	} {
		b.Run(l.name, func(b *testing.B) {
			ctx := context.Background()
			e, tpl, sp, bp := benchPair(b)
			defer bp.stop()
			ceiling := rawNATS
			if l.signed {
				ceiling = func(ctx context.Context, _ *barePair, tpl *template, sp spec) (Row, error) {
					return signVerify(ctx, e, tpl, sp)
				}
			}
			c, err := ceiling(ctx, bp, tpl, sp)
			require.NoError(b, err)
			b.ResetTimer()
			r, err := layer(ctx, e, bp, tpl, l.row, l.signed, sp)
			b.StopTimer()
			require.NoError(b, err)
			b.ReportMetric(r.PerSec, "signals/s")
			b.ReportMetric(r.CPUPerSignal, "cpu-µs/signal")
			b.ReportMetric(r.AllocsPerSignal, "allocs/signal")
			b.ReportMetric(r.PerSec/c.PerSec, l.ceiling)
		})
	}
}
