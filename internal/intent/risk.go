package intent

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// Risk is an expectation of a handled intent that is still met but at
// risk: a measured value within intents.risk_margin_percent of its
// target, or a congestion that would take it there.
type Risk struct {
	Since     time.Time `json:"since"`
	Predicted float64   `json:"predicted"`
	Model     string    `json:"model"`
	// Causes are the signals that hold the risk up, by class and
	// resource: the risk clears when the last of them goes. Last is the
	// one that set it last.
	Causes map[string]Cause `json:"causes"`
	Last   Cause            `json:"last"`
}

// Cause is one of our signals behind a risk or a proposal.
type Cause struct {
	ID       string                `json:"id"`
	Source   string                `json:"source"`
	Class    string                `json:"class"`
	Resource coordination.Resource `json:"resource"`
}

func (c Cause) key() string { return c.Class + "/" + c.Resource.ID }

// Held is one of our congestions or faults on a handled intent's
// service, kept while it lasts, so that each new measurement predicts
// again from it.
type Held struct {
	Cause             Cause   `json:"cause"`
	QueueDelayMs      float64 `json:"queueDelayMs,omitempty"`
	PacketLossPercent float64 `json:"packetLossPercent,omitempty"`
	Severity          string  `json:"severity,omitempty"` // a fault's perceivedSeverity
}

// signalID is the id of the sla-breach or sla-risk (kind breach, risk)
// of expectation x of in, changed at now.
func signalID(in Intent, x Expectation, kind string, now time.Time) string {
	return fmt.Sprintf("%s.%s.%s.%s.%d", in.Owner, in.ID, x.ID, kind, now.UnixNano())
}

type riskChange struct {
	x     Expectation
	r     Risk
	state signal.State
	id    string // the sla-risk's event id
}

// setRisk sets (at) or unsets cause c's part in x's risk, v predicted.
func setRisk(r *Record, x Expectation, c Cause, at bool, v float64, model string, now time.Time) {
	rk, had := r.Risks[x.ID]
	if !at {
		if had {
			delete(rk.Causes, c.key())
			if len(rk.Causes) == 0 {
				delete(r.Risks, x.ID)
			}
		}
		return
	}
	if !had {
		rk = Risk{Since: now, Causes: map[string]Cause{}}
	}
	rk.Causes[c.key()], rk.Predicted, rk.Model, rk.Last = c, v, model, c
	r.Risks[x.ID] = rk
}

// riskSnap is what a risk's change is judged by.
type riskSnap struct {
	predicted float64
	model     string
	last      Cause
}

func snapRisks(r *Record) map[string]riskSnap {
	out := map[string]riskSnap{}
	for id, rk := range r.Risks {
		out[id] = riskSnap{rk.Predicted, rk.Model, rk.Last}
	}
	return out
}

// diffRisks is each expectation's risk raised, updated or cleared since
// before.
func diffRisks(r *Record, before map[string]riskSnap, now time.Time) []riskChange {
	var out []riskChange
	for _, x := range r.Intent.Expression.ExpressionValue.Expectations {
		b, had := before[x.ID]
		a, has := r.Risks[x.ID]
		id := signalID(r.Intent, x, "risk", now)
		switch {
		case had && !has:
			out = append(out, riskChange{x: x, r: Risk{Predicted: b.predicted, Model: b.model, Last: b.last}, state: signal.Cleared, id: id})
		case !had && has:
			out = append(out, riskChange{x: x, r: a, state: signal.Raised, id: id})
		case has && (a.Predicted != b.predicted || a.Model != b.model):
			out = append(out, riskChange{x: x, r: a, state: signal.Updated, id: id})
		}
	}
	return out
}

// probability is how likely x's target is missed with v predicted: 0.9
// when v misses it, else from 0.1 at the margin's edge to 0.9 at the
// target.
func probability(x Expectation, v, margin float64) float64 {
	if !met(x, v) {
		return 0.9
	}
	if margin <= 0 || x.Value == 0 {
		return 0.5
	}
	p := 1 - math.Abs(v-x.Value)/(margin*math.Abs(x.Value))
	return math.Round(math.Max(0.1, math.Min(0.9, p))*100) / 100
}

// publishRisk raises, updates or clears the sla-risk of one expectation
// of a handled intent: slaId <owner>.<intentId>, subject
// <service>/<intentId>/<expectation id>, its causationid the signal that
// changed it.
func (s *Service) publishRisk(ctx context.Context, rec *Record, c riskChange, causation string) error {
	in := rec.Intent
	data := map[string]any{
		"slaId": in.Owner + "." + in.ID, "metric": c.x.Metric,
		"objective":      map[string]any{"comparator": c.x.Comparator, "target": c.x.Value, "unit": c.x.Unit},
		"predictedValue": c.r.Predicted, "probability": probability(c.x, c.r.Predicted, s.d.Config.RiskMargin()),
		"horizon":    time.Now().UTC().Add(s.d.Config.Every()).Truncate(time.Millisecond).Format(time.RFC3339Nano),
		"confidence": 0.5, "model": c.r.Model,
	}
	sev, text := 13, "WARN"
	if c.state == signal.Cleared {
		sev, text = 9, "INFO"
	}
	b, _ := json.Marshal(data)
	return s.publishEvent(ctx, &signal.Event{ID: c.id, Source: "anfed://" + s.self + "/intents", Type: schemas.Type("sla-risk"),
		Subject: in.Expression.ExpressionValue.Service + "/" + in.ID + "/" + c.x.ID, State: c.state, SeverityText: text, SeverityNumber: sev,
		CorrelationID: in.Owner + "." + in.ID, CausationID: causation, Data: b})
}
