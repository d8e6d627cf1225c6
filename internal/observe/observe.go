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
	// our end (reject.BufferAge, BufferBytes, Undeliverable).
	To     string
	Reason reject.Reason
	Detail string
	Event  *signal.Event // nil when the message could not be decoded
}

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
