package inbound

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/inbound/dampening"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// Holder keeps the latest signal of each condition that flap dampening
// suppressed, durably, until it is released (store.Store).
type Holder interface {
	Hold(ctx context.Context, h *store.Held) error
	HeldSignal(ctx context.Context, peer, origin, class, subj string) (*store.Held, bool, error)
	Unhold(ctx context.Context, peer, origin, class, subj string) error
	HeldBy(ctx context.Context, peer string) ([]*store.Held, error)
}

// holdJob is a signal of a suppressed condition, to be held.
type holdJob struct {
	ev   *signal.Event
	subj string
	key  conditions.Key
	dec  dampening.Decision
	at   time.Time
}

// releaseJob is a suppressed condition to release: its held signal is
// stored (or, refused by import.max_conditions, dead-lettered).
type releaseJob struct {
	dampening.Release
	refuse error
}

// releaseRetry is how soon a release that could not be stored is tried
// again.
const releaseRetry = time.Second

// startDampening runs the release clock of import.dampening: it asks the
// pipeline's end to look for releases, at most one request pending.
func (r *Receiver) startDampening() {
	tick := min(250*time.Millisecond, time.Duration(r.damp.Params().HalfLife)/8)
	tick = max(tick, 10*time.Millisecond)
	r.stopDamp, r.dampDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.dampDone)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-r.stopDamp:
				return
			case <-t.C:
				if r.tickPending.Swap(true) {
					continue
				}
				select {
				case r.jobs <- job{tick: true}:
				case <-r.stopDamp:
					return
				}
			}
		}
	}()
}

