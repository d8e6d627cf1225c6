// Package demo runs three operators in one process on the embedded
// default: op-a and op-b linked, op-b and op-c linked, over real TCP leaf
// links on loopback. A synthetic assurance source in op-a raises and clears
// congestion and faults on a service it shares with op-b; a closed loop in
// op-b answers each with a mitigation back to op-a and warns op-c of the
// SLA risk. op-a and op-c are also linked, for coordination only: on op-a's
// first congestion op-b proposes a reroute of the interconnect, op-a's
// policy accepts it and grants a lease, op-b reports it active, op-c's
// conflicting proposal is declined naming op-b's lease, and op-b completes
// the action. op-a also states a TMF921 intent for vpn-acme to op-b,
// which op-b accepts and reports on as it measures the service's latency.
// Every border crossing is printed as it happens, and the run ends with
// one summary line that counts what was lost, what the coordination
// decided, and the intent and its reports.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/schemacheck"
)

// Options configure a demo run.
type Options struct {
	// Duration ends the run; 0 runs until ctx is done.
	Duration time.Duration
	// Interval between two synthetic assurance signals in op-a.
	Interval time.Duration
	// Dir holds the nodes' storage; "" uses a temporary directory removed
	// at the end.
	Dir string
	Out io.Writer
	Log zerolog.Logger
	// NodeOptions, when set, adds options to each operator's node (an
	// observer, say).
	NodeOptions func(id string) []node.Option
	// Started, when set, is called once every node is up and linked,
	// before signals flow; its stop func runs before the nodes stop.
	Started func(nodes map[string]*node.Node) (stop func(), err error)
}

// Summary is what the run's last line says.
type Summary struct {
	Crossed     int // signals accepted across a border (duplicates excluded)
	Mitigations int // mitigations that reached op-a
	Rejected    int // signals refused anywhere, with a reason
	Lost        int // accepted signals the policy exports that never arrived
	Proposals   int // actions proposed (op-b's reroute, op-c's conflicting one)
	Accepted    int // proposals every affected operator accepted
	Conflicts   int // proposals declined for another operator's lease
	Intents     int // intents op-a stated to op-b
	Reports     int // op-b's intent reports that reached op-a
}

func (s Summary) String() string {
	return fmt.Sprintf("summary: crossed=%d mitigations=%d rejected=%d lost=%d proposals=%d accepted=%d conflicts=%d intents=%d reports=%d",
		s.Crossed, s.Mitigations, s.Rejected, s.Lost, s.Proposals, s.Accepted, s.Conflicts, s.Intents, s.Reports)
}

// The three operators and the shared service.
const (
	opA = "op-a"
	opB = "op-b"
	opC = "op-c"

	sharedService  = "vpn-acme"      // op-a and op-b carry it together
	privateService = "core-backbone" // op-a's own: never exported
	transitService = "transit-c"     // op-b's service to op-c
)

