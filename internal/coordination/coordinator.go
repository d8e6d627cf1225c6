package coordination

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// Config is what a Coordinator needs from its node.
type Config struct {
	// Self is our operator id.
	Self   string
	Policy *Policy
	Table  *Table
	// JS and Stream are the node's store: the coordinator reads the
	// action signals it stored (ours and our peers') with a durable
	// consumer, so a decision survives a restart.
	JS     jetstream.JetStream
	Stream string
	// Publish hands a signal of ours to intake (which signs and stores
	// it) and returns once it is stored.
	Publish func(ctx context.Context, ev *signal.Event) error
	Log     zerolog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Sweep is how often expiry is looked for (250 ms when 0).
	Sweep time.Duration
	// Audit records each action step the coordinator handled, ours and
	// our peers' (the audit trail: who proposed or decided, and why).
	// nil: none.
	Audit func(st Step)
}

// Consumer is the durable consumer's name on the store.
const Consumer = "anfed-coordination"

// Coordinator is a node's part in coordination: it decides on the
// proposals that name us affected, renews and releases the leases we
// granted, expires them, keeps our view of the leases our peers granted
// and a record of every action it sees.
type Coordinator struct {
	cfg    Config
	cancel context.CancelFunc
	wg     sync.WaitGroup
	cc     jetstream.ConsumeContext

	// mu orders the decisions of this process (the table's compare and
	// swap keeps them right across processes); it is not needed for
	// safety, only to keep the log in decision order.
	mu sync.Mutex
}

// New returns a coordinator for cfg; Start runs it.
func New(cfg Config) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = 250 * time.Millisecond
	}
	cfg.Log = cfg.Log.With().Str("component", "coordination").Logger()
	return &Coordinator{cfg: cfg}
}

// Start reads the stored action signals from where it last stopped and
// starts the expiry sweep; Stop ends both.
func (c *Coordinator) Start(ctx context.Context) error {
	cons, err := c.cfg.JS.CreateOrUpdateConsumer(ctx, c.cfg.Stream, jetstream.ConsumerConfig{
		Durable:       Consumer,
		Description:   "anfed coordination: the action signals the node stored",
		FilterSubject: subject.SignalPrefix + ".*." + Class + ".>",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1, // one step at a time, in store order
		DeliverPolicy: jetstream.DeliverAllPolicy,
		// A step that keeps failing (the bucket full or unreachable) is
		// tried again after 1 s, 5 s, then every 30 s (retryDelay), and
		// given up after 10 tries: it must not hold up every later step.
		MaxDeliver: 10,
	})
	if err != nil {
		return fmt.Errorf("coordination consumer: %w", err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	cc, err := cons.Consume(func(m jetstream.Msg) { c.handleMsg(rctx, m) })
	if err != nil {
		cancel()
		return fmt.Errorf("coordination consumer: %w", err)
	}
	c.cc = cc
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.sweep(rctx)
	}()
	return nil
}

// Stop ends the consumer and the sweep and waits for them.
func (c *Coordinator) Stop() {
	if c.cancel == nil {
		return
	}
	c.cancel() // a step under way stops waiting for intake
	c.cc.Stop()
	<-c.cc.Closed()
	c.wg.Wait()
	c.cancel = nil
}

func (c *Coordinator) handleMsg(ctx context.Context, m jetstream.Msg) {
	ev, err := signal.DecodeStructured(m.Data())
	if err != nil {
		c.cfg.Log.Error().Err(err).Str("subject", m.Subject()).Msg("stored action signal does not decode; skipped")
		_ = m.Ack()
		return
	}
	st, err := ParseStep(ev)
	if err != nil {
		c.cfg.Log.Warn().Err(err).Str("id", ev.ID).Str("origin", ev.Origin).Msg("action step ignored")
		_ = m.Ack()
		return
	}
	if err := c.Handle(ctx, st); err != nil {
		if ctx.Err() != nil {
			_ = m.Nak() // stopping: it comes again at the next start
			return
		}
		c.cfg.Log.Error().Err(err).Str("action", st.ActionID).Str("phase", string(st.Phase)).Str("origin", st.Origin).
			Msg("action step not handled; tried again later, given up after 10 tries")
		n := uint64(1)
		if meta, err := m.Metadata(); err == nil {
			n = meta.NumDelivered
		}
		_ = m.NakWithDelay(retryDelay(n))
		return
	}
	if c.cfg.Audit != nil {
		c.cfg.Audit(st)
	}
	_ = m.Ack()
}

// retryDelay is the wait before the n+1th try of a failing step.
func retryDelay(n uint64) time.Duration {
	switch {
	case n <= 1:
		return time.Second
	case n == 2:
		return 5 * time.Second
	}
	return 30 * time.Second
}

// Handle takes one action step the node stored.
func (c *Coordinator) Handle(ctx context.Context, st Step) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	if err := c.record(ctx, st, now); err != nil {
		return err
	}
	affected := slices.Contains(st.AffectedOperators, c.cfg.Self)
	switch {
	case st.Origin == c.cfg.Self:
		return nil // our own step: recorded
	case st.Phase == Proposed && affected:
		return c.decide(ctx, st, now)
	case st.Phase == Active && st.Duration != "":
		return c.renew(ctx, st, now)
	case st.Phase == Completed || st.Phase == RolledBack:
		return c.release(ctx, st, now)
	case st.Phase == Accepted || st.Phase == Released || st.Phase == Expired:
		return c.view(ctx, st, now)
	}
	return nil
}

