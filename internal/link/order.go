package link

import (
	"fmt"
	"strconv"

	"github.com/anfed/anfed/internal/reject"
)

// Hop is what a link message's hop headers say of its place in the link.
type Hop struct {
	// Ordered: the message carries a sequence header (a probe, or a
	// plain NATS client on the link, does not).
	Ordered bool
	Seq     uint64 // 0: no ordering claim
	Prev    uint64
	Epoch   string
	Front   bool
}

// ReadHop reads the hop headers through get (nats.Header.Get).
func ReadHop(get func(string) string) Hop {
	seq, err := strconv.ParseUint(get(HeaderSeq), 10, 64)
	if err != nil {
		return Hop{}
	}
	prev, _ := strconv.ParseUint(get(HeaderPrev), 10, 64)
	return Hop{Ordered: true, Seq: seq, Prev: prev, Epoch: get(HeaderEpoch), Front: get(HeaderFront) != ""}
}

// Order is the receiving end's view of the link's order: the sender's
// store epoch and the last sequence decided in it.
type Order struct {
	Epoch string
	Last  uint64
}

// Verdict is what Order says of a link message.
type Verdict int

const (
	// Take: check it; its place in the link is right (or it makes no
	// claim).
	Take Verdict = iota
	// Decided: decided already, a resend after a lost answer: answer it
	// duplicate.
	Decided
	// OutOfOrder: its predecessor is not decided yet: refuse it
	// out-of-order; the sender resends from there.
	OutOfOrder
)

// See takes up an ordered message's epoch: a new epoch is a new store at
// the sender, and nothing of it is decided yet.
func (o *Order) See(h Hop) {
	if h.Ordered && h.Epoch != o.Epoch {
		o.Epoch, o.Last = h.Epoch, 0
	}
}

// Decide says what to do with a signal of hop h, once See took it up;
// err is the refusal for OutOfOrder.
func (o *Order) Decide(h Hop) (Verdict, error) {
	switch {
	case h.Seq == 0:
		return Take, nil
	case h.Seq <= o.Last:
		return Decided, nil
	case o.Last == 0 && h.Prev != 0 && !h.Front:
		// We know nothing of this link yet (a restart): start from the
		// sender's first unanswered signal, or a lost one before this
		// would later look decided.
		return OutOfOrder, reject.Errorf(reject.OutOfOrder, "signal %d: this receiver starts afresh; resend from your first unanswered signal", h.Seq)
	case h.Prev != 0 && o.Last != 0 && h.Prev != o.Last:
		return OutOfOrder, reject.Errorf(reject.OutOfOrder, "signal %d follows %d, but the last decided is %d: resend from there", h.Seq, h.Prev, o.Last)
	}
	return Take, nil
}

// Taken records that the signal of hop h was decided (unless its store
// write fails later: then Rollback).
func (o *Order) Taken(h Hop) {
	if h.Seq != 0 {
		o.Last = h.Seq
	}
}

// Rollback goes back to last, the last sequence decided for good in
// epoch, after a failed store write voided what was checked after it.
func (o *Order) Rollback(epoch string, last uint64) {
	if epoch == o.Epoch {
		o.Last = last
	}
}

// String is the order for logs.
func (o Order) String() string { return fmt.Sprintf("%s/%d", o.Epoch, o.Last) }
