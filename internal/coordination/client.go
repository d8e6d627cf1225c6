package coordination

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// Client is a Go closed loop's handle on coordination, on a plain NATS
// connection to its operator's node (operations account): it proposes,
// waits for the affected operators' decisions, reports, renews and
// releases; OnProposal decides what our policy leaves to a closed loop.
// Everything it does is a signal on an.pub or a request on an.api: a
// loop in another language does the same (examples/closed-loop-coordination).
type Client struct {
	nc       *nats.Conn
	self     string
	producer string
}

// NewClient returns a client of operator self's node on nc, publishing
// as anfed://<self>/<producer>.
func NewClient(nc *nats.Conn, self, producer string) *Client {
	return &Client{nc: nc, self: self, producer: producer}
}

// Proposal is what a closed loop asks to do.
type Proposal struct {
	// ActionID is made up when empty.
	ActionID  string
	Kind      string
	Resources []Resource
	// Services touched; the first, with the first resource, is the
	// signals' subject.
	Services       []string
	Affected       []string
	Causes         []Cause
	ExpectedEffect string
	Duration       time.Duration
	Reverses       string
	Detail         string
	// TraceParent and TraceState (W3C trace context), when set: the
	// trace of what caused the action (the congestion's traceparent,
	// say). The proposal and every step of the action, ours and the
	// affected operators', carry it, so their nodes' spans join that
	// trace (telemetry.otlp).
	TraceParent, TraceState string
}

// Action is a proposal as the affected operators answered it.
type Action struct {
	ID      string
	Subject string
	// Decisions are each affected operator's latest step.
	Decisions map[string]Step
	// ProposalID is the proposal's event id.
	ProposalID string
	affected   []string
	resources  []Resource
	kind       string
	// traceParent, traceState: the proposal's trace context, carried by
	// every step.
	traceParent, traceState string
}

// Accepted reports whether every affected operator accepted.
func (a *Action) Accepted() bool {
	for _, op := range a.affected {
		if d, ok := a.Decisions[op]; !ok || d.Phase != Accepted {
			return false
		}
	}
	return len(a.affected) > 0
}

// Until is the earliest end of the leases granted.
func (a *Action) Until() time.Time {
	var u time.Time
	for _, d := range a.Decisions {
		if d.Lease != nil && (u.IsZero() || d.Lease.Until.Before(u)) {
			u = d.Lease.Until
		}
	}
	return u
}

// ErrNoAnswer: ctx ended before every affected operator answered.
var ErrNoAnswer = errors.New("not every affected operator answered")

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Propose publishes p and waits until every affected operator decided
// (accepted, declined or countered), or ctx ends (ErrNoAnswer, with the
// decisions so far).
func (c *Client) Propose(ctx context.Context, p Proposal) (*Action, error) {
	if len(p.Resources) == 0 || len(p.Services) == 0 || len(p.Affected) == 0 || len(p.Causes) == 0 {
		return nil, errors.New("a proposal names its resources, services, affected operators and causes")
	}
	if p.ActionID == "" {
		p.ActionID = newID(c.self + "-" + p.Kind)
	}
	d := Data{ActionID: p.ActionID, Phase: Proposed, Proposer: c.self, Kind: p.Kind, Resources: p.Resources, Services: p.Services,
		AffectedOperators: p.Affected, Causes: p.Causes, ExpectedEffect: p.ExpectedEffect, Duration: FormatDuration(p.Duration),
		Reverses: p.Reverses, Detail: p.Detail}
	a := &Action{ID: p.ActionID, Subject: p.Services[0] + "/" + p.Resources[0].ID, Decisions: map[string]Step{},
		affected: p.Affected, resources: p.Resources, kind: p.Kind, traceParent: p.TraceParent, traceState: p.TraceState}
	ev, err := c.event(a, d, signal.Raised, p.Causes[0].ID)
	if err != nil {
		return nil, err
	}
	a.ProposalID = ev.ID
	err = c.await(ctx, a, ev, func(st Step) bool { return st.Phase == Accepted || st.Phase == Declined || st.Phase == Countered })
	if err == nil && !a.Accepted() && a.anyAccepted() {
		// Some accepted, some did not: the action will not run, so give
		// back the leases it got rather than hold them to their end.
		ev, rerr := c.event(a, Data{ActionID: a.ID, Phase: RolledBack, Proposer: c.self, Reason: "not every affected operator accepted"}, signal.Cleared, a.ProposalID)
		if rerr == nil {
			rerr = c.publish(ctx, ev)
		}
		if rerr != nil {
			return a, fmt.Errorf("action %s: give back the leases of a partly accepted action: %w", a.ID, rerr)
		}
	}
	return a, err
}

