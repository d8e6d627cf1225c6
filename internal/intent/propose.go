package intent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// Proposal is the action an intent we handle opened by intents.propose:
// proposed to the intent's owner (the affected operator) through
// coordination, and reported completed once the intent is compliant and
// out of risk again. One at a time per intent.
type Proposal struct {
	ActionID string                `json:"actionId"`
	Kind     string                `json:"kind"`
	Rule     string                `json:"rule"` // intents.propose[N]
	On       string                `json:"on"`   // what opened it: sla-risk, degraded, notCompliant
	Cause    Cause                 `json:"cause"`
	Under    Cause                 `json:"under"` // the signal behind Cause (a congestion, a deviation)
	Resource coordination.Resource `json:"resource"`
	Duration time.Duration         `json:"duration"`
	Opened   time.Time             `json:"opened"`
	// Sent: the proposal is stored at intake; until then each evaluation
	// sends it again (the same event id: a duplicate if it was).
	Sent bool `json:"sent"`
}

// eventID is the id of the proposal's step: the same step twice is a
// duplicate.
func (p *Proposal) eventID(self string, phase coordination.Phase) string {
	return self + "/" + p.ActionID + "/" + string(phase)
}

// proposal opens a proposal for r by the first intents.propose rule that
// what the evaluation just changed fires, when none is open; or ends the
// open one when r is compliant and out of risk.
func (s *Service) proposal(r *Record, changes []breachChange, risks []riskChange, reported bool, ob observation, now time.Time) (opened, ended *Proposal) {
	if r.Proposal != nil {
		if len(r.Breaches) == 0 && len(r.Risks) == 0 {
			ended, r.Proposal = r.Proposal, nil
			if !ended.Sent {
				return ended, ended // propose, then complete
			}
			return nil, ended
		}
		if !r.Proposal.Sent {
			return r.Proposal, nil
		}
		return nil, nil
	}
	in := r.Intent
	source := "anfed://" + s.self + "/intents"
	under := Cause{ID: ob.ev.ID, Source: ob.ev.Source, Class: ob.class, Resource: ob.resource()}
	for i, rule := range s.d.Config.Propose {
		if len(rule.Services) > 0 && !matchAny(rule.Services, in.Expression.ExpressionValue.Service) {
			continue
		}
		var on string
		var cause Cause
		if slices.Contains(rule.On, "sla-risk") {
			for _, c := range risks {
				if c.state == signal.Raised {
					// Under the risk: the signal that set it (a congestion
					// predicting again on a new measurement, say).
					under = c.r.Last
					on, cause = "sla-risk", Cause{ID: c.id, Source: source, Class: "sla-risk", Resource: under.Resource}
					break
				}
			}
		}
		if on == "" && reported && slices.Contains(rule.On, in.LifecycleStatus) {
			for _, c := range changes {
				if c.state != signal.Cleared {
					on, cause = in.LifecycleStatus, Cause{ID: c.id, Source: source, Class: "sla-breach", Resource: under.Resource}
					break
				}
			}
		}
		if on == "" {
			continue
		}
		d := rule.Duration
		if d == 0 {
			d = config.DefaultProposeDuration
		}
		r.Proposal = &Proposal{ActionID: actionID(s.self, rule.Action, in.ID, now), Kind: rule.Action,
			Rule: fmt.Sprintf("intents.propose[%d]", i), On: on, Cause: cause, Under: under, Resource: under.Resource, Duration: time.Duration(d), Opened: now}
		return r.Proposal, nil
	}
	return nil, nil
}

// actionID is a proposal's action id, within the action class's
// pattern (^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$): an intent id's _ become
// -, and a long one is cut, the time kept.
func actionID(self, kind, intentID string, now time.Time) string {
	id := strings.ReplaceAll(self+"-"+kind+"-"+intentID, "_", "-")
	suffix := fmt.Sprintf("-%d", now.UnixMilli())
	if len(id)+len(suffix) > 128 {
		id = id[:128-len(suffix)]
	}
	return id + suffix
}

