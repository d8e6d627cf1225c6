package conditions

import (
	"cmp"
	"container/heap"
	"slices"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// Tick applies time: conditions whose expiry is at or before now are
// removed (Expire), tombstones past their time are forgotten, and for each
// peer whose link is down, its active conditions turn stale once the grace
// time has passed (Stale) and are removed once the withdraw time has passed
// too (Withdraw). A Tick that jumps past both deadlines reports Stale then
// Withdraw, so consumers always see the same story. Changes are ordered by
// expiry, then peer, then key; each is also sent to subscribers.
func (t *Table) Tick(now time.Time) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := nanos(now)
	var out []Change

	var due []*entry
	for len(t.due) > 0 && t.due[0].due <= n {
		due = append(due, heap.Pop(&t.due).(*entry))
	}
	slices.SortStableFunc(due, func(a, b *entry) int { return cmp.Or(cmp.Compare(a.due, b.due), compareEntries(a, b)) })
	for _, e := range due {
		if !e.isLive() {
			t.remove(e) // tombstone past its time
			continue
		}
		t.unlive(e)
		e.status = stExpired
		out = append(out, Change{Kind: Expire, Condition: e.condition()})
		t.bury(e, n)
	}

	var down []*peerTable
	for _, p := range t.peers {
		if p.down && p.live > 0 || p.stale > 0 {
			down = append(down, p)
		}
	}
	slices.SortFunc(down, func(a, b *peerTable) int { return cmp.Compare(a.name, b.name) })
	for _, p := range down {
		staleAt := addNanos(p.downAt, p.grace)
		if p.down && n >= staleAt && p.live > p.stale {
			for _, e := range p.sorted() {
				if e.status == stActive {
					e.status = stStale
					p.stale++
					out = append(out, Change{Kind: Stale, Condition: e.condition()})
				}
			}
		}
		if n >= addNanos(staleAt, p.linger) {
			for _, e := range p.sorted() {
				// Link back up: only what the peer has not re-stated
				// (still stale) goes.
				if !e.isLive() || !p.down && e.status != stStale {
					continue
				}
				out = append(out, t.withdraw(e))
			}
		}
	}

	for _, c := range out {
		t.broadcast(c)
	}
	return out
}

// LinkDown marks the peer's link down at `at`. From `at`+grace its
// conditions are stale, and from `at`+grace+withdrawAfter they are
// withdrawn (both applied by Tick). While the link stays down, another
// LinkDown keeps the first `at` but takes the new durations.
func (t *Table) LinkDown(peer string, at time.Time, grace, withdrawAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peer(peer)
	if !p.down {
		p.down = true
		p.downAt = nanos(at)
	}
	p.grace, p.linger = max(grace, 0), max(withdrawAfter, 0)
}

// LinkUp marks the peer's link up. Its stale conditions stay stale: only
// the peer's re-statement (Restate, or a signal Apply takes) makes one
// active again, and End-of-RIB (EndRefresh) withdraws those it did not
// re-state; without a refresh they are withdrawn when the withdraw time
// since the link went down has passed, as if it had stayed down.
func (t *Table) LinkUp(peer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	if p == nil || !p.down {
		return
	}
	p.down = false
	if len(p.m) == 0 {
		t.dropPeer(p)
	}
}

// Freshen makes the peer's stale conditions active again without a
// re-statement (Fresh each, sorted by key, also sent to subscribers): for
// a peer that sends no refresh (a lossy export), whose link is back.
func (t *Table) Freshen(peer string) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	if p == nil || p.down || p.stale == 0 {
		return nil
	}
	var out []Change
	for _, e := range p.sorted() {
		if e.status == stStale {
			e.status = stActive
			out = append(out, Change{Kind: Fresh, Condition: e.condition()})
		}
	}
	p.stale = 0
	for _, c := range out {
		t.broadcast(c)
	}
	return out
}

// BeginRefresh starts a refresh of the peer's conditions (the peer sends
// its current state, then End-of-RIB): every condition held for it counts
// as not re-stated until Restate or a signal of it (Apply) says otherwise.
func (t *Table) BeginRefresh(peer string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	if p == nil {
		return
	}
	if !p.refreshing {
		t.refreshing.Add(1)
	}
	p.refreshing = true
	for _, e := range p.m {
		e.stated = false
	}
}

