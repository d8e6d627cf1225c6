package bench

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natsconf"
)

// The ceiling rows of the durable path (issue 21): what a NATS user builds
// by hand for durable federation, on the servers, leaf link, disk and sync
// policy anfed-cross runs on. A JetStream stream at op-a, in the account
// the leaf link is bound to, sourced across that link into a stream at
// op-b, which republishes what it stores to a subscriber:
//
//	producer ─PublishAsync─▶ op-a PEER_op-b stream SRC (file, sync)
//	  ═leaf: source consumer $JS.op-a.API, deliver $JS.S.…, flow control $JS.FC.…═▶
//	op-b PEER_op-a stream DST (Sources: SRC, External{APIPrefix: $JS.op-a.API}, file, sync)
//	  ─RePublish─▶ subscriber
//
// This is what nats-server's own leaf-node tests do to source across a
// leaf (TestJetStreamSourceConsumerLeafReconnectStorm: a JetStream domain
// per server, the source's external API prefix $JS.<domain>.API). The
// servers are natsconf's, as for the other ceilings, with what sourcing
// needs added: each server's JetStream domain, JetStream in the peer
// account, and the leaf user's permissions opened to the JetStream API
// (op-b → op-a), flow-control replies (op-b → op-a), and the deliver and
// API reply subjects (op-a → op-b).
//
// raw-sourcing-signed adds an ed25519 signature made at op-a over the
// signal's bytes (crypto/ed25519, in a header) and verified at op-b, one
// worker per core, before the signal counts as delivered: a signature
// that does not verify fails the row.

// Ceiling row names.
const (
	RowRawSourcing       = "raw-sourcing"
	RowRawSourcingSigned = "raw-sourcing-signed"
)

// Targets of the durable path against its ceiling (issue 21).
const (
	ceilingThroughput = 0.8  // anfed-cross ÷ raw-sourcing-signed, at least
	ceilingCPU        = 1.5  // anfed-cross ÷ raw-sourcing-signed CPU per signal, at most
	ceilingAllocs     = 150. // anfed-cross allocations per signal, at most
	ceilingDrain      = 1.25 // anfed-cross-burst ÷ raw-sourcing-signed-burst drain time, at most
	sustainRate       = 5000 // anfed-cross signals/s with sync always, at least
	ceilingP99        = 5000 // anfed-cross p99 µs at the paced rate with a sync interval, at most
)

// sigHeader carries the by-hand signature, base64 (NATS headers are text).
const sigHeader = "Bench-Sig"

// sourcingDomain is the JetStream domain of operator id's server.
func sourcingDomain(id string) string { return id }

// sourcingBare starts a bare server for cfg with what sourcing needs:
// JetStream domain, JetStream in each peer account, and the leaf user
// (accepting side) allowed the sourcing subjects.
func sourcingBare(cfg *config.Config) (*bare, error) {
	domain := sourcingDomain(cfg.Operator.ID)
	return startBareWith(cfg, func(conf string) string {
		conf = strings.Replace(conf, "jetstream {\n", "jetstream {\n  domain: "+strconv.Quote(domain)+"\n", 1)
		for _, p := range cfg.Peers {
			acc := strconv.Quote(natsconf.PeerAccount(p.ID)) + " {\n"
			conf = strings.Replace(conf, acc, acc+"  jetstream: enabled\n", 1)
		}
		return conf
	}, func(opts *server.Options) {
		for _, u := range opts.Users {
			if u.Permissions == nil || u.AllowedConnectionTypes == nil {
				continue
			}
			if _, leaf := u.AllowedConnectionTypes["LEAFNODE"]; !leaf {
				continue
			}
			// As the hub sees them: publish is what the dialling side
			// sends us, subscribe what we send it.
			u.Permissions.Publish.Allow = append(u.Permissions.Publish.Allow, "$JS."+domain+".API.>", "$JS.FC.>")
			u.Permissions.Subscribe.Allow = append(u.Permissions.Subscribe.Allow, "$JS.S.>", "$JSC.R.>")
		}
	})
}

// startSourcingPair is the bare pair with sourcing enabled.
func (e *env) startSourcingPair(ctx context.Context) (*barePair, error) {
	return e.startBarePairWith(ctx, sourcingBare)
}

// sourcingKeys are the by-hand signature's keys: op-a signs with priv,
// op-b verifies with pub.
type sourcingKeys struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func newSourcingKeys() (sourcingKeys, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return sourcingKeys{}, fmt.Errorf("ed25519 key: %w", err)
	}
	return sourcingKeys{priv: priv, pub: pub}, nil
}

