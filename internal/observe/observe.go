// Package observe carries what happens to signals out of the pipelines: to
// the demo's output, to logs and, later, to metrics. Pipelines report; they
// never wait on an observer, so an observer must be fast and must not block.
package observe

import (
	"time"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// Local names local producers where a peer id would stand.
const Local = "local"

// Acceptance is a signal accepted from a local producer.
type Acceptance struct {
	Node      string
	Event     *signal.Event
	Duplicate bool
}

// Crossing is a signal accepted from a peer: it crossed a border.
type Crossing struct {
	From, To  string
	Event     *signal.Event
	Latency   time.Duration // from the sender's export to our store; 0 if unknown
	Duplicate bool
}

// Rejection is a refused signal.
type Rejection struct {
	Node string // where it was refused
	From string // peer id or Local; "" for a drop on the way out
	// To is the peer a signal of ours was on its way to, for a drop at
	// our end (reject.BufferAge, BufferBytes, Undeliverable, StoreBound,
	// DeliveryChanged).
	To     string
	Reason reject.Reason
	Detail string
	Event  *signal.Event // nil when the message could not be decoded
	// Count is how many signals the rejection stands for, when it is more
	// than one (a drop of several at once: StoreBound, DeliveryChanged;
	// Event is nil then). 0 means one: see Signals.
	Count uint64
}

// Signals is how many signals r stands for: Count, or 1 when it is 0.
func (r Rejection) Signals() uint64 { return max(r.Count, 1) }

// Observer receives pipeline events.
type Observer interface {
	Accepted(Acceptance)
	Crossed(Crossing)
	Rejected(Rejection)
}

// Multi fans out to several observers in order.
type Multi []Observer

func (m Multi) Accepted(a Acceptance) {
	for _, o := range m {
		o.Accepted(a)
	}
}

func (m Multi) Crossed(c Crossing) {
	for _, o := range m {
		o.Crossed(c)
	}
}

func (m Multi) Rejected(r Rejection) {
	for _, o := range m {
		o.Rejected(r)
	}
}