// record keeps what the step says in the action's record.
func (c *Coordinator) record(ctx context.Context, st Step, now time.Time) error {
	_, err := c.cfg.Table.UpdateAction(ctx, st.ActionID, func(r *Record) bool {
		if st.Phase == Proposed {
			decisions, pending, rule := r.Decisions, r.Pending, r.PendingRule
			r.Data, r.Subject, r.ProposalID = st.Data, st.Subject, st.EventID
			r.TraceParent, r.TraceState = st.TraceParent, st.TraceState
			r.Decisions, r.Pending, r.PendingRule = decisions, pending, rule
		} else {
			if r.ActionID == "" {
				r.ActionID, r.Proposer, r.Subject = st.ActionID, st.Proposer, st.Subject
			}
			if r.Kind == "" {
				r.Kind = st.Kind
			}
			if len(r.Resources) == 0 {
				r.Resources = st.Resources
			}
			if st.Phase.FromProposer() {
				r.Phase = st.Phase
			} else {
				if r.Decisions == nil {
					r.Decisions = map[string]Decision{}
				}
				r.Decisions[st.Origin] = Decision{Phase: st.Phase, Rule: st.Rule, Reason: st.Reason, DecidedBy: st.DecidedBy,
					Lease: st.Lease, Conflict: st.Conflict, Counter: st.Counter, At: now}
				if st.Origin == c.cfg.Self {
					r.Pending, r.PendingRule = false, ""
				}
			}
		}
		if r.Phase == "" {
			r.Phase = st.Phase
		}
		r.Updated = now
		return true
	})
	return err
}

