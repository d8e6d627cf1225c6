// Package intake is where a signal enters anfed: local producers publish
// CloudEvents to an.pub[.anything] in the operations account, with or
// without a reply subject. Intake inspects each one, checks that its origin
// is this operator, stores it, and answers: accepted only once stored,
// rejected with the reason otherwise. Refusals go to the dead-letter subject.
package intake

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/origin"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
	"github.com/anfed/anfed/schemas"
)

// Storer keeps accepted signals and dead letters.
type Storer interface {
	Put(ctx context.Context, subj, key string, body []byte) (dup bool, err error)
	DeadLetter(ctx context.Context, from, reason, detail string, hdr nats.Header, body []byte) error
}

// Intake handles local producers' messages.
type Intake struct {
	self    string
	signer  *origin.Signer // nil: signals are stored unsigned (a node without peers)
	insp    *inspect.Inspector
	store   Storer
	obs     observe.Observer
	log     zerolog.Logger
	timeout time.Duration
}

// New returns the intake of operator self.
func New(self string, insp *inspect.Inspector, signer *origin.Signer, store Storer, obs observe.Observer, log zerolog.Logger) *Intake {
	return &Intake{self: self, insp: insp, signer: signer, store: store, obs: obs, log: log, timeout: 5 * time.Second}
}

// Handle processes one message; it is a nats.MsgHandler.
func (in *Intake) Handle(m *nats.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), in.timeout)
	defer cancel()
	ans := in.accept(ctx, m)
	if m.Reply != "" {
		r := nats.NewMsg(m.Reply)
		r.Header.Set(signal.HeaderStatus, ans.Status)
		r.Data = ans.Encode()
		_ = m.RespondMsg(r) // the producer may be gone; its retry will be a duplicate
	}
}

func (in *Intake) accept(ctx context.Context, m *nats.Msg) signal.Answer {
	ev, _, err := in.insp.Full(m.Header, m.Data)
	if err == nil {
		err = in.checkLocal(ev)
	}
	if err == nil {
		err = in.insp.Live(ev)
	}
	if err != nil {
		return in.refuse(ctx, m, ev, err)
	}
	if ev.DataSchema == "" {
		class, _, _ := schemas.ClassOf(ev.Type)
		ev.DataSchema = schemas.SchemaURI(class)
	}
	if in.signer != nil {
		if err := in.signer.Sign(ev); err != nil {
			return in.refuse(ctx, m, ev, reject.Wrap(reject.Unavailable, err))
		}
	}
	class, _, _ := schemas.ClassOf(ev.Type)
	subj := subject.Signal(subject.Key{Origin: ev.Origin, Class: class, Service: ev.Service(), Resource: ev.Resource()})
	dup, err := in.store.Put(ctx, subj, ev.Key(), ev.Encode())
	if err != nil {
		in.log.Error().Err(err).Str("type", ev.Type).Str("subject", ev.Subject).Msg("intake: store unavailable")
		r := reject.Errorf(reject.Unavailable, "the node could not store the signal (%v): retry with the same id", err)
		in.obs.Rejected(observe.Rejection{Node: in.self, From: observe.Local, Reason: reject.Unavailable, Detail: r.Error(), Event: ev})
		return signal.Answer{Status: signal.StatusRejected, Reason: string(reject.Unavailable), Error: r.Error()}
	}
	in.obs.Accepted(observe.Acceptance{Node: in.self, Event: ev, Duplicate: dup})
	if dup {
		return signal.Answer{Status: signal.StatusDuplicate, Subject: subj}
	}
	return signal.Answer{Status: signal.StatusAccepted, Subject: subj}
}

// checkLocal verifies what only a local producer's signal must satisfy.
func (in *Intake) checkLocal(ev *signal.Event) error {
	if ev.Origin != in.self {
		return reject.Errorf(reject.WrongOrigin, "%s is %q but this node is %q: local producers publish their own operator's signals, with source anfed://%s/<producer>", signal.AttrOrigin, ev.Origin, in.self, in.self)
	}
	if ev.DSSEMaterial != "" || ev.SignedExtAttrs != "" {
		return reject.Errorf(reject.BadAttribute, "%s and %s are set by the node, which signs every signal it accepts: leave them out", signal.AttrDSSEMaterial, signal.AttrSignedExtAttrs)
	}
	if len(ev.Path) != 0 {
		return reject.Errorf(reject.BadAttribute, "%s must be empty on a new signal: nodes add to it when they forward", signal.AttrPath)
	}
	return nil
}

func (in *Intake) refuse(ctx context.Context, m *nats.Msg, ev *signal.Event, err error) signal.Answer {
	reason := reject.ReasonOf(err)
	if reason == "" {
		reason = reject.Malformed
	}
	l := in.log.Warn().Str("from", observe.Local).Str("reason", string(reason)).Str("error", err.Error())
	if ev != nil {
		l = l.Str("type", ev.Type).Str("subject", ev.Subject).Str("id", ev.ID)
	}
	l.Msg("intake: signal rejected")
	in.obs.Rejected(observe.Rejection{Node: in.self, From: observe.Local, Reason: reason, Detail: err.Error(), Event: ev})
	if dlErr := in.store.DeadLetter(ctx, observe.Local, string(reason), err.Error(), m.Header, m.Data); dlErr != nil {
		in.log.Error().Err(dlErr).Msg("intake: dead letter not stored")
	}
	return signal.Answer{Status: signal.StatusRejected, Reason: string(reason), Error: err.Error()}
}
