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

// LenWith is Len(peer) counted as if the pending changes of that peer's
// conditions were applied, at one instant: a key with true (raised, not
// applied yet) counts when the table does not hold it, a key with false
// (cleared, not applied yet) stops counting when the table holds it.
func (t *Table) LenWith(peer string, pending iter.Seq2[Key, bool]) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	n := 0
	if p != nil {
		n = p.live
	}
	for k, live := range pending {
		if k.Peer != peer {
			continue
		}
		held := false
		if p != nil {
			e := p.m[ckey{origin: unique.Make(k.Origin), class: unique.Make(k.Class), subject: k.Subject}]
			held = e != nil && e.isLive()
		}
		switch {
		case live && !held:
			n++
		case !live && held:
			n--
		}
	}
	return n
}