func resourceIDs(rs []Resource) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// decide answers a proposal that names us affected, by our policy.
func (c *Coordinator) decide(ctx context.Context, st Step, now time.Time) error {
	rec, _, err := c.cfg.Table.Action(ctx, st.ActionID)
	if err != nil {
		return err
	}
	if d, ok := rec.Decisions[c.cfg.Self]; ok && d.Phase != "" || rec.Pending {
		return nil // decided (or asked) already: this is the step again
	}
	asked, err := ParseDuration(st.Duration)
	if err != nil || asked <= 0 {
		return c.answer(ctx, st, Data{Phase: Declined, Rule: "duration", Reason: fmt.Sprintf("duration %q: want a positive ISO 8601 duration in days, hours, minutes or seconds", st.Duration), DecidedBy: "policy"}, now)
	}
	v := c.cfg.Policy.Decide(st.Data, asked, now)
	switch v.Outcome {
	case Decline:
		return c.answer(ctx, st, Data{Phase: Declined, Rule: v.Rule, Reason: v.Reason, DecidedBy: "policy"}, now)
	case CounterOffer:
		return c.answer(ctx, st, Data{Phase: Countered, Rule: v.Rule, Reason: v.Reason, DecidedBy: "policy", Counter: &Counter{Duration: FormatDuration(v.Duration)}}, now)
	case Ask:
		// A proposal that could not be granted now is declined at
		// once, not left for a person to find.
		if ref, err := c.conflict(ctx, st, now); err != nil || ref != nil {
			if err != nil {
				return err
			}
			return c.refuse(ctx, st, ref, now)
		}
		_, err := c.cfg.Table.UpdateAction(ctx, st.ActionID, func(r *Record) bool {
			r.Pending, r.PendingRule = true, v.Rule
			return true
		})
		c.cfg.Log.Info().Str("action", st.ActionID).Str("proposer", st.Proposer).Str("rule", v.Rule).Msg("proposal waits for a decision")
		return err
	}
	return c.grant(ctx, st, v.Rule, "policy", v.Reason, v.Duration, now)
}