func (a *Action) anyAccepted() bool {
	for _, d := range a.Decisions {
		if d.Phase == Accepted {
			return true
		}
	}
	return false
}

// Start reports the action active (begun) to the affected operators.
func (c *Client) Start(ctx context.Context, a *Action) error {
	ev, err := c.event(a, Data{ActionID: a.ID, Phase: Active, Proposer: c.self}, signal.Updated, a.ProposalID)
	if err != nil {
		return err
	}
	return c.publish(ctx, ev)
}

// Renew asks every affected operator to extend the lease to d from now
// and waits for their answers.
func (c *Client) Renew(ctx context.Context, a *Action, d time.Duration) error {
	before := map[string]uint64{}
	for op, st := range a.Decisions {
		if st.Lease != nil {
			before[op] = st.Lease.Revision
		}
	}
	ev, err := c.event(a, Data{ActionID: a.ID, Phase: Active, Proposer: c.self, Duration: FormatDuration(d)}, signal.Updated, a.ProposalID)
	if err != nil {
		return err
	}
	err = c.await(ctx, a, ev, func(st Step) bool {
		return st.Phase == Declined || st.Phase == Accepted && st.Lease != nil && st.Lease.Revision > before[st.Origin]
	})
	if err == nil && !a.Accepted() {
		return fmt.Errorf("action %s: renewal refused", a.ID)
	}
	return err
}

// Release reports the action ended (Completed or RolledBack) and waits
// until every affected operator released its lease.
func (c *Client) Release(ctx context.Context, a *Action, how Phase, reason string) error {
	if how != Completed && how != RolledBack {
		return fmt.Errorf("release with %s: want completed or rolled-back", how)
	}
	ev, err := c.event(a, Data{ActionID: a.ID, Phase: how, Proposer: c.self, Reason: reason}, signal.Cleared, a.ProposalID)
	if err != nil {
		return err
	}
	return c.await(ctx, a, ev, func(st Step) bool { return st.Phase == Released || st.Phase == Expired })
}

func (c *Client) event(a *Action, d Data, state signal.State, cause string) (*signal.Event, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return &signal.Event{ID: newID(a.ID + "-" + string(d.Phase)), Source: "anfed://" + c.self + "/" + c.producer, Type: schemas.Type(Class),
		Subject: a.Subject, Time: time.Now().UTC(), DataContentType: signal.ContentType, Data: data,
		Origin: c.self, State: state, CorrelationID: a.ID, CausationID: cause, SeverityText: "INFO", SeverityNumber: 9,
		TraceParent: a.traceParent, TraceState: a.traceState}, nil
}

