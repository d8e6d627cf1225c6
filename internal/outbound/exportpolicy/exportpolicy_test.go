package exportpolicy_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/outbound/exportpolicy"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Operator op-a exports to peer op-b.
const (
	self = "op-a"
	peer = "op-b"
)

func event(origin string, path []string, subject string) *signal.Event {
	return &signal.Event{
		ID: "1", Source: "anfed://" + origin + "/assurance", Type: "net.anfed.fault.v1",
		Subject: subject, Origin: origin, State: signal.Raised, Path: path,
	}
}

func TestDecide(t *testing.T) {
	all := config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}
	tests := []struct {
		name    string
		export  config.ExportPolicy
		ev      *signal.Event
		class   string
		want    bool
		wantRul string
	}{
		// Loops.
		{"peer already on path", all, event(self, []string{self, peer}, "vpn/r"), "fault", false, "no-loop: op-b is already on the path"},
		{"peer on path of a transit signal", withTransit(all), event("op-c", []string{"op-c", peer}, "vpn/r"), "fault", false, "no-loop: op-b"},
		{"origin is the peer", withTransit(all), event(peer, nil, "vpn/r"), "fault", false, "no-loop: op-b"},
		{"origin is the peer, path without it", withTransit(all), event(peer, []string{"op-c"}, "vpn/r"), "fault", false, "no-loop: op-b"},
		{"loop wins over every other rule", config.ExportPolicy{}, event(peer, nil, "vpn/r"), "fault", false, "no-loop"},

		// Transit.
		{"own signal, transit off", all, event(self, nil, "vpn/r"), "fault", true, "export.classes and export.services allow it"},
		{"own signal with own path, transit off", all, event(self, []string{self}, "vpn/r"), "fault", true, "allow"},
		{"other origin, transit off", all, event("op-c", []string{"op-c"}, "vpn/r"), "fault", false, "export.transit is false"},
		{"other origin, transit on, learned from a peer", withTransit(all), event("op-c", []string{"op-c"}, "vpn/r"), "fault", false, "roles: learned from op-c (role peer), relayed only to customers, and op-b is a peer"},
		{"other origin, transit_from peer", withTransitFrom(all, "peer"), event("op-c", []string{"op-c"}, "vpn/r"), "fault", true, "export.transit relays it by export.transit_from [peer] (learned from op-c, a peer, and op-b is a peer)"},
		{"transit wins over classes", config.ExportPolicy{}, event("op-c", []string{"op-c"}, "vpn/r"), "fault", false, "export.transit is false"},

		// Classes.
		{"class listed", config.ExportPolicy{Classes: []string{"congestion", "fault"}, Services: []string{"*"}}, event(self, nil, "vpn/r"), "fault", true, "allow"},
		{"class not listed", config.ExportPolicy{Classes: []string{"congestion"}, Services: []string{"*"}}, event(self, nil, "vpn/r"), "fault", false, "export.classes does not list fault"},
		{"class star", config.ExportPolicy{Classes: []string{"congestion", "*"}, Services: []string{"*"}}, event(self, nil, "vpn/r"), "sla-risk", true, "allow"},
		{"no classes: default deny", config.ExportPolicy{Services: []string{"*"}}, event(self, nil, "vpn/r"), "fault", false, "export.classes does not list fault"},
		{"class is not a glob", config.ExportPolicy{Classes: []string{"fa*"}, Services: []string{"*"}}, event(self, nil, "vpn/r"), "fault", false, "export.classes"},
		{"class match is exact", config.ExportPolicy{Classes: []string{"Fault"}, Services: []string{"*"}}, event(self, nil, "vpn/r"), "fault", false, "export.classes"},
		{"classes wins over services", config.ExportPolicy{Classes: []string{"congestion"}}, event(self, nil, "vpn/r"), "fault", false, "export.classes"},

		// Services.
		{"service exact", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-acme"}}, event(self, nil, "vpn-acme/r"), "fault", true, "allow"},
		{"service glob prefix", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-*"}}, event(self, nil, "vpn-acme/r"), "fault", true, "allow"},
		{"service glob ?", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-?"}}, event(self, nil, "vpn-1/r"), "fault", true, "allow"},
		{"service glob class", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-[0-9]"}}, event(self, nil, "vpn-7/r"), "fault", true, "allow"},
		{"second pattern matches", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"slice-*", "vpn-*"}}, event(self, nil, "vpn-acme/r"), "fault", true, "allow"},
		{"service glob no match", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"slice-*"}}, event(self, nil, "vpn-acme/r"), "fault", false, "export.services matches no pattern for vpn-acme"},
		{"glob matches the service, not the resource", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-acme/*"}}, event(self, nil, "vpn-acme/r"), "fault", false, "export.services"},
		{"malformed glob matches nothing", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-["}}, event(self, nil, "vpn-[/r"), "fault", false, "export.services"},
		{"no services: default deny", config.ExportPolicy{Classes: []string{"*"}}, event(self, nil, "vpn/r"), "fault", false, "export.services matches no pattern for vpn"},
		{"service with dots and spaces", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn *.x"}}, event(self, nil, "vpn acme.x/r"), "fault", true, "allow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exportpolicy.New(self, &config.Peer{ID: peer, Export: tt.export})
			d := p.Decide(tt.ev, tt.class)
			assert.Equal(t, tt.want, d.Export, d.Rule)
			assert.Contains(t, d.Rule, tt.wantRul)
		})
	}
}

func withTransit(p config.ExportPolicy) config.ExportPolicy {
	p.Transit = true
	return p
}

func withTransitFrom(p config.ExportPolicy, from ...string) config.ExportPolicy {
	p.Transit, p.TransitFrom = true, from
	return p
}

// TestRoles: the valley-free default of RFC 9234 and its explicit
// override. op-a has a customer op-cu, a provider op-pr and a peer op-pe;
// each relayed signal was learned from the last operator on its path.
func TestRoles(t *testing.T) {
	roles := map[string]string{"op-cu": config.RoleCustomer, "op-pr": config.RoleProvider, "op-pe": config.RolePeer,
		"op-cu2": config.RoleCustomer, "op-pe2": config.RolePeer}
	all := config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}, Transit: true}
	from := func(learned string) *signal.Event { return event("op-x", []string{"op-x", learned}, "vpn/r") }
	tests := []struct {
		name string
		to   string // the peer we export to
		exp  config.ExportPolicy
		ev   *signal.Event
		want bool
		rule string
	}{
		{"customer's signal to a peer", "op-pe", all, from("op-cu"), true, "learned from op-cu, a customer, and op-pe is a peer"},
		{"customer's signal to a provider", "op-pr", all, from("op-cu"), true, "allow"},
		{"customer's signal to another customer", "op-cu2", all, from("op-cu"), true, "allow"},
		{"peer's signal to a customer", "op-cu", all, from("op-pe"), true, "learned from op-pe, a peer, and op-cu is a customer"},
		{"provider's signal to a customer", "op-cu", all, from("op-pr"), true, "allow"},
		{"peer's signal to another peer", "op-pe2", all, from("op-pe"), false, "roles: learned from op-pe (role peer), relayed only to customers, and op-pe2 is a peer"},
		{"peer's signal to a provider", "op-pr", all, from("op-pe"), false, "relayed only to customers"},
		{"provider's signal to a peer", "op-pe", all, from("op-pr"), false, "learned from op-pr (role provider)"},
		{"provider's signal to another provider", "op-pr", all, from("op-pr"), false, "no-loop"},
		{"unknown neighbour counts as a peer", "op-pe", all, from("op-zz"), false, "learned from op-zz (role peer)"},
		{"explicit: peers' signals to a peer", "op-pe2", withTransitFrom(all, "peer"), from("op-pe"), true, "allow"},
		{"explicit: providers' not listed", "op-pe2", withTransitFrom(all, "peer"), from("op-pr"), false, "export.transit_from [peer] does not list op-pr, from which we learned it (its role: provider)"},
		{"explicit: customers not listed", "op-pe2", withTransitFrom(all, "peer"), from("op-cu"), false, "does not list op-cu"},
		{"explicit by id", "op-pe2", withTransitFrom(all, "op-pr"), from("op-pr"), true, "allow"},
		{"explicit by id, another", "op-pe2", withTransitFrom(all, "op-pr"), from("op-pe"), false, "export.transit_from [op-pr]"},
		{"transit off wins", "op-cu", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, from("op-cu2"), false, "export.transit is false"},
		{"own signals are not affected", "op-pe", all, event(self, nil, "vpn/r"), true, "export.classes and export.services allow it"},
		{"classes still apply to relayed signals", "op-cu", withTransitFrom(config.ExportPolicy{Services: []string{"*"}}, "peer"), from("op-pe"), false, "export.classes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exportpolicy.New(self, &config.Peer{ID: tt.to, Role: roles[tt.to], Export: tt.exp}, exportpolicy.WithRoles(roles))
			d := p.Decide(tt.ev, "fault")
			assert.Equal(t, tt.want, d.Export, d.Rule)
			assert.Contains(t, d.Rule, tt.rule)
		})
	}
	// ForConfig reads the roles from the config.
	cfg := &config.Config{Operator: config.Operator{ID: self}, Peers: []config.Peer{
		{ID: "op-cu", Role: config.RoleCustomer, Export: all},
		{ID: "op-pe", Export: all},
		{ID: "op-pe2", Export: all},
	}}
	assert.True(t, exportpolicy.ForConfig(cfg, &cfg.Peers[1]).Decide(from("op-cu"), "fault").Export)
	assert.False(t, exportpolicy.ForConfig(cfg, &cfg.Peers[2]).Decide(from("op-pe"), "fault").Export)
	assert.True(t, exportpolicy.ForConfig(cfg, &cfg.Peers[0]).Decide(from("op-pe"), "fault").Export)
}

// Policies towards two peers never share state.
func TestDecidePerPeer(t *testing.T) {
	exp := config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}, Transit: true, TransitFrom: []string{"peer"}}
	toB := exportpolicy.New(self, &config.Peer{ID: "op-b", Export: exp})
	toC := exportpolicy.New(self, &config.Peer{ID: "op-c", Export: exp})
	ev := event("op-c", []string{"op-c"}, "vpn/r")
	assert.True(t, toB.Decide(ev, "fault").Export)
	assert.False(t, toC.Decide(ev, "fault").Export)
}

// TestMayExportAgreesWithDecide: MayExport, which sees only the subject,
// never says no where Decide says yes (a paced sender would otherwise
// hand over a signal without its turn).
func TestMayExportAgreesWithDecide(t *testing.T) {
	policies := []config.ExportPolicy{
		{Classes: []string{"*"}, Services: []string{"*"}},
		{Classes: []string{"fault"}, Services: []string{"vpn-*"}, Transit: true},
		{Classes: []string{"congestion"}, Services: []string{"*"}},
		{},
	}
	for _, x := range policies {
		p := exportpolicy.New(self, &config.Peer{ID: peer, Export: x})
		for _, origin := range []string{self, peer, "op-c"} {
			for _, path := range [][]string{nil, {"op-c"}, {"op-c", peer}} {
				for _, subj := range []string{"vpn-acme/r1", "other/r1"} {
					ev := event(origin, path, subj)
					k := subject.Key{Origin: origin, Class: "fault", Service: ev.Service(), Resource: ev.Resource()}
					d, may := p.Decide(ev, "fault"), p.MayExport(k)
					if d.Export {
						assert.True(t, may, "%+v %s %v %s", x, origin, path, subj)
					}
				}
			}
		}
	}
}

func TestRedact(t *testing.T) {
	p := exportpolicy.New(self, &config.Peer{ID: peer, Export: config.ExportPolicy{
		Redact: []string{"/data/customer/name", "/data/list/1", "/data/a~1b", "/data/missing/x"},
	}})
	ev := event(self, nil, "vpn-acme/r1")
	ev.Data = []byte(`{"customer":{"name":"ACME <corp>","id":7},"list":[1,2,3],"a/b":true,"big":12345678901234567890,"keep":"x"}`)
	removed, err := p.Redact(ev)
	assert.NoError(t, err)
	assert.Equal(t, []string{"/data/customer/name", "/data/list/1", "/data/a~1b"}, removed)
	assert.JSONEq(t, `{"customer":{"id":7},"list":[1,3],"big":12345678901234567890,"keep":"x"}`, string(ev.Data))
	assert.Contains(t, string(ev.Data), "12345678901234567890") // numbers keep their digits

	ev = event(self, nil, "vpn-acme/r1")
	ev.Data = []byte(`{"keep":"x"}`)
	removed, err = p.Redact(ev)
	assert.NoError(t, err)
	assert.Empty(t, removed)
	assert.Equal(t, `{"keep":"x"}`, string(ev.Data))

	ev = event("op-c", []string{"op-c"}, "vpn-acme/r1")
	ev.Data = []byte(`{"customer":{"name":"n"}}`)
	_, err = p.Redact(ev)
	assert.ErrorContains(t, err, "only op-c can redact it")
}

func TestMinSeverity(t *testing.T) {
	pol := exportpolicy.New(self, &config.Peer{ID: peer, Export: config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}, MinSeverity: 13}})
	for _, tc := range []struct {
		state signal.State
		sev   int
		want  bool
	}{
		{signal.Raised, 17, true}, {signal.Raised, 13, true}, {signal.Raised, 9, false}, {signal.Raised, 0, false},
		{signal.Updated, 13, true}, {signal.Updated, 12, false},
		{signal.Cleared, 9, true}, {signal.Cleared, 0, true}, // a clear always passes
	} {
		ev := event(self, nil, "vpn/r")
		ev.State, ev.SeverityNumber = tc.state, tc.sev
		d := pol.Decide(ev, "fault")
		assert.Equal(t, tc.want, d.Export, "%s severity %d: %s", tc.state, tc.sev, d.Rule)
		if !tc.want {
			assert.Contains(t, d.Rule, "export.min_severity is 13")
		}
	}
}

// TestMayExportNeverRefusesWhatDecideExports draws random policies and
// signals: whenever MayExport (the subject-only fast path) says no, Decide
// says no too.
func TestMayExportNeverRefusesWhatDecideExports(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	ops := []string{self, peer, "op-c", "op-d"}
	pick := func(pool []string) []string {
		var out []string
		for _, s := range pool {
			if rng.IntN(2) == 0 {
				out = append(out, s)
			}
		}
		return out
	}
	roleNames := append([]string{""}, config.Roles...)
	exported := 0
	for i := range 20000 {
		x := config.ExportPolicy{
			Classes:     pick([]string{"*", "fault", "congestion"}),
			Services:    pick([]string{"*", "vpn-*", "core", "c?re"}),
			Transit:     rng.IntN(2) == 0,
			MinSeverity: []int{0, 0, 9, 17}[rng.IntN(4)],
			Tags:        config.ExportTags{Match: pick([]string{"gold", "silver"})},
			Filter:      []string{"", "", "severitynumber >= 9", "anfedtags LIKE '%gold%'", "correlationid = 'x'"}[rng.IntN(5)],
		}
		if x.Transit && rng.IntN(2) == 0 {
			x.TransitFrom = pick(append(slices.Clone(config.Roles), "op-c", "op-d"))
		}
		roles := map[string]string{}
		for _, o := range ops[1:] {
			roles[o] = roleNames[rng.IntN(len(roleNames))]
		}
		p := exportpolicy.New(self, &config.Peer{ID: peer, Role: roles[peer], Export: x}, exportpolicy.WithRoles(roles))
		origin := ops[rng.IntN(len(ops))]
		var path []string
		if origin != self {
			path = []string{origin}
			for _, o := range ops[1:] {
				if o != origin && rng.IntN(3) == 0 {
					path = append(path, o)
				}
			}
		}
		svc := []string{"vpn-acme", "core", "other"}[rng.IntN(3)]
		class := []string{"fault", "congestion"}[rng.IntN(2)]
		ev := event(origin, path, svc+"/r")
		ev.State = []signal.State{signal.Raised, signal.Updated, signal.Cleared}[rng.IntN(3)]
		ev.SeverityNumber = rng.IntN(25)
		ev.Tags = pick([]string{"gold", "silver", signal.TagNoExport, signal.TagNoAdvertise, "x"})
		k := subject.Key{Origin: origin, Class: class, Service: svc, Resource: "r"}
		d := p.Decide(ev, class)
		if d.Export {
			exported++
		}
		if !p.MayExport(k) && d.Export {
			t.Fatalf("draw %d: MayExport refuses what Decide exports (%s)\npolicy %+v roles %v\nevent %+v", i, d.Rule, x, roles, ev)
		}
	}
	assert.Greater(t, exported, 500, "the draws export something")
}

// TestTags: the well-known tags and export.tags.match decide; remove and
// add change the peer's copy.
func TestTags(t *testing.T) {
	all := config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}, Transit: true, TransitFrom: config.Roles}
	match := all
	match.Tags.Match = []string{"op-a:gold", "op-a:silver"}
	tagged := func(origin string, st signal.State, tags ...string) *signal.Event {
		var path []string
		if origin != self {
			path = []string{origin}
		}
		ev := event(origin, path, "vpn/r")
		ev.State, ev.Tags = st, tags
		return ev
	}
	tests := []struct {
		name string
		exp  config.ExportPolicy
		ev   *signal.Event
		want bool
		rule string
	}{
		{"no-advertise on our own signal", all, tagged(self, signal.Raised, "x", "no-advertise"), false, "tag no-advertise: the signal stays with the operator that holds it"},
		{"no-advertise on a relayed signal", all, tagged("op-c", signal.Raised, "no-advertise"), false, "tag no-advertise"},
		{"no-advertise on a clear", all, tagged(self, signal.Cleared, "no-advertise"), false, "tag no-advertise"},
		{"no-export on our own signal: our direct peers get it", all, tagged(self, signal.Raised, "no-export"), true, "allow"},
		{"no-export on a relayed signal", all, tagged("op-c", signal.Raised, "no-export"), false, "tag no-export: the operator that sent it to us asked that it go no further"},
		{"no-export on a relayed clear", all, tagged("op-c", signal.Cleared, "no-export"), false, "tag no-export"},
		{"loop before tags", all, tagged(peer, signal.Raised, "no-advertise"), false, "no-loop"},
		{"transit off before no-export", config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}}, tagged("op-c", signal.Raised, "no-export"), false, "export.transit is false"},
		{"match: one of them", match, tagged(self, signal.Raised, "x", "op-a:silver"), true, "allow"},
		{"match: none of them", match, tagged(self, signal.Raised, "op-a:bronze"), false, "export.tags.match [op-a:gold op-a:silver]: the signal carries none of them (its tags: [op-a:bronze])"},
		{"match: no tags", match, tagged(self, signal.Updated), false, "export.tags.match"},
		{"match: a clear always passes", match, tagged(self, signal.Cleared), true, "allow"},
		{"match is exact", match, tagged(self, signal.Raised, "op-a:gold2"), false, "export.tags.match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := exportpolicy.New(self, &config.Peer{ID: peer, Export: tt.exp})
			d := p.Decide(tt.ev, "fault")
			assert.Equal(t, tt.want, d.Export, d.Rule)
			assert.Contains(t, d.Rule, tt.rule)
		})
	}

	x := all
	x.Tags.Remove, x.Tags.Add = []string{"op-a:internal", "no-export"}, []string{"no-export", "op-a:to-b"}
	p := exportpolicy.New(self, &config.Peer{ID: peer, Export: x})
	assert.True(t, p.Retags())
	assert.False(t, exportpolicy.New(self, &config.Peer{ID: peer, Export: all}).Retags())
	ev := tagged(self, signal.Raised, "op-a:internal", "keep", "no-export")
	stored := ev.Tags
	require.NoError(t, p.Retag(ev))
	assert.Equal(t, []string{"keep", "no-export", "op-a:to-b"}, ev.Tags)
	assert.Equal(t, []string{"op-a:internal", "keep", "no-export"}, stored, "the stored signal's tags are not changed")
	full := tagged(self, signal.Raised)
	for i := range signal.MaxTags - 1 {
		full.Tags = append(full.Tags, fmt.Sprintf("t%d", i))
	}
	assert.ErrorContains(t, p.Retag(full), "export.tags.add towards op-b: the signal would carry 33 tags, more than 32")
	assert.Len(t, full.Tags, signal.MaxTags-1, "a failed retag leaves the tags")
}

// TestFilter: export.filter, a CESQL condition, decides after the other
// rules; an evaluation error fails closed; a clear always passes; a
// filter that does not compile exports nothing.
func TestFilter(t *testing.T) {
	withFilter := func(src string) config.ExportPolicy {
		return config.ExportPolicy{Classes: []string{"*"}, Services: []string{"*"}, Filter: src}
	}
	ev := func(st signal.State, sev int) *signal.Event {
		e := event(self, nil, "vpn-acme/r")
		e.State, e.SeverityNumber, e.Tags = st, sev, []string{"op-a:gold"}
		return e
	}
	for _, tc := range []struct {
		name, src string
		ev        *signal.Event
		want      bool
		rule      string
	}{
		{"true", "severitynumber >= 17 AND subject LIKE 'vpn-%'", ev(signal.Raised, 17), true, "allow"},
		{"false", "severitynumber >= 17", ev(signal.Raised, 13), false, `export.filter "severitynumber >= 17" is false`},
		{"tags visible", "anfedtags LIKE '%op-a:gold%'", ev(signal.Raised, 1), true, "allow"},
		{"missing attribute fails closed", "correlationid = 'x' OR TRUE", ev(signal.Updated, 1), false, "could not be evaluated (missing attribute error: correlationid): not exported"},
		{"a clear passes", "severitynumber >= 17", ev(signal.Cleared, 9), true, "allow"},
		{"a clear passes an error too", "correlationid = 'x'", ev(signal.Cleared, 9), true, "allow"},
		{"classes before the filter", "TRUE", event(self, nil, "other/r"), true, "allow"},
		{"does not compile: nothing exported", "subject = 'a' garbage", ev(signal.Raised, 17), false, "export.filter does not compile (syntax error at column 15"},
		{"does not compile: clears neither", "NOSUCH(subject)", ev(signal.Cleared, 17), false, "does not compile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := exportpolicy.New(self, &config.Peer{ID: peer, Export: withFilter(tc.src)}).Decide(tc.ev, "fault")
			assert.Equal(t, tc.want, d.Export, d.Rule)
			assert.Contains(t, d.Rule, tc.rule)
		})
	}
}

// BenchmarkDecide: what a peering pays per signal for its rules; a filter
// costs only where it is set.
func BenchmarkDecide(b *testing.B) {
	base := config.ExportPolicy{Classes: []string{"*"}, Services: []string{"vpn-*"}}
	tagged := base
	tagged.Tags.Match = []string{"op-a:gold"}
	filtered := base
	filtered.Filter = "severitynumber >= 13 AND subject LIKE 'vpn-%'"
	ev := event(self, nil, "vpn-acme/r1")
	ev.SeverityNumber, ev.Tags = 17, []string{"op-a:gold"}
	for _, tc := range []struct {
		name string
		x    config.ExportPolicy
	}{{"plain", base}, {"tags.match", tagged}, {"filter", filtered}} {
		p := exportpolicy.New(self, &config.Peer{ID: peer, Export: tc.x})
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !p.Decide(ev, "fault").Export {
					b.Fatal("not exported")
				}
			}
		})
	}
}
