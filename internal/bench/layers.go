package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/inspect"
	intakes "github.com/anfed/anfed/internal/intake" // bench has a row named intake
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/outbound"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// The layer rows measure what each layer of anfed's path costs, not modes
// an operator can configure: every signal a node originates is signed
// (DESIGN, invariant 2) and every signal it accepts is stored first, so
// anfed has neither an unsigned nor a non-durable path. They compose the
// node's own stage lists — intake.StagesFor, outbound.StagesFor and
// inbound.StagesFor, the lists the node runs, and for the signed layer
// origin.Signer and origin.Verifier — with no store, over the
// ceiling's topology: the two bare NATS servers natsconf derives from the
// pair's policies, linked by the leaf connection the accepting side's
// credentials authenticate and bind to the per-peer account. That is what
// "link-authenticated" means here.
//
//	producer ─an.pub─▶ op-a OPS ─▶ stage A ─an.link.op-a.…─▶ op-a PEER_op-b ═leaf═▶ op-b PEER_op-a
//	  ─▶ stage B ─an.sig.op-a.…─▶ op-b OPS ─▶ subscriber
//
// Stage A is intake and the link sender without the store: intake's
// checks (decode, catalog, origin, unsigned, no path, not expired), the
// signature (signed layer), the export policy towards op-b, op-a added to
// the path, the link subject. Stage B is the link receiver without the
// store: decode, the signature's verification against op-a's pinned key
// (signed layer), the receiver's checks (catalog, link subject, import
// policy, tags, not expired), published where op-b's store would
// republish it. Each stage runs one worker per core, like the receiver's
// checks; the order of the signals is not kept (neither is it by the
// lossy link). A signal refused at either stage fails the row.

// Layer row names.
const (
	RowLink   = "anfed-link"
	RowSigned = "anfed-signed"
)

// stage is one end of a layer row: a subscription whose messages are
// handled by one worker per core.
type stage struct {
	sub  *nats.Subscription
	work chan *nats.Msg
	done chan struct{}
	wg   sync.WaitGroup
}

func startStage(nc *nats.Conn, subj string, handle func(*nats.Msg)) (*stage, error) {
	st := &stage{work: make(chan *nats.Msg, 256), done: make(chan struct{})}
	for range max(runtime.GOMAXPROCS(0), 1) {
		st.wg.Go(func() {
			for {
				select {
				case m := <-st.work:
					handle(m)
				case <-st.done:
					return
				}
			}
		})
	}
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		select {
		case st.work <- m:
		case <-st.done:
		}
	})
	if err != nil {
		st.stop()
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	st.sub = sub
	return st, nc.Flush()
}

func (st *stage) stop() {
	close(st.done)
	st.wg.Wait()
	if st.sub != nil {
		_ = st.sub.Unsubscribe()
	}
}

