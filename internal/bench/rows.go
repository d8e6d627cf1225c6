package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// spec says how long one row runs and how hard it pushes.
type spec struct {
	d       time.Duration // measured for this long (count == 0)
	count   int           // or this many signals
	rate    int           // signals/s; 0: as fast as the window lets
	window  int           // most signals unfinished at once
	warm    time.Duration // sent, and waited for, before measuring
	profile io.Writer     // CPU profile of the measured part, if set
	trace   io.Writer     // execution trace of the measured part, if set
}

// sink routes arrivals to the flow being measured (none during setup).
type sink struct {
	cur     atomic.Pointer[flow]
	errOnce sync.Once
	err     atomic.Value // first refusal's answer, for the report
}

func (s *sink) arrive(ts int64) {
	if f := s.cur.Load(); f != nil {
		f.arrive(ts)
	}
}

func (s *sink) fail(why string) {
	s.errOnce.Do(func() { s.err.Store(why) })
	if f := s.cur.Load(); f != nil {
		f.fail()
	}
}

// windowFor is the window of a saturated row: enough to keep the path busy
// (100 ms of what it carried in the warm-up), at most max, at least 32. A
// path carrying 200 signals/s is not kept waiting behind 1,024 of them,
// and the drain after the measured part stays short.
func windowFor(perSec float64, max int) int {
	return min(max, int(perSec/10)+32)
}

// measure runs one row: a probe until the path carries signals (interest
// has crossed the leaf link), a warm-up, then the measured flow, then a
// wait for the signals still in flight (counted as lost if they never
// come).
func measure(ctx context.Context, s *sink, sp spec, publish func() error) (*flow, snapshot, error) {
	probe := newFlow(1 << 20)
	s.cur.Store(probe)
	deadline := time.Now().Add(15 * time.Second)
	for probe.arrived.Load() == 0 {
		if probe.failed.Load() > 0 {
			why, _ := s.err.Load().(string)
			return nil, snapshot{}, fmt.Errorf("probe refused: %s", why)
		}
		if time.Now().After(deadline) {
			return nil, snapshot{}, errors.New("no signal arrived within 15s")
		}
		if err := publish(); err != nil {
			return nil, snapshot{}, err
		}
		probe.sent++
		_ = waitUntil(ctx, 100*time.Millisecond, func() bool { return probe.arrived.Load()+probe.failed.Load() > 0 })
	}
	// The probes still on their way, before the warm-up counts arrivals;
	// those sent before interest crossed the link never come, so stop
	// once nothing finished for half a second.
	last, moved := int64(-1), time.Now()
	_ = waitUntil(ctx, 2*time.Second, func() bool {
		done := probe.arrived.Load() + probe.failed.Load()
		if done != last {
			last, moved = done, time.Now()
		}
		return done >= probe.sent || time.Since(moved) > 500*time.Millisecond
	})
	window := sp.window
	if sp.warm > 0 {
		// A small window first: a slow path (a disk flush per write)
		// drains it soon, and it tells how much the path carries.
		w := newFlow(min(sp.window, 64))
		s.cur.Store(w)
		t0 := time.Now()
		if err := w.drive(ctx, sp.warm, 0, sp.rate, publish); err != nil {
			return nil, snapshot{}, fmt.Errorf("warm-up: %w", err)
		}
		window = windowFor(float64(w.arrived.Load())/time.Since(t0).Seconds(), sp.window)
		if err := w.wait(ctx); err != nil {
			return nil, snapshot{}, err
		}
	}
	f := newFlow(window)
	f.burst = sp.count > 0
	runtime.GC()
	m := startMeter()
	s.cur.Store(f)
	if sp.profile != nil {
		if err := pprof.StartCPUProfile(sp.profile); err != nil {
			return nil, snapshot{}, err
		}
	}
	if sp.trace != nil {
		if err := trace.Start(sp.trace); err != nil {
			if sp.profile != nil {
				pprof.StopCPUProfile()
			}
			return nil, snapshot{}, fmt.Errorf("execution trace: %w", err)
		}
	}
	err := f.drive(ctx, sp.d, sp.count, sp.rate, publish)
	var snap snapshot
	if sp.count == 0 {
		snap = f.snapshot(m, time.Now())
	}
	if sp.trace != nil {
		trace.Stop()
	}
	if sp.profile != nil {
		pprof.StopCPUProfile()
	}
	if err == nil {
		err = f.wait(ctx)
	}
	if sp.count > 0 {
		snap = f.snapshot(m, time.Unix(0, f.last.Load()))
	}
	snap.rate = sp.rate
	return f, snap, err
}

