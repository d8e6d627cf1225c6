package intent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/closedloop"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// Breach is an expectation of a handled intent that our own measurements
// do not meet.
type Breach struct {
	Since    time.Time `json:"since"`
	Observed float64   `json:"observed"`
	KPI      string    `json:"kpi"`
}

// degradedMargin: an intent whose breaches all miss their targets by at
// most this fraction is degraded; beyond, not compliant.
const degradedMargin = 0.2

// perfDeviation is the part of a performance-deviation the evaluation reads.
type perfDeviation struct {
	KPI           string  `json:"kpi"`
	Unit          string  `json:"unit"`
	ObservedValue float64 `json:"observedValue"`
}

// congestion is the part of a congestion the evaluation reads.
type congestion struct {
	Link struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	} `json:"link"`
	PacketLossPercent float64 `json:"packetLossPercent"`
	QueueDelayMs      float64 `json:"queueDelayMs"`
}

// Classes of our own signals the evaluation reads, each from its own
// durable consumer.
const (
	classDeviation  = "performance-deviation"
	classCongestion = "congestion"
	classFault      = "fault"
)

// runSLA evaluates our own signals of class against the intents we
// accepted, from a durable consumer (intents-sla for performance
// deviations, intents-risk for congestions, intents-faults for faults).
func (s *Service) runSLA(ctx context.Context, class, name string) {
	filter := subject.SignalPrefix + "." + s.self + "." + class + ".>"
	loop := closedloop.New(s.nc, closedloop.Options{Name: name, Filter: filter, MaxInFlight: 1, MaxDeliver: 20, Jitter: 0.5,
		BackOff: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second}, Log: s.log}, s.evaluate)
	if err := loop.Run(ctx); err != nil && ctx.Err() == nil {
		s.log.Error().Err(err).Str("class", class).Msg("intents: SLA evaluation stopped")
	}
}

// metricOf is the intent metric a KPI measures: its first dotted token
// (latency.one-way.p95 → latency).
func metricOf(kpi string) string {
	m, _, _ := strings.Cut(kpi, ".")
	return m
}

// met reports whether v meets x's target.
func met(x Expectation, v float64) bool {
	switch x.Comparator {
	case "<":
		return v < x.Value
	case "<=":
		return v <= x.Value
	case ">":
		return v > x.Value
	default:
		return v >= x.Value
	}
}

// near reports whether v misses x's target or lies within margin (a
// fraction of the target; for availability, of the unavailability it
// allows) of it.
func near(x Expectation, v, margin float64) bool {
	if x.Metric == "availability" {
		// Near 100 %, a margin of the target means nothing: take it of
		// the unavailability allowed (99.95 %: 0.05 %, near below 99.955 %).
		return 100-v >= (100-x.Value)*(1-margin)
	}
	if Upper(x.Metric) {
		return v >= x.Value*(1-margin)
	}
	return v <= x.Value*(1+margin)
}

// observation is one of our signals as the evaluation reads it.
type observation struct {
	ev    *signal.Event
	class string
	pd    perfDeviation
	cg    congestion
	fault fault
}

// fault is the part of a fault the evaluation reads.
type fault struct {
	PerceivedSeverity string `json:"perceivedSeverity"`
	ServiceAffecting  *bool  `json:"serviceAffecting"`
	AlarmedObject     struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	} `json:"alarmedObject"`
}

// resource is what an action on the observation's cause would touch:
// the signal's resource, typed by the congestion's link kind.
func (o observation) resource() coordination.Resource {
	r := coordination.Resource{ID: o.ev.Resource(), Type: "resource"}
	if o.cg.Link.Kind != "" {
		r.Type = o.cg.Link.Kind
	}
	if o.fault.AlarmedObject.Type != "" {
		r.Type = o.fault.AlarmedObject.Type
	}
	if r.ID == "" {
		r.ID = o.ev.Service()
	}
	return r
}