// releaseDue releases what is due, in the pipeline's end: between two
// link messages, in link order.
func (r *Receiver) releaseDue(ctx context.Context) {
	r.tickPending.Store(false)
	for _, rel := range r.damp.Due(time.Now()) {
		j := &releaseJob{Release: rel}
		if rel.State != signal.Cleared {
			// A released raise counts against import.max_conditions as
			// one that crossed now.
			j.refuse = r.checkMaxConditions(&signal.Event{Origin: rel.Key.Origin, Subject: rel.Key.Subject, State: rel.State}, rel.Key.Class)
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		r.release(ctx, j)
		cancel()
	}
}

// Restore takes up the suppressions that were under way when the node
// stopped: their held signals are in the store.
func (r *Receiver) Restore(ctx context.Context) error {
	if r.damp == nil || r.Held == nil {
		return nil
	}
	hs, err := r.Held.HeldBy(ctx, r.peer)
	if err != nil {
		return fmt.Errorf("signals held by dampening for %s: %w", r.peer, err)
	}
	for _, h := range hs {
		ev, err := signal.DecodeStructured(h.Signal)
		if err != nil {
			r.log.Error().Err(err).Str("class", h.Class).Str("subject", h.Subject).Msg("dampening: held signal unreadable: dropped")
			_ = r.Held.Unhold(ctx, r.peer, h.Origin, h.Class, h.Subject)
			continue
		}
		k := conditions.Key{Peer: r.peer, Origin: h.Origin, Class: h.Class, Subject: h.Subject}
		r.damp.Restore(k, ev, h.Penalty, h.PenaltyAt, h.SuppressedAt)
	}
	if len(hs) > 0 {
		r.log.Info().Int("suppressed", len(hs)).Msg("dampening: suppressed conditions taken up after a restart")
	}
	return nil
}

// dampen passes ev to flap dampening; it returns the hold when ev is held.
func (r *Receiver) dampen(ev *signal.Event, class, subj string) *holdJob {
	k := conditions.Key{Peer: r.peer, Origin: ev.Origin, Class: class, Subject: ev.Subject}
	now := time.Now()
	dec := r.damp.Signal(k, ev, now)
	if dec.Untracked {
		r.untrackedLog.log(now, func(n int) {
			_, _, total := r.damp.Counts()
			r.log.Warn().Str("reason", string(reject.Dampened)).Int("count", n).Uint64("total", total).Int("max_entries", r.damp.Params().MaxEntries).
				Msg("dampening: import.dampening.max_entries conditions of the peer tracked, none of them can be forgotten yet: signals of other conditions pass undampened")
		})
	}
	if dec.Suppressed {
		r.suppressLog.log(now, func(n int) {
			l := r.log.Warn().Str("reason", string(reject.Dampened)).Str("class", class).Str("subject", ev.Subject).Str("origin", ev.Origin).
				Float64("penalty", dec.Penalty).Time("reuse_at", dec.ReuseAt)
			if n > 1 {
				l = l.Int("suppressed_since_last_line", n)
			}
			l.Msg("dampening: condition suppressed: its signals are held until it is released")
		})
	}
	if !dec.Hold {
		return nil
	}
	return &holdJob{ev: ev, subj: subj, key: k, dec: dec, at: now}
}

// hold keeps a signal of a suppressed condition as its latest; a signal
// held before it is dead-lettered (reason dampened). When it cannot be
// held, it is stored as if the condition were not suppressed: dampening
// gives way, nothing is lost.
func (r *Receiver) hold(ctx context.Context, m *nats.Msg, h *holdJob) signal.Answer {
	ev, k := h.ev, h.key
	id := ev.Source + " " + ev.ID
	prev, ok, err := r.Held.HeldSignal(ctx, r.peer, k.Origin, k.Class, k.Subject)
	again := false // the held signal once more: a resend, or a refresh re-stating it
	if err == nil && ok {
		if pev, err := signal.DecodeStructured(prev.Signal); err != nil || pev.Source+" "+pev.ID != id {
			r.superseded(ctx, prev.Signal, fmt.Sprintf("%s %s from %s is suppressed by flap dampening (import.dampening): this signal was held, then superseded by %s before the condition was released",
				k.Class, k.Subject, r.peer, ev.ID))
		} else {
			again = true
		}
	}
	if err == nil {
		err = r.Held.Hold(ctx, &store.Held{Peer: r.peer, Origin: k.Origin, Class: k.Class, Subject: k.Subject, StoreSubject: h.subj,
			Signal: ev.Encode(), Penalty: h.dec.Penalty, PenaltyAt: h.at, SuppressedAt: h.dec.SuppressedAt})
	}
	if err != nil {
		ans := r.store(ctx, m, &putJob{ev: ev, subj: h.subj})
		if ans.Status != signal.StatusRejected {
			r.damp.Unsuppress(k, id)
			_ = r.Held.Unhold(ctx, r.peer, k.Origin, k.Class, k.Subject) // an older held signal is obsolete now
			r.log.Warn().Err(err).Str("class", k.Class).Str("subject", k.Subject).
				Msg("dampening: signal of a suppressed condition could not be held: stored, and the suppression ends")
		}
		return ans
	}
	r.Replay.Record(ev.Source, ev.ID)
	if !again {
		r.dampened.Add(1) // counts signals held, not how often one arrived
	}
	return signal.Answer{Status: signal.StatusAccepted, Subject: h.subj}
}

// superseded dead-letters a held signal that will never be delivered.
func (r *Receiver) superseded(ctx context.Context, body []byte, detail string) {
	if err := r.Store.DeadLetter(ctx, r.peer, string(reject.Dampened), detail, nil, body); err != nil {
		r.log.Error().Err(err).Msg("dampening: dead letter not stored")
	}
	r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reject.Dampened, Detail: detail})
}