// publishProposal sends the proposal opened (to the intent's owner, its
// causationid the sla-risk or sla-breach that opened it) or the end of
// the one ended (completed).
func (s *Service) publishProposal(ctx context.Context, rec *Record, opened, ended *Proposal) error {
	in := rec.Intent
	service := in.Expression.ExpressionValue.Service
	step := func(p *Proposal, phase coordination.Phase, d coordination.Data, state signal.State, causation string) error {
		b, _ := json.Marshal(d)
		return s.publishEvent(ctx, &signal.Event{ID: p.eventID(s.self, phase), Source: "anfed://" + s.self + "/intents", Type: schemas.Type(coordination.Class),
			Subject: service + "/" + p.Resource.ID, State: state, SeverityText: "INFO", SeverityNumber: 9,
			CorrelationID: p.ActionID, CausationID: causation, Data: b})
	}
	if p := opened; p != nil {
		causes := []coordination.Cause{{Source: p.Cause.Source, ID: p.Cause.ID, Class: p.Cause.Class}, {Source: p.Under.Source, ID: p.Under.ID, Class: p.Under.Class}}
		d := coordination.Data{ActionID: p.ActionID, Phase: coordination.Proposed, Proposer: s.self, Kind: p.Kind, Resources: []coordination.Resource{p.Resource},
			Services: []string{service}, AffectedOperators: []string{in.Owner}, Causes: causes, Duration: coordination.FormatDuration(p.Duration),
			ExpectedEffect: fmt.Sprintf("intent %s.%s compliant and out of risk", in.Owner, in.ID),
			Detail:         fmt.Sprintf("opened by %s of %s on %s of intent %s.%s", p.Rule, s.self, p.On, in.Owner, in.ID)}
		if err := step(p, coordination.Proposed, d, signal.Raised, p.Cause.ID); err != nil {
			return err
		}
		if _, err := s.store.update(ctx, keyOf(in.Owner, in.ID), func(r *Record) (bool, error) {
			if r.Proposal == nil || r.Proposal.ActionID != p.ActionID || r.Proposal.Sent {
				return false, nil
			}
			r.Proposal.Sent = true
			return true, nil
		}); err != nil && !errors.Is(err, errNotFound) {
			return err
		}
		s.log.Info().Str("intent", in.Owner+"."+in.ID).Str("action", p.ActionID).Str("on", p.On).Str("rule", p.Rule).Msg("intents: opened a proposal")
	}
	if p := ended; p != nil {
		why := fmt.Sprintf("intent %s.%s is compliant and out of risk again", in.Owner, in.ID)
		if in.LifecycleStatus == Terminated {
			why = fmt.Sprintf("intent %s.%s ended: %s", in.Owner, in.ID, in.StatusReason)
		}
		d := coordination.Data{ActionID: p.ActionID, Phase: coordination.Completed, Proposer: s.self, Reason: why}
		if err := step(p, coordination.Completed, d, signal.Cleared, p.eventID(s.self, coordination.Proposed)); err != nil {
			return err
		}
	}
	return nil
}

// endings are what an intent's end clears: its breaches and risks, and
// the proposal it opened.
type endings struct {
	breaches []breachChange
	risks    []riskChange
	proposal *Proposal
}

// endAll clears r's breaches, risks and proposal (the intent ended) and
// returns what to tell.
func (s *Service) endAll(r *Record, now time.Time) endings {
	var e endings
	for _, x := range r.Intent.Expression.ExpressionValue.Expectations {
		if b, ok := r.Breaches[x.ID]; ok {
			e.breaches = append(e.breaches, breachChange{x: x, b: b, state: signal.Cleared, ending: now, id: signalID(r.Intent, x, "breach", now)})
		}
		if rk, ok := r.Risks[x.ID]; ok {
			e.risks = append(e.risks, riskChange{x: x, r: rk, state: signal.Cleared, id: signalID(r.Intent, x, "risk", now)})
		}
	}
	e.proposal = r.Proposal
	r.Breaches, r.Risks, r.Proposal = nil, nil, nil
	return e
}

// publishEndings clears what an ended intent had raised, caused by the
// signal that ended it.
func (s *Service) publishEndings(ctx context.Context, rec *Record, e endings, causation string) error {
	for _, c := range e.breaches {
		if err := s.publishBreach(ctx, rec, c, causation); err != nil {
			return err
		}
	}
	for _, c := range e.risks {
		if err := s.publishRisk(ctx, rec, c, causation); err != nil {
			return err
		}
	}
	return s.publishProposal(ctx, rec, nil, e.proposal)
}