// conflict reports, without taking anything, whether a grant of st now
// would be refused.
func (c *Coordinator) conflict(ctx context.Context, st Step, now time.Time) (*Refusal, error) {
	ours, _, err := c.cfg.Table.Leases(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range st.Resources {
		for _, l := range ours {
			if l.Resource == r.ID && l.Held(now) && l.ActionID != st.ActionID {
				return &Refusal{Resource: r.ID, Conflict: &Conflict{Holder: l.Holder, ActionID: l.ActionID, Until: l.Until}}, nil
			}
		}
	}
	return nil, nil
}

// grant takes the lease for st and answers accepted, or declined with
// what stood in the way.
func (c *Coordinator) grant(ctx context.Context, st Step, rule, by, reason string, d time.Duration, now time.Time) error {
	recs, ref, err := c.cfg.Table.Grant(ctx, Grant{ActionID: st.ActionID, Holder: st.Proposer, Kind: st.Kind, Resources: resourceIDs(st.Resources),
		Until: now.Add(d), Reverses: st.Reverses, HoldDown: c.cfg.Policy.HoldDown()}, now)
	if err != nil {
		return err
	}
	if ref != nil {
		return c.refuse(ctx, st, ref, now)
	}
	return c.answer(ctx, st, Data{Phase: Accepted, Rule: rule, DecidedBy: by, Reason: reason, Lease: leaseOf(recs)}, now)
}

func (c *Coordinator) refuse(ctx context.Context, st Step, ref *Refusal, now time.Time) error {
	if ref.Dampened {
		return c.answer(ctx, st, Data{Phase: Declined, Rule: "dampened", DecidedBy: "policy",
			Reason: fmt.Sprintf("%s reverses action %s on %s, which ended at %s: refused until %s (coordination.hold_down)", st.ActionID, st.Reverses, ref.Resource,
				ref.Since.UTC().Format(time.RFC3339), ref.Until.UTC().Format(time.RFC3339))}, now)
	}
	cf := *ref.Conflict
	cf.Until = cf.Until.UTC()
	return c.answer(ctx, st, Data{Phase: Declined, Rule: "lease-held", DecidedBy: "policy", Conflict: &cf,
		Reason: fmt.Sprintf("%s is leased to %s (action %s) until %s", ref.Resource, cf.Holder, cf.ActionID, cf.Until.Format(time.RFC3339))}, now)
}

// leaseOf is the lease a decision names for records written together:
// the holder, the earliest end, and the highest revision (every later
// change of any of them has a higher one).
func leaseOf(recs []LeaseRecord) *Lease {
	if len(recs) == 0 {
		return nil
	}
	l := &Lease{Holder: recs[0].Holder, Until: recs[0].Until.UTC(), Revision: recs[0].Revision}
	for _, r := range recs[1:] {
		if r.Until.Before(l.Until) {
			l.Until = r.Until.UTC()
		}
		l.Revision = max(l.Revision, r.Revision)
	}
	return l
}

// renew extends the lease of an action its holder reports active with
// a duration, if we hold one for it.
func (c *Coordinator) renew(ctx context.Context, st Step, now time.Time) error {
	rec, ok, err := c.cfg.Table.Action(ctx, st.ActionID)
	if err != nil || !ok || !slices.Contains(rec.AffectedOperators, c.cfg.Self) {
		return err
	}
	st.Resources, st.AffectedOperators, st.Kind, st.Reverses = rec.Resources, rec.AffectedOperators, rec.Kind, ""
	if st.Subject == "" {
		st.Subject = rec.Subject
	}
	d, err := ParseDuration(st.Duration)
	if err != nil || d <= 0 {
		return c.answer(ctx, st, Data{Phase: Declined, Rule: "duration", DecidedBy: "policy", Reason: fmt.Sprintf("renewal duration %q: want a positive ISO 8601 duration", st.Duration)}, now)
	}
	if ref, err := c.heldBy(ctx, st, now); err != nil || ref != "" {
		if err != nil {
			return err
		}
		return c.answer(ctx, st, Data{Phase: Declined, Rule: "lease-ended", DecidedBy: "policy", Reason: ref}, now)
	}
	return c.grant(ctx, st, "renewal", "policy", "", min(d, c.cfg.Policy.LeaseMax()), now)
}

// heldBy says why st's action does not hold all its leases now ("": it does).
func (c *Coordinator) heldBy(ctx context.Context, st Step, now time.Time) (string, error) {
	ours, _, err := c.cfg.Table.Leases(ctx)
	if err != nil {
		return "", err
	}
	for _, r := range st.Resources {
		i := slices.IndexFunc(ours, func(l LeaseRecord) bool { return l.Resource == r.ID && l.ActionID == st.ActionID && l.Held(now) })
		if i < 0 {
			return fmt.Sprintf("%s holds no lease on %s any more: propose again", st.ActionID, r.ID), nil
		}
	}
	return "", nil
}

// release ends the leases of an action its holder completed or rolled back.
func (c *Coordinator) release(ctx context.Context, st Step, now time.Time) error {
	rec, ok, err := c.cfg.Table.Action(ctx, st.ActionID)
	if err != nil || !ok || !slices.Contains(rec.AffectedOperators, c.cfg.Self) {
		return err
	}
	ended, err := c.cfg.Table.End(ctx, st.ActionID, resourceIDs(rec.Resources), Released, now)
	if err != nil || len(ended) == 0 {
		return err
	}
	st.Resources, st.Kind = rec.Resources, rec.Kind
	if st.Subject == "" {
		st.Subject = rec.Subject
	}
	l := leaseOf(ended)
	l.Until = now.UTC()
	return c.answer(ctx, st, Data{Phase: Released, Rule: "released", DecidedBy: st.Proposer, Lease: l, Reason: "the holder reports the action " + string(st.Phase)}, now)
}

// view keeps what another operator's decision says of its leases.
func (c *Coordinator) view(ctx context.Context, st Step, now time.Time) error {
	for _, r := range st.Resources {
		l := LeaseRecord{Grantor: st.Origin, Resource: r.ID, Holder: st.Lease.Holder, ActionID: st.ActionID, Kind: st.Kind,
			Until: st.Lease.Until, Revision: st.Lease.Revision}
		if st.Phase != Accepted {
			l.Ended, l.EndReason = st.Lease.Until, st.Phase
		}
		if _, err := c.cfg.Table.View(ctx, l); err != nil {
			return err
		}
	}
	return nil
}

// sweep expires the leases we granted once they run out.
func (c *Coordinator) sweep(ctx context.Context) {
	t := time.NewTicker(c.cfg.Sweep)
	defer t.Stop()
	var next time.Time // zero: look now
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := c.cfg.Now()
		if !next.IsZero() && now.Before(next) {
			continue
		}
		n, err := c.expire(ctx, now)
		if err != nil {
			if ctx.Err() == nil {
				c.cfg.Log.Error().Err(err).Msg("lease expiry")
			}
			next = time.Time{}
			continue
		}
		next = n
	}
}

