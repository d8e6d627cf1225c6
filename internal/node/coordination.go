package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// startCoordination runs the node's part in coordination when the policy
// has a coordination: section (docs/coordination.md): its own connection,
// the coordination bucket, the durable consumer of stored action
// signals, and the API.
func (n *Node) startCoordination(ctx context.Context) error {
	if n.config().Coordination == nil {
		return nil
	}
	nc, err := n.connectOwn("coordination", natsconf.OpsAccount, "anfed-node-coordination")
	if err != nil {
		return err
	}
	n.extra = append(n.extra, nc)
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("coordination: %w", err)
	}
	budget, err := store.Split(int64(n.config().Storage.MaxBytes))
	if err != nil {
		return err
	}
	pol := coordination.NewPolicy(*n.config().Coordination)
	// A record outlives its last write by a day, or by twice the longest
	// lease and hold-down: long enough that no live lease and no
	// hold-down is forgotten.
	age := max(24*time.Hour, 2*(pol.LeaseMax()+pol.HoldDown()))
	tb, err := coordination.OpenTable(ctx, js, n.ID(), age, budget.Coord, n.config().Storage.Replicas)
	if err != nil {
		return err
	}
	publish := func(ctx context.Context, ev *signal.Event) error {
		m, err := nc.RequestWithContext(ctx, subject.IntakePrefix, ev.Encode())
		if err != nil {
			return err
		}
		a, err := signal.ParseAnswer(m.Data)
		if err != nil {
			return err
		}
		return a.Err()
	}
	c := coordination.New(coordination.Config{Self: n.ID(), Policy: pol, Table: tb, JS: js, Stream: store.SignalStream,
		Publish: func(ctx context.Context, ev *signal.Event) error {
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			return publish(ctx, ev)
		}, Log: n.log, Audit: n.auditAction})
	if err := c.Start(ctx); err != nil {
		return err
	}
	n.coord = c
	for subj, h := range map[string]nats.MsgHandler{subject.APIActions: n.serveActions, subject.APIActionDecide: n.serveDecide} {
		if err := n.subscribe(nc, subj, h); err != nil {
			return err
		}
	}
	return nil
}

// Coordination is the node's coordinator (nil without a coordination:
// section in the policy).
func (n *Node) Coordination() *coordination.Coordinator { return n.coord }

// ActionsView is what an.api.actions and /v1/actions answer.
type ActionsView struct {
	Self    string                     `json:"self"`
	Actions []coordination.Record      `json:"actions"`
	Leases  []coordination.LeaseRecord `json:"leases"`
	Error   string                     `json:"error,omitempty"`
}

// Actions is the node's actions and the leases that hold now.
func (n *Node) Actions(ctx context.Context) (ActionsView, error) {
	v := ActionsView{Self: n.ID(), Actions: []coordination.Record{}, Leases: []coordination.LeaseRecord{}}
	if n.coord == nil {
		return v, ErrNoCoordination
	}
	acts, err := n.coord.Actions(ctx)
	if err != nil {
		return v, err
	}
	leases, err := n.coord.Leases(ctx, time.Now())
	if err != nil {
		return v, err
	}
	if acts != nil {
		v.Actions = acts
	}
	if leases != nil {
		v.Leases = leases
	}
	return v, nil
}

// ErrNoCoordination: the policy has no coordination: section.
var ErrNoCoordination = errors.New("this node takes no part in coordination: its policy has no coordination: section (docs/coordination.md)")

// DecideRequest is a person's (or a closed loop's) decision on a
// pending proposal: accept, or decline, or counter with a duration.
type DecideRequest struct {
	ID     string `json:"id"`
	Accept bool   `json:"accept"`
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
	// Counter, when set, counters with this ISO 8601 duration (Accept
	// is then ignored).
	Counter string `json:"counter,omitempty"`
	// Duration, on an accept, grants this ISO 8601 duration instead of
	// the one asked.
	Duration string `json:"duration,omitempty"`
}

// DecideAction applies a person's decision.
func (n *Node) DecideAction(ctx context.Context, r DecideRequest) (coordination.Record, error) {
	if n.coord == nil {
		return coordination.Record{}, ErrNoCoordination
	}
	ru := coordination.Ruling{Outcome: coordination.Decline, Reason: r.Reason, By: r.By}
	var err error
	switch {
	case r.Counter != "":
		ru.Outcome = coordination.CounterOffer
		ru.Duration, err = coordination.ParseDuration(r.Counter)
	case r.Accept:
		ru.Outcome = coordination.Accept
		if r.Duration != "" {
			ru.Duration, err = coordination.ParseDuration(r.Duration)
		}
	}
	if err != nil {
		return coordination.Record{}, err
	}
	return n.coord.Decide(ctx, r.ID, ru)
}

func (n *Node) serveActions(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := n.Actions(ctx)
	if err != nil {
		v.Error = err.Error()
	}
	b, _ := json.Marshal(v)
	_ = m.Respond(b)
}

func (n *Node) serveDecide(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r DecideRequest
	var out any
	if err := json.Unmarshal(m.Data, &r); err != nil || r.ID == "" {
		out = map[string]string{"error": `want {"id":"<action id>","accept":true|false,"reason":"...","by":"...","counter":"PT10M"}`}
	} else if rec, err := n.DecideAction(ctx, r); err != nil {
		out = map[string]string{"error": err.Error()}
	} else {
		out = rec
	}
	b, _ := json.Marshal(out)
	_ = m.Respond(b)
}
