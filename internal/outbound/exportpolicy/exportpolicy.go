// Package exportpolicy decides which accepted signals a peer receives. It
// is the export step of the signal's journey: every signal in the node's
// store passes it once per peer. A decision names the rule that made it, so
// an operator can ask why a peer did or did not receive a signal.
package exportpolicy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/filter"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Policy is the export policy towards one peer.
type Policy struct {
	self     string
	peer     string
	role     string // the peer's role towards us
	classes  []string
	services []string
	transit  bool
	// transitFrom: whose relayed signals go to the peer, by the role of
	// the neighbour we learned them from or by its id.
	transitFrom []string
	explicit    bool              // transitFrom was written in the policy
	roles       map[string]string // our peers' roles; unknown ones count as peers
	redact      [][]string        // JSON pointers into data, as tokens below /data
	redactNames []string          // the same pointers as export.redact writes them
	minSev      int
	tags        config.ExportTags
	filter      *filter.Filter // export.filter; nil: none
	filterErr   error          // export.filter does not compile: nothing is exported
	// intentClasses go to the peer only for a service of an intent it
	// owns that we accepted (export.intent_classes), as intents says.
	intentClasses []string
	intents       Intents
}

// Intents tells which intents a peer owns that we accepted and that are
// in force (internal/intent keeps them).
type Intents interface {
	// Accepted is the id of an intent owner owns for service that we
	// accepted and that is in force; ok false: none.
	Accepted(owner, service string) (id string, ok bool)
}

// WithIntents gives the intents export.intent_classes reads; without it
// those classes go nowhere.
func WithIntents(v Intents) Option { return func(p *Policy) { p.intents = v } }

// Option adds to a policy what the peer's own entry does not tell.
type Option func(*Policy)

// WithRoles gives the roles of all our peers (config.Config.PeerRoles):
// a relayed signal is judged by the role of the neighbour we learned it
// from. Without it every neighbour counts as a peer (RFC 9234's most
// restrictive default for transit).
func WithRoles(roles map[string]string) Option { return func(p *Policy) { p.roles = roles } }

// New returns the export policy of operator self towards peer p.
func New(self string, p *config.Peer, opts ...Option) *Policy {
	pol := &Policy{
		self:          self,
		peer:          p.ID,
		role:          p.RoleOf(),
		classes:       p.Export.Classes,
		services:      p.Export.Services,
		transit:       p.Export.Transit,
		transitFrom:   p.Export.TransitFrom,
		explicit:      len(p.Export.TransitFrom) > 0,
		redactNames:   redactable(p.Export.Redact),
		redact:        pointers(redactable(p.Export.Redact)),
		intentClasses: p.Export.IntentClasses,
		minSev:        p.Export.MinSeverity,
		tags:          p.Export.Tags,
	}
	if !pol.explicit {
		// Valley-free (RFC 9234, Gao-Rexford): what we learned from a
		// customer goes to everyone; what we learned from a peer or a
		// provider goes only to customers.
		pol.transitFrom = []string{config.RoleCustomer}
		if pol.role == config.RoleCustomer {
			pol.transitFrom = slices.Clone(config.Roles)
		}
	}
	if src := p.Export.Filter; src != "" {
		// Checked at load; a config built in code may skip the check,
		// and then the filter fails closed.
		pol.filter, pol.filterErr = filter.Compile(src)
	}
	for _, o := range opts {
		o(pol)
	}
	return pol
}

// ForConfig returns the export policy of cfg's operator towards p, one of
// cfg's peers, with the roles of all cfg's peers.
func ForConfig(cfg *config.Config, p *config.Peer, opts ...Option) *Policy {
	return New(cfg.Operator.ID, p, append([]Option{WithRoles(cfg.PeerRoles())}, opts...)...)
}

// learnedFrom is the neighbour a relayed signal came from (the last hop
// of its path) and that neighbour's role towards us.
func (p *Policy) learnedFrom(ev *signal.Event) (string, string) {
	if len(ev.Path) == 0 {
		return "", config.RolePeer
	}
	from := ev.Path[len(ev.Path)-1]
	if r, ok := p.roles[from]; ok {
		return from, r
	}
	return from, config.RolePeer
}

