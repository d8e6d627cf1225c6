// Package replay remembers which signals a node accepted, by CloudEvent
// source and id, so that a signal sent again — a retry after a lost answer,
// or an attacker's replay — is not accepted twice. Memory is bounded: the
// guard holds the last N keys as 64-bit hashes (16 bytes each plus map
// overhead) and forgets the oldest first. JetStream's duplicate window is a
// second line behind it.
package replay

import (
	"hash/maphash"
	"sync"
)

// DefaultSize is how many recent signals a guard remembers.
const DefaultSize = 1 << 18

// Guard is a bounded set of recently accepted (source, id) pairs. It is
// safe for concurrent use.
type Guard struct {
	mu   sync.Mutex
	seed maphash.Seed
	set  map[uint64]struct{}
	ring []uint64
	next int
	full bool
}

// New returns a guard remembering the last size keys (DefaultSize if
// size <= 0).
func New(size int) *Guard {
	if size <= 0 {
		size = DefaultSize
	}
	return &Guard{seed: maphash.MakeSeed(), set: make(map[uint64]struct{}, size), ring: make([]uint64, size)}
}

func (g *Guard) hash(source, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(g.seed)
	h.WriteString(source)
	h.WriteByte(0)
	h.WriteString(id)
	return h.Sum64()
}

// Seen reports whether (source, id) was recorded and is still remembered.
func (g *Guard) Seen(source, id string) bool {
	k := g.hash(source, id)
	g.mu.Lock()
	_, ok := g.set[k]
	g.mu.Unlock()
	return ok
}

// Record remembers (source, id), forgetting the oldest key when full.
func (g *Guard) Record(source, id string) {
	k := g.hash(source, id)
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.set[k]; ok {
		return
	}
	if g.full {
		delete(g.set, g.ring[g.next])
	}
	g.ring[g.next] = k
	g.set[k] = struct{}{}
	g.next++
	if g.next == len(g.ring) {
		g.next, g.full = 0, true
	}
}

// Len is how many keys the guard remembers.
func (g *Guard) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.set)
}