// finish turns a measured flow into a row; a refused or lost signal makes
// it an error.
func finish(s *sink, r *Row, f *flow, snap snapshot, err error) (Row, error) {
	if err != nil {
		return *r, fmt.Errorf("%s: %w", r.Name, err)
	}
	f.row(r, snap)
	if r.Failed > 0 {
		why, _ := s.err.Load().(string)
		return *r, fmt.Errorf("%s: %d signals refused, first: %s", r.Name, r.Failed, why)
	}
	if r.Lost > 0 {
		return *r, fmt.Errorf("%s: %d of %d signals never arrived", r.Name, r.Lost, f.sent)
	}
	if r.Lost < 0 {
		return *r, fmt.Errorf("%s: %d more arrivals than signals sent (%d): duplicates", r.Name, -r.Lost, f.sent)
	}
	return *r, nil
}

// rawNATS is the ceiling: core NATS through the same leaf link, in the
// same accounts the link uses — published on op-a in the account bound to
// op-b on a link subject, received on op-b in the account bound to op-a —
// with nothing of anfed in between.
func rawNATS(ctx context.Context, bp *barePair, tpl *template, sp spec) (Row, error) {
	r := &Row{Name: RowRawNATS, What: "core NATS pub/sub across the leaf link (natsconf's accounts and permissions), no anfed", Latency: "publish→arrival"}
	pc, sc, err := bp.linkConns()
	if err != nil {
		return *r, err
	}
	defer pc.Close()
	defer sc.Close()
	s := &sink{}
	sub, err := sc.Subscribe(subject.LinkFrom("op-a"), func(m *nats.Msg) { s.arrive(sentAt(m.Data)) })
	if err != nil {
		return *r, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := sc.Flush(); err != nil {
		return *r, err
	}
	buf := bytes.Clone(tpl.body)
	f, snap, err := measure(ctx, s, sp, func() error {
		_, res := tpl.stamp(buf)
		return pc.Publish(tpl.subjects[res], buf)
	})
	return finish(s, r, f, snap, err)
}

// cross is anfed's cross-operator path as it is: a producer on op-a asks
// intake to take each signal (request/reply, pipelined); op-a validates,
// signs and stores it, its link sender forwards it; op-b verifies,
// validates and stores it; a subscriber on op-b sees it on an.sig.op-a.>.
func cross(ctx context.Context, e *env, p *pair, tpl *template, name string, sp spec) (Row, error) {
	_ = e.obs.take()
	row, err := crossRow(ctx, p, tpl, name, sp)
	row.Refused = strings.TrimSpace(e.obs.take() + " " + row.Refused)
	return row, err
}

// crossStages times the durable path's stages, from the lists the pair's
// nodes run (intake's, the sender's towards op-b, op-b's receiver's
// checks), one signal at a time without NATS, into r: what of the row's
// CPU per signal they are, and what is not a stage (report.go).
func crossStages(e *env, p *pair, tpl *template, r *Row) error {
	st, err := newLayerStages(e, p.a.Config(), p.b.Config(), true)
	if err != nil {
		return err
	}
	r.Stages, err = st.stageTimes(tpl, stageSignals)
	return err
}

func crossRow(ctx context.Context, p *pair, tpl *template, name string, sp spec) (Row, error) {
	r := &Row{Name: name, What: "producer on op-a → intake (validate, sign, store) → link → op-b (verify, validate, store) → subscriber", Latency: "publish→arrival"}
	pubSubj, subSubj := subject.IntakePrefix, subject.SignalPrefix+".op-a.>"
	switch {
	case name == RowStream || name == Paced(RowStream, sp.rate):
		r.What = "producer → an.tel at op-a (validate, sign) → link, fire and forget, numbered → op-b (verify, validate) → an.telsig subscriber; no store at either end"
		if sp.rate > 0 {
			r.What = fmt.Sprintf("the anfed-stream path paced at %d signals/s", sp.rate)
		}
		pubSubj, subSubj = subject.TelemetryIntakePrefix, subject.TelemetryPrefix+".op-a.>"
	case sp.rate > 0:
		r.What = fmt.Sprintf("the anfed-cross path paced at %d signals/s", sp.rate)
	case name == RowLossy:
		r.What = "the anfed-cross path with export.delivery lossy: core NATS on the link, no export consumer, no link answers"
	}
	pc, err := p.a.Connect(nats.Name("bench-producer"))
	if err != nil {
		return *r, err
	}
	defer pc.Close()
	sc, err := p.b.Connect(nats.Name("bench-subscriber"))
	if err != nil {
		return *r, err
	}
	defer sc.Close()
	s := &sink{}
	sub, err := sc.Subscribe(subSubj, func(m *nats.Msg) { s.arrive(sentAt(m.Data)) })
	if err != nil {
		return *r, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := sc.Flush(); err != nil {
		return *r, err
	}
	if sp.count > 0 && sp.count == sp.window {
		return crossBurst(ctx, pc, s, r, tpl, sp)
	}
	asub, err := pc.Subscribe("bench.answer", func(m *nats.Msg) {
		if st := m.Header.Get(signal.HeaderStatus); st != signal.StatusAccepted {
			s.fail(string(m.Data))
		}
	})
	if err != nil {
		return *r, err
	}
	_ = asub.SetPendingLimits(-1, -1)
	if err := pc.Flush(); err != nil {
		return *r, err
	}
	buf := bytes.Clone(tpl.body)
	f, snap, err := measure(ctx, s, sp, func() error {
		tpl.stamp(buf)
		return pc.PublishRequest(pubSubj, "bench.answer", buf)
	})
	return finish(s, r, f, snap, err)
}

// crossBurst is a burst row of the cross path: every signal published at
// once, each with a reply subject of its own, and a signal the intake
// answers "unavailable" (its store writes are all in flight: retry with
// the same id, as the answer says) published again, as a producer does.
// Retries are counted in the row's refusals column; a retry answered
// duplicate was stored the first time (its arrival counts once); any
// other refusal fails the row.
func crossBurst(ctx context.Context, pc *nats.Conn, s *sink, r *Row, tpl *template, sp spec) (Row, error) {
	bodies := make([][]byte, 0, sp.count+64)
	var mu sync.Mutex
	var retried atomic.Int64
	prefix := "bench.answer." + nuid.Next() + "."
	asub, err := pc.Subscribe(prefix+"*", func(m *nats.Msg) {
		st := m.Header.Get(signal.HeaderStatus)
		if st == signal.StatusAccepted || st == signal.StatusDuplicate {
			return // duplicate: a retry of one whose write was stored after all
		}
		if a, err := signal.ParseAnswer(m.Data); err == nil && a.Reason == string(reject.Unavailable) {
			i, _ := strconv.Atoi(m.Subject[len(prefix):])
			mu.Lock()
			body := bodies[i]
			mu.Unlock()
			retried.Add(1)
			if err := pc.PublishRequest(subject.IntakePrefix, m.Subject, body); err == nil {
				return
			}
		}
		s.fail(string(m.Data))
	})
	if err != nil {
		return *r, err
	}
	defer asub.Unsubscribe()
	_ = asub.SetPendingLimits(-1, -1)
	if err := pc.Flush(); err != nil {
		return *r, err
	}
	f, snap, err := measure(ctx, s, sp, func() error {
		buf := bytes.Clone(tpl.body)
		tpl.stamp(buf)
		mu.Lock()
		i := len(bodies)
		bodies = append(bodies, buf)
		mu.Unlock()
		return pc.PublishRequest(subject.IntakePrefix, prefix+strconv.Itoa(i), buf)
	})
	if n := retried.Load(); n > 0 {
		r.Refused = strings.TrimSpace(r.Refused + fmt.Sprintf(" producer-retried-unavailable=%d", n))
	}
	return finish(s, r, f, snap, err)
}

// intake is the durable path alone: a producer's signals validated,
// signed, stored (JetStream, the node's sync policy) and answered, on a
// node without peers. Latency is to the answer.
func intake(ctx context.Context, n *node.Node, tpl *template, sp spec) (Row, error) {
	r := &Row{Name: RowIntake, What: "producer → intake (validate, sign, store in JetStream) → answer", Latency: "publish→answer"}
	pc, err := n.Connect(nats.Name("bench-producer"))
	if err != nil {
		return *r, err
	}
	defer pc.Close()
	s := &sink{}
	// Intake answers stored signals in the order they came: the publish
	// times wait in the same order.
	stamps := make(chan int64, 1<<20)
	asub, err := pc.Subscribe("bench.answer", func(m *nats.Msg) {
		ts := <-stamps
		if st := m.Header.Get(signal.HeaderStatus); st != signal.StatusAccepted {
			s.fail(string(m.Data))
			return
		}
		s.arrive(ts)
	})
	if err != nil {
		return *r, err
	}
	_ = asub.SetPendingLimits(-1, -1)
	if err := pc.Flush(); err != nil {
		return *r, err
	}
	buf := bytes.Clone(tpl.body)
	f, snap, err := measure(ctx, s, sp, func() error {
		tpl.stamp(buf)
		stamps <- sentAt(buf)
		return pc.PublishRequest(subject.IntakePrefix, "bench.answer", buf)
	})
	return finish(s, r, f, snap, err)
}

// rawJetStream is the durable ceiling: JetStream async publish of the same
// signals to a file stream on the same server, so with the same sync
// policy. Latency is to the PubAck.
func rawJetStream(ctx context.Context, n *node.Node, tpl *template, sp spec) (Row, error) {
	r := &Row{Name: RowRawJS, What: "nats.go jetstream PublishMsgAsync to a file stream, same server and sync policy, no anfed", Latency: "publish→ack"}
	nc, err := n.Connect(nats.Name("bench-raw-js"))
	if err != nil {
		return *r, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(sp.window))
	if err != nil {
		return *r, err
	}
	name := "BENCH_RAW_" + strconv.FormatUint(seq.Add(1), 10)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"bench." + name + ".>"}, Storage: jetstream.FileStorage}); err != nil {
		return *r, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), name) }()
	s := &sink{}
	futs := make(chan jetstream.PubAckFuture, 1<<20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for fut := range futs {
			select {
			case <-fut.Ok():
				s.arrive(sentAt(fut.Msg().Data))
			case err := <-fut.Err():
				s.fail(err.Error())
			}
		}
	}()
	subjects := resourceSubjects("bench." + name)
	f, snap, err := measure(ctx, s, sp, func() error {
		// The future keeps the message until it is acknowledged: a
		// buffer of its own for each.
		buf := bytes.Clone(tpl.body)
		_, res := tpl.stamp(buf)
		fut, err := js.PublishMsgAsync(&nats.Msg{Subject: subjects[res], Data: buf})
		if err != nil {
			return err
		}
		futs <- fut
		return nil
	})
	close(futs)
	<-done
	return finish(s, r, f, snap, err)
}

