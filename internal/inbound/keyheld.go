package inbound

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// KeyHolder keeps the signals refused only for want of their origin's
// signing key, per peer and in order, until the pins change
// (store.KeyHeldStream).
type KeyHolder interface {
	KeyHold(ctx context.Context, peer, pinned, linkSubj string, hdr nats.Header, body []byte) error
	KeyHeldBy(ctx context.Context, peer string) ([]store.KeyHeld, error)
	KeyUnhold(ctx context.Context, seq uint64) error
}

// keyHeldCounts are the receiver's counts of signals held for want of a
// key: held, refused at the hold's bound, released (stored) and
// dead-lettered when checked again.
type keyHeldCounts struct {
	held, overBound, released, refused atomic.Uint64
}

// KeyHeldStats are the counts of the peer's signals held for want of
// their origin's key.
type KeyHeldStats struct {
	Held      uint64 `json:"held"`
	OverBound uint64 `json:"over_bound"`
	Released  uint64 `json:"released"`
	Refused   uint64 `json:"refused"`
}

// KeyHolds returns the counts of the peer's signals held for want of
// their origin's key since the receiver started.
func (r *Receiver) KeyHolds() KeyHeldStats {
	c := &r.keyHeldN
	return KeyHeldStats{Held: c.held.Load(), OverBound: c.overBound.Load(), Released: c.released.Load(), Refused: c.refused.Load()}
}

// keyHold holds a signal that failed only its signature check, for want
// of its origin's key; every other check it passed. It is answered
// rejected key-held: the sender is done with it (not retryable), and it
// is not accepted, as it may never verify. Past the hold's bound it is
// refused as before, with its signature's reason, and dead-lettered.
func (r *Receiver) keyHold(ctx context.Context, m *nats.Msg, ev *signal.Event, why error) signal.Answer {
	pinned := r.Verifier.Pinned(ev.Origin)
	if err := r.KeyHeld.KeyHold(ctx, r.peer, pinned, m.Subject, m.Header, m.Data); err != nil {
		r.keyHeldN.overBound.Add(1)
		return r.refuse(ctx, m, ev, fmt.Errorf("%w; not held for a later pin: %d signals of %s are held for want of a key already (store.KeyHeldPerPeer), or the store cannot hold it: %v",
			why, store.KeyHeldPerPeer, r.peer, err))
	}
	r.keyHeldN.held.Add(1)
	detail := fmt.Sprintf("%s; held until the pins change (a key rotation its origin announces, or peers[].signing_key, origins[] and a start): checked again then", why)
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.KeyHeld, Detail: detail, Event: ev})
	r.log.Warn().Str("reason", string(reject.KeyHeld)).Str("origin", ev.Origin).Str("type", ev.Type).Str("subject", ev.Subject).Str("id", ev.ID).
		Str("error", why.Error()).Msg("link: signal under a key not pinned held until the pins change")
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reject.KeyHeld), Error: detail}
}

// RecheckKeyHeld checks the peer's key-held signals again, in the
// pipeline's end in link order with its signals: the pins changed (a key
// rotation accepted while the node runs).
func (r *Receiver) RecheckKeyHeld() {
	if r.KeyHeld != nil {
		r.Sync(r.recheckKeyHeld)
	}
}

// recheckKeyHeld checks again, in the order they came, the peer's signals
// held for want of a key whose origin's pin changed since they were held:
// those that verify now go on through the settle stages to the store (or
// dampening's hold), the others are dead-lettered with their reason.
// Those whose origin's pin did not change stay held. It runs in the
// pipeline's end before the link's first message.
func (r *Receiver) recheckKeyHeld() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	held, err := r.KeyHeld.KeyHeldBy(ctx, r.peer)
	if err != nil {
		r.log.Error().Err(err).Msg("link: signals held for want of a key not read: checked again at the next start")
		return
	}
	kept := 0
	for _, h := range held {
		m := &nats.Msg{Subject: h.Subject, Header: h.Header, Data: h.Data}
		a := Arrival{Subject: h.Subject, Header: h.Header, Data: h.Data, Now: time.Now()}
		ev, err := r.Inspector.Decode(h.Header, h.Data)
		if err == nil && r.Verifier.Pinned(ev.Origin) == h.Pinned {
			kept++ // its origin's pin did not change
			continue
		}
		a.Ev = ev
		if err == nil {
			err = r.run(Check, &a)
		}
		j := job{m: m, chk: &checks{a: a, err: err}}
		j = r.settle(j)
		var ans signal.Answer
		switch {
		case j.put != nil:
			ans = r.store(ctx, m, j.put)
		case j.hold != nil:
			ans = r.hold(ctx, m, j.hold)
		case j.refuse != nil:
			ans = r.refuse(ctx, m, j.ev, fmt.Errorf("held for want of a key, checked again with the pins of this start: %w", j.refuse))
			r.keyHeldN.refused.Add(1)
		default:
			ans = j.ans // a duplicate
		}
		if ans.Status == signal.StatusRejected && ans.Reason == string(reject.Unavailable) {
			r.log.Error().Str("error", ans.Error).Msg("link: a signal held for want of a key not stored: the rest stay held until the pins change again or the next start")
			return
		}
		if ans.Status != signal.StatusRejected {
			r.keyHeldN.released.Add(1)
		}
		if err := r.KeyHeld.KeyUnhold(ctx, h.Seq); err != nil {
			r.log.Error().Err(err).Msg("link: a released signal held for want of a key not removed: a duplicate at the next start")
		}
	}
	if len(held) > 0 {
		st := r.KeyHolds()
		r.log.Info().Int("held", len(held)).Uint64("released", st.Released).Uint64("refused", st.Refused).Int("kept", kept).
			Msg("link: signals held for want of a key checked again with the pins now in force")
	}
}
