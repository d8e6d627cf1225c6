package exportpolicy

import (
	"slices"
	"strings"

	"github.com/anfed/anfed/internal/subject"
)

// maxFilters bounds how many subjects Subjects returns: past it, the
// services (then the classes) are widened to a wildcard, and Decide alone
// narrows them.
const maxFilters = 64

// nothing is a signal subject no stored signal has: origin tokens are
// lowercase letters, digits and '-'.
const nothing = subject.SignalPrefix + "._.>"

// Subjects is the subject-level view of the policy as NATS subject filters
// of stored signals (an.sig.<origin>.<class>.<service>.<resource>): every
// signal MayExport allows matches one of them, and no two of them overlap
// (JetStream refuses overlapping consumer filters). They are a superset:
// what the subject cannot tell (the path, the severity, a service glob
// NATS cannot express) Decide still checks. A policy that exports nothing
// gets one subject no signal has, never none (no filter is everything).
func (p *Policy) Subjects() []string {
	origin := "*" // transit: any origin but the peer, which Decide refuses
	if !p.transit {
		origin = p.self
	}
	classes := tokens(p.classes, classToken)
	services := tokens(p.services, serviceToken)
	if len(classes) == 0 || len(services) == 0 {
		return []string{nothing}
	}
	if len(classes)*len(services) > maxFilters {
		services = []string{"*"}
	}
	if len(classes) > maxFilters {
		classes = []string{"*"}
	}
	out := make([]string, 0, len(classes)*len(services))
	for _, c := range classes {
		for _, s := range services {
			out = append(out, subject.SignalPrefix+"."+origin+"."+c+"."+s+".>")
		}
	}
	return out
}

// tokens maps each entry to a subject token: a literal, or "*" when it
// stands for any (wild). Any wild entry makes the whole list "*";
// literals are deduplicated, so no two tokens overlap.
func tokens(list []string, tok func(string) (string, bool)) []string {
	var out []string
	for _, x := range list {
		t, wild := tok(x)
		if wild {
			return []string{"*"}
		}
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// classToken: a class is its own token; one that is no plain token
// (config refuses those) names no stored signal's class.
func classToken(c string) (string, bool) {
	if c == "*" {
		return "*", true
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
			return "", false
		}
	}
	return c, false
}

// serviceToken maps an export.services pattern (path.Match) to the
// service's subject token: a pattern without metacharacters is the
// service itself; any other (a glob, or a malformed pattern, which
// matches nothing) is "*", left to Decide.
func serviceToken(pattern string) (string, bool) {
	if strings.ContainsAny(pattern, `*?[\`) {
		return "*", true
	}
	if pattern == "" || strings.Contains(pattern, "/") {
		return "", false // path.Match never matches a service with it
	}
	return subject.Token(pattern), false
}

// TelemetrySubjects are Subjects for checked telemetry
// (an.telsig.<origin>.<class>.<service>.<resource>, delivery: stream):
// the same filters under subject.TelemetryPrefix.
func (p *Policy) TelemetrySubjects() []string {
	out := p.Subjects()
	for i, s := range out {
		out[i] = subject.TelemetryPrefix + strings.TrimPrefix(s, subject.SignalPrefix)
	}
	return out
}
