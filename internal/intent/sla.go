package intent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/closedloop"
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

// runSLA evaluates our own performance-deviation signals against the
// intents we accepted, from a durable consumer.
func (s *Service) runSLA(ctx context.Context) {
	filter := subject.SignalPrefix + "." + s.self + ".performance-deviation.>"
	loop := closedloop.New(s.nc, closedloop.Options{Name: "intents-sla", Filter: filter, MaxInFlight: 1, MaxDeliver: 20, Jitter: 0.5,
		BackOff: []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second}, Log: s.log}, s.evaluate)
	if err := loop.Run(ctx); err != nil && ctx.Err() == nil {
		s.log.Error().Err(err).Msg("intents: SLA evaluation stopped")
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

// evaluate takes one of our performance deviations: for each accepted
// intent of its service with an expectation on its KPI's metric, the
// expectation's breach is raised, updated or cleared (an sla-breach
// signal naming the intent), and on a change of the intent's compliance
// an intent-report goes to its owner.
func (s *Service) evaluate(ctx context.Context, ev *signal.Event, _ closedloop.Delivery) error {
	var pd perfDeviation
	if ev.State != signal.Cleared {
		if err := json.Unmarshal(ev.Data, &pd); err != nil {
			return closedloop.Poison(fmt.Errorf("performance-deviation %s: %w", ev.ID, err))
		}
	} else if err := json.Unmarshal(ev.Data, &pd); err != nil || pd.KPI == "" {
		return nil // a clear without its KPI says nothing we can match
	}
	recs, err := s.store.all(ctx)
	if err != nil {
		return err
	}
	service := ev.Service()
	for _, rec := range recs {
		in := rec.Intent
		v := in.Expression.ExpressionValue
		if in.Role != RoleHandler || v == nil || v.Service != service || !slices.Contains([]string{InProgress, Compliant, Degraded, NotCompliant}, in.LifecycleStatus) {
			continue
		}
		if err := s.evaluateIntent(ctx, keyOf(in.Owner, in.ID), ev, pd); err != nil {
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
}

func (s *Service) evaluateIntent(ctx context.Context, key string, ev *signal.Event, pd perfDeviation) error {
	var changes []breachChange
	var report bool
	now := time.Now().UTC().Truncate(time.Millisecond)
	rec, err := s.store.update(ctx, key, func(r *Record) (bool, error) {
		changes, report = nil, false
		if r.Breaches == nil {
			r.Breaches = map[string]Breach{}
		}
		if r.Observed == nil {
			r.Observed = map[string]float64{}
		}
		for _, x := range r.Intent.Expression.ExpressionValue.Expectations {
			if x.Metric != metricOf(pd.KPI) || x.Unit != pd.Unit {
				continue
			}
			b, breached := r.Breaches[x.ID]
			ok := ev.State == signal.Cleared || met(x, pd.ObservedValue)
			if ev.State != signal.Cleared {
				r.Observed[x.ID] = pd.ObservedValue
			}
			switch {
			case !ok && !breached:
				b = Breach{Since: ev.Time, Observed: pd.ObservedValue, KPI: pd.KPI}
				r.Breaches[x.ID] = b
				changes = append(changes, breachChange{x: x, b: b, state: signal.Raised})
			case !ok && b.Observed != pd.ObservedValue:
				b.Observed = pd.ObservedValue
				r.Breaches[x.ID] = b
				changes = append(changes, breachChange{x: x, b: b, state: signal.Updated})
			case ok && breached:
				delete(r.Breaches, x.ID)
				changes = append(changes, breachChange{x: x, b: b, state: signal.Cleared, ending: ev.Time})
			}
		}
		if len(changes) == 0 {
			return false, nil
		}
		status := compliance(r)
		if status != r.Intent.LifecycleStatus {
			report = true
			r.Intent.LifecycleStatus, r.Intent.StatusChangeDate = status, now
			r.Intent.StatusReason = s.self + "'s measurements: " + breachText(r)
			r.Reports = append(r.Reports, s.newReport(r, status, s.self, r.Intent.StatusReason, nil, now))
		}
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
		if err := s.publishBreach(ctx, rec, c); err != nil {
			return err
		}
	}
	if report {
		return s.publishReport(ctx, rec, now)
	}
	return nil
}

// compliance is an intent's lifecycle from its breaches: none compliant;
// all within degradedMargin of their targets degraded; else not compliant.
func compliance(r *Record) string {
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
func (s *Service) publishBreach(ctx context.Context, rec *Record, c breachChange) error {
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
	id := fmt.Sprintf("%s.%s.%s.%s.%d", in.Owner, in.ID, c.x.ID, c.state, time.Now().UnixNano())
	return s.publishEvent(ctx, &signal.Event{ID: id, Source: "anfed://" + s.self + "/intents", Type: schemas.Type("sla-breach"),
		Subject: in.Expression.ExpressionValue.Service + "/" + in.ID + "/" + c.x.ID, State: c.state, SeverityText: text, SeverityNumber: sev,
		CorrelationID: in.Owner + "." + in.ID, Data: b})
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
	status := map[string]string{"compliant": Compliant, "degraded": Degraded, "nonCompliant": NotCompliant}[r.Compliance]
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
