// Package importpolicy decides whether a signal that arrived from a peer is
// accepted. It is the import step of the signal's journey, after the link
// and before the store: loop detection, origin and import class checks.
package importpolicy

import (
	"slices"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// Policy is the import policy towards one peer.
type Policy struct {
	self    string
	peer    string
	classes []string
	transit bool
}

// New returns the import policy of operator self towards peer p.
func New(self string, p *config.Peer) *Policy {
	return &Policy{self: self, peer: p.ID, classes: p.Import.Classes, transit: p.Import.Transit}
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
	return nil
}
