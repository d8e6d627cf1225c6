package outbound

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// RefreshStats is what one refresh sent.
type RefreshStats struct {
	// Read: the conditions' latest signals read from the store; Sent:
	// those re-stated to the peer (active, passed by the export policy);
	// Resent: sends again after a "not now" answer or silence; Kept:
	// those sent only to keep the peer's condition (their latest signal
	// was still on its way through the durable export).
	Read, Sent, Resent, Kept int
	Took                     time.Duration
}

// refreshTimeout is how long a refresh waits for an answer before it
// sends what is unanswered again.
const refreshTimeout = 5 * time.Second

// Refresh re-states to the peer the current state of what we export to
// it (BGP's route refresh): for each condition, the latest stored signal,
// unless it is a clear or has expired, through today's export policy,
// redacted, signed again and tagged as the sender does; never history.
// begin goes out first and end (with the count re-stated) last, both on
// the link's own connection so the peer sees them in order around the
// signals; end only once the peer answered every signal. The refresh's
// signals carry link.HeaderRefresh and no sequence: they make no
// ordering claim, and the peer stores only what it does not hold.
//
// A condition whose latest signal lies beyond the export consumer's
// acknowledgement floor when the refresh starts is on its way through the
// durable export, in order: a re-statement sent around it could reach the
// peer before an older signal of its source, so it goes with
// link.HeaderRefreshKeep, which only keeps the peer's condition from the
// End-of-RIB's sweep and is never stored. End-of-RIB
// goes once the export decided everything stored when the refresh began
// (up to wait; then it goes anyway), so the peer's table holds the
// conditions changed meanwhile before it withdraws what was not stated.
func (s *Sender) Refresh(ctx context.Context, js jetstream.JetStream, id string, wait time.Duration,
	begin func() error, end func(count int) error) (RefreshStats, error) {
	start := time.Now()
	var st RefreshStats
	floor, err := ackFloor(ctx, js, s.peer)
	if err != nil {
		return st, fmt.Errorf("refresh to %s: %w", s.peer, err)
	}
	replyPrefix := subject.Ack(s.self) + "." + nuid.Next()
	replies := make(chan *nats.Msg, 4*s.window)
	sub, err := s.nc.ChanSubscribe(replyPrefix+".*", replies)
	if err != nil {
		return st, fmt.Errorf("refresh to %s: %w", s.peer, err)
	}
	defer sub.Unsubscribe()
	if err := s.nc.Flush(); err != nil {
		return st, fmt.Errorf("refresh to %s: %w", s.peer, err)
	}
	if err := begin(); err != nil {
		return st, fmt.Errorf("refresh to %s: begin: %w", s.peer, err)
	}

	var (
		mu      sync.Mutex
		pending = map[string]*nats.Msg{}
		n       int
		lastAns = time.Now()
	)
	// settle takes the answers come so far; with block, it waits for one
	// (or the timeout, which sends everything unanswered again).
	settle := func(block bool) error {
		take := func(a *nats.Msg) {
			mu.Lock()
			defer mu.Unlock()
			out, ok := pending[a.Subject]
			if !ok {
				return
			}
			lastAns = time.Now()
			ans, err := signal.ParseAnswer(a.Data)
			if err == nil && ans.Status == signal.StatusRejected && link.Retryable(ans.Reason) {
				time.Sleep(20 * time.Millisecond) // not now: the peer's rate limit, say
				st.Resent++
				_ = s.publish(out)
				return
			}
			delete(pending, a.Subject)
		}
		for {
			select {
			case a := <-replies:
				take(a)
				if block {
					return nil
				}
			case <-ctx.Done():
				return ctx.Err()
			default:
				if !block {
					return nil
				}
				select {
				case a := <-replies:
					take(a)
					return nil
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(refreshTimeout):
					mu.Lock()
					if time.Since(lastAns) >= refreshTimeout {
						for _, out := range pending {
							st.Resent++
							_ = s.publish(out)
						}
						lastAns = time.Now()
					}
					mu.Unlock()
					return nil
				}
			}
		}
	}
	now := time.Now()
	var sendErr error
	var last uint64 // the latest stored signal the export may send
	seen := map[string]bool{}
	for _, filter := range s.policy.Subjects() {
		_, err := store.LastPerSubject(ctx, js, store.SignalStream, filter, func(m jetstream.Msg) {
			st.Read++
			if sendErr != nil || seen[m.Subject()] {
				return
			}
			meta, err := m.Metadata()
			if err != nil {
				return
			}
			last = max(last, meta.Sequence.Stream)
			// Beyond the floor: on its way through the durable export (or
			// decided with its acknowledgement not yet counted). Sent to
			// keep the peer's condition, never to be stored from here.
			keep := meta.Sequence.Stream > floor
			seen[m.Subject()] = true
			k, err := subject.ParseSignal(m.Subject())
			if err != nil {
				return
			}
			ev, err := signal.DecodeStructured(m.Data())
			if err != nil || ev.State == signal.Cleared || !ev.ExpiryTime.IsZero() && !ev.ExpiryTime.After(now) {
				return
			}
			d := s.policy.Decide(ev, k.Class)
			if !d.Export {
				return
			}
			c, ok := s.reshape(ev, d.Rule)
			if !ok {
				return
			}
			out, err := outgoing(s.self, k, ev)
			if err != nil {
				return
			}
			c.Out = out
			n++
			out.Reply = replyPrefix + "." + strconv.Itoa(n)
			out.Header.Set(link.HeaderRefresh, id)
			if keep {
				out.Header.Set(link.HeaderRefreshKeep, "1")
				st.Kept++
			}
			out.Header.Set(link.HeaderSent, strconv.FormatInt(time.Now().UnixNano(), 10))
			mu.Lock()
			pending[out.Reply] = out
			full := len(pending) >= s.window
			mu.Unlock()
			if err := s.publish(out); err != nil {
				sendErr = err
				return
			}
			audit(s.cfg.Audit, s.peer, c)
			st.Sent++
			if err := settle(full); err != nil {
				sendErr = err
			}
		})
		if err == nil {
			err = sendErr
		}
		if err != nil {
			return st, fmt.Errorf("refresh to %s: %w", s.peer, err)
		}
	}
	for {
		mu.Lock()
		left := len(pending)
		mu.Unlock()
		if left == 0 {
			break
		}
		if err := settle(true); err != nil {
			return st, fmt.Errorf("refresh to %s: %d unanswered: %w", s.peer, left, err)
		}
	}
	deadline := time.Now().Add(wait)
	for {
		f, err := ackFloor(ctx, js, s.peer)
		if err == nil && f >= last || !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("refresh to %s: %w", s.peer, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := end(st.Sent); err != nil {
		return st, fmt.Errorf("refresh to %s: end-of-rib: %w", s.peer, err)
	}
	st.Took = time.Since(start)
	return st, nil
}

// ackFloor reads the peer's export consumer's acknowledgement floor:
// every stored signal up to it is decided for the peer.
func ackFloor(ctx context.Context, js jetstream.JetStream, peer string) (uint64, error) {
	info, err := exportInfo(ctx, js, peer)
	if err != nil {
		return 0, err
	}
	return info.AckFloor.Stream, nil
}