// rawSourcing measures one ceiling row on a sourcing pair; keys nil is
// the unsigned row. Each row makes its own pair of streams.
func rawSourcing(ctx context.Context, bp *barePair, tpl *template, name string, keys *sourcingKeys, sp spec) (Row, error) {
	r := &Row{Name: name, Latency: "publish→arrival",
		What: "by hand: JetStream stream at op-a sourced across the leaf link into a stream at op-b (file, same sync), republished to a subscriber; no anfed"}
	if keys != nil {
		r.What = "raw-sourcing plus an ed25519 signature of each signal at op-a (crypto/ed25519, header) verified at op-b before it counts"
	}
	pc, sc, err := bp.linkConns()
	if err != nil {
		return *r, err
	}
	defer pc.Close()
	defer sc.Close()
	s := &sink{}
	jsa, err := jetstream.New(pc, jetstream.WithPublishAsyncMaxPending(4*max(sp.window, 1024)),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) { s.fail("op-a store: " + err.Error()) }))
	if err != nil {
		return *r, err
	}
	jsb, err := jetstream.New(sc)
	if err != nil {
		return *r, err
	}
	n := strconv.FormatUint(seq.Add(1), 10)
	src, dst := "BENCH_SRC_"+n, "BENCH_DST_"+n
	in, out := "bench.src."+n, "bench.out."+n
	if _, err := jsa.CreateStream(ctx, jetstream.StreamConfig{Name: src, Subjects: []string{in + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		return *r, fmt.Errorf("%s: stream at op-a: %w", name, err)
	}
	defer func() { _ = jsa.DeleteStream(context.Background(), src) }()
	if _, err := jsb.CreateStream(ctx, jetstream.StreamConfig{
		Name: dst, Storage: jetstream.FileStorage,
		Sources:   []*jetstream.StreamSource{{Name: src, External: &jetstream.ExternalStream{APIPrefix: "$JS." + sourcingDomain("op-a") + ".API"}}},
		RePublish: &jetstream.RePublish{Source: in + ".>", Destination: out + ".>"},
	}); err != nil {
		return *r, fmt.Errorf("%s: stream at op-b sourcing op-a's: %w", name, err)
	}
	defer func() { _ = jsb.DeleteStream(context.Background(), dst) }()

	arrive := func(m *nats.Msg) { s.arrive(sentAt(m.Data)) }
	if keys != nil {
		// One worker per core verifies, as op-b's receiver does.
		st, err := startStage(sc, out+".>", func(m *nats.Msg) {
			sig, err := base64.RawStdEncoding.DecodeString(m.Header.Get(sigHeader))
			if err != nil || !ed25519.Verify(keys.pub, m.Data, sig) {
				s.fail("op-b: bad signature on " + m.Subject)
				return
			}
			arrive(m)
		})
		if err != nil {
			return *r, err
		}
		defer st.stop()
	} else {
		sub, err := sc.Subscribe(out+".>", arrive)
		if err != nil {
			return *r, err
		}
		_ = sub.SetPendingLimits(-1, -1)
		if err := sc.Flush(); err != nil {
			return *r, err
		}
	}
	subjects := resourceSubjects(in)
	f, snap, err := measure(ctx, s, sp, func() error {
		// The publisher keeps the message until op-a's store acknowledges
		// it: a buffer of its own for each.
		buf := bytes.Clone(tpl.body)
		_, res := tpl.stamp(buf)
		m := &nats.Msg{Subject: subjects[res], Data: buf}
		if keys != nil {
			m.Header = nats.Header{sigHeader: []string{base64.RawStdEncoding.EncodeToString(ed25519.Sign(keys.priv, buf))}}
		}
		_, err := jsa.PublishMsgAsync(m)
		return err
	})
	return finish(s, r, f, snap, err)
}

// runCeiling measures the two ceiling rows on a sourcing pair of their
// own.
func runCeiling(ctx context.Context, e *env, tpl *template, o *Options, sat spec, say func(string, ...any), add func(Row, error) error) error {
	say("starting the durable ceiling's NATS servers (op-a <-> op-b leaf link, JetStream sourcing across it)")
	bp, err := e.startSourcingPair(ctx)
	if err != nil {
		return err
	}
	defer bp.stop()
	keys, err := newSourcingKeys()
	if err != nil {
		return err
	}
	if err := add(rawSourcing(ctx, bp, tpl, RowRawSourcing, nil, o.spec(RowRawSourcing, sat))); err != nil {
		return err
	}
	if err := add(rawSourcing(ctx, bp, tpl, RowRawSourcingSigned, &keys, o.spec(RowRawSourcingSigned, sat))); err != nil {
		return err
	}
	if o.Burst <= 0 {
		return nil
	}
	say("%s: %d signals at once", Burst(RowRawSourcingSigned), o.Burst)
	return add(rawSourcing(ctx, bp, tpl, Burst(RowRawSourcingSigned), &keys, o.spec(Burst(RowRawSourcingSigned), burst(o.Burst))))
}

// ceilingTargets are the durable path against the by-hand ceiling, in the
// same run: throughput, CPU per signal, allocations per signal.
func ceilingTargets(r *Report, o Options) []Target {
	x, c := r.Row(RowCross), r.Row(RowRawSourcingSigned)
	if x == nil || c == nil || c.PerSec == 0 || c.CPUPerSignal == 0 {
		return nil
	}
	tp, cpu := x.PerSec/c.PerSec, x.CPUPerSignal/c.CPUPerSignal
	tpNote := fmt.Sprintf("%.0f ÷ %.0f signals/s", x.PerSec, c.PerSec)
	cpuNote := fmt.Sprintf("%.1f ÷ %.1f µs/signal", x.CPUPerSignal, c.CPUPerSignal)
	if pt, pc, note, ok := pairedMedians(r.Paired); ok {
		// The rounds measure both sides seconds apart: they decide; the
		// table's rows, minutes apart, are shown beside them.
		tpNote = fmt.Sprintf("%s; the table's rows: %.3f", note, tp)
		cpuNote = fmt.Sprintf("median of %d paired rounds; the table's rows: %s", len(r.Paired), cpuNote)
		tp, cpu = pt, pc
	}
	sync := ", sync " + o.Sync
	ts := []Target{
		{Name: "durable path (anfed-cross) vs " + RowRawSourcingSigned + sync, Want: "≥ 0.80", Unit: "ratio", Measured: tp, Met: tp >= ceilingThroughput, Measure: true,
			Note: tpNote},
		{Name: "CPU per signal, anfed-cross ÷ " + RowRawSourcingSigned + sync, Want: "≤ 1.5", Unit: "×", Measured: cpu, Met: cpu <= ceilingCPU, Measure: true,
			Note: cpuNote},
		{Name: "allocations per signal, anfed-cross" + sync, Want: "≤ 150", Unit: "allocs", Measured: x.AllocsPerSignal, Met: x.AllocsPerSignal <= ceilingAllocs, Measure: true,
			Note: fmt.Sprintf("%s: %.1f", RowRawSourcingSigned, c.AllocsPerSignal)},
	}
	if xb, cb := r.Row(Burst(RowCross)), r.Row(Burst(RowRawSourcingSigned)); xb != nil && cb != nil && cb.DrainMs > 0 {
		d := xb.DrainMs / cb.DrainMs
		// A lost signal fails the row (finish), so a burst row here lost none.
		ts = append(ts, Target{Name: fmt.Sprintf("burst of %d signals at once, drain time anfed-cross ÷ %s%s, 0 lost", xb.Signals, RowRawSourcingSigned, sync),
			Want: "≤ 1.25", Unit: "×", Measured: d, Met: d <= ceilingDrain && xb.Lost == 0, Measure: true,
			Note: fmt.Sprintf("%.0f ÷ %.0f ms, %d lost", xb.DrainMs, cb.DrainMs, xb.Lost)})
	}
	// The product path's rate targets: with every write flushed, the
	// saturated row's throughput; with a flush interval, the tail of the
	// row paced at the rate.
	if o.Sync == "always" {
		ts = append(ts, Target{Name: fmt.Sprintf("durable path (anfed-cross) sustains %d signals/s%s", sustainRate, sync), Want: fmt.Sprintf("≥ %d", sustainRate),
			Unit: "signals/s", Measured: x.PerSec, Met: x.PerSec >= sustainRate, Measure: true, Note: "the saturated row"})
	} else if pr := r.Row(Paced(RowCross, o.Rate)); pr != nil {
		sustained := pr.PerSec >= 0.95*float64(o.Rate)
		note := fmt.Sprintf("sustained %.0f signals/s", pr.PerSec)
		if !sustained {
			note += ": the rate was not sustained"
		}
		ts = append(ts, Target{Name: fmt.Sprintf("durable path (anfed-cross) p99 at %d signals/s%s", o.Rate, sync), Want: fmt.Sprintf("≤ %d", ceilingP99),
			Unit: "µs", Measured: pr.P99, Met: sustained && pr.P99 <= ceilingP99, Measure: true, Note: note})
	}
	return ts
}