// transitRule refuses a relayed signal that the peer may not get from the
// neighbour we learned it from, and returns "" when it may.
func (p *Policy) transitRule(ev *signal.Event) string {
	from, role := p.learnedFrom(ev)
	if slices.Contains(p.transitFrom, role) || from != "" && slices.Contains(p.transitFrom, from) {
		return ""
	}
	if p.explicit {
		return fmt.Sprintf("export.transit_from %v does not list %s, from which we learned it (its role: %s)", p.transitFrom, from, role)
	}
	return fmt.Sprintf("roles: learned from %s (role %s), relayed only to customers, and %s is a %s (valley-free default; export.transit_from overrides it)",
		from, role, p.peer, p.role)
}

// redactable is what of export.redact points below /data (config
// checks that all of it does).
func redactable(list []string) []string {
	var out []string
	for _, ptr := range list {
		if rest, ok := strings.CutPrefix(ptr, "/data/"); ok && rest != "" {
			out = append(out, ptr)
		}
	}
	return out
}

// pointers parses export.redact (checked by config): "/data/a/b~1c" is
// [a b/c].
func pointers(list []string) [][]string {
	var out [][]string
	for _, ptr := range list {
		rest, ok := strings.CutPrefix(ptr, "/data/")
		if !ok || rest == "" {
			continue
		}
		var toks []string
		for _, t := range strings.Split(rest, "/") {
			toks = append(toks, strings.NewReplacer("~1", "/", "~0", "~").Replace(t))
		}
		out = append(out, toks)
	}
	return out
}

// Redacts reports whether the policy removes fields from what the peer
// receives (export.redact).
func (p *Policy) Redacts() bool { return len(p.redact) > 0 }

// Redact removes the export.redact fields from ev's data and returns
// those it removed (as export.redact names them; none: ev unchanged).
// Only the origin may do this, and must sign the result again: the
// origin's signature covers the data's bytes.
func (p *Policy) Redact(ev *signal.Event) ([]string, error) {
	if len(p.redact) == 0 {
		return nil, nil
	}
	if ev.Origin != p.self {
		return nil, fmt.Errorf("redact %s: a signal of %s carries its origin's signature; only %s can redact it", ev.ID, ev.Origin, ev.Origin)
	}
	d := json.NewDecoder(bytes.NewReader(ev.Data))
	d.UseNumber() // numbers keep their digits
	var data any
	if err := d.Decode(&data); err != nil {
		return nil, fmt.Errorf("redact %s: data: %w", ev.ID, err)
	}
	var removed []string
	for i, toks := range p.redact {
		var ok bool
		if data, ok = remove(data, toks); ok {
			removed = append(removed, p.redactNames[i])
		}
	}
	if len(removed) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(data); err != nil {
		return nil, fmt.Errorf("redact %s: %w", ev.ID, err)
	}
	ev.Data = json.RawMessage(bytes.TrimRight(b.Bytes(), "\n"))
	return removed, nil
}

// remove deletes the value at toks below v, if there is one.
func remove(v any, toks []string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		c, ok := x[toks[0]]
		if !ok {
			return v, false
		}
		if len(toks) == 1 {
			delete(x, toks[0])
			return x, true
		}
		nc, removed := remove(c, toks[1:])
		x[toks[0]] = nc
		return x, removed
	case []any:
		i, err := strconv.Atoi(toks[0])
		if err != nil || i < 0 || i >= len(x) || toks[0] != strconv.Itoa(i) {
			return v, false
		}
		if len(toks) == 1 {
			return slices.Delete(x, i, i+1), true
		}
		nc, removed := remove(x[i], toks[1:])
		x[i] = nc
		return x, removed
	}
	return v, false
}

// Retags reports whether the policy changes the tags of what the peer
// receives (export.tags.remove and add).
func (p *Policy) Retags() bool { return len(p.tags.Remove) > 0 || len(p.tags.Add) > 0 }

