package demo

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/signal"
)

// scenario is the demo's coordinated action, run once on op-a's first
// congestion: op-b proposes a reroute of the congested interconnect,
// op-a's policy accepts it and leases the interconnect to op-b, op-b
// reports it active; op-c proposes a conflicting reroute of the same
// interconnect and op-a declines it naming op-b's lease; op-b completes
// the action and op-a releases the lease. Each step is a signed action
// signal crossing a real link; the steps run one after the other, so the
// counts are the same every run.
type scenario struct {
	b, c *coordination.Client
	led  *ledger
	stop chan struct{}
	once sync.Once

	mu                             sync.Mutex
	proposals, accepted, conflicts int
}

func newScenario(pb, pc *producer, led *ledger) *scenario {
	return &scenario{b: coordination.NewClient(pb.nc, opB, "closed-loop"), c: coordination.NewClient(pc.nc, opC, "closed-loop"),
		led: led, stop: make(chan struct{})}
}

// stopWaiting ends the wait for a congestion; a scenario under way
// finishes.
func (s *scenario) stopWaiting() { s.once.Do(func() { close(s.stop) }) }

func (s *scenario) counts() (proposals, accepted, conflicts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proposals, s.accepted, s.conflicts
}

func (s *scenario) say(format string, args ...any) {
	s.led.say("%s  coordination: "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (s *scenario) run(ctx context.Context, first <-chan *signal.Event) {
	var cause *signal.Event
	select {
	case cause = <-first:
	case <-s.stop:
		return
	case <-ctx.Done():
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.play(ctx, cause); err != nil {
		s.say("%v", err)
	}
}

func (s *scenario) play(ctx context.Context, cause *signal.Event) error {
	res := cause.Resource()
	proposal := func(id string) coordination.Proposal {
		return coordination.Proposal{ActionID: id, Kind: "reroute",
			Resources: []coordination.Resource{{ID: res, Type: "interconnect"}}, Services: []string{sharedService}, Affected: []string{opA},
			Causes:         []coordination.Cause{{Source: cause.Source, ID: cause.ID, Class: "congestion"}},
			ExpectedEffect: "utilisation of " + res + " below 80% within 5 minutes", Duration: 5 * time.Minute,
			Detail: "shift AF41 for " + sharedService + " away from " + res}
	}
	s.count(&s.proposals)
	a, err := s.b.Propose(ctx, proposal(opB+"-reroute-"+res))
	if err != nil {
		return fmt.Errorf("op-b's proposal: %w", err)
	}
	d := a.Decisions[opA]
	if !a.Accepted() {
		return fmt.Errorf("op-a did not accept op-b's reroute: %s (%s) %s", d.Phase, d.Rule, d.Reason)
	}
	s.count(&s.accepted)
	s.say("%s proposed a reroute of %s; %s accepted (%s), lease until %s", opB, res, opA, d.Rule, d.Lease.Until.Local().Format("15:04:05"))
	if err := s.b.Start(ctx, a); err != nil {
		return fmt.Errorf("op-b's action active: %w", err)
	}
	s.say("%s's reroute of %s is active", opB, res)
	c, err := s.c.Propose(ctx, proposal(opC+"-reroute-"+res))
	s.count(&s.proposals)
	if err != nil {
		return fmt.Errorf("op-c's proposal: %w", err)
	}
	dc := c.Decisions[opA]
	if dc.Phase == coordination.Declined && dc.Conflict != nil {
		s.count(&s.conflicts)
	}
	s.say("%s proposed a conflicting reroute of %s; %s %s it: %s", opC, res, opA, dc.Phase, dc.Reason)
	if err := s.b.Release(ctx, a, coordination.Completed, "utilisation of "+res+" back under 80%"); err != nil {
		return fmt.Errorf("op-b's release: %w", err)
	}
	s.say("%s completed its reroute; %s released the lease on %s", opB, opA, res)
	return nil
}

func (s *scenario) count(n *int) {
	s.mu.Lock()
	*n++
	s.mu.Unlock()
}
