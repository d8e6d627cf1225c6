package inbound

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/inbound/importpolicy"
	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// The peer's Adj-RIB-In (BGP's soft reconfiguration inbound): what the
// peer sent before our import policy. What the policy passed is in the
// signal stream and the condition table; what it refused is kept here,
// the latest signal per condition as the peer sent it (its origin
// signature intact), in store.RibInStream. Reimport applies the import
// policy again to both: what it now passes is admitted from the kept
// signals, without asking the peer, and what it no longer passes is
// withdrawn and kept. The peer's answer to a refused signal does not
// change: it is refused, counted and dead-lettered as before.

// RibInKeeper keeps the peer's signals refused by import policy, the
// latest per condition (store.RibInStream), and reads the stored signal
// of a condition the table holds.
type RibInKeeper interface {
	RibInPut(ctx context.Context, key, linkSubj string, hdr nats.Header, body []byte) error
	RibInDrop(ctx context.Context, key string) error
	RibInBy(ctx context.Context, peer string) ([]store.RibIn, error)
	RibInKeys(ctx context.Context, peer string) ([]string, error)
	StoredSignal(ctx context.Context, seq uint64, subj string) ([]byte, error)
}

// ribIn is the receiver's part of the peer's Adj-RIB-In. keys and the
// log sampler are the pipeline's end's alone (complete and its sync
// jobs); the counts are read by the peers view.
type ribIn struct {
	limit   int
	keys    map[string]struct{} // the conditions kept (store.RibInSubject)
	overLog logSampler

	held                                          atomic.Int64
	kept, overBound, admitted, withdrawn, dropped atomic.Uint64
}

// RibInStats are the counts of the peer's Adj-RIB-In.
type RibInStats struct {
	// Held is how many conditions of the peer have a refused signal
	// kept now, at most Limit (import.adj_rib_in.limit).
	Held  int64 `json:"held"`
	Limit int   `json:"limit"`
	// Since the start: refused signals kept; not kept past the limit or
	// the stream's share of storage.max_bytes (reason adj-rib-in-full);
	// admitted when the policy widened; conditions withdrawn when it
	// narrowed; kept signals dropped when applied again (expired, or
	// failing a check that is not import policy's).
	Kept      uint64 `json:"kept"`
	OverBound uint64 `json:"over_bound"`
	Admitted  uint64 `json:"admitted"`
	Withdrawn uint64 `json:"withdrawn"`
	Dropped   uint64 `json:"dropped"`
}

// RibIn returns the counts of the peer's Adj-RIB-In.
func (r *Receiver) RibIn() RibInStats {
	b := r.ribin
	if b == nil {
		return RibInStats{}
	}
	return RibInStats{Held: b.held.Load(), Limit: b.limit, Kept: b.kept.Load(), OverBound: b.overBound.Load(),
		Admitted: b.admitted.Load(), Withdrawn: b.withdrawn.Load(), Dropped: b.dropped.Load()}
}

// ReimportStats is what one application of the import policy to the
// peer's Adj-RIB-In did.
type ReimportStats struct {
	Read      int           `json:"read"`      // kept signals read
	Admitted  int           `json:"admitted"`  // admitted: the policy passes them now
	Kept      int           `json:"kept"`      // still refused, kept
	Dropped   int           `json:"dropped"`   // dropped: expired, or refused by another check
	Withdrawn int           `json:"withdrawn"` // held conditions the policy no longer passes
	Took      time.Duration `json:"took"`
}

// keepable reports whether a's refusal, err, is the import policy's and
// one a wider policy may lift: the class, the origin's authorisation,
// the tags and the filter, transit. A loop or a malformed path never
// passes.
func keepable(refusedAt string, err error) bool {
	if refusedAt != StageImportPolicy {
		return false
	}
	switch reject.ReasonOf(err) {
	case reject.NotImported, reject.NotAuthorized, reject.Filtered, reject.WrongOrigin:
		return true
	}
	return false
}

// loadRibIn reads which conditions of the peer have a refused signal
// kept: the bound counts them across restarts. It runs in the pipeline's
// end before the link's first message.
func (r *Receiver) loadRibIn() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := r.RibInStore.RibInKeys(ctx, r.peer)
	if err != nil {
		r.log.Error().Err(err).Msg("link: the peer's Adj-RIB-In not read: what it keeps from before is counted again as it is replaced")
	}
	for _, k := range keys {
		r.ribin.keys[k] = struct{}{}
	}
	r.ribin.held.Store(int64(len(r.ribin.keys)))
}

