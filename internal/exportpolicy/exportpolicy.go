// Package exportpolicy decides which accepted signals a peer receives. It
// is the export step of the signal's journey: every signal in the node's
// store passes it once per peer. A decision names the rule that made it, so
// an operator can ask why a peer did or did not receive a signal.
package exportpolicy

import (
	"path"
	"slices"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Policy is the export policy towards one peer.
type Policy struct {
	self     string
	peer     string
	classes  []string
	services []string
	transit  bool
}

// New returns the export policy of operator self towards peer p.
func New(self string, p *config.Peer) *Policy {
	return &Policy{
		self:     self,
		peer:     p.ID,
		classes:  p.Export.Classes,
		services: p.Export.Services,
		transit:  p.Export.Transit,
	}
}

// Decision says whether a signal is exported and which rule decided.
type Decision struct {
	Export bool
	Rule   string
}

// Decide applies the policy to ev, whose class is class. Rules are tried in
// order; the first that refuses decides.
func (p *Policy) Decide(ev *signal.Event, class string) Decision {
	switch {
	case ev.OnPath(p.peer) || ev.Origin == p.peer:
		return Decision{false, "no-loop: " + p.peer + " is already on the path"}
	case ev.Origin != p.self && !p.transit:
		return Decision{false, "export.transit is false: only our own signals are exported"}
	case !allowClass(p.classes, class):
		return Decision{false, "export.classes does not list " + class}
	case !allowService(p.services, ev.Service()):
		return Decision{false, "export.services matches no pattern for " + ev.Service()}
	}
	return Decision{true, "export.classes and export.services allow it"}
}

// MayExport is Decide on what a stored signal's subject tells (origin,
// class, service), without decoding it: false means Decide refuses it;
// true means Decide may still refuse it on its path (a relayed signal that
// already crossed the peer).
func (p *Policy) MayExport(k subject.Key) bool {
	return k.Origin != p.peer && (k.Origin == p.self || p.transit) &&
		allowClass(p.classes, k.Class) && allowService(p.services, k.Service)
}

func allowClass(classes []string, class string) bool {
	return slices.Contains(classes, "*") || slices.Contains(classes, class)
}

func allowService(patterns []string, svc string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, svc); ok {
			return true
		}
	}
	return false
}
