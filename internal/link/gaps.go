package link

import "strconv"

// Gaps is the receiving end's count of a stream link (HeaderStreamSeq):
// what arrived and what the numbers say never did. A message that
// arrives after a later one is taken back from the lost. The first
// message a Gaps sees is its baseline (a receiver that starts knows
// nothing of what was sent before); a new epoch after it is a sender
// that started again, whose numbers before the first one seen were lost.
type Gaps struct {
	seen     bool
	epoch    string
	last     uint64
	Received uint64
	Lost     uint64
}

// See counts a message whose hop headers get reads (nats.Header.Get);
// it reports false for a message that carries no stream number.
func (g *Gaps) See(get func(string) string) bool {
	seq, err := strconv.ParseUint(get(HeaderStreamSeq), 10, 64)
	if err != nil || seq == 0 {
		return false
	}
	g.Received++
	if e := get(HeaderStreamEpoch); !g.seen || e != g.epoch {
		// A new sender run: its numbers start again; what the old one
		// sent after our last is unknown, and not counted.
		g.epoch, g.last = e, 0
		if !g.seen {
			g.seen, g.last = true, seq-1
		}
	}
	switch {
	case seq > g.last:
		g.Lost += seq - g.last - 1
		g.last = seq
	case g.Lost > 0:
		g.Lost-- // late, counted lost when a later one came
	}
	return true
}
