package intent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Lifecycle states of an intent (lifecycleStatus).
const (
	// Acknowledged: stored, proposed to the partner, no answer yet.
	Acknowledged = "acknowledged"
	// InProgress: the partner accepted it; no compliance report yet.
	InProgress = "inProgress"
	// Compliant, Degraded, NotCompliant: what the last report said.
	Compliant    = "compliant"
	Degraded     = "degraded"
	NotCompliant = "notCompliant"
	// Rejected: the partner's policy refused it (an anfed state; TMF921
	// leaves lifecycleStatus values to the implementation).
	Rejected = "rejected"
	// Terminated: deleted by its owner; kept, read-only, so that both
	// sides can see how it ended.
	Terminated = "terminated"
)

// Roles of this node for an intent.
const (
	RoleOwner   = "owner"   // we made it (POST) and proposed it to the partner
	RoleHandler = "handler" // a peer proposed it to us
)

// Intent is a TMF921 v5 Intent as this node keeps it: the TMF fields it
// supports and anfed's own (owner, partner decision), prefixed by
// nothing but documented in docs/intents.md.
type Intent struct {
	ID                  string      `json:"id"`
	Href                string      `json:"href,omitempty"`
	Name                string      `json:"name"`
	Description         string      `json:"description,omitempty"`
	Version             string      `json:"version,omitempty"`
	Priority            string      `json:"priority,omitempty"`
	Context             string      `json:"context,omitempty"`
	LifecycleStatus     string      `json:"lifecycleStatus"`
	StatusChangeDate    time.Time   `json:"statusChangeDate"`
	CreationDate        time.Time   `json:"creationDate"`
	LastUpdate          time.Time   `json:"lastUpdate"`
	ValidFor            *TimePeriod `json:"validFor,omitempty"`
	IntentSpecification *EntityRef  `json:"intentSpecification,omitempty"`
	Expression          Expression  `json:"expression"`
	Type                string      `json:"@type"`
	BaseType            string      `json:"@baseType,omitempty"`
	SchemaLocation      string      `json:"@schemaLocation,omitempty"`

	// Owner is the operator that made the intent; Role is ours for it.
	Owner string `json:"owner"`
	Role  string `json:"role"`
	// PartnerDecision is the partner's answer to our proposal (owner), or
	// ours to the owner's (handler).
	PartnerDecision *Decision `json:"partnerDecision,omitempty"`
	// StatusReason says why the lifecycle status is what it is.
	StatusReason string `json:"statusReason,omitempty"`
}

// Decision is a partner's answer to a proposed intent.
type Decision struct {
	Decision string    `json:"decision"` // accepted or rejected
	Reason   string    `json:"reason,omitempty"`
	Rule     string    `json:"rule,omitempty"` // the partner's policy rule that decided
	Time     time.Time `json:"time"`
}

// TimePeriod is TMF's validFor.
type TimePeriod struct {
	StartDateTime *time.Time `json:"startDateTime,omitempty"`
	EndDateTime   *time.Time `json:"endDateTime,omitempty"`
}

// EntityRef is TMF's reference to another resource (intentSpecification).
type EntityRef struct {
	ID           string `json:"id"`
	Href         string `json:"href,omitempty"`
	Name         string `json:"name,omitempty"`
	Version      string `json:"version,omitempty"`
	Type         string `json:"@type,omitempty"`
	ReferredType string `json:"@referredType,omitempty"`
}

// Expression is the intent's TMF921 expression: a JsonLdExpression whose
// expressionValue is the cross-operator service expectation anfed reads.
type Expression struct {
	Type               string            `json:"@type"`
	ExpressionLanguage string            `json:"expressionLanguage,omitempty"`
	Iri                string            `json:"iri,omitempty"`
	ExpressionValue    *ServiceIntention `json:"expressionValue"`
}

// ServiceIntention is what an intent asks of a partner for one service.
type ServiceIntention struct {
	// Service is the service the intent is about: the service token of
	// the signals' subjects (e.g. vpn-acme).
	Service string `json:"service"`
	// Partner is the operator asked to take the intent on.
	Partner      string        `json:"partner"`
	Expectations []Expectation `json:"expectations"`
	// TimeWindows restrict when the expectations hold; none: always.
	TimeWindows []TimeWindow `json:"timeWindows,omitempty"`
}

