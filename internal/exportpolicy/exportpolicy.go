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
	redact   [][]string // JSON pointers into data, as tokens below /data
	minSev   int
}

// New returns the export policy of operator self towards peer p.
func New(self string, p *config.Peer) *Policy {
	return &Policy{
		self:     self,
		peer:     p.ID,
		classes:  p.Export.Classes,
		services: p.Export.Services,
		transit:  p.Export.Transit,
		redact:   pointers(p.Export.Redact),
		minSev:   p.Export.MinSeverity,
	}
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

// Redact removes the export.redact fields from ev's data and reports
// whether it removed any. Only the origin may do this, and must sign the
// result again: the origin's signature covers the data's bytes.
func (p *Policy) Redact(ev *signal.Event) (bool, error) {
	if len(p.redact) == 0 {
		return false, nil
	}
	if ev.Origin != p.self {
		return false, fmt.Errorf("redact %s: a signal of %s carries its origin's signature; only %s can redact it", ev.ID, ev.Origin, ev.Origin)
	}
	d := json.NewDecoder(bytes.NewReader(ev.Data))
	d.UseNumber() // numbers keep their digits
	var data any
	if err := d.Decode(&data); err != nil {
		return false, fmt.Errorf("redact %s: data: %w", ev.ID, err)
	}
	changed := false
	for _, toks := range p.redact {
		var ok bool
		if data, ok = remove(data, toks); ok {
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(data); err != nil {
		return false, fmt.Errorf("redact %s: %w", ev.ID, err)
	}
	ev.Data = json.RawMessage(bytes.TrimRight(b.Bytes(), "\n"))
	return true, nil
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
	case p.minSev > 0 && ev.State != signal.Cleared && ev.SeverityNumber < p.minSev:
		return Decision{false, fmt.Sprintf("export.min_severity is %d and the signal's severity is %d", p.minSev, ev.SeverityNumber)}
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
