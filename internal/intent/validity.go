package intent

import (
	"context"
	"slices"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// validityMaxWait bounds how long the validity timer sleeps: it reads
// the stored intents again at least this often, whatever it was told.
const validityMaxWait = time.Minute

// started reports whether in's validFor has started at t (none: always).
func started(in Intent, t time.Time) bool {
	v := in.ValidFor
	return v == nil || v.StartDateTime == nil || !t.Before(*v.StartDateTime)
}

// ended reports whether in's validFor has ended at t (none: never).
func ended(in Intent, t time.Time) bool {
	v := in.ValidFor
	return v != nil && v.EndDateTime != nil && !t.Before(*v.EndDateTime)
}

// inForceAt reports whether an intent we accepted is in force at t: in
// one of the inForce states, and within its validFor.
func inForceAt(in Intent, t time.Time) bool {
	return slices.Contains(inForce, in.LifecycleStatus) && started(in, t) && !ended(in, t)
}

// inWindow reports whether t lies in one of the intent's time windows
// (none: always): on one of the window's days (none: every day), from
// its start included to its end excluded, UTC.
func (v *ServiceIntention) inWindow(t time.Time) bool {
	if len(v.TimeWindows) == 0 {
		return true
	}
	t = t.UTC()
	day := days[(int(t.Weekday())+6)%7] // days starts on monday
	hm := t.Format("15:04")
	for _, w := range v.TimeWindows {
		if (len(w.Days) == 0 || slices.Contains(w.Days, day)) && hm >= w.Start && hm < w.End {
			return true
		}
	}
	return false
}

// poke wakes the validity timer: an intent was made, changed or decided.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runValidity is the validFor timer: it ends each intent whose
// endDateTime passed, at the owner (as a DELETE does) and at the partner
// (as the owner's termination does), and re-states our state to an
// owner when an intent we accepted comes into force at its
// startDateTime. It is rebuilt from the stored intents each time it
// wakes, so a restart loses nothing: an intent that ended while the
// node was down ends at start.
func (s *Service) runValidity(ctx context.Context) {
	waiting := map[string]bool{} // handled intents accepted before their start
	for {
		next := s.checkValidity(ctx, waiting)
		wait := min(time.Until(next), validityMaxWait)
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// checkValidity ends what ended, starts what started, and returns when
// the next start or end is due.
func (s *Service) checkValidity(ctx context.Context, waiting map[string]bool) time.Time {
	now := time.Now().UTC()
	next := now.Add(validityMaxWait)
	recs, err := s.store.all(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("intents: reading the intents to end those whose validFor ended; tried again in a minute")
		}
		return next
	}
	for _, rec := range recs {
		in := rec.Intent
		key := keyOf(in.Owner, in.ID)
		if in.LifecycleStatus == Terminated || in.LifecycleStatus == Rejected {
			delete(waiting, key)
			continue
		}
		switch {
		case ended(in, now):
			delete(waiting, key)
			reason := "validFor ended at " + in.ValidFor.EndDateTime.UTC().Format(time.RFC3339)
			if err := s.expire(ctx, rec, reason); err != nil && ctx.Err() == nil {
				s.log.Warn().Err(err).Str("intent", key).Msg("intents: ending an intent whose validFor ended; tried again in a minute")
			}
			continue
		case !started(in, now):
			next = earlier(next, *in.ValidFor.StartDateTime)
			if in.Role == RoleHandler {
				waiting[key] = true
			}
		case waiting[key]:
			// Came into force: what export.intent_classes now passes
			// reaches the owner (the view reads the start itself).
			delete(waiting, key)
			if slices.Contains(inForce, in.LifecycleStatus) {
				s.log.Info().Str("intent", key).Msg("intents: an intent we accepted comes into force")
				s.refresh(ctx, in.Owner)
			}
		}
		if in.ValidFor != nil && in.ValidFor.EndDateTime != nil {
			next = earlier(next, *in.ValidFor.EndDateTime)
		}
	}
	return next
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// expire ends an intent whose validFor ended: ours as its owner's DELETE
// does, one we handle as its owner's termination does, telling the owner.
func (s *Service) expire(ctx context.Context, rec *Record, reason string) error {
	in := rec.Intent
	if in.Owner == s.self {
		_, err := s.terminate(ctx, keyOf(in.Owner, in.ID), reason, true)
		return err
	}
	rec, err := s.endHandled(ctx, keyOf(in.Owner, in.ID), s.self, reason, "")
	if err != nil {
		return err
	}
	v := in.Expression.ExpressionValue
	return s.publish(ctx, wire{IntentID: in.ID, Phase: PhaseTerminated, Owner: in.Owner, Partner: s.self, Service: v.Service,
		Revision: rec.Revision, Reason: reason}, signal.Cleared)
}

// terminate ends one of our intents (a DELETE, or its validFor's end)
// and tells the partner; report keeps an IntentReport of it.
func (s *Service) terminate(ctx context.Context, key, reason string, report bool) (*Record, error) {
	rec, err := s.store.update(ctx, key, func(rec *Record) (bool, error) {
		if rec.Intent.LifecycleStatus == Terminated {
			return false, nil
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		rec.Intent.LifecycleStatus, rec.Intent.StatusChangeDate, rec.Intent.LastUpdate = Terminated, now, now
		rec.Intent.StatusReason = reason
		if report {
			rec.Reports = append(rec.Reports, s.newReport(rec, Terminated, s.self, reason, nil, now))
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	s.log.Info().Str("intent", rec.Intent.ID).Str("reason", reason).Msg("intents: terminated one of our intents")
	if err := s.propose(ctx, rec); err != nil {
		s.log.Warn().Err(err).Str("intent", rec.Intent.ID).Msg("intent terminated, the partner not told yet")
	}
	return rec, nil
}

// endHandled ends an intent we handle (its owner terminated it, or its
// validFor ended): terminated, its breaches, risks and proposal cleared
// (caused by causation), out of the view. by is who ended it.
func (s *Service) endHandled(ctx context.Context, key, by, reason, causation string) (*Record, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ended endings
	var changed bool
	rec, err := s.store.update(ctx, key, func(r *Record) (bool, error) {
		ended, changed = endings{}, false
		if r.Intent.LifecycleStatus == Terminated {
			return false, nil
		}
		r.Intent.LifecycleStatus, r.Intent.StatusChangeDate, r.Intent.LastUpdate = Terminated, now, now
		r.Intent.StatusReason = reason
		r.Reports = append(r.Reports, s.newReport(r, Terminated, by, reason, nil, now))
		ended, changed = s.endAll(r, now), true
		return true, nil
	})
	if err != nil || !changed {
		return rec, err
	}
	s.inView(ctx, rec.Intent)
	return rec, s.publishEndings(ctx, rec, ended, causation)
}