// evaluate takes one of our performance deviations or congestions: for
// each accepted intent of its service, the expectations it bears on get
// their breach (sla-breach) and risk (sla-risk) raised, updated or
// cleared, each naming the intent; on a change of the intent's
// compliance an intent-report goes to its owner; and intents.propose may
// open a proposal (docs/intents.md#coordination).
func (s *Service) evaluate(ctx context.Context, ev *signal.Event, _ closedloop.Delivery) error {
	class, _, _ := schemas.ClassOf(ev.Type)
	ob := observation{ev: ev, class: class}
	switch class {
	case classDeviation:
		if ev.State != signal.Cleared {
			if err := json.Unmarshal(ev.Data, &ob.pd); err != nil {
				return closedloop.Poison(fmt.Errorf("performance-deviation %s: %w", ev.ID, err))
			}
		} else if err := json.Unmarshal(ev.Data, &ob.pd); err != nil || ob.pd.KPI == "" {
			return nil // a clear without its KPI says nothing we can match
		}
	case classCongestion:
		if err := json.Unmarshal(ev.Data, &ob.cg); err != nil && ev.State != signal.Cleared {
			return closedloop.Poison(fmt.Errorf("congestion %s: %w", ev.ID, err))
		}
	case classFault:
		if err := json.Unmarshal(ev.Data, &ob.fault); err != nil && ev.State != signal.Cleared {
			return closedloop.Poison(fmt.Errorf("fault %s: %w", ev.ID, err))
		}
	default:
		return nil
	}
	recs, err := s.store.all(ctx)
	if err != nil {
		return err
	}
	service := ev.Service()
	now := time.Now()
	for _, rec := range recs {
		in := rec.Intent
		v := in.Expression.ExpressionValue
		if in.Role != RoleHandler || v == nil || v.Service != service || !inForceAt(in, now) {
			continue
		}
		if err := s.evaluateIntent(ctx, keyOf(in.Owner, in.ID), ob); err != nil {
			return err
		}
	}
	return nil
}

type breachChange struct {
	x      Expectation
	b      Breach
	state  signal.State
	ending time.Time
	id     string // the sla-breach's event id
}

// predicted is what a held congestion or fault makes of x's metric, and
// the model that says so: a congestion adds its queue delay to the last
// latency measured (0 when none) and its loss to the last loss; a
// critical or major fault that affects service puts availability at its
// target. False for what it says nothing of.
func predicted(x Expectation, observed map[string]float64, h Held) (float64, string, bool) {
	switch {
	case h.Cause.Class == classCongestion && x.Metric == "latency":
		return observed[x.ID] + h.QueueDelayMs, "anfed-congestion", true
	case h.Cause.Class == classCongestion && x.Metric == "loss":
		return observed[x.ID] + h.PacketLossPercent, "anfed-congestion", true
	case h.Cause.Class == classFault && x.Metric == "availability" && (h.Severity == "CRITICAL" || h.Severity == "MAJOR"):
		return x.Value, "anfed-fault", true
	}
	return 0, "", false
}

