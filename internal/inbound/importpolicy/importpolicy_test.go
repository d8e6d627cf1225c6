package importpolicy_test

import (
	"fmt"

	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound/importpolicy"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// Operator op-a imports from peer op-b.
const (
	self = "op-a"
	peer = "op-b"
)

func event(origin string, path ...string) *signal.Event {
	return &signal.Event{
		ID: "1", Source: "anfed://" + origin + "/assurance", Type: "net.anfed.fault.v1",
		Subject: "vpn/r", Origin: origin, State: signal.Raised, Path: path,
	}
}

func TestCheck(t *testing.T) {
	all := config.ImportPolicy{Classes: []string{"*"}}
	transit := config.ImportPolicy{Classes: []string{"*"}, Transit: true}
	tests := []struct {
		name   string
		imp    config.ImportPolicy
		ev     *signal.Event
		class  string
		reason reject.Reason // "" means accepted
		text   string
	}{
		// Accepted.
		{"peer's own signal", all, event(peer, peer), "fault", "", ""},
		{"relayed signal, transit on", transit, event("op-c", "op-c", peer), "fault", "", ""},
		{"relayed over two hops, transit on", transit, event("op-d", "op-d", "op-c", peer), "fault", "", ""},
		{"class listed", config.ImportPolicy{Classes: []string{"congestion", "fault"}}, event(peer, peer), "fault", "", ""},

		// Loops.
		{"self on path", transit, event("op-c", "op-c", self, peer), "fault", reject.Loop, "op-a is already on the path"},
		{"self first on path", transit, event("op-c", self, peer), "fault", reject.Loop, "op-a is already on the path"},
		{"own signal comes back", transit, event(self, peer), "fault", reject.Loop, "op-a is already on the path"},
		{"loop wins over every other rule", config.ImportPolicy{}, event(self), "fault", reject.Loop, "op-a"},
		{"path with duplicates", transit, event("op-c", "op-c", "op-d", "op-c", peer), "fault", reject.Loop, "holds op-c twice"},
		{"path with the peer twice", transit, event("op-c", "op-c", peer, "op-d", peer), "fault", reject.Loop, "holds op-b twice"},

		// Path must end with the sender.
		{"empty path", all, event(peer), "fault", reject.BadAttribute, signal.AttrPath},
		{"path ends with another operator", transit, event("op-c", peer, "op-c"), "fault", reject.BadAttribute, "must end with the sending peer op-b"},
		{"path of one other operator", transit, event("op-c", "op-c"), "fault", reject.BadAttribute, "must end with the sending peer op-b"},
		{"peer's own signal with extra hops", transit, event(peer, "op-c", peer), "fault", reject.BadAttribute, "must have path [op-b]"},
		{"peer's own signal with itself twice", transit, event(peer, peer, peer), "fault", reject.BadAttribute, "must have path [op-b]"},

		// Origin.
		{"other origin, transit off", all, event("op-c", "op-c", peer), "fault", reject.WrongOrigin, "import.transit is false for op-b"},
		{"origin not first hop", transit, event("op-c", "op-d", peer), "fault", reject.WrongOrigin, "origin op-c is not the first hop"},
		{"origin not first hop, but on path", transit, event("op-c", "op-d", "op-c", peer), "fault", reject.WrongOrigin, "not the first hop"},
		{"origin check before duplicates", transit, event("op-c", "op-d", "op-d", peer), "fault", reject.WrongOrigin, "not the first hop"},

		// Classes.
		{"class not listed", config.ImportPolicy{Classes: []string{"congestion"}}, event(peer, peer), "fault", reject.NotImported, "import.classes for op-b does not list fault"},
		{"no classes: default deny", config.ImportPolicy{}, event(peer, peer), "fault", reject.NotImported, "does not list fault"},
		{"class is not a glob", config.ImportPolicy{Classes: []string{"fa*"}}, event(peer, peer), "fault", reject.NotImported, "fault"},
		{"class not listed, transit", config.ImportPolicy{Classes: []string{"congestion"}, Transit: true}, event("op-c", "op-c", peer), "fault", reject.NotImported, "fault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := importpolicy.New(self, &config.Peer{ID: peer, Import: tt.imp})
			err := p.Check(tt.ev, tt.class)
			if tt.reason == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			var rerr *reject.Error
			require.ErrorAs(t, err, &rerr)
			assert.Equal(t, tt.reason, reject.ReasonOf(err), "%v", err)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
}

// TestTags: import.tags.deny and require refuse with reason filtered
// (a clear always passes them); add tags what is accepted.
func TestTags(t *testing.T) {
	imp := config.ImportPolicy{Classes: []string{"*"}, Tags: config.ImportTags{
		Deny: []string{"op-b:test", "op-b:lab"}, Require: []string{"op-b:gold", "op-b:silver"}}}
	tagged := func(st signal.State, tags ...string) *signal.Event {
		ev := event(peer, peer)
		ev.State, ev.Tags = st, tags
		return ev
	}
	tests := []struct {
		name string
		ev   *signal.Event
		text string // "": accepted
	}{
		{"required tag", tagged(signal.Raised, "op-b:gold"), ""},
		{"another required tag", tagged(signal.Updated, "x", "op-b:silver"), ""},
		{"no required tag", tagged(signal.Raised, "x"), "import.tags.require for op-b: the signal carries none of [op-b:gold op-b:silver] (its tags: [x])"},
		{"no tags at all", tagged(signal.Raised), "import.tags.require"},
		{"denied tag", tagged(signal.Raised, "op-b:gold", "op-b:lab"), "import.tags.deny for op-b lists op-b:lab, which the signal carries"},
		{"a clear passes deny", tagged(signal.Cleared, "op-b:test"), ""},
		{"a clear passes require", tagged(signal.Cleared), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := importpolicy.New(self, &config.Peer{ID: peer, Import: imp}).Check(tt.ev, "fault")
			if tt.text == "" {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, reject.Filtered, reject.ReasonOf(err), "%v", err)
			assert.ErrorContains(t, err, tt.text)
		})
	}
	// Loops and classes decide before tags.
	err := importpolicy.New(self, &config.Peer{ID: peer, Import: config.ImportPolicy{Classes: []string{"congestion"}, Tags: imp.Tags}}).Check(tagged(signal.Raised), "fault")
	assert.Equal(t, reject.NotImported, reject.ReasonOf(err))

	add := importpolicy.New(self, &config.Peer{ID: peer, Import: config.ImportPolicy{Classes: []string{"*"}, Tags: config.ImportTags{Add: []string{"from-op-b", "x"}}}})
	ev := tagged(signal.Raised, "x", "no-export")
	require.NoError(t, add.Tag(ev))
	assert.Equal(t, []string{"x", "no-export", "from-op-b"}, ev.Tags)
	ev = tagged(signal.Raised)
	for i := range signal.MaxTags {
		ev.Tags = append(ev.Tags, fmt.Sprintf("t%d", i))
	}
	err = add.Tag(ev)
	assert.Equal(t, reject.BadAttribute, reject.ReasonOf(err))
	assert.ErrorContains(t, err, "would carry 34 tags, more than 32: with import.tags.add for op-b")
	require.NoError(t, importpolicy.New(self, &config.Peer{ID: peer}).Tag(ev), "no import.tags.add: unchanged")
}

// TestFilter: import.filter refuses with reason filtered, says why, and
// lets clears through.
func TestFilter(t *testing.T) {
	pol := func(src string) *importpolicy.Policy {
		return importpolicy.New(self, &config.Peer{ID: peer, Import: config.ImportPolicy{Classes: []string{"*"}, Filter: src}})
	}
	ev := func(st signal.State, sev int) *signal.Event {
		e := event(peer, peer)
		e.State, e.SeverityNumber = st, sev
		return e
	}
	assert.NoError(t, pol("severitynumber >= 13").Check(ev(signal.Raised, 17), "fault"))
	err := pol("severitynumber >= 13").Check(ev(signal.Raised, 9), "fault")
	assert.Equal(t, reject.Filtered, reject.ReasonOf(err))
	assert.ErrorContains(t, err, `import.filter for op-b, "severitynumber >= 13", is false for the signal`)
	err = pol("correlationid = 'c'").Check(ev(signal.Raised, 9), "fault")
	assert.Equal(t, reject.Filtered, reject.ReasonOf(err))
	assert.ErrorContains(t, err, "could not be evaluated on the signal (missing attribute error: correlationid)")
	assert.NoError(t, pol("severitynumber >= 13").Check(ev(signal.Cleared, 9), "fault"), "a clear passes")
	err = pol("subject = ").Check(ev(signal.Raised, 17), "fault")
	assert.Equal(t, reject.Filtered, reject.ReasonOf(err))
	assert.ErrorContains(t, err, "import.filter for op-b does not compile")
}

// TestMayOriginate: an origin with may_originate is held to its classes
// and service globs, a peer's own signals and relayed ones alike; an
// origin without one may originate anything; clears are not exempt.
func TestMayOriginate(t *testing.T) {
	origins := map[string]*config.MayOriginate{
		"op-b": {Classes: []string{"fault"}, Services: []string{"vpn*"}},
		"op-c": {Classes: []string{"*"}, Services: []string{"core"}},
		"op-x": {},
	}
	pol := importpolicy.New(self, &config.Peer{ID: peer, Import: config.ImportPolicy{Classes: []string{"*"}, Transit: true}}).WithOrigins(origins)
	cleared := event(peer, peer)
	cleared.State = signal.Cleared
	for _, tt := range []struct {
		name  string
		ev    *signal.Event
		class string
		ok    bool
	}{
		{"peer's own, allowed", event(peer, peer), "fault", true},
		{"peer's own, class not allowed", event(peer, peer), "congestion", false},
		{"peer's own clear, class not allowed", cleared, "congestion", false},
		{"relayed, service not allowed", event("op-c", "op-c", peer), "fault", false},
		{"relayed, no may_originate", event("op-d", "op-d", peer), "congestion", true},
		{"empty lists allow nothing", event("op-x", "op-x", peer), "fault", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := pol.Check(tt.ev, tt.class)
			if tt.ok {
				assert.NoError(t, err)
				return
			}
			assert.Equal(t, reject.NotAuthorized, reject.ReasonOf(err), "%v", err)
			assert.ErrorContains(t, err, fmt.Sprintf("%s may not originate %s on service %q", tt.ev.Origin, tt.class, tt.ev.Service()))
		})
	}
}