// signVerify is the signature ceiling: origin.Signer and origin.Verifier
// on the same events, one worker per core, nothing else.
func signVerify(ctx context.Context, e *env, tpl *template, sp spec) (Row, error) {
	r := &Row{Name: RowSignVerify, What: fmt.Sprintf("origin.Signer.Sign + origin.Verifier.Verify of each signal (ed25519), %d workers", runtime.GOMAXPROCS(0)), Latency: "sign+verify"}
	kp, err := e.key("op-a")
	if err != nil {
		return *r, err
	}
	signer, err := origin.NewSigner(kp)
	if err != nil {
		return *r, err
	}
	ver, err := origin.NewVerifier(map[string]string{"op-a": e.pub("op-a")})
	if err != nil {
		return *r, err
	}
	workers := runtime.GOMAXPROCS(0)
	one := func(ev *signal.Event, idbuf []byte) ([]byte, error) {
		idbuf = strconv.AppendUint(idbuf[:1], seq.Add(1), 10)
		ev.ID = string(idbuf)
		ev.DSSEMaterial, ev.SignedExtAttrs = "", ""
		if err := signer.Sign(ev); err != nil {
			return idbuf, err
		}
		return idbuf, ver.Verify(ev)
	}
	// Warm up, then measure.
	ev := *tpl.event
	idbuf := []byte("b")
	for range 200 {
		if idbuf, err = one(&ev, idbuf); err != nil {
			return *r, err
		}
	}
	runtime.GC()
	m := startMeter()
	deadline := time.Now().Add(sp.d)
	per := max(sp.count/workers, 1)
	lats := make([][]int64, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ev := *tpl.event
			idbuf := []byte("b")
			lat := make([]int64, 0, 1<<14)
			for i := 0; ; i++ {
				if sp.count > 0 {
					if i >= per {
						break
					}
				} else if i%64 == 0 && !time.Now().Before(deadline) {
					break
				}
				t0 := time.Now()
				var err error
				if idbuf, err = one(&ev, idbuf); err != nil {
					errs[w] = err
					return
				}
				lat = append(lat, int64(time.Since(t0)))
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	el := time.Since(m.start)
	if err := errors.Join(errs...); err != nil {
		return *r, fmt.Errorf("%s: %w", r.Name, err)
	}
	all := slices.Concat(lats...)
	r.Signals = len(all)
	r.PerSec = float64(len(all)) / el.Seconds()
	r.CPUPerSignal, r.AllocsPerSignal = m.per(len(all))
	r.Cores = r.CPUPerSignal * r.PerSec / 1e6
	r.P50, r.P99, r.P999 = percentiles(all)
	return *r, ctx.Err()
}

// webhook is the telecom status quo: each signal POSTed, one by one, over
// one HTTP/1.1 keep-alive connection to a local listener in the TMF688
// hub/listener style, which reads the event and answers 201 Created.
func webhook(ctx context.Context, tpl *template, sp spec) (Row, error) {
	r := &Row{Name: RowWebhook, What: "HTTP/1.1 keep-alive POST of each signal, one by one, to a local TMF688-style listener (201)", Latency: "POST→listener"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return *r, err
	}
	s := &sink{}
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			body, err := io.ReadAll(req.Body)
			if err != nil || req.Method != http.MethodPost {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			s.arrive(sentAt(body))
			w.WriteHeader(http.StatusCreated)
		}),
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://" + ln.Addr().String() + "/tmf-api/event/v4/listener/faultEvent"
	buf := bytes.Clone(tpl.body)
	sp.window = 1
	f, snap, err := measure(ctx, s, sp, func() error {
		tpl.stamp(buf)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/cloudevents+json")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			s.fail(resp.Status)
		}
		return nil
	})
	return finish(s, r, f, snap, err)
}
