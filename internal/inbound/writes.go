package inbound

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// The pipeline's end settles each signal in link order and hands the
// accepted ones to the store without waiting for their writes (with
// storage.sync always, each write waits for its fsync): up to MaxWrites
// writes are in flight. Answers still go to the peer strictly in link
// order: a signal is answered once its write is acknowledged and every
// link message before it is answered, so "last decided" (a probe's Last)
// never passes a write that is not acknowledged.
//
// Go-back-N: when a write fails (an error, no answer within
// writeTimeout, the store full or its connection away), that signal and
// every link message after it that is still unanswered are answered "not
// now" (retryable: the sender probes, then resends all that is
// unanswered, in order), and checking rolls back to the last signal
// decided (Receiver.rb), so the resends are checked again, not taken for
// duplicates. A later write that was acknowledged all the same is
// stored: what follows a store write happens for it then (replay guard,
// counters, Adj-RIB-In), and its resend is answered duplicate by the
// replay guard, or by the store's dedup (Nats-Msg-Id) behind it.
//
// Two writes of one condition (one store subject) are never in flight
// together: the second one is settled only once the first is
// acknowledged. So a failed write can let a later signal of another
// condition into the store before it, never a later signal of its own
// condition: the condition table, which follows the store's order, sees
// each condition's signals in link order. A lost store connection lets
// no later signal in at all: the client drops its unflushed bytes and
// fails every write in flight, the store's connection has no reconnect
// buffer (a write in the instant before the client notices the loss
// fails), PutOrdered issues none while it reconnects, and once it is back none is issued
// before the writes in flight on the lost one are answered. Everything else the end does
// (holds, dead letters, releases, refreshes, a change of the sender's
// store epoch) waits for the writes in flight first, as before.

// MaxWrites bounds the store writes in flight on one link. The sender's
// window (config.DefaultLinkWindow, 512) bounds what the peer leaves
// unanswered; the store stops gaining from more writes in flight long
// before that, and each one in flight is resent after a failed write
// before it: 64 keeps a go-back-N small.
const MaxWrites = 64

// writeTimeout: a write not acknowledged this long after it was issued
// has failed (it may still land: its resend is a duplicate).
const writeTimeout = 5 * time.Second

var errWriteTimeout = errors.New("store write not acknowledged within 5s")

// write is a link message between its settling and its answer: a signal
// whose store write is in flight, or an answer waiting its turn behind
// one.
type write struct {
	j   job
	ans signal.Answer // decided without a write
	// issued: a write to subj (j.put's store subject), issued at at;
	// ok and fail are its future's, or err says why it was not issued.
	issued bool
	subj   string
	ok     <-chan *jetstream.PubAck
	fail   <-chan error
	err    error
	at     time.Time
}

// end is the state of the pipeline's end; only complete's goroutine
// touches it.
type end struct {
	r   *Receiver
	ctx context.Context
	// gen is the current generation: jobs of an older one were checked
	// after a write that failed, and are answered "not now".
	gen     uint64
	epoch   string
	decided uint64 // the last sequence decided for good, in epoch
	// q holds the link messages settled and not answered yet, in link
	// order: a ring of PipelineDepth, n of them from head; writes of
	// them are writes.
	q       []write
	head, n int
	writes  int
	conn    uint64         // the store connection's reconnects when they were issued
	flight  map[string]int // store subjects with a write in q
	timer   *time.Timer
}

// push queues w behind the others, once there is room.
func (e *end) push(w write) {
	e.await(len(e.q) - 1)
	e.q[(e.head+e.n)%len(e.q)] = w
	e.n++
	if w.issued {
		e.writes++
		e.flight[w.subj]++
	}
}

// pop takes the head out.
func (e *end) pop() write {
	w := e.q[e.head]
	e.q[e.head] = write{}
	e.head = (e.head + 1) % len(e.q)
	e.n--
	if w.issued {
		e.writes--
		if e.flight[w.subj]--; e.flight[w.subj] <= 0 {
			delete(e.flight, w.subj)
		}
	}
	return w
}

// complete is the pipeline's end: it settles the link's messages, writes
// accepted signals (without waiting: see above) and dead letters, and
// answers in link order. Each write has ctx's values and its own time
// limit.
func (r *Receiver) complete(ctx context.Context) {
	defer close(r.finished)
	e := &end{r: r, ctx: ctx, q: make([]write, PipelineDepth), flight: map[string]int{}, timer: time.NewTimer(time.Hour)}
	e.timer.Stop()
	for {
		j, ok := e.next()
		if !ok {
			e.await(0)
			return
		}
		e.take(j)
	}
}

// next returns the next job, answering meanwhile the writes in flight as
// they are acknowledged.
func (e *end) next() (job, bool) {
	for e.n > 0 {
		if j, ok, got := e.step(e.r.jobs); got {
			return j, ok
		}
	}
	j, ok := <-e.r.jobs
	return j, ok
}

// await answers the head until at most n link messages wait.
func (e *end) await(n int) {
	for e.n > n {
		e.step(nil)
	}
}

// awaitSubject answers the head until no write to subj is in flight.
func (e *end) awaitSubject(subj string) {
	for e.flight[subj] > 0 {
		e.step(nil)
	}
}

