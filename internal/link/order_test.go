package link_test

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/reject"
)

func TestReadHop(t *testing.T) {
	h := nats.Header{}
	assert.Equal(t, link.Hop{}, link.ReadHop(h.Get), "no sequence: no claim")
	h.Set(link.HeaderEpoch, "e1")
	assert.Equal(t, link.Hop{}, link.ReadHop(h.Get), "a probe's epoch alone is no claim")
	h.Set(link.HeaderSeq, "7")
	h.Set(link.HeaderPrev, "5")
	h.Set(link.HeaderFront, "1")
	assert.Equal(t, link.Hop{Ordered: true, Seq: 7, Prev: 5, Epoch: "e1", Front: true}, link.ReadHop(h.Get))
	h.Set(link.HeaderSeq, "x")
	assert.Equal(t, link.Hop{}, link.ReadHop(h.Get))
}

// The receiving end's order, message by message: what it takes, what it
// answers duplicate, what it refuses out-of-order, and where it stands.
func TestOrder(t *testing.T) {
	hop := func(epoch string, seq, prev uint64, front bool) link.Hop {
		return link.Hop{Ordered: true, Epoch: epoch, Seq: seq, Prev: prev, Front: front}
	}
	for _, tc := range []struct {
		name     string
		from     link.Order
		hop      link.Hop
		want     link.Verdict
		wantLast uint64 // after See and, when taken, Taken
	}{
		{"no claim", link.Order{Epoch: "e1", Last: 4}, link.Hop{}, link.Take, 4},
		{"the next", link.Order{Epoch: "e1", Last: 4}, hop("e1", 5, 4, false), link.Take, 5},
		{"a jump the sender's filter made", link.Order{Epoch: "e1", Last: 4}, hop("e1", 9, 4, false), link.Take, 9},
		{"a resend of a decided one", link.Order{Epoch: "e1", Last: 4}, hop("e1", 3, 2, false), link.Decided, 4},
		{"the last again", link.Order{Epoch: "e1", Last: 4}, hop("e1", 4, 3, false), link.Decided, 4},
		{"after a lost one", link.Order{Epoch: "e1", Last: 4}, hop("e1", 7, 6, false), link.OutOfOrder, 4},
		{"afresh, not the front", link.Order{}, hop("e1", 7, 6, false), link.OutOfOrder, 0},
		{"afresh, the front", link.Order{}, hop("e1", 7, 6, true), link.Take, 7},
		{"afresh, no predecessor claimed", link.Order{}, hop("e1", 7, 0, false), link.Take, 7},
		{"a new store at the sender", link.Order{Epoch: "e1", Last: 40}, hop("e2", 3, 0, false), link.Take, 3},
		{"a new store, behind the front", link.Order{Epoch: "e1", Last: 40}, hop("e2", 3, 2, false), link.OutOfOrder, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.from
			o.See(tc.hop)
			got, err := o.Decide(tc.hop)
			assert.Equal(t, tc.want, got)
			if got == link.OutOfOrder {
				assert.Equal(t, reject.OutOfOrder, reject.ReasonOf(err))
			} else {
				assert.NoError(t, err)
			}
			if got == link.Take {
				o.Taken(tc.hop)
			}
			assert.Equal(t, tc.wantLast, o.Last)
		})
	}
}

// A failed store write rolls the order back to the last sequence decided
// for good, unless the sender's store changed meanwhile.
func TestOrderRollback(t *testing.T) {
	o := link.Order{Epoch: "e1", Last: 9}
	o.Rollback("e1", 6)
	assert.Equal(t, uint64(6), o.Last)
	o.Rollback("e0", 2)
	assert.Equal(t, uint64(6), o.Last, "a rollback of another epoch is void")
}
