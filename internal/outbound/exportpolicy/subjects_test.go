package exportpolicy_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/subject"
)

// match is NATS subject matching: * is one token, > the rest.
func match(filter, subj string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subj, ".")
	for i, t := range f {
		if t == ">" {
			return len(s) > i
		}
		if i >= len(s) || t != "*" && t != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// overlap reports whether some subject matches both filters.
func overlap(a, b string) bool {
	x, y := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] == ">" || y[i] == ">" {
			return true
		}
		if x[i] != "*" && y[i] != "*" && x[i] != y[i] {
			return false
		}
	}
	return len(x) == len(y)
}

// TestSubjectsCoverMayExport: every stored signal MayExport allows
// matches exactly one of the policy's filter subjects (JetStream refuses
// overlapping filters; a missed one would never reach the sender), and the
// filters say no where they can, so that a peer does not see what it never
// gets.
func TestSubjectsCoverMayExport(t *testing.T) {
	policies := []config.ExportPolicy{
		{Classes: []string{"*"}, Services: []string{"*"}},
		{Classes: []string{"*"}, Services: []string{"*"}, Transit: true},
		{Classes: []string{"fault"}, Services: []string{"vpn-*"}, Transit: true},
		{Classes: []string{"fault", "congestion"}, Services: []string{"vpn-acme", "slice 1.x", "vpn-acme"}},
		{Classes: []string{"congestion", "*"}, Services: []string{"a", "b?"}},
		{Classes: []string{"maintenance"}, Services: []string{"*"}},
		{Classes: []string{"fault"}, Services: []string{"vpn-acme/*", "x"}},
		{Classes: []string{"fault"}, Services: []string{`vpn\-acme`}},
		{Classes: []string{"fault"}},
		{Services: []string{"*"}},
		{},
	}
	origins := []string{self, peer, "op-c"}
	classes := []string{"fault", "congestion", "maintenance", "sla-risk"}
	services := []string{"vpn-acme", "slice 1.x", "a", "b1", "x", "other", "vpn-", "100%"}
	for _, x := range policies {
		p := exportpolicy.New(self, &config.Peer{ID: peer, Export: x})
		filters := p.Subjects()
		assert.NotEmpty(t, filters, "%+v: no filter would be every signal", x)
		for i, a := range filters {
			for _, b := range filters[i+1:] {
				assert.False(t, overlap(a, b), "%+v: %s and %s overlap", x, a, b)
			}
		}
		for _, o := range origins {
			for _, c := range classes {
				for _, s := range services {
					k := subject.Key{Origin: o, Class: c, Service: s, Resource: "r.1"}
					subj, err := subject.Signal(k)
					require.NoError(t, err)
					n := 0
					for _, f := range filters {
						if match(f, subj) {
							n++
						}
					}
					if p.MayExport(k) {
						assert.Equal(t, 1, n, "%+v: %s matches %d of %v", x, subj, n, filters)
					}
					if !x.Transit && o != self || o == peer && !x.Transit {
						assert.Zero(t, n, "%+v: %s is never exported but matches %v", x, subj, filters)
					}
				}
			}
		}
	}
}

// Literal classes and services are what the filters name; only globs are
// widened.
func TestSubjectsNarrow(t *testing.T) {
	p := exportpolicy.New(self, &config.Peer{ID: peer, Export: config.ExportPolicy{
		Classes: []string{"fault", "congestion"}, Services: []string{"vpn-acme", "a b"},
	}})
	assert.Equal(t, []string{
		"an.sig.op-a.fault.vpn-acme.>", "an.sig.op-a.fault.a%20b.>",
		"an.sig.op-a.congestion.vpn-acme.>", "an.sig.op-a.congestion.a%20b.>",
	}, p.Subjects())
	p = exportpolicy.New(self, &config.Peer{ID: peer, Export: config.ExportPolicy{
		Classes: []string{"maintenance"}, Services: []string{"*"}, Transit: true,
	}})
	assert.Equal(t, []string{"an.sig.*.maintenance.*.>"}, p.Subjects())
	// Too many pairs: the services widen, Decide narrows.
	var svcs []string
	for i := range 70 {
		svcs = append(svcs, fmt.Sprintf("s%d", i))
	}
	p = exportpolicy.New(self, &config.Peer{ID: peer, Export: config.ExportPolicy{Classes: []string{"fault"}, Services: svcs}})
	assert.Equal(t, []string{"an.sig.op-a.fault.*.>"}, p.Subjects())
}