// Expectation is one target of the intent.
type Expectation struct {
	ID         string  `json:"id"`
	Metric     string  `json:"metric"`
	Comparator string  `json:"comparator"`
	Value      float64 `json:"value"`
	Unit       string  `json:"unit"`
}

// TimeWindow is a daily window, UTC, on some days of the week.
type TimeWindow struct {
	Days  []string `json:"days,omitempty"` // mon ... sun; none: every day
	Start string   `json:"start"`          // HH:MM
	End   string   `json:"end"`            // HH:MM, after Start
}

// metric is what anfed knows of an expectation's metric: its unit, the
// direction a target bounds it and the largest sensible value.
type metric struct {
	unit  string
	upper bool // the target is an upper bound (<=, <): less is better
	max   float64
}

// Metrics are the expectation metrics an intent may name.
var Metrics = map[string]metric{
	"latency":      {unit: "ms", upper: true, max: 60_000},
	"jitter":       {unit: "ms", upper: true, max: 60_000},
	"loss":         {unit: "%", upper: true, max: 100},
	"availability": {unit: "%", upper: false, max: 100},
	"throughput":   {unit: "Mbit/s", upper: false, max: 10_000_000},
}

// MetricNames are Metrics' keys, sorted.
func MetricNames() []string {
	var out []string
	for k := range Metrics {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Upper reports whether a target of m bounds it from above.
func Upper(m string) bool { return Metrics[m].upper }

// FieldError is a payload the API refuses: Field is the JSON path of the
// field at fault, Msg what is wrong and how to fix it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return strings.TrimPrefix(e.Field+": "+e.Msg, ": ") }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

var (
	idRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	operatorRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	serviceRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	clockRE    = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	days       = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
)

// readOnly are the fields the node sets; a request may not.
var readOnly = []string{"href", "lifecycleStatus", "statusChangeDate", "creationDate", "lastUpdate", "owner", "role", "partnerDecision", "statusReason"}

// notSupported are TMF921 Intent fields this node does not take.
var notSupported = []string{"isBundle", "intentRelationship", "characteristic", "relatedParty", "attachment", "intentReport"}

// decodeStrict decodes b into v, naming the JSON field of any error.
func decodeStrict(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return fieldErr("", "empty body: send a TMF921 Intent as JSON")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return jsonErr(err)
	}
	for _, k := range readOnly {
		if _, ok := raw[k]; ok {
			return fieldErr(k, "set by the node, not by a request: leave it out")
		}
	}
	for _, k := range notSupported {
		if _, ok := raw[k]; ok {
			return fieldErr(k, "not supported by anfed's TMF921 subset (docs/intents.md): leave it out")
		}
	}
	var tree any
	_ = json.Unmarshal(b, &tree) // it decoded above
	if f := unknownField(tree, reflect.TypeOf(v), ""); f != "" {
		return fieldErr(f, "unknown field: check its spelling against TMF921 v5 and docs/intents.md")
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return jsonErr(err)
	}
	return nil
}

// unknownField is the JSON path of the first member of tree that t has
// no field for, or "".
func unknownField(tree any, t reflect.Type, at string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch v := tree.(type) {
	case map[string]any:
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
			return ""
		}
		names := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				names[name] = f.Type
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := k
			if at != "" {
				p = at + "." + k
			}
			ft, ok := names[k]
			if !ok {
				return p
			}
			if f := unknownField(v[k], ft, p); f != "" {
				return f
			}
		}
	case []any:
		if t.Kind() != reflect.Slice {
			return ""
		}
		for i, e := range v {
			if f := unknownField(e, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); f != "" {
				return f
			}
		}
	}
	return ""
}

// jsonErr turns a decoding error into a FieldError naming the field.
func jsonErr(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) && strings.Contains(se.Error(), "unexpected end of JSON input"):
		return fieldErr("", "the JSON ends early: send a whole TMF921 Intent")
	case errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value"):
		return fieldErr("", "more than one JSON value in the body: send one Intent")
	case errors.As(err, &se):
		return fieldErr("", "not valid JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		f := te.Field
		if f == "" {
			return fieldErr("", "want a JSON object (a TMF921 Intent), got %s", te.Value)
		}
		return fieldErr(f, "want %s, got %s", jsonType(te.Type.Kind().String()), te.Value)
	}
	if s, ok := strings.CutPrefix(err.Error(), "parsing time "); ok {
		return fieldErr("", "a date-time is not RFC 3339 (e.g. 2026-12-07T08:00:00Z): parsing time %s", s)
	}
	return fieldErr("", "%v", err)
}

