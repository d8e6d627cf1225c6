package config

import (
	"fmt"
	"slices"
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
}
