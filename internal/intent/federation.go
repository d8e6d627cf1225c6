package intent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/anfed/anfed/internal/closedloop"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// Class is the catalog class intents cross operators in.
const Class = "intent"

// Phases of an intent signal.
const (
	PhaseProposed   = "proposed"   // owner: the intent, at a revision
	PhaseAccepted   = "accepted"   // partner: takes that revision on
	PhaseRejected   = "rejected"   // partner: does not
	PhaseTerminated = "terminated" // owner: it ends; partner: its answer ends with it
)

// wire is an intent signal's data (schemas/intent.v1.json).
type wire struct {
	IntentID     string        `json:"intentId"`
	Phase        string        `json:"phase"`
	Owner        string        `json:"owner"`
	Partner      string        `json:"partner"`
	Service      string        `json:"service"`
	Name         string        `json:"name,omitempty"`
	Version      string        `json:"version,omitempty"`
	Href         string        `json:"href,omitempty"`
	Revision     int           `json:"revision,omitempty"`
	ValidFor     *TimePeriod   `json:"validFor,omitempty"`
	Expectations []Expectation `json:"expectations,omitempty"`
	TimeWindows  []TimeWindow  `json:"timeWindows,omitempty"`
	Reason       string        `json:"reason,omitempty"`
	Rule         string        `json:"rule,omitempty"`
}

// intentFilter is every stored intent signal, ours and our peers'.
var intentFilter = subject.SignalPrefix + ".*." + Class + ".>"

// intakeSubject is where the intents hand their signals to intake.
var intakeSubject = subject.IntakePrefix + ".intents"

// run follows the stored intent signals from a durable consumer: the
// proposals peers send us, and the answers to ours.
func (s *Service) run(ctx context.Context) {
	loop := closedloop.New(s.nc, closedloop.Options{Name: "intents", Filter: intentFilter, MaxInFlight: 16, MaxDeliver: 20, Jitter: 0.5,
		BackOff: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second}, Log: s.log}, s.handle)
	if err := loop.Run(ctx); err != nil && ctx.Err() == nil {
		s.log.Error().Err(err).Msg("intents: following intent signals stopped")
	}
}

// handle takes one stored intent signal.
func (s *Service) handle(ctx context.Context, ev *signal.Event, _ closedloop.Delivery) error {
	if ev.Origin == s.self {
		return nil // ours: what we proposed or answered
	}
	var w wire
	if err := json.Unmarshal(ev.Data, &w); err != nil {
		return closedloop.Poison(fmt.Errorf("intent signal %s from %s: %w", ev.ID, ev.Origin, err))
	}
	switch w.Phase {
	case PhaseProposed, PhaseTerminated:
		if w.Phase == PhaseTerminated && w.Owner == s.self && w.Partner == ev.Origin {
			return s.partnerEnded(ctx, w)
		}
		if w.Partner != s.self {
			return nil // another operator's business
		}
		if w.Owner != ev.Origin {
			if w.Phase == PhaseTerminated && w.Owner == s.self {
				return nil // the partner's answer ending with our intent
			}
			s.log.Warn().Str("from", ev.Origin).Str("owner", w.Owner).Str("intent", w.IntentID).Msg("intents: an intent proposed by another than its owner; ignored")
			return nil
		}
		return s.decide(ctx, ev, w)
	case PhaseAccepted, PhaseRejected:
		if w.Owner != s.self || w.Partner != ev.Origin {
			return nil // an answer to someone else, or from someone we did not ask
		}
		return s.answered(ctx, w)
	}
	return nil
}

