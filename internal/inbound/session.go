package inbound

import (
	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/conditions"
)

// SetSession hands the peer's session messages (subject.Session) to
// f, on the subscription's goroutine, in link order with its signals. Set
// it before the subscription starts.
func (r *Receiver) SetSession(f func(m *nats.Msg)) { r.onSession = f }

// SetOnChange tells f of the changes of the condition table the receiver
// makes itself (a refresh's re-statements); the store's feed tells the
// rest. Set it before the subscription starts.
func (r *Receiver) SetOnChange(f func(conditions.Change)) { r.OnChange = f }

// Sync runs f at the pipeline's end once every link message handed over
// before it is decided: a refresh's begin and End-of-RIB take their place
// among its signals. Call it from the subscription's goroutine (the
// session handler); after Close, f is not run.
func (r *Receiver) Sync(f func()) {
	r.closing.RLock()
	defer r.closing.RUnlock()
	if r.closed {
		return
	}
	r.jobs <- job{sync: f}
}
