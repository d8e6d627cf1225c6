package node

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/audit"
	"github.com/anfed/anfed/internal/coordination"
	"github.com/anfed/anfed/internal/natsconf"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// startAudit opens the audit trail's stream, within its share of
// storage.max_bytes, and, unless audit.off, starts this process's chain
// of records (docs/coordination.md#audit-trail) on a connection of its
// own, so that the records' writes never queue behind the links'.
func (n *Node) startAudit(ctx context.Context) error {
	nc, err := n.connectOwn("audit", natsconf.OpsAccount, "anfed-node-audit")
	if err != nil {
		return err
	}
	n.extra = append(n.extra, nc)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(store.AckTimeout))
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	budget, err := store.Split(int64(n.config().Storage.MaxBytes))
	if err != nil {
		return err
	}
	cfg := n.config().Audit
	if err := audit.Open(ctx, js, cfg.Retention(), budget.Audit, n.config().Storage.Replicas); err != nil {
		return err
	}
	n.auditJS = js
	if !cfg.Off {
		n.audit = audit.NewWriter(js, n.ID(), n.log)
	}
	return n.subscribe(nc, subject.APIAudit, n.serveAudit)
}

// auditor is what the senders record through (nil: the trail is off).
func (n *Node) auditor() *audit.Writer { return n.audit }

// auditAction records an action step the coordinator handled.
func (n *Node) auditAction(st coordination.Step) {
	if n.audit == nil {
		return
	}
	r := audit.Record{Peer: st.Origin, Signal: st.EventID, Source: st.Source, Subject: st.Subject,
		Action: st.ActionID, Phase: string(st.Phase), Rule: st.Rule, DecidedBy: st.DecidedBy, Reason: st.Reason}
	if st.Phase == coordination.Proposed {
		// Who: the proposer; why: what it expects and what caused it.
		r.DecidedBy = st.Proposer
		why := []string{}
		if st.ExpectedEffect != "" {
			why = append(why, st.ExpectedEffect)
		}
		if st.Detail != "" {
			why = append(why, st.Detail)
		}
		for _, c := range st.Causes {
			why = append(why, "cause "+c.ID)
		}
		r.Reason = strings.Join(why, "; ")
	}
	n.audit.Action(r)
}

// AuditStats are this process's audit writer's counts (false: the trail
// is off).
func (n *Node) AuditStats() (audit.Stats, bool) {
	if n.audit == nil {
		return audit.Stats{}, false
	}
	return n.audit.Stats(), true
}

// Audit reads the records f picks from the audit trail.
func (n *Node) Audit(ctx context.Context, f audit.Filter) ([]audit.Stored, error) {
	out := []audit.Stored{}
	err := n.EachAudit(ctx, f, func(r audit.Stored) error {
		out = append(out, r)
		return nil
	})
	return out, err
}

// EachAudit calls fn with each record f picks, as the trail is read.
func (n *Node) EachAudit(ctx context.Context, f audit.Filter, fn func(audit.Stored) error) error {
	if n.auditJS == nil {
		return fmt.Errorf("node not started")
	}
	return audit.Each(ctx, n.auditJS, f, fn)
}

// AuditHeads are the chains this process writes and the number of their
// last record.
func (n *Node) AuditHeads() map[string]uint64 {
	if n.audit == nil {
		return map[string]uint64{}
	}
	return map[string]uint64{n.audit.Chain(): n.audit.Head()}
}

// VerifyAudit checks every chain of the trail; this process's chain is
// checked against its head too, so records removed from its end show.
func (n *Node) VerifyAudit(ctx context.Context) (audit.Report, error) {
	recs, err := n.Audit(ctx, audit.Filter{})
	if err != nil {
		return audit.Report{}, err
	}
	return audit.Verify(recs, n.AuditHeads()), nil
}

// AuditHeadsAnswer is what an.api.audit answers: the chains a process
// writes, by operator.
type AuditHeadsAnswer struct {
	Node  string            `json:"node"`
	Heads map[string]uint64 `json:"heads"`
}

// serveAudit answers an.api.audit with this process's chain and head
// (`anfed audit --verify` reads the records from the stream itself and
// asks every process of the operator for its head).
func (n *Node) serveAudit(m *nats.Msg) {
	b, _ := json.Marshal(AuditHeadsAnswer{Node: n.ID(), Heads: n.AuditHeads()})
	_ = m.Respond(b)
}

// stopAudit writes what the writer holds and ends it, after the senders
// and the coordinator stopped.
func (n *Node) stopAudit() {
	if n.audit == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { n.audit.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n.log.Error().Msg("audit: the writer did not finish within 10 s: records still queued may be lost")
	}
}
