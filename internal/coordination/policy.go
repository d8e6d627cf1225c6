package coordination

import (
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/anfed/anfed/internal/config"
)

// Outcome is what the policy says of a proposal.
type Outcome int

// Outcomes.
const (
	Accept Outcome = iota
	Decline
	Ask // a person, or a closed loop through OnProposal, decides
	CounterOffer
)

func (o Outcome) String() string {
	return [...]string{"accept", "decline", "ask", "counter"}[o]
}

// Verdict is the policy's answer, naming the rule that gave it.
type Verdict struct {
	Outcome Outcome
	Rule    string
	Reason  string
	// Duration is the lease to grant (Accept) or to offer (CounterOffer).
	Duration time.Duration
}

// Policy is an operator's coordination: section, with its defaults.
type Policy struct {
	c config.Coordination
}

// NewPolicy compiles c (already checked by config).
func NewPolicy(c config.Coordination) *Policy {
	return &Policy{c: c.WithDefaults()}
}

// LeaseMax bounds every lease.
func (p *Policy) LeaseMax() time.Duration { return time.Duration(p.c.LeaseMax) }

// HoldDown is the action dampening's hold-down.
func (p *Policy) HoldDown() time.Duration { return time.Duration(p.c.HoldDown) }

// Decide applies the rules to a proposal at now: deny, then
// require_human, then auto_accept, then the default. A proposal longer
// than lease_max, or than the accepting rule's max_duration, is
// countered with the longest it may have.
func (p *Policy) Decide(d Data, asked time.Duration, now time.Time) Verdict {
	for i, r := range p.c.Deny {
		if match(r, d, now) {
			return Verdict{Outcome: Decline, Rule: fmt.Sprintf("coordination.deny[%d]", i), Reason: "our policy denies this action"}
		}
	}
	for i, r := range p.c.RequireHuman {
		if match(r, d, now) {
			return Verdict{Outcome: Ask, Rule: fmt.Sprintf("coordination.require_human[%d]", i), Duration: min(asked, p.LeaseMax())}
		}
	}
	for i, r := range p.c.AutoAccept {
		if !match(r, d, now) {
			continue
		}
		rule := fmt.Sprintf("coordination.auto_accept[%d]", i)
		most := p.LeaseMax()
		if r.MaxDuration > 0 {
			most = min(most, time.Duration(r.MaxDuration))
		}
		if asked > most {
			return Verdict{Outcome: CounterOffer, Rule: rule, Duration: most,
				Reason: fmt.Sprintf("%s is longer than we lease for this action: at most %s", FormatDuration(asked), FormatDuration(most))}
		}
		return Verdict{Outcome: Accept, Rule: rule, Duration: asked}
	}
	if p.c.Default == config.CoordinationDecline {
		return Verdict{Outcome: Decline, Rule: "coordination.default", Reason: "no coordination rule accepts this action"}
	}
	return Verdict{Outcome: Ask, Rule: "coordination.default", Duration: min(asked, p.LeaseMax())}
}

func match(r config.CoordinationRule, d Data, now time.Time) bool {
	if len(r.From) > 0 && !slices.Contains(r.From, d.Proposer) {
		return false
	}
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, d.Kind) {
		return false
	}
	for _, svc := range d.Services {
		if len(r.Services) > 0 && !slices.ContainsFunc(r.Services, func(p string) bool { ok, _ := path.Match(p, svc); return ok }) {
			return false
		}
	}
	if len(r.Classes) > 0 && !slices.ContainsFunc(d.Causes, func(c Cause) bool {
		return slices.Contains(r.Classes, "*") || slices.Contains(r.Classes, c.Class)
	}) {
		return false
	}
	if r.Hours != "" {
		from, to, err := config.ParseHours(r.Hours)
		if err != nil {
			return false
		}
		u := now.UTC()
		m := u.Hour()*60 + u.Minute()
		if from < to && (m < from || m >= to) || from > to && m < from && m >= to {
			return false
		}
	}
	return true
}