// layer measures the link layer (signed false) or the signed layer on a
// bare pair. op-a's signing key is the env's; op-b verifies with the key
// its policy pins for op-a.
func layer(ctx context.Context, e *env, bp *barePair, tpl *template, name string, signed bool, sp spec) (Row, error) {
	r := &Row{Name: name, Latency: "publish→arrival",
		What: "layer, not a mode (no store; anfed always signs and stores): producer → op-a (intake's checks, export policy, path) → leaf link → op-b (receiver's checks, import policy) → subscriber; unsigned, order not kept"}
	if signed {
		r.What = "layer, not a mode (no store; anfed always stores): anfed-link plus op-a's ed25519 signature and op-b's verification against op-a's pinned key; order not kept"
	}
	if sp.rate > 0 {
		base := RowLink
		if signed {
			base = RowSigned
		}
		r.What = fmt.Sprintf("the %s layer (not a mode) paced at %d signals/s", base, sp.rate)
	}
	st, err := newLayerStages(e, bp.ca, bp.cb, signed)
	if err != nil {
		return *r, err
	}
	self, peer := st.self, st.peer

	var conns []*nats.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	connect := func(b *bare, account string) (*nats.Conn, error) {
		c, err := b.connect(account)
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	pc, err := connect(bp.a, natsconf.OpsAccount) // the producer
	if err != nil {
		return *r, err
	}
	aIn, err := connect(bp.a, natsconf.OpsAccount) // stage A reads intake's subject
	if err != nil {
		return *r, err
	}
	aOut, err := connect(bp.a, natsconf.PeerAccount(peer)) // and writes on the link
	if err != nil {
		return *r, err
	}
	bIn, err := connect(bp.b, natsconf.PeerAccount(self)) // stage B reads the link
	if err != nil {
		return *r, err
	}
	bOut, err := connect(bp.b, natsconf.OpsAccount) // and publishes as op-b's store would
	if err != nil {
		return *r, err
	}
	sc, err := connect(bp.b, natsconf.OpsAccount) // the subscriber
	if err != nil {
		return *r, err
	}

	s := &sink{}
	sub, err := sc.Subscribe(subject.SignalPrefix+"."+self+".>", func(m *nats.Msg) { s.arrive(sentAt(m.Data)) })
	if err != nil {
		return *r, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := sc.Flush(); err != nil {
		return *r, err
	}
	b, err := startStage(bIn, subject.LinkFrom(self), func(m *nats.Msg) {
		subj, body, err := st.b(m, nil)
		if err == nil {
			err = bOut.Publish(subj, body)
		}
		if err != nil {
			s.fail(peer + ": " + err.Error())
		}
	})
	if err != nil {
		return *r, err
	}
	defer b.stop()
	a, err := startStage(aIn, subject.IntakePrefix, func(m *nats.Msg) {
		out, err := st.a(m.Header, m.Data, nil)
		if err == nil {
			err = aOut.PublishMsg(out)
		}
		if err != nil {
			s.fail(self + ": " + err.Error())
		}
	})
	if err != nil {
		return *r, err
	}
	defer a.stop()

	buf := bytes.Clone(tpl.body)
	f, snap, err := measure(ctx, s, sp, func() error {
		tpl.stamp(buf)
		return pc.Publish(subject.IntakePrefix, buf)
	})
	row, err := finish(s, r, f, snap, err)
	if err == nil && sp.rate == 0 {
		row.Stages, err = st.stageTimes(tpl, stageSignals)
	}
	return row, err
}

// stageSignals is how many signals stageTimes times each stage over.
const stageSignals = 2000

// keyOf is what a signal's subjects say of it.
func keyOf(ev *signal.Event, class string) subject.Key {
	return subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()}
}

// layerStages is what the layer rows' two stages do to each signal: the
// node's own stage lists (intake's, the sender's towards op-b, the
// receiver's checks at op-b), without the store (and without the
// signature when unsigned). BenchmarkLayerStages runs them without NATS,
// and stageTimes times each stage.
type layerStages struct {
	self, peer string // op-a, which sends, and op-b
	intake     []intakes.Stage
	export     []outbound.Stage
	imp        []inbound.Stage // the receiver's Check stages
}

// newLayerStages applies the pair's policies ca (op-a's) and cb (op-b's),
// with op-a's signing key and op-b's pin of it if signed.
func newLayerStages(e *env, ca, cb *config.Config, signed bool) (*layerStages, error) {
	st := &layerStages{self: ca.Operator.ID, peer: cb.Operator.ID}
	insp := inspect.New(e.catalog, 0)
	var (
		signer *origin.Signer
		ver    *origin.Verifier
	)
	if signed {
		kp, err := e.key(st.self)
		if err != nil {
			return nil, err
		}
		if signer, err = origin.NewSigner(kp); err != nil {
			return nil, err
		}
		if ver, err = origin.NewVerifier(map[string]string{st.self: cb.Peers[0].SigningKey}); err != nil {
			return nil, err
		}
	}
	st.intake = intakes.StagesFor(insp, st.self, signer)
	st.export = outbound.StagesFor(st.self, exportpolicy.ForConfig(ca, &ca.Peers[0]), nil, false, 0, nil)
	for _, s := range inbound.StagesFor(cb.Operator.ID, &cb.Peers[0], insp, ver, cb.MayOriginate()) {
		if s.Phase == inbound.Check && (signed || s.Name != inbound.StageSignature) {
			st.imp = append(st.imp, s)
		}
	}
	return st, nil
}

// stageClock sums the time each stage took; nil: not timed.
type stageClock map[string]time.Duration

func (c stageClock) time(name string, run func() error) error {
	if c == nil {
		return run()
	}
	t := time.Now()
	err := run()
	c[name] += time.Since(t)
	return err
}

// a is stage A: intake's stages and the sender's towards op-b, for a
// producer's message.
func (st *layerStages) a(hdr nats.Header, body []byte, clock stageClock) (*nats.Msg, error) {
	l := &intakes.Local{Header: hdr, Data: body}
	for _, s := range st.intake {
		if err := clock.time("intake/"+s.Name, func() error { return s.Run(l) }); err != nil {
			return nil, err
		}
	}
	c := &outbound.Copy{Ev: l.Ev, Key: keyOf(l.Ev, l.Class), Now: time.Now()}
	for _, s := range st.export {
		if err := clock.time("outbound/"+s.Name, func() error { return s.Run(c) }); err != nil {
			if errors.Is(err, outbound.ErrNotSent) {
				err = errors.New("not exported: " + c.Rule)
			}
			return nil, err
		}
	}
	return c.Out, nil
}

// b is stage B: the receiver's checks of a link message, and the subject
// and body the node would store.
func (st *layerStages) b(m *nats.Msg, clock stageClock) (subj string, body []byte, err error) {
	a := &inbound.Arrival{Subject: m.Subject, Header: m.Header, Data: m.Data, Now: time.Now()}
	for _, s := range st.imp {
		if err := clock.time("inbound/"+s.Name, func() error { return s.Run(a) }); err != nil {
			return "", nil, err
		}
	}
	if subj, err = subject.Signal(a.Key); err != nil {
		return "", nil, err
	}
	return subj, a.Ev.Encode(), nil
}

// stageTimes times each stage of the layer, one signal at a time on one
// goroutine and without NATS, over n signals of tpl.
func (st *layerStages) stageTimes(tpl *template, n int) ([]StageTime, error) {
	clock := stageClock{}
	buf := bytes.Clone(tpl.body)
	for range n {
		tpl.stamp(buf)
		m, err := st.a(nil, buf, clock)
		if err != nil {
			return nil, err
		}
		if _, _, err := st.b(m, clock); err != nil {
			return nil, err
		}
	}
	var out []StageTime
	add := func(side string, name string) {
		out = append(out, StageTime{Stage: side + "/" + name, MicrosPerSignal: float64(clock[side+"/"+name].Nanoseconds()) / float64(n) / 1e3})
	}
	for _, s := range st.intake {
		add("intake", s.Name)
	}
	for _, s := range st.export {
		add("outbound", s.Name)
	}
	for _, s := range st.imp {
		add("inbound", s.Name)
	}
	return out, nil
}