// step waits for the head's write and answers it, unless a job comes
// from jobs first (got): then it returns that job.
func (e *end) step(jobs <-chan job) (j job, ok, got bool) {
	h := &e.q[e.head]
	if h.ok == nil {
		e.finish(nil, h.err)
		return j, false, false
	}
	select { // what is answered goes first: a failure before a new write
	case ack := <-h.ok:
		e.finish(ack, nil)
		return j, false, false
	case err := <-h.fail:
		e.finish(nil, err)
		return j, false, false
	default:
	}
	e.timer.Reset(time.Until(h.at.Add(writeTimeout)))
	defer e.timer.Stop()
	select {
	case j, ok = <-jobs: // nil: never
		return j, ok, true
	case ack := <-h.ok:
		e.finish(ack, nil)
	case err := <-h.fail:
		e.finish(nil, err)
	case <-e.timer.C:
		e.finish(nil, errWriteTimeout)
	}
	return j, false, false
}

// finish takes the head out and answers it: ack is its write's
// acknowledgement, err its failure.
func (e *end) finish(ack *jetstream.PubAck, err error) {
	h := e.pop()
	ans := h.ans
	if p := h.j.put; h.issued {
		switch {
		case err == nil:
			// Stored, even when an earlier write failed: what
			// follows a store write happens now, once.
			e.r.Store.Written(p.subj, p.ev, ack)
			ans = e.r.stored(h.j.m, p, ack.Duplicate)
			ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
			e.r.forgetRefused(ctx, p.ev, p.class)
			cancel()
		case h.j.gen == e.gen:
			ans = e.r.unstored(p.ev, err)
		}
	}
	e.answer(h.j, ans)
}

// take settles a job and writes it, or queues its answer.
func (e *end) take(j job) {
	r := e.r
	if j.tick {
		e.await(0)
		r.releaseDue(e.ctx)
		return
	}
	if j.sync != nil {
		e.await(0)
		j.sync()
		return
	}
	if j.epoch != e.epoch {
		e.await(0)
		e.epoch, e.decided = j.epoch, 0
	}
	if j.chk != nil {
		j.chk.done.Wait()
		if j.gen == e.gen && j.chk.err == nil && j.chk.a.unpinned == nil {
			if subj, err := subject.Signal(j.chk.a.Key); err == nil {
				e.awaitSubject(subj) // the condition's write before it first
			}
		}
		if j.gen == e.gen {
			j = r.settle(j)
		}
	}
	switch {
	case j.gen != e.gen, j.probe, j.put == nil && j.hold == nil && j.keyHold == nil && j.refuse == nil:
		e.queue(j, j.ans)
	case j.put != nil:
		e.put(j)
	default:
		// Held, key-held or refused: written now, behind the writes in
		// flight.
		e.await(0)
		if j.gen != e.gen {
			e.answer(j, j.ans)
			return
		}
		ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
		var ans signal.Answer
		switch {
		case j.hold != nil:
			if ans = r.hold(ctx, j.m, j.hold); ans.Status != signal.StatusRejected {
				r.forgetRefused(ctx, j.hold.ev, j.hold.key.Class)
			}
		case j.keyHold != nil:
			ans = r.keyHold(ctx, j.m, j.ev, j.keyHold)
		default:
			ans = r.refuse(ctx, j.m, j.ev, j.refuse)
			if j.keep != "" {
				r.keepRefused(ctx, j.m, j.ev, j.keep) // answered as before: refused
			}
		}
		cancel()
		e.answer(j, ans)
	}
}

// queue answers j with ans in its turn: now if nothing is in flight.
func (e *end) queue(j job, ans signal.Answer) {
	if e.n == 0 {
		e.answer(j, ans)
		return
	}
	e.push(write{j: j, ans: ans})
}

// put issues j's store write, once fewer than MaxWrites are in flight.
func (e *end) put(j job) {
	for e.writes >= MaxWrites {
		e.step(nil)
	}
	conn := e.r.Store.Reconnects()
	if e.writes > 0 && conn != e.conn {
		// The store connection was lost since the writes in flight
		// were issued: some may be lost. Their answers first, so this
		// one cannot land before the resend of a lost one.
		e.await(0)
	}
	if j.gen != e.gen {
		e.queue(j, j.ans) // a write before it failed meanwhile
		return
	}
	e.conn = conn
	p := j.put
	w := write{j: j, issued: true, subj: p.subj, at: time.Now()}
	fut, err := e.r.Store.PutOrdered(p.subj, p.ev.Key(), p.ev.Encode())
	if err != nil {
		w.err = err
	} else {
		w.ok, w.fail = fut.Ok(), fut.Err()
	}
	e.push(w)
	if err != nil {
		e.await(0) // go back to it now: nothing more is written meanwhile
	}
}

// answer answers a link message in its turn, and keeps the link's order:
// what is decided, and the rollback after a signal that was not stored.
func (e *end) answer(j job, ans signal.Answer) {
	switch {
	case j.gen != e.gen:
		ans = signal.Answer{Status: signal.StatusRejected, Reason: string(reject.Unavailable),
			Error: "an earlier signal could not be stored: resend from it"}
	case j.probe:
		ans = signal.Answer{Status: signal.StatusAlive, Last: e.decided}
	case j.seq != 0:
		if (j.put != nil || j.hold != nil) && ans.Status == signal.StatusRejected || j.idles {
			// Not stored: void what was checked after it. Or the link
			// idles (import.max_conditions.idle): what was handed over
			// after it is sent again later.
			if j.idles {
				e.decided = max(e.decided, j.seq)
			}
			e.gen++
			r := e.r
			r.rb.Lock()
			r.rb.gen, r.rb.epoch, r.rb.last = e.gen, e.epoch, e.decided
			r.rb.Unlock()
		} else if !(ans.Status == signal.StatusRejected && link.Retryable(ans.Reason)) {
			e.decided = max(e.decided, j.seq) // a resend of a decided signal leaves it
		}
	}
	if j.m.Reply != "" {
		_ = signal.RespondAnswer(j.m, ans) // a lost answer makes the sender retry: a duplicate we drop
	}
}