// Configs returns the three operators' policies, storage under dir. op-a
// and op-b accept leaf links on free loopback ports; the dial URLs of op-b
// and op-c are filled in by Run once their peer listens.
func Configs(dir string) (map[string]*config.Config, error) {
	pw := func() (string, error) {
		b := make([]byte, 12)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		return hex.EncodeToString(b), nil
	}
	pwB, err := pw()
	if err != nil {
		return nil, err
	}
	pwC, err := pw()
	if err != nil {
		return nil, err
	}
	pwAC, err := pw()
	if err != nil {
		return nil, err
	}
	mk := func(id string) *config.Config {
		return &config.Config{
			Operator: config.Operator{ID: id, Name: "Operator " + id[3:]},
			Storage: config.Storage{
				Dir:             filepath.Join(dir, id),
				MaxAge:          config.Duration(time.Hour),
				MaxBytes:        config.ByteSize(256 << 20),
				DuplicateWindow: config.Duration(2 * time.Minute),
			},
		}
	}
	a, b, c := mk(opA), mk(opB), mk(opC)
	// Each operator's signing key, in its own folder; peers pin the
	// public keys, as `anfed peer add` would from a peering bundle.
	pubs := map[string]string{}
	for _, cfg := range []*config.Config{a, b, c} {
		kp, err := origin.NewSigningKey()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(cfg.Storage.Dir, 0o700); err != nil {
			return nil, err
		}
		cfg.Operator.SigningKeyFile = filepath.Join(cfg.Storage.Dir, "signing.nk")
		if err := origin.WriteSigningKey(cfg.Operator.SigningKeyFile, kp); err != nil {
			return nil, err
		}
		if pubs[cfg.Operator.ID], err = kp.PublicKey(); err != nil {
			return nil, err
		}
	}
	defer func() {
		for _, cfg := range []*config.Config{a, b, c} {
			for i := range cfg.Peers {
				cfg.Peers[i].SigningKey = pubs[cfg.Peers[i].ID]
			}
		}
	}()
	act := coordination.Class
	// op-a states an intent for vpn-acme to op-b; op-b takes intents for
	// it from op-a with latency targets of 5 ms or more.
	for _, cfg := range []*config.Config{a, b} {
		tok := filepath.Join(cfg.Storage.Dir, "intents.token")
		if err := os.WriteFile(tok, []byte(rand.Text()+"\n"), 0o600); err != nil {
			return nil, err
		}
		cfg.Intents = &config.Intents{TokenFile: tok}
	}
	five := 5.0
	b.Intents.Accept = []config.IntentAccept{{From: []string{opA}, Services: []string{sharedService}, Bounds: config.IntentBounds{MinLatencyMs: &five}}}
	a.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	a.Peers = []config.Peer{{
		ID: opB, Accept: &config.Accept{User: opB, Password: pwB},
		Export: config.ExportPolicy{Classes: []string{"congestion", "fault", act, intent.Class}, Services: []string{sharedService}},
		Import: config.ImportPolicy{Classes: []string{"mitigation", act, intent.Class, "intent-report"}},
	}, {
		ID: opC, Accept: &config.Accept{User: opC, Password: pwAC},
		Export: config.ExportPolicy{Classes: []string{act}, Services: []string{sharedService}},
		Import: config.ImportPolicy{Classes: []string{act}},
	}}
	// op-a decides on actions on its interconnects: its peers' reroutes
	// of vpn-acme for up to 10 minutes are accepted.
	a.Coordination = &config.Coordination{AutoAccept: []config.CoordinationRule{{
		From: []string{opB, opC}, Kinds: []string{"reroute"}, Services: []string{sharedService}, MaxDuration: config.Duration(10 * time.Minute)}}}
	b.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	b.Coordination = &config.Coordination{}
	b.Peers = []config.Peer{{
		ID: opA, Dial: &config.Dial{User: opB, Password: pwB},
		Export: config.ExportPolicy{Classes: []string{"mitigation", act, intent.Class, "intent-report"}, Services: []string{sharedService}},
		Import: config.ImportPolicy{Classes: []string{"congestion", "fault", act, intent.Class}},
	}, {
		ID: opC, Accept: &config.Accept{User: opC, Password: pwC},
		Export: config.ExportPolicy{Classes: []string{"sla-risk"}, Services: []string{transitService}},
		Import: config.ImportPolicy{Classes: []string{"mitigation"}},
	}}
	c.Coordination = &config.Coordination{}
	c.Peers = []config.Peer{{
		ID: opB, Dial: &config.Dial{User: opC, Password: pwC},
		Import: config.ImportPolicy{Classes: []string{"sla-risk"}},
	}, {
		ID: opA, Dial: &config.Dial{User: opC, Password: pwAC},
		Export: config.ExportPolicy{Classes: []string{act}, Services: []string{sharedService}},
		Import: config.ImportPolicy{Classes: []string{act}},
	}}
	return map[string]*config.Config{opA: a, opB: b, opC: c}, nil
}