// Restate takes a condition the peer re-stated in a refresh with signal
// ev of class. It reports whether ev must still be applied (stored and fed
// to Apply): the table does not hold it — the condition is absent, or
// holds another signal that nothing re-stated since the refresh began. A
// stale condition re-stated with the signal held is active again (Fresh,
// also sent to subscribers). A condition a signal changed since the
// refresh began keeps that newer signal.
func (t *Table) Restate(peer, class string, ev *signal.Event) (Change, bool) {
	if checkInput(peer, class, ev) != nil {
		return Change{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	if p == nil {
		return Change{}, true
	}
	e := p.m[ckey{origin: t.intern(ev.Origin), class: t.intern(class), subject: ev.Subject}]
	switch {
	case e == nil:
		return Change{}, true
	case e.id == ev.ID && e.source.Value() == ev.Source:
		e.stated = true
		if e.status != stStale {
			return Change{}, false
		}
		e.status = stActive
		p.stale--
		c := Change{Kind: Fresh, Condition: e.condition()}
		t.broadcast(c)
		return c, false
	case e.stated:
		return Change{}, false // changed during the refresh: that is newer
	default:
		// Kept from the sweep until the store feeds the re-stated signal.
		e.stated = true
		return Change{}, true
	}
}

// Touch marks the peer's condition that ev (of class) is about to change
// as stated, while a refresh of the peer is under way: the signal is on
// its way to the table, and End-of-RIB must not withdraw the condition
// before it arrives.
func (t *Table) Touch(peer, class string, ev *signal.Event) {
	if t.refreshing.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	if p == nil || !p.refreshing {
		return
	}
	if e := p.m[ckey{origin: t.intern(ev.Origin), class: t.intern(class), subject: ev.Subject}]; e != nil {
		e.stated = true
	}
}

// EndRefresh ends the peer's refresh (End-of-RIB): every condition it
// held before the refresh and neither re-stated nor changed since is
// withdrawn (Withdraw each, sorted by key, also sent to subscribers). It
// does nothing without a BeginRefresh.
func (t *Table) EndRefresh(peer string) []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[peer]
	if p == nil || !p.refreshing {
		return nil
	}
	p.refreshing = false
	t.refreshing.Add(-1)
	var out []Change
	for _, e := range p.sorted() {
		if !e.stated {
			out = append(out, t.withdraw(e))
		}
	}
	for _, c := range out {
		t.broadcast(c)
	}
	return out
}

// WithdrawKey withdraws the live (active or stale) condition k (Withdraw,
// also sent to subscribers): the node's import policy no longer passes
// it. ok is false when the table holds no such live condition.
func (t *Table) WithdrawKey(k Key) (c Change, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[k.Peer]
	if p == nil {
		return Change{}, false
	}
	e := p.m[ckey{origin: t.intern(k.Origin), class: t.intern(k.Class), subject: k.Subject}]
	if e == nil || !e.isLive() {
		return Change{}, false
	}
	c = t.withdraw(e)
	t.broadcast(c)
	return c, true
}

// withdraw removes a live entry: its Change says withdrawn.
func (t *Table) withdraw(e *entry) Change {
	t.unlive(e)
	c := e.condition()
	c.Status = StatusWithdrawn
	e.status = 0
	t.remove(e)
	return Change{Kind: Withdraw, Condition: c}
}

// sorted returns the peer's live entries sorted by key.
func (p *peerTable) sorted() []*entry {
	out := make([]*entry, 0, p.live)
	for _, e := range p.m {
		if e.isLive() {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, compareEntries)
	return out
}

func compareEntries(a, b *entry) int {
	return cmp.Or(
		cmp.Compare(a.peer.name, b.peer.name),
		cmp.Compare(a.k.origin.Value(), b.k.origin.Value()),
		cmp.Compare(a.k.class.Value(), b.k.class.Value()),
		cmp.Compare(a.k.subject, b.k.subject),
	)
}

// schedule sets when Tick must look at e; 0 takes it off the schedule.
func (t *Table) schedule(e *entry, due int64) {
	switch {
	case due == 0 && e.heapIdx >= 0:
		heap.Remove(&t.due, int(e.heapIdx))
	case due == 0:
	case e.heapIdx >= 0:
		e.due = due
		heap.Fix(&t.due, int(e.heapIdx))
	default:
		e.due = due
		heap.Push(&t.due, e)
	}
}

// dueHeap orders entries by the time Tick must look at them. Each entry
// knows its index, so an update moves it in O(log n) and leaves no garbage.
type dueHeap []*entry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}

func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = int32(len(*h))
	*h = append(*h, e)
}

func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.heapIdx = -1
	return e
}
