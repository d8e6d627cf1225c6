package config

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Coordination is this operator's say over actions that others propose
// on resources it is affected by: rules that accept, ask a human, or
// deny, checked deny first, then require_human, then auto_accept; a
// proposal no rule matches gets Default.
type Coordination struct {
	// LeaseMax bounds every lease we grant (default 1h): a longer
	// proposal is countered with it.
	LeaseMax Duration `yaml:"lease_max"`
	// HoldDown refuses a proposal that reverses an action (its
	// `reverses`) until this long after that action ended (default 5m):
	// action dampening.
	HoldDown Duration `yaml:"hold_down"`
	// Deny, RequireHuman and AutoAccept are the rules, by outcome.
	Deny         []CoordinationRule `yaml:"deny"`
	RequireHuman []CoordinationRule `yaml:"require_human"`
	AutoAccept   []CoordinationRule `yaml:"auto_accept"`
	// Default is the outcome when no rule matches: "human" (the
	// default) or "decline".
	Default string `yaml:"default"`
}

// Outcomes of Coordination.Default.
const (
	CoordinationHuman   = "human"
	CoordinationDecline = "decline"
)

// Coordination's defaults.
const (
	DefaultLeaseMax = Duration(time.Hour)
	DefaultHoldDown = Duration(5 * time.Minute)
)

// CoordinationRule matches a proposal; every list that is set must
// match (an empty list matches anything).
type CoordinationRule struct {
	// From are the proposing operators.
	From []string `yaml:"from"`
	// Kinds are action kinds (reroute, rate-limit, ...).
	Kinds []string `yaml:"kinds"`
	// Services are path.Match globs; every service the proposal
	// touches must match one.
	Services []string `yaml:"services"`
	// Classes are the classes of the signals that caused the proposal
	// (its causes' class); one must match.
	Classes []string `yaml:"classes"`
	// Hours is a UTC window "HH:MM-HH:MM" (it may wrap midnight) in
	// which the rule applies.
	Hours string `yaml:"hours"`
	// MaxDuration (auto_accept only): a longer proposal is countered
	// with this duration instead of accepted.
	MaxDuration Duration `yaml:"max_duration"`
}

var (
	kindRE  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	hoursRE = regexp.MustCompile(`^([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$`)
)

// ParseHours parses "HH:MM-HH:MM" into minutes of the day [from, to);
// 24:00 is the end of the day.
func ParseHours(s string) (from, to int, err error) {
	m := hoursRE.FindStringSubmatch(s)
	if m == nil {
		return 0, 0, fmt.Errorf("%q is not HH:MM-HH:MM", s)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	from, to = n(1)*60+n(2), n(3)*60+n(4)
	if from > 24*60 || to > 24*60 {
		return 0, 0, fmt.Errorf("%q: past 24:00", s)
	}
	if from == to {
		return 0, 0, fmt.Errorf("%q is an empty window", s)
	}
	return from, to, nil
}

// WithDefaults returns c with its zero values set to the defaults.
func (c Coordination) WithDefaults() Coordination {
	if c.LeaseMax == 0 {
		c.LeaseMax = DefaultLeaseMax
	}
	if c.HoldDown == 0 {
		c.HoldDown = DefaultHoldDown
	}
	if c.Default == "" {
		c.Default = CoordinationHuman
	}
	return c
}

const coordHint = "see docs/coordination.md#policy"

func (c *checker) coordination(cfg *Config) {
	co := cfg.Coordination
	if co == nil {
		return
	}
	if co.LeaseMax < 0 {
		c.add("coordination.lease_max", "a duration such as 30m or 1h", "must be positive")
	}
	if co.HoldDown < 0 {
		c.add("coordination.hold_down", "a duration such as 5m; 0 means the default, 5m", "must not be negative")
	}
	if co.Default != "" && co.Default != CoordinationHuman && co.Default != CoordinationDecline {
		c.add("coordination.default", `"human" (wait for a person or a closed loop) or "decline"`, "unknown outcome %q", co.Default)
	}
	peers := make([]string, 0, len(cfg.Peers))
	for _, p := range cfg.Peers {
		peers = append(peers, p.ID)
	}
	leaseMax := co.WithDefaults().LeaseMax
	for _, l := range []struct {
		list  string
		rules []CoordinationRule
	}{{"deny", co.Deny}, {"require_human", co.RequireHuman}, {"auto_accept", co.AutoAccept}} {
		list := l.list
		for i, r := range l.rules {
			base := fmt.Sprintf("coordination.%s[%d]", list, i)
			for j, id := range r.From {
				if !ValidID(id) {
					c.add(fmt.Sprintf("%s.from[%d]", base, j), "an operator id: ^[a-z][a-z0-9-]{0,31}$", "invalid operator id %q", id)
				} else if !slices.Contains(peers, id) && !slices.ContainsFunc(cfg.Origins, func(o Origin) bool { return o.ID == id }) {
					c.warn(fmt.Sprintf("%s.from[%d]", base, j), suggest(id, peers, "peers"), "%q is neither a peer nor a pinned origin: its proposals never reach us", id)
				}
			}
			for j, k := range r.Kinds {
				if !kindRE.MatchString(k) {
					c.add(fmt.Sprintf("%s.kinds[%d]", base, j), "a lower-case action kind such as reroute, rate-limit, drain", "invalid kind %q", k)
				}
			}
			c.services(base+".services", r.Services)
			c.classes(base+".classes", r.Classes)
			if r.Hours != "" {
				if _, _, err := ParseHours(r.Hours); err != nil {
					c.add(base+".hours", `a UTC window such as "08:00-18:00" ("22:00-06:00" wraps midnight)`, "%v", err)
				}
			}
			switch {
			case r.MaxDuration < 0:
				c.add(base+".max_duration", coordHint, "must be positive")
			case r.MaxDuration != 0 && list != "auto_accept":
				c.add(base+".max_duration", "max_duration counters a longer proposal: it belongs in auto_accept rules", "only auto_accept rules take max_duration")
			case r.MaxDuration > leaseMax:
				c.warn(base+".max_duration", "lower it, or raise coordination.lease_max", "%s is over coordination.lease_max (%s), which bounds every lease", r.MaxDuration, leaseMax)
			}
			if len(r.From)+len(r.Kinds)+len(r.Services)+len(r.Classes) == 0 && r.Hours == "" && list == "auto_accept" {
				c.warn(base, "name at least the proposers (from) or the kinds it accepts", "matches every proposal: any peer's action on our resources is accepted")
			}
		}
	}
}
