package config

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Intents turns on the TMF921 intent API on the node's HTTP server and
// says which intents this operator takes on when a peer proposes one
// (docs/intents.md). Off unless the section is present.
type Intents struct {
	// TokenFile holds the bearer token that callers of the intent API
	// present. Default: http.token_file. Relative to the policy file.
	TokenFile string `yaml:"token_file"`
	// Accept are the intents a peer may hand us: the first rule whose
	// from and services match a proposal decides it. A proposal no rule
	// matches is rejected.
	Accept []IntentAccept `yaml:"accept"`
	// RiskMarginPercent: a measured value that still meets its target
	// but lies within this percent of it raises an sla-risk naming the
	// intent (default 10; negative: never).
	RiskMarginPercent *float64 `yaml:"risk_margin_percent"`
	// ReportInterval is how often we report the intents we handle to
	// their owners when nothing changed (default 5m).
	ReportInterval Duration `yaml:"report_interval"`
	// Propose are the proposals (coordination, docs/coordination.md)
	// an intent we handle opens when it is at risk: the first rule whose
	// services match the intent's service and whose on lists what
	// happened opens one.
	Propose []IntentPropose `yaml:"propose"`
}

// IntentPropose is one rule of intents.propose.
type IntentPropose struct {
	// On are what opens a proposal: sla-risk (a risk raised), degraded,
	// notCompliant (the intent's compliance became that).
	On []string `yaml:"on"`
	// Services are path.Match globs on the intent's service; empty: any.
	Services []string `yaml:"services"`
	// Action is the proposal's kind (reroute, rate-limit, ...).
	Action string `yaml:"action"`
	// Duration is the lease the proposal asks (default 15m).
	Duration Duration `yaml:"duration"`
}

// Triggers of intents.propose[].on.
var IntentTriggers = []string{"sla-risk", "degraded", "notCompliant"}

// Defaults of the intents section.
const (
	DefaultRiskMarginPercent = 10.0
	DefaultReportInterval    = Duration(5 * time.Minute)
	DefaultProposeDuration   = Duration(15 * time.Minute)
)

// RiskMargin is RiskMarginPercent or its default, as a fraction.
func (in *Intents) RiskMargin() float64 {
	if in.RiskMarginPercent == nil {
		return DefaultRiskMarginPercent / 100
	}
	return *in.RiskMarginPercent / 100
}

// Every is ReportInterval or its default.
func (in *Intents) Every() time.Duration {
	if in.ReportInterval == 0 {
		return time.Duration(DefaultReportInterval)
	}
	return time.Duration(in.ReportInterval)
}

// IntentAccept is one rule for the intents peers propose to us.
type IntentAccept struct {
	// From are the peers the rule is for; empty: every peer.
	From []string `yaml:"from"`
	// Services are path.Match globs on the intent's service.
	Services []string `yaml:"services"`
	// Bounds are the tightest targets we take on; unset: any.
	Bounds IntentBounds `yaml:"bounds"`
}

// IntentBounds are the tightest expectation targets an operator takes on:
// a proposal asking for less latency, jitter or loss, or for more
// availability or throughput, than these is rejected naming the bound.
type IntentBounds struct {
	MinLatencyMs           *float64 `yaml:"min_latency_ms"`
	MinJitterMs            *float64 `yaml:"min_jitter_ms"`
	MinLossPercent         *float64 `yaml:"min_loss_percent"`
	MaxAvailabilityPercent *float64 `yaml:"max_availability_percent"`
	MaxThroughputMbps      *float64 `yaml:"max_throughput_mbps"`
}

// intents checks the intents section.
func (c *checker) intents(cfg *Config) {
	in := cfg.Intents
	if in == nil {
		return
	}
	if cfg.HTTP.Listen == "" {
		c.add("intents", "set http.listen (the intent API is served by the node's HTTP server), or remove intents", "needs the HTTP server, but http.listen is empty")
	}
	if in.TokenFile != "" {
		if _, err := ReadToken(relPath(cfg, in.TokenFile)); err != nil {
			c.add("intents.token_file", tokenHint, "%v", err)
		}
	} else if cfg.HTTP.TokenFile == "" {
		c.add("intents.token_file", tokenHint+"; or set http.token_file, which the intent API then uses", "required: the intent API takes a bearer token")
	}
	peers := make([]string, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		peers = append(peers, p.ID)
	}
	for i, r := range in.Accept {
		base := fmt.Sprintf("intents.accept[%d]", i)
		for j, f := range r.From {
			if !slices.Contains(peers, f) {
				c.add(fmt.Sprintf("%s.from[%d]", base, j), suggest(f, peers, "peers"), "unknown peer %q", f)
			}
		}
		if len(r.Services) == 0 {
			c.add(base+".services", `the services this rule takes intents for, e.g. ["vpn-*"]`, "required")
		}
		c.services(base+".services", r.Services)
		b := r.Bounds
		nonNeg := func(name string, v *float64, max float64) {
			if v != nil && (*v < 0 || *v > max) {
				c.add(base+".bounds."+name, fmt.Sprintf("a number from 0 to %v", max), "out of range: %v", *v)
			}
		}
		const unbounded = 1e12
		nonNeg("min_latency_ms", b.MinLatencyMs, unbounded)
		nonNeg("min_jitter_ms", b.MinJitterMs, unbounded)
		nonNeg("min_loss_percent", b.MinLossPercent, 100)
		nonNeg("max_availability_percent", b.MaxAvailabilityPercent, 100)
		nonNeg("max_throughput_mbps", b.MaxThroughputMbps, unbounded)
	}
	if m := in.RiskMarginPercent; m != nil && *m > 100 {
		c.add("intents.risk_margin_percent", "a percent of the target, e.g. 10; a negative value turns sla-risk off", "out of range: %v", *m)
	}
	if in.ReportInterval < 0 || (in.ReportInterval > 0 && in.ReportInterval < Duration(time.Second)) {
		c.add("intents.report_interval", "a duration of at least 1s, such as 5m; 0 means the default, 5m", "%s is too short", time.Duration(in.ReportInterval))
	}
	exportsAction := slices.ContainsFunc(cfg.Peers, func(p Peer) bool {
		return slices.Contains(p.Export.Classes, "action") || slices.Contains(p.Export.Classes, "*")
	})
	if len(in.Propose) > 0 && !exportsAction {
		c.warn("intents.propose", "put action in export.classes (and import.classes) of the peers whose intents you handle; see docs/intents.md", "no peer's export policy passes action: the proposals reach no intent's owner")
	}
	for i, r := range in.Propose {
		base := fmt.Sprintf("intents.propose[%d]", i)
		if len(r.On) == 0 {
			c.add(base+".on", `what opens a proposal: some of `+strings.Join(IntentTriggers, ", "), "required")
		}
		for j, on := range r.On {
			if !slices.Contains(IntentTriggers, on) {
				c.add(fmt.Sprintf("%s.on[%d]", base, j), suggest(on, IntentTriggers, "triggers"), "unknown trigger %q", on)
			}
		}
		c.services(base+".services", r.Services)
		switch {
		case r.Action == "":
			c.add(base+".action", "the kind of action proposed, such as reroute or rate-limit", "required")
		case !kindRE.MatchString(r.Action):
			c.add(base+".action", "a lower-case action kind such as reroute, rate-limit, drain", "invalid kind %q", r.Action)
		}
		if r.Duration < 0 {
			c.add(base+".duration", "a duration such as 15m; 0 means the default, 15m", "must not be negative")
		}
	}
}
