package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/node"
	"github.com/anfed/anfed/internal/signal"
)

// intentID is the demo's intent: op-a's for vpn-acme, handled by op-b.
const intentID = "acme-vpn"

// intentScenario is the demo's intent: op-a states what it expects of
// op-b for vpn-acme (latency <= 20 ms, loss < 0.1 %); op-b's policy
// accepts it; op-b then measures vpn-acme's latency — 15 ms, 22 ms, back
// to normal — and its node reports each change of compliance to op-a
// (compliant, degraded, compliant), every report a signed intent-report
// crossing the link. The steps run one after the other, each waiting for
// op-a to see the report, so the counts are the same every run.
type intentScenario struct {
	a, b *intent.Service
	pb   *producer
	led  *ledger
}

// startIntents opens and starts op-a's and op-b's intents, as `anfed
// serve` does without the HTTP server.
func startIntents(ctx context.Context, nodes map[string]*node.Node, cfgs map[string]*config.Config, pb *producer, led *ledger, log zerolog.Logger) (*intentScenario, error) {
	open := func(id string) (*intent.Service, error) {
		cfg := cfgs[id]
		var peers []string
		for _, p := range cfg.Peers {
			peers = append(peers, p.ID)
		}
		s, err := intent.New(ctx, intent.Deps{Node: nodes[id], Config: cfg.Intents, Log: log, Peers: peers})
		if err != nil {
			return nil, fmt.Errorf("%s intents: %w", id, err)
		}
		s.Start()
		return s, nil
	}
	a, err := open(opA)
	if err != nil {
		return nil, err
	}
	b, err := open(opB)
	if err != nil {
		a.Stop()
		return nil, err
	}
	return &intentScenario{a: a, b: b, pb: pb, led: led}, nil
}

func (s *intentScenario) stop() {
	s.b.Stop()
	s.a.Stop()
}

func (s *intentScenario) say(format string, args ...any) {
	s.led.say("%s  intents: "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (s *intentScenario) run(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.play(ctx); err != nil {
		s.say("%v", err)
	}
}

// status waits until op-a's intent is in one of want, and returns it.
func (s *intentScenario) status(ctx context.Context, want string) (intent.Intent, error) {
	for {
		ins, err := s.a.List(ctx)
		if err == nil {
			for _, in := range ins {
				if in.ID == intentID && in.LifecycleStatus == want {
					return in, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return intent.Intent{}, fmt.Errorf("op-a's intent %s never became %s", intentID, want)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *intentScenario) play(ctx context.Context) error {
	in := &intent.Intent{ID: intentID, Name: "acme VPN across op-b", Type: "Intent",
		Expression: intent.Expression{Type: "JsonLdExpression", ExpressionValue: &intent.ServiceIntention{Service: sharedService, Partner: opB,
			Expectations: []intent.Expectation{
				{ID: "lat", Metric: "latency", Comparator: "<=", Value: 20, Unit: "ms"},
				{ID: "loss", Metric: "loss", Comparator: "<", Value: 0.1, Unit: "%"},
			}}}}
	if err := in.Validate(); err != nil {
		return err
	}
	if _, err := s.a.Create(ctx, in); err != nil {
		return fmt.Errorf("op-a's intent: %w", err)
	}
	s.say("%s stated intent %s to %s: %s latency <= 20 ms, loss < 0.1 %%", opA, intentID, opB, sharedService)
	got, err := s.status(ctx, intent.InProgress)
	if err != nil {
		return err
	}
	s.say("%s accepted %s (%s)", opB, intentID, got.PartnerDecision.Rule)
	for _, step := range []struct {
		ms    float64
		state signal.State
		want  string
	}{{15, signal.Raised, intent.Compliant}, {22, signal.Updated, intent.Degraded}, {15, signal.Cleared, intent.Compliant}} {
		ev, err := s.pb.event("performance-deviation", sharedService, "ic-paris-1", step.state, "WARN", map[string]any{
			"kpi": "latency.one-way.p95", "unit": "ms", "observedValue": step.ms, "expectedValue": 15, "threshold": 20,
			"deviationPercent": (step.ms - 15) / 15 * 100, "direction": "above", "window": map[string]any{"duration": "PT5M"}})
		if err != nil {
			return err
		}
		if _, err := s.pb.publish(ev); err != nil {
			return err
		}
		if _, err := s.status(ctx, step.want); err != nil {
			return err
		}
		s.say("%s measured %v ms (%s); its report reached %s: %s is %s", opB, step.ms, step.state, opA, intentID, step.want)
	}
	return nil
}
