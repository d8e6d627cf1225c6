// Package coordination is the action protocol between operators: a
// proposal to act on resources other operators are affected by, each
// affected operator's decision on it under its policy (or a person's),
// and the lease the decision grants, which conflicting proposals respect
// until it is released or runs out (docs/coordination.md).
//
// The rooms: action.go is the wire (the action class's data, plain
// types); policy.go decides by the operator's rules; table.go keeps the
// leases in a JetStream key-value bucket, each decision a compare and
// swap; coordinator.go is the node's part (reads stored action signals,
// decides, publishes); client.go is the Go helper for closed loops.
package coordination

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// Class is the catalog class of every step of an action.
const Class = "action"

// Phase is a step of an action's lifecycle.
type Phase string

// The proposer's steps, then the affected operators'.
const (
	Proposed   Phase = "proposed"
	Active     Phase = "active"
	Completed  Phase = "completed"
	RolledBack Phase = "rolled-back"

	Accepted  Phase = "accepted"
	Declined  Phase = "declined"
	Countered Phase = "countered"
	Released  Phase = "released"
	Expired   Phase = "expired"
)

// FromProposer reports whether p is a step only the proposer sends.
func (p Phase) FromProposer() bool {
	return p == Proposed || p == Active || p == Completed || p == RolledBack
}

// Ends reports whether p ends the action.
func (p Phase) Ends() bool {
	return p == Completed || p == RolledBack || p == Released || p == Expired || p == Declined || p == Countered
}

// Resource is one resource an action touches.
type Resource struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Cause is a signal that caused an action.
type Cause struct {
	Source string `json:"source"`
	ID     string `json:"id"`
	Class  string `json:"class,omitempty"`
}

// Lease is what a decision says of the lease it granted or ended.
type Lease struct {
	Holder   string    `json:"holder"`
	Until    time.Time `json:"until"`
	Revision uint64    `json:"revision"`
}

// Conflict names the lease a declined proposal ran into.
type Conflict struct {
	Holder   string    `json:"holder"`
	ActionID string    `json:"actionId"`
	Until    time.Time `json:"until"`
}

// Counter is what an affected operator would accept instead.
type Counter struct {
	Duration  string     `json:"duration,omitempty"`
	NotBefore *time.Time `json:"notBefore,omitempty"`
	Detail    string     `json:"detail,omitempty"`
}

// Data is the data of an action signal (schemas/action.v1.json).
type Data struct {
	ActionID          string     `json:"actionId"`
	Phase             Phase      `json:"phase"`
	Proposer          string     `json:"proposer"`
	Kind              string     `json:"kind,omitempty"`
	Resources         []Resource `json:"resources,omitempty"`
	Services          []string   `json:"services,omitempty"`
	AffectedOperators []string   `json:"affectedOperators,omitempty"`
	Causes            []Cause    `json:"causes,omitempty"`
	ExpectedEffect    string     `json:"expectedEffect,omitempty"`
	Duration          string     `json:"duration,omitempty"`
	Reverses          string     `json:"reverses,omitempty"`
	Detail            string     `json:"detail,omitempty"`
	Lease             *Lease     `json:"lease,omitempty"`
	Conflict          *Conflict  `json:"conflict,omitempty"`
	Counter           *Counter   `json:"counter,omitempty"`
	Reason            string     `json:"reason,omitempty"`
	Rule              string     `json:"rule,omitempty"`
	DecidedBy         string     `json:"decidedBy,omitempty"`
}

// Step is one action signal as a node read it: who sent it and what it
// says.
type Step struct {
	Origin  string
	EventID string
	Source  string
	Subject string
	// TraceParent, TraceState: the step's W3C trace context; our answer
	// carries it on.
	TraceParent, TraceState string
	Data
}

// ParseStep reads an action signal. The schema was checked where the
// signal entered; ParseStep checks what the schema cannot: who may send
// which step.
func ParseStep(ev *signal.Event) (Step, error) {
	class, _, ok := schemas.ClassOf(ev.Type)
	if !ok || class != Class {
		return Step{}, fmt.Errorf("type %q is not an action", ev.Type)
	}
	var d Data
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return Step{}, fmt.Errorf("action data: %w", err)
	}
	st := Step{Origin: ev.Origin, EventID: ev.ID, Source: ev.Source, Subject: ev.Subject, TraceParent: ev.TraceParent, TraceState: ev.TraceState, Data: d}
	switch {
	case d.Phase.FromProposer() && ev.Origin != d.Proposer:
		return st, fmt.Errorf("action %s: %s comes from its proposer %s, not from %s", d.ActionID, d.Phase, d.Proposer, ev.Origin)
	case !d.Phase.FromProposer() && ev.Origin == d.Proposer:
		return st, fmt.Errorf("action %s: %s comes from an affected operator, not from the proposer %s", d.ActionID, d.Phase, d.Proposer)
	case (d.Phase == Accepted || d.Phase == Released || d.Phase == Expired) && d.Lease == nil:
		return st, fmt.Errorf("action %s: %s without its lease", d.ActionID, d.Phase)
	}
	return st, nil
}

// ParseDuration reads the ISO 8601 durations actions use: days, hours,
// minutes and seconds (P1D, PT15M, PT1H30M, PT0.5S). Years, months and
// weeks have no fixed length and are refused.
func ParseDuration(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, fmt.Errorf("duration %q: want an ISO 8601 duration such as PT15M", s)
	}
	var d time.Duration
	inTime := false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, fmt.Errorf("duration %q: T twice", s)
			}
			inTime, rest = true, rest[1:]
			continue
		}
		i := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if i <= 0 {
			return 0, fmt.Errorf("duration %q: want a number before each unit", s)
		}
		v, err := strconv.ParseFloat(rest[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		var unit time.Duration
		switch u := rest[i]; {
		case u == 'D' && !inTime:
			unit = 24 * time.Hour
		case u == 'H' && inTime:
			unit = time.Hour
		case u == 'M' && inTime:
			unit = time.Minute
		case u == 'S' && inTime:
			unit = time.Second
		default:
			return 0, fmt.Errorf("duration %q: unit %q is not one of D, H, M, S (years, months and weeks have no fixed length)", s, u)
		}
		if v > float64(1<<62)/float64(unit) {
			return 0, fmt.Errorf("duration %q: too long", s)
		}
		d += time.Duration(v * float64(unit))
		rest = rest[i+1:]
	}
	return d, nil
}

// FormatDuration writes d as ISO 8601 (PT1H30M, PT0.25S), to the
// millisecond.
func FormatDuration(d time.Duration) string {
	d = d.Round(time.Millisecond)
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		fmt.Fprintf(&b, "%dH", h)
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		fmt.Fprintf(&b, "%dM", m)
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}

// ErrBadStep is wrapped by the errors of a step the node ignores.
var ErrBadStep = errors.New("bad action step")