func (s *Service) evaluateIntent(ctx context.Context, key string, ob observation) error {
	var changes []breachChange
	var risks []riskChange
	var report bool
	var opened, ended *Proposal
	ev := ob.ev
	margin := s.d.Config.RiskMargin()
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec, err := s.store.update(ctx, key, func(r *Record) (bool, error) {
		changes, risks, report, opened, ended = nil, nil, false, nil, nil
		if !inForceAt(r.Intent, now) {
			return false, nil // terminated or ended since it was read
		}
		measured := false
		if r.Breaches == nil {
			r.Breaches = map[string]Breach{}
		}
		if r.Observed == nil {
			r.Observed = map[string]float64{}
		}
		if r.Risks == nil {
			r.Risks = map[string]Risk{}
		}
		if r.Held == nil {
			r.Held = map[string]Held{}
		}
		in := r.Intent
		before := snapRisks(r)
		cause := Cause{ID: ev.ID, Source: ev.Source, Class: ob.class, Resource: ob.resource()}
		xs := in.Expression.ExpressionValue.Expectations
		// Only what was measured inside the time windows counts; a clear
		// counts whenever it comes.
		counts := ev.State == signal.Cleared || in.Expression.ExpressionValue.inWindow(ev.Time)
		if ob.class != classDeviation {
			if ev.State == signal.Cleared || ob.fault.ServiceAffecting != nil && !*ob.fault.ServiceAffecting {
				delete(r.Held, cause.key())
				for _, x := range xs {
					setRisk(r, x, cause, false, 0, "", now)
				}
			} else {
				r.Held[cause.key()] = Held{Cause: cause, QueueDelayMs: ob.cg.QueueDelayMs, PacketLossPercent: ob.cg.PacketLossPercent, Severity: ob.fault.PerceivedSeverity}
			}
		}
		for _, x := range xs {
			pd := ob.pd
			if ob.class != classDeviation || !counts || x.Metric != metricOf(pd.KPI) || x.Unit != pd.Unit {
				continue
			}
			b, breached := r.Breaches[x.ID]
			ok := ev.State == signal.Cleared || met(x, pd.ObservedValue)
			if ev.State != signal.Cleared && (r.Observed[x.ID] != pd.ObservedValue || r.Intent.LifecycleStatus == InProgress) {
				r.Observed[x.ID], measured = pd.ObservedValue, true
			}
			id := signalID(in, x, "breach", now)
			switch {
			case !ok && !breached:
				b = Breach{Since: ev.Time, Observed: pd.ObservedValue, KPI: pd.KPI}
				r.Breaches[x.ID] = b
				changes = append(changes, breachChange{x: x, b: b, state: signal.Raised, id: id})
			case !ok && b.Observed != pd.ObservedValue:
				b.Observed = pd.ObservedValue
				r.Breaches[x.ID] = b
				changes = append(changes, breachChange{x: x, b: b, state: signal.Updated, id: id})
			case ok && breached:
				delete(r.Breaches, x.ID)
				changes = append(changes, breachChange{x: x, b: b, state: signal.Cleared, ending: ev.Time, id: id})
			}
			// Met, but within the margin: at risk. Missed: the breach
			// says more than a risk would.
			at := ev.State != signal.Cleared && ok && margin >= 0 && near(x, pd.ObservedValue, margin)
			setRisk(r, x, cause, at, pd.ObservedValue, "anfed-margin", now)
		}
		// Each congestion and fault held predicts again from what is
		// measured now, whichever came first.
		for _, k := range slices.Sorted(maps.Keys(r.Held)) {
			if !counts {
				break // held, to predict from once a measurement counts
			}
			h := r.Held[k]
			for _, x := range xs {
				v, model, ok := predicted(x, r.Observed, h)
				setRisk(r, x, h.Cause, ok && margin >= 0 && near(x, v, margin), v, model, now)
			}
		}
		risks = diffRisks(r, before, now)
		status := compliance(r)
		unsent := r.Proposal != nil && !r.Proposal.Sent
		if len(changes) == 0 && len(risks) == 0 && !measured && ob.class == classDeviation && status == r.Intent.LifecycleStatus && !unsent {
			return false, nil
		}
		if status != r.Intent.LifecycleStatus {
			report = true
			r.Intent.LifecycleStatus, r.Intent.StatusChangeDate = status, now
			r.Intent.StatusReason = s.self + "'s measurements: " + breachText(r)
			r.Reports = append(r.Reports, s.newReport(r, status, s.self, r.Intent.StatusReason, nil, now))
		}
		opened, ended = s.proposal(r, changes, risks, report, ob, now)
		r.Intent.LastUpdate = now
		return true, nil
	})
	if errors.Is(err, errNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range changes {
		if err := s.publishBreach(ctx, rec, c, ev.ID); err != nil {
			return err
		}
	}
	for _, c := range risks {
		cause := ev.ID
		if c.state != signal.Cleared {
			cause = c.r.Last.ID // the signal that set it
		}
		if err := s.publishRisk(ctx, rec, c, cause); err != nil {
			return err
		}
	}
	// The owner hears of a change of compliance, and of a risk raised or
	// cleared, at once; of the rest, at the next periodic report.
	for _, c := range risks {
		report = report || c.state != signal.Updated
	}
	if report {
		if err := s.publishReport(ctx, rec, now); err != nil {
			return err
		}
	}
	return s.publishProposal(ctx, rec, opened, ended)
}

// compliance is an intent's lifecycle from its breaches: none compliant;
// all within degradedMargin of their targets degraded; else not compliant.
func compliance(r *Record) string {
	if len(r.Breaches) == 0 && len(r.Observed) == 0 {
		return r.Intent.LifecycleStatus // nothing measured yet: inProgress
	}
	if len(r.Breaches) == 0 {
		return Compliant
	}
	for _, x := range r.Intent.Expression.ExpressionValue.Expectations {
		b, ok := r.Breaches[x.ID]
		if !ok {
			continue
		}
		if x.Value == 0 || math.Abs(b.Observed-x.Value)/math.Abs(x.Value) > degradedMargin {
			return NotCompliant
		}
	}
	return Degraded
}

func breachText(r *Record) string {
	if len(r.Breaches) == 0 {
		return "every expectation met"
	}
	var parts []string
	for _, x := range r.Intent.Expression.ExpressionValue.Expectations {
		if b, ok := r.Breaches[x.ID]; ok {
			parts = append(parts, fmt.Sprintf("%s %v %s misses %s %v", x.ID, b.Observed, x.Unit, x.Comparator, x.Value))
		}
	}
	return strings.Join(parts, "; ")
}

// publishBreach raises, updates or clears the sla-breach of one
// expectation of a handled intent: slaId <owner>.<intentId>, subject
// <service>/<intentId>/<expectation id>.
func (s *Service) publishBreach(ctx context.Context, rec *Record, c breachChange, causation string) error {
	in := rec.Intent
	data := map[string]any{
		"slaId": in.Owner + "." + in.ID, "metric": c.b.KPI,
		"objective":     map[string]any{"comparator": c.x.Comparator, "target": c.x.Value, "unit": c.x.Unit},
		"observedValue": c.b.Observed, "breachStart": c.b.Since.UTC().Format(time.RFC3339Nano), "penaltyRelevant": false,
	}
	sev, text := 17, "ERROR"
	if c.state == signal.Cleared {
		data["breachEnd"] = c.ending.UTC().Format(time.RFC3339Nano)
		sev, text = 9, "INFO"
	}
	b, _ := json.Marshal(data)
	return s.publishEvent(ctx, &signal.Event{ID: c.id, Source: "anfed://" + s.self + "/intents", Type: schemas.Type("sla-breach"),
		Subject: in.Expression.ExpressionValue.Service + "/" + in.ID + "/" + c.x.ID, State: c.state, SeverityText: text, SeverityNumber: sev,
		CorrelationID: in.Owner + "." + in.ID, CausationID: causation, Data: b})
}

// publishReport sends the intent's owner an intent-report of where the
// intent stands, with the last value measured of each expectation.
func (s *Service) publishReport(ctx context.Context, rec *Record, now time.Time) error {
	in := rec.Intent
	type target struct {
		Name       string  `json:"name"`
		Comparator string  `json:"comparator"`
		Value      float64 `json:"value"`
		Unit       string  `json:"unit"`
	}
	type result struct {
		ObservedValue float64 `json:"observedValue"`
		ConditionMet  bool    `json:"conditionMet"`
	}
	type exp struct {
		ID     string `json:"id"`
		Target target `json:"target"`
		Result result `json:"result"`
	}
	var xs []exp
	for _, x := range in.Expression.ExpressionValue.Expectations {
		v, ok := rec.Observed[x.ID]
		if !ok {
			continue // not measured yet
		}
		_, breached := rec.Breaches[x.ID]
		xs = append(xs, exp{ID: x.ID, Target: target{Name: x.Metric, Comparator: x.Comparator, Value: x.Value, Unit: x.Unit}, Result: result{ObservedValue: v, ConditionMet: !breached}})
	}
	if len(xs) == 0 {
		return nil
	}
	comp := in.LifecycleStatus
	if comp == NotCompliant {
		comp = "nonCompliant" // the intent-report class's spelling
	}
	b, _ := json.Marshal(map[string]any{"intentId": in.ID, "compliance": comp, "expectations": xs, "reportingTime": now.Format(time.RFC3339Nano)})
	sev, text := 9, "INFO"
	if comp != Compliant {
		sev, text = 13, "WARN"
	}
	return s.publishEvent(ctx, &signal.Event{ID: fmt.Sprintf("%s.%s.report.%d", in.Owner, in.ID, now.UnixNano()), Source: "anfed://" + s.self + "/intents",
		Type: schemas.Type("intent-report"), Subject: in.Expression.ExpressionValue.Service + "/" + in.ID, State: signal.Updated,
		SeverityText: text, SeverityNumber: sev, CorrelationID: in.Owner + "." + in.ID, Data: b})
}

// runPeriodic reports each intent we handle and have measured to its
// owner every intents.report_interval, whether it changed or not.
func (s *Service) runPeriodic(ctx context.Context) {
	t := time.NewTicker(s.d.Config.Every())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		recs, err := s.store.all(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn().Err(err).Msg("intents: reading the intents to report; the next interval tries again")
			}
			continue
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		for _, rec := range recs {
			if rec.Intent.Role != RoleHandler || !slices.Contains([]string{Compliant, Degraded, NotCompliant}, rec.Intent.LifecycleStatus) || !inForceAt(rec.Intent, now) {
				continue
			}
			if err := s.publishReport(ctx, rec, now); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Str("intent", rec.Intent.Owner+"."+rec.Intent.ID).Msg("intents: periodic report; the next interval sends one")
			}
		}
	}
}

