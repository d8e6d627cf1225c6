package bench

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

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

func TestWindowFor(t *testing.T) {
	require.Equal(t, 1024, windowFor(1e6, 1024))
	require.Equal(t, 52, windowFor(200, 1024))
	require.Equal(t, 32, windowFor(0, 1024))
}

func benchEnv(b *testing.B) *env {
	e, err := newEnv("2m", zerolog.Nop())
	require.NoError(b, err)
	b.Cleanup(e.close)
	return e
}

// BenchmarkCrossOperator sends b.N signals across the leaf link as raw
// NATS (the ceiling, untimed) and through anfed's validated, signed,
// durable path (timed), and reports the ratio. storage.sync is 2m: the
// disk's flush would otherwise bound both (see docs/benchmarks.md).
func BenchmarkCrossOperator(b *testing.B) {
	ctx := context.Background()
	e := benchEnv(b)
	tpl, err := newTemplate(1024)
	require.NoError(b, err)
	sp := spec{count: b.N, window: 1024}
	bp, err := e.startBarePair(ctx)
	require.NoError(b, err)
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