// keepRefused keeps a signal the import policy refused, the latest of its
// condition, replacing the one kept before; a clear removes the
// condition's (the peer no longer holds it). Past the limit a new
// condition's is not kept: counted, and logged with reason
// adj-rib-in-full. The signal's answer is already decided: refused.
func (r *Receiver) keepRefused(ctx context.Context, m *nats.Msg, ev *signal.Event, class string) {
	b := r.ribin
	key := store.RibInSubject(r.peer, ev.Origin, class, ev.Subject)
	_, has := b.keys[key]
	if ev.State == signal.Cleared {
		if has {
			r.forgetKey(ctx, key)
		}
		return
	}
	if !has && len(b.keys) >= b.limit {
		r.overRibIn(fmt.Sprintf("%d conditions of %s are kept already (peers[%s].import.adj_rib_in.limit)", b.limit, r.peer, r.peer), ev)
		return
	}
	if err := r.RibInStore.RibInPut(ctx, key, m.Subject, m.Header, m.Data); err != nil {
		r.overRibIn(fmt.Sprintf("the store did not keep it (%v): its share of storage.max_bytes is full, or it cannot write", err), ev)
		return
	}
	b.kept.Add(1)
	if !has {
		b.keys[key] = struct{}{}
		b.held.Store(int64(len(b.keys)))
	}
}

// overRibIn counts a refused signal not kept in the Adj-RIB-In and logs it
// at most ten times a second.
func (r *Receiver) overRibIn(why string, ev *signal.Event) {
	r.ribin.overBound.Add(1)
	r.ribin.overLog.log(time.Now(), func(n int) {
		r.log.Warn().Str("reason", "adj-rib-in-full").Str("type", ev.Type).Str("subject", ev.Subject).Int("count", n).
			Msg("link: a signal refused by import policy not kept for a wider policy: " + why)
	})
}

// forgetRefused removes the kept refused signal of a condition whose
// later signal was admitted: it is older than what the table holds.
func (r *Receiver) forgetRefused(ctx context.Context, ev *signal.Event, class string) {
	if r.ribin == nil || len(r.ribin.keys) == 0 {
		return
	}
	key := store.RibInSubject(r.peer, ev.Origin, class, ev.Subject)
	if _, has := r.ribin.keys[key]; has {
		r.forgetKey(ctx, key)
	}
}

func (r *Receiver) forgetKey(ctx context.Context, key string) {
	if err := r.RibInStore.RibInDrop(ctx, key); err != nil {
		// Kept: a wider policy would admit an older signal of the
		// condition; the log says so.
		r.log.Error().Err(err).Str("key", key).Msg("link: a superseded signal not removed from the peer's Adj-RIB-In")
		return
	}
	delete(r.ribin.keys, key)
	r.ribin.held.Store(int64(len(r.ribin.keys)))
}

// Reimport applies the peer's import policy again — imp, from now on, or
// the current one when imp is nil — to what the peer sent: the kept
// refused signals it now passes are admitted (checked again as the peer
// signed them, then dampening, import.max_conditions and the store, like
// any signal), and the conditions held from the peer it no longer passes
// are withdrawn (local consumers told) and kept for a later, wider policy
// (only with a new imp). Nothing is asked of the peer. It runs in the pipeline's end, in link
// order: every signal handed over after it is checked under imp. It
// returns once done, or when ctx ends (the work goes on).
func (r *Receiver) Reimport(ctx context.Context, imp *config.ImportPolicy) (ReimportStats, error) {
	if r.ribin == nil {
		return ReimportStats{}, errors.New("the receiver keeps no Adj-RIB-In")
	}
	done := make(chan ReimportStats, 1)
	r.closing.RLock()
	if r.closed || !r.started {
		r.closing.RUnlock()
		return ReimportStats{}, fmt.Errorf("the receiver of %s is not running", r.peer)
	}
	if imp != nil {
		p := *r.cfg
		p.Import = *imp
		r.policy.Store(importpolicy.New(r.self, &p).WithOrigins(r.Origins))
	}
	r.jobs <- job{sync: func() { done <- r.reimport(imp != nil) }}
	r.closing.RUnlock()
	select {
	case st := <-done:
		return st, nil
	case <-ctx.Done():
		return ReimportStats{}, fmt.Errorf("re-apply the import policy of %s: %w", r.peer, ctx.Err())
	}
}