// release delivers a suppressed condition's held signal: stored as the
// peer sent it, its origin signature intact.
func (r *Receiver) release(ctx context.Context, j *releaseJob) {
	k := j.Key
	lg := r.log.With().Str("class", k.Class).Str("subject", k.Subject).Str("origin", k.Origin).Logger()
	h, ok, err := r.Held.HeldSignal(ctx, r.peer, k.Origin, k.Class, k.Subject)
	if err != nil {
		r.releaseFailed(ctx, j, nil, err)
		return
	}
	if !ok {
		lg.Error().Msg("dampening: released condition has no held signal")
		r.damp.Released(j.Release, true, time.Now(), 0)
		return
	}
	ev, err := signal.DecodeStructured(h.Signal)
	if err == nil {
		err = r.Verifier.Verify(ev) // what comes out of the store is checked like what comes off the link
	}
	if err == nil && j.refuse != nil {
		err = j.refuse
	}
	if err != nil {
		reason := reject.ReasonOf(err)
		if reason == "" {
			reason = reject.BadSignature
		}
		lg.Warn().Err(err).Str("reason", string(reason)).Msg("dampening: released signal refused")
		if dlErr := r.Store.DeadLetter(ctx, r.peer, string(reason), err.Error(), nil, h.Signal); dlErr != nil {
			lg.Error().Err(dlErr).Msg("dampening: dead letter not stored")
		}
		r.Observer.Rejected(observe.Rejection{Node: r.self, From: r.peer, Reason: reason, Detail: err.Error(), Event: ev})
		_ = r.Held.Unhold(ctx, r.peer, k.Origin, k.Class, k.Subject)
		r.damp.Released(j.Release, true, time.Now(), 0)
		return
	}
	dup, err := r.Store.Put(ctx, h.StoreSubject, ev, h.Signal)
	if err != nil {
		r.releaseFailed(ctx, j, h, err)
		return
	}
	r.Replay.Record(ev.Source, ev.ID)
	r.Observer.Crossed(observe.Crossing{From: r.peer, To: r.self, Event: ev, Duplicate: dup})
	if err := r.Held.Unhold(ctx, r.peer, k.Origin, k.Class, k.Subject); err != nil {
		lg.Warn().Err(err).Msg("dampening: released signal stays in the held stream (a restart releases it again; the store drops the copy within its duplicate window)")
	}
	r.damp.Released(j.Release, true, time.Now(), 0)
	lg.Info().Str("why", j.Why).Float64("penalty", j.Penalty).Stringer("suppressed_for", time.Since(j.SuppressedAt)).Str("state", string(ev.State)).Str("id", ev.ID).
		Msg("dampening: condition released: its latest signal is delivered")
}

// releaseFailed suppresses the condition again, to retry, unless a later
// signal of it made the held one obsolete.
func (r *Receiver) releaseFailed(ctx context.Context, j *releaseJob, h *store.Held, err error) {
	k := j.Key
	if r.damp.Released(j.Release, false, time.Now(), releaseRetry) {
		r.log.Warn().Err(err).Str("class", k.Class).Str("subject", k.Subject).Stringer("retry", releaseRetry).Msg("dampening: release not stored: retrying")
		return
	}
	if h != nil {
		r.superseded(ctx, h.Signal, fmt.Sprintf("%s %s from %s: this held signal could not be released (%v), and a later signal of the condition came meanwhile", k.Class, k.Subject, r.peer, err))
	}
	_ = r.Held.Unhold(ctx, r.peer, k.Origin, k.Class, k.Subject)
}

// Suppressed returns the peer's conditions suppressed by dampening.
func (r *Receiver) Suppressed(now time.Time) []dampening.Suppressed {
	if r.damp == nil {
		return nil
	}
	return r.damp.Snapshot(now)
}

// Dampening reports how many of the peer's conditions are suppressed
// and how many of its signals were held.
func (r *Receiver) Dampening() (suppressed int, dampened uint64) {
	if r.damp == nil {
		return 0, 0
	}
	_, s, _ := r.damp.Counts()
	return s, r.dampened.Load()
}

// logSampler bounds how often a line is logged: at most 10 a second; the
// lines skipped meanwhile are counted into the next one.
type logSampler struct {
	at      time.Time
	n, skip int
}

func (s *logSampler) log(now time.Time, f func(n int)) {
	if now.Sub(s.at) >= time.Second {
		s.at, s.n = now, 0
	}
	if s.n >= 10 {
		s.skip++
		return
	}
	s.n++
	f(s.skip + 1)
	s.skip = 0
}
