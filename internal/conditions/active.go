package conditions

import "unique"

// Active reports whether the table holds k as an active or stale
// condition (an import limit counts those; a signal for a held key is an
// update, not a new condition).
func (t *Table) Active(k Key) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[k.Peer]
	if p == nil {
		return false
	}
	e := p.m[ckey{origin: unique.Make(k.Origin), class: unique.Make(k.Class), subject: k.Subject}]
	return e != nil && e.isLive()
}
