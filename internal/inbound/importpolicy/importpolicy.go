// Package importpolicy decides whether a signal that arrived from a peer is
// accepted. It is the import step of the signal's journey, after the link
// and before the store: loop detection, origin and import class checks.
package importpolicy

import (
	"slices"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/filter"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// Policy is the import policy towards one peer.
type Policy struct {
	self    string
	peer    string
	classes []string
	transit bool
	tags    config.ImportTags
	filter  *filter.Filter // import.filter; nil: none
	fltErr  error          // import.filter does not compile: nothing is accepted
	// origins is what each origin may originate (may_originate); an
	// origin absent may originate anything.
	origins map[string]*config.MayOriginate
}

// New returns the import policy of operator self towards peer p.
func New(self string, p *config.Peer) *Policy {
	pol := &Policy{self: self, peer: p.ID, classes: p.Import.Classes, transit: p.Import.Transit, tags: p.Import.Tags}
	if src := p.Import.Filter; src != "" {
		// Checked at load; unchecked, a bad filter fails closed.
		pol.filter, pol.fltErr = filter.Compile(src)
	}
	return pol
}

// WithOrigins makes the policy refuse, as not-authorized, a signal whose
// origin may not originate its class or service (config.MayOriginate,
// by origin id). It returns p.
func (p *Policy) WithOrigins(origins map[string]*config.MayOriginate) *Policy {
	p.origins = origins
	return p
}

// Check returns nil when ev, of class class, is accepted from the peer, and a
// *reject.Error saying why not otherwise.
func (p *Policy) Check(ev *signal.Event, class string) error {
	if ev.OnPath(p.self) || ev.Origin == p.self {
		return reject.Errorf(reject.Loop, "%s is already on the path %v: a signal never comes back to an operator it crossed", p.self, ev.Path)
	}
	if len(ev.Path) == 0 || ev.Path[len(ev.Path)-1] != p.peer {
		return reject.Errorf(reject.BadAttribute, "%s %v must end with the sending peer %s", signal.AttrPath, ev.Path, p.peer)
	}
	if ev.Origin != p.peer {
		if !p.transit {
			return reject.Errorf(reject.WrongOrigin, "origin %s is not %s and import.transit is false for %s", ev.Origin, p.peer, p.peer)
		}
		if ev.Path[0] != ev.Origin {
			return reject.Errorf(reject.WrongOrigin, "origin %s is not the first hop of path %v", ev.Origin, ev.Path)
		}
	} else if len(ev.Path) != 1 {
		return reject.Errorf(reject.BadAttribute, "a signal of %s sent by %s must have path [%s], not %v", p.peer, p.peer, p.peer, ev.Path)
	}
	for i, a := range ev.Path {
		if slices.Contains(ev.Path[i+1:], a) {
			return reject.Errorf(reject.Loop, "path %v holds %s twice", ev.Path, a)
		}
	}
	if !slices.Contains(p.classes, "*") && !slices.Contains(p.classes, class) {
		return reject.Errorf(reject.NotImported, "import.classes for %s does not list %s", p.peer, class)
	}
	if a := p.origins[ev.Origin]; a != nil && !a.Allows(class, ev.Service()) {
		return reject.Errorf(reject.NotAuthorized, "%s may not originate %s on service %q: its may_originate allows classes %v on services %v", ev.Origin, class, shortName(ev.Service()), a.Classes, a.Services)
	}
	// Filters: a clear always passes them, so that a condition whose
	// raise was accepted is never left without its end.
	if ev.State != signal.Cleared {
		for _, t := range p.tags.Deny {
			if ev.HasTag(t) {
				return reject.Errorf(reject.Filtered, "import.tags.deny for %s lists %s, which the signal carries (its tags: %v)", p.peer, t, ev.Tags)
			}
		}
		if len(p.tags.Require) > 0 && !ev.HasAnyTag(p.tags.Require) {
			return reject.Errorf(reject.Filtered, "import.tags.require for %s: the signal carries none of %v (its tags: %v)", p.peer, p.tags.Require, ev.Tags)
		}
		if p.fltErr != nil {
			return reject.Errorf(reject.Filtered, "import.filter for %s does not compile (%v): fix peers[%s].import.filter", p.peer, p.fltErr, p.peer)
		}
		if p.filter != nil {
			if ok, err := p.filter.Match(ev); !ok {
				if err != nil {
					return reject.Errorf(reject.Filtered, "import.filter for %s, %q, could not be evaluated on the signal (%v): refused", p.peer, p.filter, err)
				}
				return reject.Errorf(reject.Filtered, "import.filter for %s, %q, is false for the signal", p.peer, p.filter)
			}
		}
	}
	return nil
}

// Tag applies import.tags.add to an accepted signal, as it is stored and
// our consumers see it. It refuses (bad-attribute) a signal that would
// then carry more than signal.MaxTags.
func (p *Policy) Tag(ev *signal.Event) error {
	if len(p.tags.Add) == 0 {
		return nil
	}
	tags, err := signal.Retag(ev.Tags, nil, p.tags.Add)
	if err != nil {
		return reject.Errorf(reject.BadAttribute, "%s: with import.tags.add for %s %v; send fewer tags", err, p.peer, p.tags.Add)
	}
	ev.Tags = tags
	return nil
}

// shortName cuts a name for a refusal's text.
func shortName(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
