// Package link is the wire protocol between two anfed nodes: the hop
// headers that order and correlate a link's messages (sequence,
// predecessor, epoch, front), the probe that syncs a sender with what its
// peer decided, and which refusals are about now rather than about the
// signal; the sending end's window (Window: what is in flight, when to
// probe, resend in order, hold or give up) and the receiving end's order
// (Order). It holds plain types driven with the time and no NATS
// connection: the senders (internal/outbound) and the receiver
// (internal/inbound) speak it.
package link

import "github.com/anfed/anfed/internal/reject"

// Hop headers of the link protocol. They order and correlate a link's
// messages; they are not part of the signal.
const (
	// HeaderSeq is the sender's store sequence of the signal.
	HeaderSeq = "Anfed-Seq"
	// HeaderPrev is the store sequence of the signal the sender exported
	// to this peer just before, or 0 when it makes no claim (after a
	// restart). The receiver refuses a signal whose Prev it has not
	// decided yet, so a lost message is resent before any later one is
	// taken: per-source order holds across link cuts.
	HeaderPrev = "Anfed-Prev"
	// HeaderEpoch names the sender's store; a new store restarts the
	// sequence.
	HeaderEpoch = "Anfed-Epoch"
	// HeaderFront marks the first signal the sender has not had answered:
	// everything before it the receiver decided. A receiver that knows
	// nothing of the link yet (it restarted) starts only from such a
	// signal, never from one sent behind it.
	HeaderFront = "Anfed-Front"
	// HeaderSent carries the sender's export time (Unix nanoseconds), from
	// which the receiver reports crossing latency.
	HeaderSent = "Anfed-Sent"
)

// Retryable reports whether a refusal is about now, not about the signal:
// the sender keeps the signal and sends it again.
func Retryable(reason string) bool {
	switch reject.Reason(reason) {
	case reject.Unavailable, reject.RateLimited, reject.OutOfOrder:
		return true
	}
	return false
}

// HeaderRefresh marks a signal that re-states the sender's current state
// in a refresh (its value is the refresh's id): it makes no ordering claim
// and carries no sequence; the receiver stores it only if its table does
// not hold it already.
const HeaderRefresh = "Anfed-Refresh"

// HeaderRefreshKeep, on a refresh's signal, says that the signal is still
// on its way to the receiver in order: it only keeps the condition the
// receiver holds from the End-of-RIB's sweep, and is never stored.
const HeaderRefreshKeep = "Anfed-Refresh-Keep"

// Stream delivery (export.delivery: stream) headers. A stream sender
// numbers every message it publishes on the link, telemetry and stored
// signals alike, so the receiver counts what the link lost (Gaps); the
// numbers make no ordering claim and nothing is resent.
const (
	// HeaderStreamSeq is the message's number in the sender's stream,
	// from 1.
	HeaderStreamSeq = "Anfed-Stream-Seq"
	// HeaderStreamEpoch names the sender's stream (one per sender run): a
	// new epoch restarts the numbers.
	HeaderStreamEpoch = "Anfed-Stream-Epoch"
	// HeaderTelemetry marks telemetry: checked like any signal, then
	// published to the receiver's local subscribers only, never stored.
	HeaderTelemetry = "Anfed-Telemetry"
)