// Retag applies export.tags.remove, then add, to ev, the copy the peer
// receives. Tags are hop-by-hop claims, not signed: no signature changes.
// It fails when the result would carry more than signal.MaxTags.
func (p *Policy) Retag(ev *signal.Event) error {
	tags, err := signal.Retag(ev.Tags, p.tags.Remove, p.tags.Add)
	if err != nil {
		return fmt.Errorf("export.tags.add towards %s: %w", p.peer, err)
	}
	ev.Tags = tags
	return nil
}

// Decision says whether a signal is exported and which rule decided.
type Decision struct {
	Export bool
	Rule   string
}

// Decide applies the policy to ev, whose class is class. Rules are tried in
// order; the first that refuses decides.
func (p *Policy) Decide(ev *signal.Event, class string) Decision {
	relayed := ev.Origin != p.self
	switch {
	case ev.OnPath(p.peer) || ev.Origin == p.peer:
		return Decision{false, "no-loop: " + p.peer + " is already on the path"}
	case ev.HasTag(signal.TagNoAdvertise):
		return Decision{false, "tag no-advertise: the signal stays with the operator that holds it"}
	case relayed && !p.transit:
		return Decision{false, "export.transit is false: only our own signals are exported"}
	case relayed && ev.HasTag(signal.TagNoExport):
		return Decision{false, "tag no-export: the operator that sent it to us asked that it go no further"}
	}
	if relayed {
		if r := p.transitRule(ev); r != "" {
			return Decision{false, r}
		}
	}
	switch {
	case !allowClass(p.classes, class):
		return Decision{false, "export.classes does not list " + class}
	case !allowService(p.services, ev.Service()):
		return Decision{false, "export.services matches no pattern for " + ev.Service()}
	case p.minSev > 0 && ev.State != signal.Cleared && ev.SeverityNumber < p.minSev:
		return Decision{false, fmt.Sprintf("export.min_severity is %d and the signal's severity is %d", p.minSev, ev.SeverityNumber)}
	case len(p.tags.Match) > 0 && ev.State != signal.Cleared && !ev.HasAnyTag(p.tags.Match):
		return Decision{false, fmt.Sprintf("export.tags.match %v: the signal carries none of them (its tags: %v)", p.tags.Match, ev.Tags)}
	case p.filterErr != nil:
		return Decision{false, fmt.Sprintf("export.filter does not compile (%v): nothing is exported", p.filterErr)}
	}
	if p.filter != nil && ev.State != signal.Cleared {
		// Evaluated only when set: the hot path pays nothing otherwise.
		if ok, err := p.filter.Match(ev); !ok {
			if err != nil {
				return Decision{false, fmt.Sprintf("export.filter %q could not be evaluated (%v): not exported", p.filter, err)}
			}
			return Decision{false, fmt.Sprintf("export.filter %q is false", p.filter)}
		}
	}
	intent := ""
	if len(p.intentClasses) > 0 && allowClass(p.intentClasses, class) {
		var id string
		ok := false
		if p.intents != nil {
			id, ok = p.intents.Accepted(p.peer, ev.Service())
		}
		if !ok {
			return Decision{false, fmt.Sprintf("export.intent_classes lists %s: %s owns no intent for %s that we accepted and that is in force", class, p.peer, ev.Service())}
		}
		intent = fmt.Sprintf("; export.intent_classes: intent %s.%s for %s, accepted", p.peer, id, ev.Service())
	}
	if relayed {
		from, role := p.learnedFrom(ev)
		why := "roles"
		if p.explicit {
			why = fmt.Sprintf("export.transit_from %v", p.transitFrom)
		}
		return Decision{true, fmt.Sprintf("export.transit relays it by %s (learned from %s, a %s, and %s is a %s); export.classes and export.services allow it%s", why, from, role, p.peer, p.role, intent)}
	}
	return Decision{true, "export.classes and export.services allow it" + intent}
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
