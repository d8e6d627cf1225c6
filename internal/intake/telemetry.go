package intake

import (
	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// handTelemetry hands a checked telemetry signal on: Deps.Telemetry, or
// published on an.telsig.
func (in *Intake) handTelemetry(subj string, ev *signal.Event) error {
	if in.handOn != nil {
		return in.handOn(subj, ev)
	}
	return in.conn.Publish(subj, ev.Encode())
}

// HandleTelemetry processes one message of an.tel[.>] (telemetry for
// export.delivery: stream); it is a nats.MsgHandler. The signal passes
// intake's stages, the same as an.pub's (schema, local, expiry, sign), on
// the same workers, and is then published once, on core NATS, to
// an.telsig.<origin>.<class>.<service>.<resource>, where the stream
// senders and local closed loops take it (the node, in process, hands it
// to its stream senders directly: Deps.Telemetry). Nothing is stored, ordered or
// dead-lettered: a producer that asked is answered accepted once the
// signal is checked and handed on (not stored, unlike an.pub's accepted),
// or rejected with the reason, counted as an.pub's refusals are.
func (in *Intake) HandleTelemetry(m *nats.Msg) {
	in.closing.RLock()
	defer in.closing.RUnlock()
	if in.closed {
		return
	}
	in.work <- &slot{m: m, tel: true}
}

// TelemetryAccepted is how many telemetry signals intake checked, signed
// and handed on.
func (in *Intake) TelemetryAccepted() uint64 { return in.telAccepted.Load() }

// telemetry checks, signs and hands on one telemetry message, on a
// worker.
func (in *Intake) telemetry(sl *slot) {
	m := sl.m
	ev, subj, err := in.prepare(m, &sl.local, subject.TelemetrySignal)
	if err != nil {
		ans, _ := in.rejected(in.telLog, "intake: telemetry rejected (not stored, not dead-lettered)", ev, err)
		in.reply(m.Reply, ans)
		return
	}
	if err := in.handTelemetry(subj, ev); err != nil {
		ans, _ := in.rejected(in.telLog, "intake: telemetry not handed on", ev, reject.Wrap(reject.Unavailable, err))
		in.reply(m.Reply, ans)
		return
	}
	in.telAccepted.Add(1)
	in.reply(m.Reply, signal.Answer{Status: signal.StatusAccepted, Subject: subj})
}
