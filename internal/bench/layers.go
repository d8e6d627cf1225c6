package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound"
	"github.com/anfed/anfed/internal/inbound/importpolicy"
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
// node's own checks — intake.Check, the export policy's Decide,
// outbound.Outgoing, inbound.CheckImport, the import policy, and for the signed
// layer origin.Signer and origin.Verifier — with no store, over the
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
		subj, body, err := st.b(m)
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
		out, err := st.a(m.Header, m.Data)
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
	return finish(s, r, f, snap, err)
}

// keyOf is what a signal's subjects say of it.
func keyOf(ev *signal.Event, class string) subject.Key {
	return subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()}
}

// layerStages is what the layer rows' two stages do to each signal: the
// node's own functions, without the store (and without the signature
// when signer and ver are nil). BenchmarkLayerStages runs them without
// NATS.
type layerStages struct {
	self, peer string // op-a, which sends, and op-b
	insp       *inspect.Inspector
	export     *exportpolicy.Policy // op-a's, for op-b
	imp        *importpolicy.Policy // op-b's, for op-a
	signer     *origin.Signer
	ver        *origin.Verifier
}

// newLayerStages applies the pair's policies ca (op-a's) and cb (op-b's),
// with op-a's signing key and op-b's pin of it if signed.
func newLayerStages(e *env, ca, cb *config.Config, signed bool) (*layerStages, error) {
	st := &layerStages{
		self: ca.Operator.ID, peer: cb.Operator.ID,
		insp:   inspect.New(e.catalog, 0),
		export: exportpolicy.ForConfig(ca, &ca.Peers[0]),
		imp:    importpolicy.New(cb.Operator.ID, &cb.Peers[0]),
	}
	if !signed {
		return st, nil
	}
	kp, err := e.key(st.self)
	if err != nil {
		return nil, err
	}
	if st.signer, err = origin.NewSigner(kp); err != nil {
		return nil, err
	}
	st.ver, err = origin.NewVerifier(map[string]string{st.self: cb.Peers[0].SigningKey})
	return st, err
}

// a is stage A: intake's checks, the signature, the export policy and the
// link message, for a producer's message.
func (st *layerStages) a(hdr nats.Header, body []byte) (*nats.Msg, error) {
	ev, class, err := intakes.Check(st.insp, st.self, hdr, body)
	if err == nil && st.signer != nil {
		err = st.signer.Sign(ev)
	}
	if err == nil {
		if d := st.export.Decide(ev, class); !d.Export {
			err = errors.New("not exported: " + d.Rule)
		}
	}
	if err != nil {
		return nil, err
	}
	return outbound.Outgoing(st.self, keyOf(ev, class), ev)
}

// b is stage B: the receiver's decode, verification and checks of a link
// message, and the subject and body the node would store.
func (st *layerStages) b(m *nats.Msg) (subj string, body []byte, err error) {
	ev, err := st.insp.Decode(m.Header, m.Data)
	if err == nil && st.ver != nil {
		if err = ev.Check(); err == nil {
			err = st.ver.Verify(ev)
		}
	}
	var class string
	if err == nil {
		class, err = inbound.CheckImport(st.insp, st.imp, st.self, m.Subject, ev)
	}
	if err != nil {
		return "", nil, err
	}
	if subj, err = subject.Signal(keyOf(ev, class)); err != nil {
		return "", nil, err
	}
	return subj, ev.Encode(), nil
}