// expire ends the leases we granted that ran out, answers expired for
// each action, and returns when to look next.
func (c *Coordinator) expire(ctx context.Context, now time.Time) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ours, _, err := c.cfg.Table.Leases(ctx)
	if err != nil {
		return time.Time{}, err
	}
	byAction := map[string][]LeaseRecord{}
	next := now.Add(c.cfg.Sweep * 4) // a grant made meanwhile is looked at soon
	for _, l := range ours {
		switch {
		case l.Ended.IsZero() && !now.Before(l.Until):
			byAction[l.ActionID] = append(byAction[l.ActionID], l)
		case l.Held(now) && l.Until.Before(next):
			next = l.Until
		}
	}
	ids := make([]string, 0, len(byAction))
	for id := range byAction {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		ls := byAction[id]
		res := make([]string, len(ls))
		for i, l := range ls {
			res[i] = l.Resource
		}
		ended, err := c.cfg.Table.End(ctx, id, res, Expired, now)
		if err != nil {
			return time.Time{}, err
		}
		if len(ended) == 0 {
			continue
		}
		rec, _, err := c.cfg.Table.Action(ctx, id)
		if err != nil {
			return time.Time{}, err
		}
		st := Step{Subject: rec.Subject, EventID: rec.ProposalID, Data: Data{ActionID: id, Proposer: ended[0].Holder, Kind: ended[0].Kind}}
		for _, l := range ended {
			st.Resources = append(st.Resources, Resource{ID: l.Resource, Type: resourceType(rec.Resources, l.Resource)})
		}
		if st.Subject == "" {
			st.Subject = "unknown/" + ended[0].Resource
		}
		if err := c.answer(ctx, st, Data{Phase: Expired, Rule: "expiry", DecidedBy: "policy", Lease: leaseOf(ended),
			Reason: "the lease ran out without a renewal"}, now); err != nil {
			return time.Time{}, err
		}
		c.cfg.Log.Info().Str("action", id).Str("holder", ended[0].Holder).Msg("lease expired")
	}
	return next, nil
}

func resourceType(rs []Resource, id string) string {
	for _, r := range rs {
		if r.ID == id {
			return r.Type
		}
	}
	return "resource"
}

// answer publishes our step on st's action: the event id is made of the
// action, the phase and the lease revision, so the same decision taken
// again (a step delivered twice) is stored once.
func (c *Coordinator) answer(ctx context.Context, st Step, d Data, now time.Time) error {
	d.ActionID, d.Proposer = st.ActionID, st.Proposer
	if d.Kind == "" {
		d.Kind = st.Kind
	}
	d.Resources = st.Resources
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	id := c.cfg.Self + "/" + st.ActionID + "/" + string(d.Phase)
	if d.Lease != nil {
		id += "/" + strconv.FormatUint(d.Lease.Revision, 10)
	}
	state := signal.Raised
	if d.Phase == Released || d.Phase == Expired {
		state = signal.Cleared
	}
	ev := &signal.Event{ID: id, Source: "anfed://" + c.cfg.Self + "/coordination", Type: schemas.Type(Class), Subject: st.Subject,
		Time: now.UTC(), DataContentType: signal.ContentType, DataSchema: schemas.SchemaURI(Class), Data: data,
		Origin: c.cfg.Self, State: state, CorrelationID: st.ActionID, CausationID: st.EventID,
		SeverityText: "INFO", SeverityNumber: 9, TraceParent: st.TraceParent, TraceState: st.TraceState}
	if err := c.cfg.Publish(ctx, ev); err != nil {
		return fmt.Errorf("publish %s of action %s: %w", d.Phase, st.ActionID, err)
	}
	c.cfg.Log.Debug().Str("action", st.ActionID).Str("phase", string(d.Phase)).Str("rule", d.Rule).Msg("decided")
	// Our own step comes back through the store and is recorded then;
	// record it now as well, so that a person asking at once sees it.
	return c.record(ctx, Step{Origin: c.cfg.Self, EventID: id, Subject: st.Subject, Data: d}, now)
}