// Run runs the demo until opts.Duration passes or ctx is done, prints the
// summary line last, and returns the summary.
func Run(ctx context.Context, opts Options) (Summary, error) {
	if opts.Out == nil {
		opts.Out = os.Stdout
	}
	if opts.Interval <= 0 {
		opts.Interval = 250 * time.Millisecond
	}
	dir := opts.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "anfed-demo-")
		if err != nil {
			return Summary{}, fmt.Errorf("demo storage: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cfgs, err := Configs(dir)
	if err != nil {
		return Summary{}, err
	}
	catalog, err := schemacheck.Load()
	if err != nil {
		return Summary{}, fmt.Errorf("load signal catalog: %w", err)
	}
	led := newLedger(opts.Out)
	nodes := map[string]*node.Node{}
	defer func() {
		for _, id := range []string{opC, opB, opA} {
			if n := nodes[id]; n != nil {
				n.Stop()
			}
		}
	}()
	start := func(id string) error {
		nopts := []node.Option{node.WithLogger(opts.Log), node.WithCatalog(catalog), node.WithObserver(led)}
		if opts.NodeOptions != nil {
			nopts = append(nopts, opts.NodeOptions(id)...)
		}
		n := node.New(cfgs[id], nopts...)
		if err := n.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", id, err)
		}
		nodes[id] = n
		return nil
	}
	if err := start(opA); err != nil {
		return Summary{}, err
	}
	cfgs[opB].Peers[0].Dial.URL = nodes[opA].LeafURL()
	if err := start(opB); err != nil {
		return Summary{}, err
	}
	cfgs[opC].Peers[0].Dial.URL = nodes[opB].LeafURL()
	cfgs[opC].Peers[1].Dial.URL = nodes[opA].LeafURL()
	if err := start(opC); err != nil {
		return Summary{}, err
	}
	if err := waitLinks(ctx, nodes); err != nil {
		return Summary{}, err
	}
	if opts.Started != nil {
		stop, err := opts.Started(nodes)
		if err != nil {
			return Summary{}, err
		}
		defer stop()
	}
	fmt.Fprintf(opts.Out, "anfed demo: %s <-> %s <-> %s on loopback leaf links (and %s <-> %s for coordination); %s shares %s with %s\n", opA, opB, opC, opA, opC, opA, sharedService, opB)

	runCtx, stop := context.WithCancel(ctx)
	if opts.Duration > 0 {
		runCtx, stop = context.WithTimeout(ctx, opts.Duration)
	}
	defer stop()

	var wg sync.WaitGroup
	pa, err := newProducer(nodes[opA], "assurance", led, cfgs)
	if err != nil {
		return Summary{}, err
	}
	defer pa.close()
	probe, err := newProducer(nodes[opA], "probe-7", led, cfgs)
	if err != nil {
		return Summary{}, err
	}
	defer probe.close()
	pb, err := newProducer(nodes[opB], "closed-loop", led, cfgs)
	if err != nil {
		return Summary{}, err
	}
	defer pb.close()
	// The closed loop keeps answering while the last signals drain.
	loopB, err := startClosedLoop(ctx, pb, opts.Log)
	if err != nil {
		return Summary{}, err
	}
	pc, err := newProducer(nodes[opC], "closed-loop", led, cfgs)
	if err != nil {
		return Summary{}, err
	}
	defer pc.close()
	pbm, err := newProducer(nodes[opB], "assurance", led, cfgs)
	if err != nil {
		return Summary{}, err
	}
	defer pbm.close()
	its, err := startIntents(ctx, nodes, cfgs, pbm, led, opts.Log)
	if err != nil {
		return Summary{}, err
	}
	defer its.stop()
	wg.Add(1)
	go func() {
		defer wg.Done()
		its.run(ctx)
	}()
	coord := newScenario(pb, pc, led)
	wg.Add(1)
	go func() {
		defer wg.Done()
		coord.run(ctx, loopB.firstCongestion)
	}()
	src := newSource(pa, probe)
	wg.Add(1)
	go func() {
		defer wg.Done()
		src.run(runCtx, opts.Interval)
	}()
	<-runCtx.Done()
	coord.stopWaiting()
	wg.Wait()
	// Let the last signals and the answers to them cross, then count.
	led.drain(10*time.Second, loopB.idle)
	loopB.stop()
	s := led.summary()
	s.Proposals, s.Accepted, s.Conflicts = coord.counts()
	fmt.Fprintln(opts.Out, s)
	return s, nil
}

func waitLinks(ctx context.Context, nodes map[string]*node.Node) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if nodes[opA].LinkUp(opB) && nodes[opB].LinkUp(opA) && nodes[opB].LinkUp(opC) && nodes[opC].LinkUp(opB) && nodes[opA].LinkUp(opC) && nodes[opC].LinkUp(opA) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaf links not up after 15s")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

var _ observe.Observer = (*ledger)(nil)
