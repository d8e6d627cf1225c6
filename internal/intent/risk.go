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
	// resource: the risk clears when the last of them goes.
	Causes map[string]Cause `json:"causes"`
}

// Cause is one of our signals behind a risk or a proposal.
type Cause struct {
	ID       string                `json:"id"`
	Source   string                `json:"source"`
	Class    string                `json:"class"`
	Resource coordination.Resource `json:"resource"`
}

func (c Cause) key() string { return c.Class + "/" + c.Resource.ID }

type riskChange struct {
	x     Expectation
	r     Risk
	state signal.State
	id    string // the sla-risk's event id
}

// touchRisk sets (at) or unsets the cause's part in x's risk and returns
// the risk's change, or nil.
func (s *Service) touchRisk(r *Record, x Expectation, c Cause, at bool, v float64, model string, now time.Time) *riskChange {
	rk, had := r.Risks[x.ID]
	id := fmt.Sprintf("%s.%s.%s.risk.%d", r.Intent.Owner, r.Intent.ID, x.ID, now.UnixNano())
	if !at {
		if _, ok := rk.Causes[c.key()]; !had || !ok {
			return nil
		}
		delete(rk.Causes, c.key())
		if len(rk.Causes) > 0 {
			r.Risks[x.ID] = rk // still held up by another cause
			return nil
		}
		delete(r.Risks, x.ID)
		return &riskChange{x: x, r: rk, state: signal.Cleared, id: id}
	}
	if !had {
		rk = Risk{Since: now, Causes: map[string]Cause{}}
	}
	changed := rk.Predicted != v || rk.Model != model
	rk.Causes[c.key()], rk.Predicted, rk.Model = c, v, model
	r.Risks[x.ID] = rk
	switch {
	case !had:
		return &riskChange{x: x, r: rk, state: signal.Raised, id: id}
	case changed:
		return &riskChange{x: x, r: rk, state: signal.Updated, id: id}
	}
	return nil
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