func jsonType(kind string) string {
	switch kind {
	case "float64", "int", "int64":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "bool":
		return "true or false"
	}
	return kind
}

// ParseCreate reads a POST body: a TMF921 Intent_FVO as this node takes
// it. The result is valid (Validate) but carries no node-set fields.
func ParseCreate(b []byte) (*Intent, error) {
	var in Intent
	if err := decodeStrict(b, &in); err != nil {
		return nil, err
	}
	if in.Type == "" {
		in.Type = "Intent"
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

// Validate checks what a client may set, naming the field at fault.
func (in *Intent) Validate() error {
	if in.ID != "" && !idRE.MatchString(in.ID) {
		return fieldErr("id", "%q: letters, digits, - and _ (at most 128), or leave it out and the node picks one", in.ID)
	}
	if strings.TrimSpace(in.Name) == "" {
		return fieldErr("name", "required: a name for the intent, e.g. \"acme VPN latency\"")
	}
	if len(in.Name) > 256 || len(in.Description) > 4096 || len(in.Version) > 64 || len(in.Priority) > 64 || len(in.Context) > 1024 {
		return fieldErr("", "name (256), description (4096), version (64), priority (64) or context (1024) too long")
	}
	if in.Type != "Intent" {
		return fieldErr("@type", "%q: want \"Intent\"", in.Type)
	}
	if v := in.ValidFor; v != nil && v.StartDateTime != nil && v.EndDateTime != nil && !v.EndDateTime.After(*v.StartDateTime) {
		return fieldErr("validFor.endDateTime", "%s is not after startDateTime %s", v.EndDateTime.Format(time.RFC3339), v.StartDateTime.Format(time.RFC3339))
	}
	if s := in.IntentSpecification; s != nil && s.ID == "" {
		return fieldErr("intentSpecification.id", "required in a reference: the IntentSpecification's id")
	}
	return in.Expression.validate()
}

func (e *Expression) validate() error {
	switch e.Type {
	case "JsonLdExpression", "JsonExpression":
	case "":
		return fieldErr("expression.@type", "required: \"JsonLdExpression\" with the service expectation in expressionValue (docs/intents.md)")
	default:
		return fieldErr("expression.@type", "%q is not supported: send a JsonLdExpression whose expressionValue is the service expectation (docs/intents.md); Turtle and other expressions are not read", e.Type)
	}
	v := e.ExpressionValue
	if v == nil {
		return fieldErr("expression.expressionValue", "required: {\"service\": ..., \"partner\": ..., \"expectations\": [...]}")
	}
	const at = "expression.expressionValue"
	switch {
	case v.Service == "":
		return fieldErr(at+".service", "required: the service the intent is about, e.g. \"vpn-acme\"")
	case !serviceRE.MatchString(v.Service):
		return fieldErr(at+".service", "%q: letters, digits, - and _ (at most 128), as in the signals' subjects", v.Service)
	case v.Partner == "":
		return fieldErr(at+".partner", "required: the id of the peer operator asked to take the intent on, e.g. \"op-b\"")
	case !operatorRE.MatchString(v.Partner):
		return fieldErr(at+".partner", "%q is not an operator id (^[a-z][a-z0-9-]{0,31}$)", v.Partner)
	case len(v.Expectations) == 0:
		return fieldErr(at+".expectations", "required: at least one expectation, e.g. {\"id\": \"lat\", \"metric\": \"latency\", \"comparator\": \"<=\", \"value\": 20, \"unit\": \"ms\"}")
	case len(v.Expectations) > 32:
		return fieldErr(at+".expectations", "%d expectations: at most 32", len(v.Expectations))
	}
	seen := map[string]int{}
	for i := range v.Expectations {
		x := &v.Expectations[i]
		f := fmt.Sprintf("%s.expectations[%d]", at, i)
		if !idRE.MatchString(x.ID) {
			return fieldErr(f+".id", "%q: required, letters, digits, - and _ (at most 128)", x.ID)
		}
		if j, dup := seen[x.ID]; dup {
			return fieldErr(f+".id", "%q is also expectations[%d]: give each expectation its own id", x.ID, j)
		}
		seen[x.ID] = i
		m, ok := Metrics[x.Metric]
		if !ok {
			return fieldErr(f+".metric", "unknown expectation metric %q: want one of %s", x.Metric, strings.Join(MetricNames(), ", "))
		}
		if x.Unit == "" {
			x.Unit = m.unit
		}
		if x.Unit != m.unit {
			return fieldErr(f+".unit", "%q: %s is in %s", x.Unit, x.Metric, m.unit)
		}
		if x.Comparator == "" {
			x.Comparator = map[bool]string{true: "<=", false: ">="}[m.upper]
		}
		want := []string{">=", ">"}
		if m.upper {
			want = []string{"<=", "<"}
		}
		if !slices.Contains(want, x.Comparator) {
			return fieldErr(f+".comparator", "%q: a %s target bounds it from %s, so use %s", x.Comparator, x.Metric, map[bool]string{true: "above", false: "below"}[m.upper], strings.Join(want, " or "))
		}
		if math.IsNaN(x.Value) || x.Value < 0 {
			return fieldErr(f+".value", "%v: a %s target cannot be negative", x.Value, x.Metric)
		}
		if x.Value > m.max {
			return fieldErr(f+".value", "%v %s: at most %v", x.Value, m.unit, m.max)
		}
	}
	if len(v.TimeWindows) > 16 {
		return fieldErr(at+".timeWindows", "%d windows: at most 16", len(v.TimeWindows))
	}
	for i, w := range v.TimeWindows {
		f := fmt.Sprintf("%s.timeWindows[%d]", at, i)
		for j, d := range w.Days {
			if !slices.Contains(days, d) {
				return fieldErr(fmt.Sprintf("%s.days[%d]", f, j), "%q: want one of %s", d, strings.Join(days, ", "))
			}
		}
		if !clockRE.MatchString(w.Start) {
			return fieldErr(f+".start", "%q: want HH:MM, UTC (e.g. 08:00)", w.Start)
		}
		if !clockRE.MatchString(w.End) {
			return fieldErr(f+".end", "%q: want HH:MM, UTC (e.g. 18:00)", w.End)
		}
		if w.End <= w.Start {
			return fieldErr(f+".end", "%s is not after start %s: split a window that spans midnight in two", w.End, w.Start)
		}
	}
	return nil
}

// Patch is a JSON merge patch (RFC 7386) of an intent: the fields an
// owner may change after creation.
type Patch struct {
	Name                *string     `json:"name"`
	Description         *string     `json:"description"`
	Version             *string     `json:"version"`
	Priority            *string     `json:"priority"`
	Context             *string     `json:"context"`
	ValidFor            *TimePeriod `json:"validFor"`
	IntentSpecification *EntityRef  `json:"intentSpecification"`
	Expression          *Expression `json:"expression"`
	Type                *string     `json:"@type"`
}

// ParsePatch reads a PATCH body.
func ParsePatch(b []byte) (*Patch, error) {
	// Before decodeStrict, which would call id an unknown field.
	var raw map[string]json.RawMessage
	if json.Unmarshal(b, &raw) == nil {
		if _, ok := raw["id"]; ok {
			return nil, fieldErr("id", "an intent's id does not change: leave it out")
		}
	}
	var p Patch
	if err := decodeStrict(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Apply returns in with p applied, validated; whether the expression
// (what the partner took on) changed.
func (p *Patch) Apply(in Intent) (Intent, bool, error) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&in.Name, p.Name)
	set(&in.Description, p.Description)
	set(&in.Version, p.Version)
	set(&in.Priority, p.Priority)
	set(&in.Context, p.Context)
	set(&in.Type, p.Type)
	if p.IntentSpecification != nil {
		in.IntentSpecification = p.IntentSpecification
	}
	changed := false
	if p.ValidFor != nil {
		in.ValidFor, changed = p.ValidFor, true
	}
	if p.Expression != nil {
		if p.Expression.ExpressionValue != nil && in.Expression.ExpressionValue != nil && p.Expression.ExpressionValue.Partner != in.Expression.ExpressionValue.Partner {
			return in, false, fieldErr("expression.expressionValue.partner", "an intent's partner does not change: terminate it (DELETE) and make a new one for %s", p.Expression.ExpressionValue.Partner)
		}
		in.Expression, changed = *p.Expression, true
	}
	if err := in.Validate(); err != nil {
		return in, false, err
	}
	return in, changed, nil
}