// decide takes a peer's proposal (or its end) by our policy, keeps what
// we decided, and answers.
func (s *Service) decide(ctx context.Context, ev *signal.Event, w wire) error {
	key := keyOf(w.Owner, w.IntentID)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if w.Phase == PhaseTerminated {
		rec, err := s.endHandled(ctx, key, w.Owner, "terminated by its owner "+w.Owner, ev.ID)
		if errors.Is(err, errNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return s.publish(ctx, wire{IntentID: w.IntentID, Phase: PhaseTerminated, Owner: w.Owner, Partner: s.self, Service: w.Service,
			Revision: rec.Revision, Reason: "the owner terminated it"}, signal.Cleared)
	}
	dec := s.judge(w, now)
	in := Intent{ID: w.IntentID, Name: w.Name, Version: w.Version, Owner: w.Owner, Role: RoleHandler, Type: "Intent", ValidFor: w.ValidFor,
		CreationDate: now, StatusChangeDate: now, LastUpdate: now,
		Expression: Expression{Type: "JsonLdExpression", ExpressionValue: &ServiceIntention{Service: w.Service, Partner: w.Partner, Expectations: w.Expectations, TimeWindows: w.TimeWindows}}}
	if in.Name == "" {
		in.Name = w.IntentID
	}
	in.PartnerDecision = &dec
	if dec.Decision == PhaseAccepted {
		in.LifecycleStatus, in.StatusReason = InProgress, "accepted by "+dec.Rule
	} else {
		in.LifecycleStatus, in.StatusReason = Rejected, dec.Reason
	}
	rec, _, err := s.store.get(ctx, key)
	switch {
	case errors.Is(err, errNotFound):
		rec = &Record{}
	case err != nil:
		return err
	case rec.Revision > w.Revision:
		return nil // an older revision than the one we decided
	case rec.Revision == w.Revision && rec.Intent.PartnerDecision != nil && rec.Intent.PartnerDecision.Decision == dec.Decision:
		// Decided before (the proposal delivered again): answer again,
		// a duplicate, and keep what the evaluation made of it since.
		return s.publish(ctx, wire{IntentID: w.IntentID, Phase: dec.Decision, Owner: w.Owner, Partner: s.self, Service: w.Service,
			Revision: w.Revision, Reason: rec.Intent.PartnerDecision.Reason, Rule: rec.Intent.PartnerDecision.Rule}, signal.Raised)
	default:
		in.CreationDate = rec.Intent.CreationDate
	}
	if rec.Revision != w.Revision || rec.Intent.LifecycleStatus != in.LifecycleStatus {
		rec.Reports = append(rec.Reports, s.newReport(&Record{Intent: in}, in.LifecycleStatus, s.self, dec.Reason, &dec, now))
	} else {
		in.StatusChangeDate = rec.Intent.StatusChangeDate
	}
	rec.Intent, rec.Revision = in, w.Revision
	if err := s.store.put(ctx, rec); err != nil {
		return err
	}
	// Its validFor may start or end: the timer reads it again.
	s.poke()
	defer s.inView(ctx, in) // once the owner has our answer
	s.log.Info().Str("owner", w.Owner).Str("intent", w.IntentID).Int("revision", w.Revision).Str("decision", dec.Decision).Str("rule", dec.Rule).Str("reason", dec.Reason).Msg("intents: decided a peer's intent")
	return s.publish(ctx, wire{IntentID: w.IntentID, Phase: dec.Decision, Owner: w.Owner, Partner: s.self, Service: w.Service,
		Revision: w.Revision, Reason: dec.Reason, Rule: dec.Rule}, signal.Raised)
}

// judge decides a proposal by intents.accept: the first rule whose from
// and services match decides it; none: rejected.
func (s *Service) judge(w wire, now time.Time) Decision {
	reject := func(rule, format string, a ...any) Decision {
		return Decision{Decision: PhaseRejected, Rule: rule, Reason: fmt.Sprintf(format, a...), Time: now}
	}
	probe := Intent{Name: w.IntentID, Type: "Intent", ValidFor: w.ValidFor,
		Expression: Expression{Type: "JsonLdExpression", ExpressionValue: &ServiceIntention{Service: w.Service, Partner: w.Partner, Expectations: slices.Clone(w.Expectations), TimeWindows: w.TimeWindows}}}
	if err := probe.Validate(); err != nil {
		return reject("invalid", "the intent is not one %s can take: %v", s.self, err)
	}
	if v := w.ValidFor; v != nil && v.EndDateTime != nil && !v.EndDateTime.After(now) {
		return reject("invalid", "validFor ended at %s", v.EndDateTime.Format(time.RFC3339))
	}
	for i, r := range s.d.Config.Accept {
		if len(r.From) > 0 && !slices.Contains(r.From, w.Owner) {
			continue
		}
		if !matchAny(r.Services, w.Service) {
			continue
		}
		rule := fmt.Sprintf("intents.accept[%d]", i)
		for _, x := range w.Expectations {
			if why := beyond(r.Bounds, x); why != "" {
				return reject(rule, "expectation %s asks %s %s %v %s, tighter than %s takes on (%s.bounds.%s)", x.ID, x.Metric, x.Comparator, x.Value, x.Unit, s.self, rule, why)
			}
		}
		return Decision{Decision: PhaseAccepted, Rule: rule, Time: now}
	}
	return reject("no-rule", "service %s from %s is in no intents.accept rule of %s", w.Service, w.Owner, s.self)
}

// beyond names the bound x is tighter than, or "".
func beyond(b config.IntentBounds, x Expectation) string {
	over := func(min *float64, name string) string {
		if min != nil && x.Value < *min {
			return fmt.Sprintf("%s %v", name, *min)
		}
		return ""
	}
	under := func(max *float64, name string) string {
		if max != nil && x.Value > *max {
			return fmt.Sprintf("%s %v", name, *max)
		}
		return ""
	}
	switch x.Metric {
	case "latency":
		return over(b.MinLatencyMs, "min_latency_ms")
	case "jitter":
		return over(b.MinJitterMs, "min_jitter_ms")
	case "loss":
		return over(b.MinLossPercent, "min_loss_percent")
	case "availability":
		return under(b.MaxAvailabilityPercent, "max_availability_percent")
	case "throughput":
		return under(b.MaxThroughputMbps, "max_throughput_mbps")
	}
	return ""
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// answered takes the partner's answer to one of our intents.
func (s *Service) answered(ctx context.Context, w wire) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err := s.store.update(ctx, keyOf(s.self, w.IntentID), func(r *Record) (bool, error) {
		if r.Intent.LifecycleStatus == Terminated || w.Revision != r.Revision {
			return false, nil // ended, or an answer to a revision since changed
		}
		dec := &Decision{Decision: w.Phase, Reason: w.Reason, Rule: w.Rule, Time: now}
		status, reason := InProgress, w.Partner+" accepted it ("+w.Rule+")"
		if w.Phase == PhaseRejected {
			status, reason = Rejected, w.Partner+" rejected it: "+w.Reason
		}
		if r.Intent.PartnerDecision != nil && r.Intent.PartnerDecision.Decision == w.Phase {
			return false, nil // told again
		}
		r.Intent.LifecycleStatus, r.Intent.StatusChangeDate, r.Intent.LastUpdate = status, now, now
		r.Intent.StatusReason, r.Intent.PartnerDecision = reason, dec
		r.Reports = append(r.Reports, s.newReport(r, status, w.Partner, w.Reason, dec, now))
		return true, nil
	})
	if errors.Is(err, errNotFound) {
		return nil // an intent we no longer hold
	}
	if err == nil {
		s.log.Info().Str("intent", w.IntentID).Str("partner", w.Partner).Str("decision", w.Phase).Str("reason", w.Reason).Msg("intents: the partner answered")
	}
	return err
}

// newReport is an IntentReport of r at now.
func (s *Service) newReport(r *Record, status, from, reason string, dec *Decision, now time.Time) Report {
	return Report{ID: fmt.Sprintf("r%d", now.UnixMilli()), Name: status, CreationDate: now, Type: "IntentReport",
		Expression: ReportExpression{Type: "JsonLdExpression", ExpressionValue: ReportValues{LifecycleStatus: status, Reason: reason, From: from, Decision: dec}}}
}

// propose tells the partner where our intent stands: proposed at its
// revision, or terminated.
func (s *Service) propose(ctx context.Context, rec *Record) error {
	in := rec.Intent
	v := in.Expression.ExpressionValue
	w := wire{IntentID: in.ID, Phase: PhaseProposed, Owner: s.self, Partner: v.Partner, Service: v.Service, Name: in.Name, Version: in.Version,
		Revision: rec.Revision, ValidFor: in.ValidFor, Expectations: v.Expectations, TimeWindows: v.TimeWindows}
	if s.d.BaseURL != nil { // an absolute URL, or none
		w.Href = s.href(in.ID)
	}
	state := signal.Raised
	if in.LifecycleStatus == Terminated {
		w = wire{IntentID: in.ID, Phase: PhaseTerminated, Owner: s.self, Partner: v.Partner, Service: v.Service, Revision: rec.Revision, Reason: "terminated by its owner"}
		state = signal.Cleared
	}
	return s.publish(ctx, w, state)
}

// publish hands an intent signal of ours to intake and waits until it is
// stored; its id is the same for the same step, so a repeat is a
// duplicate.
func (s *Service) publish(ctx context.Context, w wire, state signal.State) error {
	data, _ := json.Marshal(w)
	sev, sevText := 9, "INFO"
	if w.Phase == PhaseRejected {
		sev, sevText = 13, "WARN"
	}
	return s.publishEvent(ctx, &signal.Event{ID: fmt.Sprintf("%s.%s.r%d.%s", w.Owner, w.IntentID, w.Revision, w.Phase), Source: "anfed://" + s.self + "/intents",
		Type: schemas.Type(Class), Subject: w.Service + "/" + w.IntentID, State: state,
		SeverityText: sevText, SeverityNumber: sev, CorrelationID: w.Owner + "." + w.IntentID, Data: data})
}

// partnerEnded keeps, at the owner, the partner's word that an intent of
// ours ended on its side (our termination reached it, or its validFor
// ended there) as an IntentReport, once.
func (s *Service) partnerEnded(ctx context.Context, w wire) error {
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err := s.store.update(ctx, keyOf(s.self, w.IntentID), func(r *Record) (bool, error) {
		if w.Revision != r.Revision {
			return false, nil
		}
		for _, rp := range r.Reports {
			if rp.Name == Terminated && rp.Expression.ExpressionValue.From == w.Partner {
				return false, nil // told again
			}
		}
		r.Reports = append(r.Reports, s.newReport(r, Terminated, w.Partner, w.Reason, nil, now))
		return true, nil
	})
	if errors.Is(err, errNotFound) {
		return nil // removed since
	}
	return err
}