func (c *Client) publish(ctx context.Context, ev *signal.Event) error {
	m, err := c.nc.RequestWithContext(ctx, subject.IntakePrefix, ev.Encode())
	if err != nil {
		return fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	ans, err := signal.ParseAnswer(m.Data)
	if err != nil {
		return err
	}
	return ans.Err()
}

// await subscribes to the action's subject, publishes ev, and waits
// until each affected operator sent a step done accepts.
func (c *Client) await(ctx context.Context, a *Action, ev *signal.Event, done func(Step) bool) error {
	svc, res, _ := cutSubject(a.Subject)
	subj, err := subject.Signal(subject.Key{Origin: "*", Class: Class, Service: svc, Resource: res})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	answered := map[string]bool{}
	finished := false
	all := make(chan struct{})
	sub, err := c.nc.Subscribe(subj, func(m *nats.Msg) {
		e, err := signal.DecodeStructured(m.Data)
		if err != nil || e.CorrelationID != a.ID {
			return
		}
		st, err := ParseStep(e)
		if err != nil || st.ActionID != a.ID || !slices.Contains(a.affected, st.Origin) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if finished {
			return // the caller reads a now
		}
		a.Decisions[st.Origin] = st
		if done(st) && !answered[st.Origin] {
			answered[st.Origin] = true
			if len(answered) == len(a.affected) {
				close(all)
			}
		}
	})
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := c.publish(ctx, ev); err != nil {
		return err
	}
	defer func() {
		mu.Lock()
		finished = true
		mu.Unlock()
	}()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("action %s: %w (%d of %d): %w", a.ID, ErrNoAnswer, len(answered), len(a.affected), ctx.Err())
	}
}

func cutSubject(s string) (svc, res string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Answer is a closed loop's decision on a proposal (OnProposal).
type Answer struct {
	Outcome  Outcome // Accept, Decline or CounterOffer
	Reason   string
	Duration time.Duration // CounterOffer: the duration offered
}

// OnProposal runs handle for each proposal our policy leaves to a
// person or a closed loop (require_human, or the default), until ctx
// ends, and sends its answer to the node; by names the loop in the
// decision. It returns once subscribed; the subscription ends with ctx.
func (c *Client) OnProposal(ctx context.Context, by string, handle func(Step) Answer) error {
	subj := subject.SignalPrefix + ".*." + Class + ".>"
	work := make(chan Step, 64)
	sub, err := c.nc.Subscribe(subj, func(m *nats.Msg) {
		e, err := signal.DecodeStructured(m.Data)
		if err != nil {
			return
		}
		st, err := ParseStep(e)
		if err != nil || st.Phase != Proposed || !slices.Contains(st.AffectedOperators, c.self) {
			return
		}
		select {
		case work <- st:
		default: // full: the proposal stays pending for a person
		}
	})
	if err != nil {
		return err
	}
	go func() {
		defer sub.Unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case st := <-work:
				c.rule(ctx, st, by, handle)
			}
		}
	}()
	return c.nc.FlushWithContext(ctx)
}

// rule waits until the node has the proposal pending (the node decides
// by its policy first), then sends the loop's answer.
func (c *Client) rule(ctx context.Context, st Step, by string, handle func(Step) Answer) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, ok, err := c.actionRecord(ctx, st.ActionID)
		if err == nil && ok && rec.Pending {
			break
		}
		if err == nil && ok && rec.Decisions[c.self].Phase != "" || time.Now().After(deadline) || ctx.Err() != nil {
			return // the policy decided, or nobody waits for us
		}
		time.Sleep(20 * time.Millisecond)
	}
	ans := handle(st)
	req := map[string]any{"id": st.ActionID, "accept": ans.Outcome == Accept, "reason": ans.Reason, "by": by}
	if ans.Outcome == CounterOffer {
		req["counter"] = FormatDuration(ans.Duration)
	}
	b, _ := json.Marshal(req)
	_, _ = c.nc.RequestWithContext(ctx, subject.APIActionDecide, b)
}

// actionRecord asks the node for its record of action id.
func (c *Client) actionRecord(ctx context.Context, id string) (Record, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	m, err := c.nc.RequestWithContext(rctx, subject.APIActions, nil)
	if err != nil {
		return Record{}, false, err
	}
	var v struct {
		Actions []Record `json:"actions"`
		Error   string   `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &v); err != nil {
		return Record{}, false, err
	}
	if v.Error != "" {
		return Record{}, false, errors.New(v.Error)
	}
	for _, r := range v.Actions {
		if r.ActionID == id {
			return r, true, nil
		}
	}
	return Record{}, false, nil
}