// reimport is Reimport's work, in the pipeline's end. Only a new policy
// (narrow) may refuse what the table holds: at start the session's
// refresh withdraws what the policy of this start refuses (End-of-RIB).
func (r *Receiver) reimport(narrow bool) (st ReimportStats) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	defer func() {
		st.Took = time.Since(start)
		if st.Read == 0 && st.Withdrawn == 0 {
			return
		}
		r.log.Info().Int("read", st.Read).Int("admitted", st.Admitted).Int("kept", st.Kept).Int("dropped", st.Dropped).
			Int("withdrawn", st.Withdrawn).Stringer("took", st.Took).Msg("link: import policy applied again to the peer's Adj-RIB-In")
	}()
	if r.admitKept(ctx, &st) && narrow {
		r.withdrawRefused(ctx, &st)
	}
	return st
}

// admitKept admits the kept refused signals the policy passes now. It
// reports false when the store failed: the rest stay kept.
func (r *Receiver) admitKept(ctx context.Context, st *ReimportStats) bool {
	if len(r.ribin.keys) == 0 {
		return true // nothing kept: no store round trip (every start)
	}
	kept, err := r.RibInStore.RibInBy(ctx, r.peer)
	if err != nil {
		r.log.Error().Err(err).Msg("link: the peer's Adj-RIB-In not read: applied again at the next start or policy change")
		return false
	}
	for _, e := range kept {
		st.Read++
		hdr := e.Header
		hdr.Del(link.HeaderRefresh) // admitted as a signal, not a re-statement
		hdr.Del(link.HeaderRefreshKeep)
		m := &nats.Msg{Subject: e.Subject, Header: hdr, Data: e.Data}
		a := Arrival{Subject: e.Subject, Header: hdr, Data: e.Data, Now: time.Now(), again: true}
		if err := r.run(Check, &a); err != nil {
			if keepable(a.refusedAt, err) {
				st.Kept++
				continue
			}
			r.log.Info().Str("reason", string(reject.ReasonOf(err))).Str("error", err.Error()).
				Msg("link: a signal kept in the peer's Adj-RIB-In dropped: it no longer passes a check")
			st.Dropped++
			r.ribin.dropped.Add(1)
			r.forgetKey(ctx, e.Key)
			continue
		}
		j := r.settle(job{m: m, chk: &checks{a: a}})
		var ans signal.Answer
		switch {
		case j.put != nil:
			j.put.refresh = true // stored before (withdrawn since): the table takes it
			ans = r.store(ctx, m, j.put)
		case j.hold != nil:
			ans = r.hold(ctx, m, j.hold)
		case j.refuse != nil:
			// A settle stage (import.max_conditions): kept, and
			// tried again at the next re-application.
			r.log.Warn().Str("reason", string(reject.ReasonOf(j.refuse))).Str("error", j.refuse.Error()).
				Msg("link: a signal the import policy passes now stays in the peer's Adj-RIB-In")
			st.Kept++
			continue
		default:
			ans = j.ans // the table holds it as it is
		}
		if ans.Status == signal.StatusRejected {
			r.log.Error().Str("error", ans.Error).Msg("link: a signal of the peer's Adj-RIB-In not stored: the rest stay kept")
			return false
		}
		st.Admitted++
		r.ribin.admitted.Add(1)
		r.forgetKey(ctx, e.Key)
	}
	return true
}

// withdrawRefused withdraws the conditions held from the peer that the
// policy no longer passes, and keeps their signals for a wider policy.
func (r *Receiver) withdrawRefused(ctx context.Context, st *ReimportStats) {
	t := r.conds
	if t == nil {
		return
	}
	pol := r.policy.Load()
	for _, c := range t.Snapshot(conditions.Filter{Peer: r.peer, IncludeStale: true}) {
		probe := signal.Event{Subject: c.Subject}
		k := subject.Key{Origin: c.Origin, Class: c.Class, Service: probe.Service(), Resource: probe.Resource()}
		subj, err := subject.Signal(k)
		if err != nil {
			continue
		}
		body, err := r.RibInStore.StoredSignal(ctx, c.Seq, subj)
		if err != nil {
			r.log.Error().Err(err).Str("class", c.Class).Str("subject", c.Subject).Msg("link: a held condition's signal not read: not checked against the import policy")
			continue
		}
		ev, err := r.Inspector.Decode(nil, body)
		if err != nil {
			continue
		}
		err = pol.Check(ev, c.Class)
		if !keepable(StageImportPolicy, err) {
			continue
		}
		if ls, err := subject.Link(r.peer, k); err == nil {
			r.keepRefused(ctx, &nats.Msg{Subject: ls, Header: nats.Header{}, Data: body}, ev, c.Class)
		}
		if ch, ok := t.WithdrawKey(c.Key); ok {
			st.Withdrawn++
			r.ribin.withdrawn.Add(1)
			if r.onChange != nil {
				r.onChange(ch)
			}
		}
	}
}
