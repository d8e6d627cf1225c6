package conditions

import (
	"iter"
	"unique"
)

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

// LenWith is Len(peer) plus how many of extra, keys of that peer, the
// table does not hold as active or stale, counted at one instant: a
// count of conditions that includes some not applied yet, each once.
func (t *Table) LenWith(peer string, extra iter.Seq[Key]) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	n := 0
	if p != nil {
		n = p.live
	}
	for k := range extra {
		if k.Peer != peer {
			continue
		}
		if p != nil {
			if e := p.m[ckey{origin: unique.Make(k.Origin), class: unique.Make(k.Class), subject: k.Subject}]; e != nil && e.isLive() {
				continue
			}
		}
		n++
	}
	return n
}