// runReports takes the intent reports our intents' partners send.
func (s *Service) runReports(ctx context.Context) {
	loop := closedloop.New(s.nc, closedloop.Options{Name: "intents-reports", Filter: subject.SignalPrefix + ".*.intent-report.>", MaxInFlight: 16, MaxDeliver: 20, Jitter: 0.5,
		BackOff: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second}, Log: s.log}, s.reported)
	if err := loop.Run(ctx); err != nil && ctx.Err() == nil {
		s.log.Error().Err(err).Msg("intents: following intent reports stopped")
	}
}

// reported takes a partner's intent-report of one of our intents: the
// intent's lifecycleStatus follows its compliance, and it is kept as an
// IntentReport.
func (s *Service) reported(ctx context.Context, ev *signal.Event, _ closedloop.Delivery) error {
	if ev.Origin == s.self || ev.State == signal.Cleared {
		return nil
	}
	var r struct {
		IntentID   string          `json:"intentId"`
		Compliance string          `json:"compliance"`
		Expect     json.RawMessage `json:"expectations"`
	}
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		return closedloop.Poison(fmt.Errorf("intent-report %s: %w", ev.ID, err))
	}
	status := reportedStatus[r.Compliance]
	if status == "" {
		return nil
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	_, err := s.store.update(ctx, keyOf(s.self, r.IntentID), func(rec *Record) (bool, error) {
		v := rec.Intent.Expression.ExpressionValue
		if v == nil || v.Partner != ev.Origin || rec.Intent.LifecycleStatus == Terminated || rec.Intent.LifecycleStatus == Rejected {
			return false, nil // not from the partner, or not an intent it took on
		}
		if rec.Intent.LifecycleStatus == Acknowledged {
			// The partner's report can overtake its answer (two
			// consumers): wait for the answer.
			return false, fmt.Errorf("intent %s: a report from %s before its answer; retried", r.IntentID, ev.Origin)
		}
		rep := s.newReport(rec, status, ev.Origin, "", nil, now)
		rep.ID = reportID(ev) // the id the hub's notification names
		rep.Expression.ExpressionValue.Expectations = r.Expect
		rec.Reports = append(rec.Reports, rep)
		if rec.Intent.LifecycleStatus != status {
			rec.Intent.LifecycleStatus, rec.Intent.StatusChangeDate = status, now
			rec.Intent.StatusReason = ev.Origin + " reports it " + r.Compliance
		}
		rec.Intent.LastUpdate = now
		return true, nil
	})
	if errors.Is(err, errNotFound) {
		return nil
	}
	return err
}

// publishEvent hands one of our signals to intake and waits until it is
// stored.
func (s *Service) publishEvent(ctx context.Context, ev *signal.Event) error {
	ev.Time = time.Now().UTC().Truncate(time.Millisecond)
	ev.DataContentType, ev.Origin = "application/json", s.self
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	a := intake.RequestAll(s.nc, []*nats.Msg{{Subject: intakeSubject, Data: ev.Encode()}}, timeout)[0]
	if err := a.Err(); err != nil {
		return fmt.Errorf("%s signal %s: %w", ev.Type, ev.ID, err)
	}
	return nil
}