// ErrNotPending is returned by Decide for an action that waits for no
// decision of ours.
var ErrNotPending = errors.New("no decision of ours is pending on that action")

// Ruling is a decision by a person or a closed loop on a proposal our
// policy left to one.
type Ruling struct {
	// Outcome is Accept, Decline or CounterOffer.
	Outcome Outcome
	Reason  string
	// By names who decided ("human" when empty).
	By string
	// Duration: the lease to grant (Accept; 0: what was asked, within
	// lease_max) or to offer (CounterOffer).
	Duration time.Duration
}

// Decide applies a ruling on a proposal our policy left to a person or
// a closed loop. An accepted one still takes its lease by compare and
// swap, so a conflict that arose meanwhile declines it.
func (c *Coordinator) Decide(ctx context.Context, actionID string, r Ruling) (Record, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	rec, ok, err := c.cfg.Table.Action(ctx, actionID)
	if err != nil {
		return rec, err
	}
	if !ok || !rec.Pending {
		return rec, fmt.Errorf("action %q: %w", actionID, ErrNotPending)
	}
	by := r.By
	if by == "" {
		by = "human"
	}
	st := Step{Subject: rec.Subject, EventID: rec.ProposalID, TraceParent: rec.TraceParent, TraceState: rec.TraceState, Data: rec.Data}
	switch r.Outcome {
	case Accept:
		d := r.Duration
		if d <= 0 {
			if d, err = ParseDuration(rec.Duration); err != nil {
				return rec, err
			}
		}
		err = c.grant(ctx, st, "human", by, orDefault(r.Reason, "accepted by "+by), min(d, c.cfg.Policy.LeaseMax()), now)
	case CounterOffer:
		if r.Duration <= 0 {
			return rec, errors.New("a counter names the duration it offers")
		}
		err = c.answer(ctx, st, Data{Phase: Countered, Rule: "human", DecidedBy: by, Reason: orDefault(r.Reason, "countered by "+by),
			Counter: &Counter{Duration: FormatDuration(min(r.Duration, c.cfg.Policy.LeaseMax()))}}, now)
	default:
		err = c.answer(ctx, st, Data{Phase: Declined, Rule: "human", DecidedBy: by, Reason: orDefault(r.Reason, "declined by "+by)}, now)
	}
	if err != nil {
		return rec, err
	}
	rec, _, err = c.cfg.Table.Action(ctx, actionID)
	return rec, err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Actions lists the actions the node has seen.
func (c *Coordinator) Actions(ctx context.Context) ([]Record, error) { return c.cfg.Table.Actions(ctx) }

// Leases lists the leases that hold at now as this node sees them: those
// it granted and those its peers' decisions told of.
func (c *Coordinator) Leases(ctx context.Context, now time.Time) ([]LeaseRecord, error) {
	ours, views, err := c.cfg.Table.Leases(ctx)
	if err != nil {
		return nil, err
	}
	var out []LeaseRecord
	for _, l := range append(ours, views...) {
		if l.Held(now) {
			out = append(out, l)
		}
	}
	return out, nil
}
