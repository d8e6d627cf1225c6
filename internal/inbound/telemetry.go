package inbound

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/link"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/subject"
)

// StreamTally counts a peer's stream link (export.delivery: stream at
// its end) as this end sees it: the messages numbered for it and the
// gaps in their numbers (link.Gaps), and the telemetry delivered to our
// local subscribers. A node keeps one per peer link, so the count
// survives a reload that makes the receiver again.
type StreamTally struct {
	mu        sync.Mutex
	gaps      link.Gaps
	telemetry atomic.Uint64
	// Log the losses and the anomalies at most every few seconds, with
	// counts.
	logged, anomalyLogged time.Time
	lostLast, anomalyLast uint64
}

// StreamStats are a StreamTally's counts.
type StreamStats struct {
	// Received: messages that carried a stream number; Lost: numbers
	// that never arrived (link down, slow, dropped on the way).
	Received uint64 `json:"received"`
	Lost     uint64 `json:"lost"`
	// Anomalies: numbered messages whose number or epoch was not
	// believed (link.Anomaly: bad-number, bad-epoch, jump, backwards):
	// a broken or hostile sender; they leave Lost as it was. Epochs: the
	// peer's sender started again (a new epoch after the first).
	Anomalies uint64 `json:"anomalies"`
	Epochs    uint64 `json:"epochs"`
	// Telemetry: telemetry that passed every check and was published to
	// our local subscribers (an.telsig).
	Telemetry uint64 `json:"telemetry"`
}

// Stats are the tally's counts now.
func (t *StreamTally) Stats() StreamStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return StreamStats{Received: t.gaps.Received, Lost: t.gaps.Lost, Anomalies: t.gaps.Anomalies, Epochs: t.gaps.Epochs,
		Telemetry: t.telemetry.Load()}
}

// see counts m if it carries a stream number, and logs new losses and
// anomalies at most every 5 s each. An anomaly says nothing of the
// signal: the message goes on to its checks.
func (t *StreamTally) see(r *Receiver, m *nats.Msg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	numbered, anomaly := t.gaps.See(now, m.Header.Get)
	if !numbered {
		return
	}
	if anomaly != "" && now.Sub(t.anomalyLogged) >= 5*time.Second {
		r.log.Warn().Str("anomaly", string(anomaly)).Uint64("count", t.gaps.Anomalies-t.anomalyLast).Uint64("total", t.gaps.Anomalies).
			Str("seq", clip(m.Header.Get(link.HeaderStreamSeq))).Str("epoch", clip(m.Header.Get(link.HeaderStreamEpoch))).
			Msg("link: stream numbers from this peer not believed (a broken or hostile sender): counted as anomalies, not as lost")
		t.anomalyLogged, t.anomalyLast = now, t.gaps.Anomalies
	}
	if lost := t.gaps.Lost; lost != t.lostLast {
		if now.Sub(t.logged) >= 5*time.Second {
			r.log.Warn().Uint64("lost", lost-t.lostLast).Uint64("total", lost).Uint64("received", t.gaps.Received).
				Msg("link: stream messages from this peer lost on the way (export.delivery: stream at its end): counted, never resent")
			t.logged, t.lostLast = now, lost
		}
	}
}

// clip keeps a peer's header short enough for a log line.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// Stream is the receiver's stream tally.
func (r *Receiver) Stream() StreamStats { return r.tally.Stats() }

// handleTelemetry takes a telemetry message (link.HeaderTelemetry): the
// admit stages now, the check stages on the workers (telemetry), never
// ordered, stored, answered or dead-lettered. Called under r.closing.
func (r *Receiver) handleTelemetry(m *nats.Msg) {
	// The admit stages and the checks run on one Arrival: made once.
	c := &checks{a: Arrival{Subject: m.Subject, Header: m.Header, Data: m.Data, Now: time.Now()}, tel: true}
	if err := r.run(Admit, &c.a); err != nil {
		return // counted and logged by its stage
	}
	r.work <- c
}

// telemetry finishes a telemetry message on a worker, its checks made:
// refused with the reason its stage gave (counted and logged, a few every
// five seconds, as a durable signal's refusal but without a dead letter:
// telemetry is never stored), or published once to our local
// subscribers on an.telsig.<origin>.<class>.<service>.<resource>.
func (r *Receiver) telemetry(c *checks) {
	a := &c.a
	err := c.err
	var subj string
	if err == nil {
		if subj, err = subject.TelemetrySignal(a.Key); err != nil {
			err = reject.Wrap(reject.BadAttribute, err)
		}
	}
	if err == nil && r.telPublish != nil {
		if err = r.telPublish(subj, a.Ev); err != nil {
			err = reject.Wrap(reject.Unavailable, err)
		}
	}
	if err != nil {
		r.rejected(r.telLog, "link: telemetry rejected (not stored, not dead-lettered)", a.Ev, err)
		return
	}
	// Not an observer's Crossed: that is for what we stored (metrics'
	// latencies, OTLP spans, the demo's ledger); telemetry is counted
	// here.
	r.tally.telemetry.Add(1)
}
