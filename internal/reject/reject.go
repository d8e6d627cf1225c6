// Package reject names why a signal was refused. Every step of the signal's
// journey that can refuse a signal returns an *Error carrying one of these
// reasons, so that rejections are counted per peer and reason, sent to the
// dead-letter subject with the reason attached, and answered to the sender.
package reject

import (
	"errors"
	"fmt"
)

// Reason is a short, stable, metric-friendly rejection reason.
type Reason string

// The reasons. They appear in metrics labels, dead-letter subjects and
// headers: keep them lowercase, dash-separated and stable.
const (
	Malformed        Reason = "malformed"         // not a decodable CloudEvent
	MissingAttribute Reason = "missing-attribute" // a required attribute is absent
	BadAttribute     Reason = "bad-attribute"     // an attribute has an invalid value
	UnknownType      Reason = "unknown-type"      // type not in the catalog
	SchemaInvalid    Reason = "schema-invalid"    // data fails the class schema
	WrongOrigin      Reason = "wrong-origin"      // origin is not who may send it
	Loop             Reason = "loop"              // our id is already on the path
	NotImported      Reason = "not-imported"      // import policy refuses the class
	Filtered         Reason = "filtered"          // an import filter refuses it: import.tags, import.filter
	NotAuthorized    Reason = "not-authorized"    // its origin may not originate its class or service: may_originate
	Oversized        Reason = "oversized"         // larger than the limit
	Duplicate        Reason = "duplicate"         // (source, id) already accepted
	Unavailable      Reason = "unavailable"       // no durable path to accept it now
	BadSignature     Reason = "bad-signature"     // missing, malformed or not verifying
	UnknownOrigin    Reason = "unknown-origin"    // no signing key pinned for the origin
	Expired          Reason = "expired"           // expirytime has passed: the condition is void
	RateLimited      Reason = "rate-limited"      // over the peer's import rate
	OutOfOrder       Reason = "out-of-order"      // a link message whose predecessor was not decided yet
	Revoked          Reason = "revoked"           // the peering has expired
	// TooManyConditions: the peer holds import.max_conditions active
	// conditions and the signal would raise a new one. Not retryable: the
	// link is ordered, and holding this signal at its head would hold up
	// the updates and clears that can bring the count down.
	TooManyConditions Reason = "too-many-conditions"
	// Dampened: a signal of a condition suppressed by flap dampening
	// (import.dampening) that a later signal of the same condition
	// superseded while it was held. Answered accepted to the sender; only
	// the latest held signal is delivered, at release.
	Dampened Reason = "dampened"
	// SessionFlood: a session message from a peer over its session rate
	// (node.SessionRate, node.SessionBurst), a REFRESH ask over
	// node.RefreshAskEvery, or an End-of-RIB with no refresh of its id in
	// progress. Dropped, counted, logged at most once a second.
	SessionFlood Reason = "session-flood"
	// KeyHeld: a signal refused only because its origin's signing key is
	// not pinned (yet), otherwise valid, is held (store.KeyHeldStream)
	// and checked again when the pins change. Not retryable: the sender
	// has handed it over; it is not accepted either (it may never verify),
	// so the sender does not count it as delivered.
	KeyHeld Reason = "key-held"
	// BadKeyRotation: a peer's key-rotation session message refused —
	// not signed by a key pinned for it, for another origin than the
	// peer, over the keys pinned at once, a switch to a rotation not
	// accepted. Counted, logged, answered key-refuse; the pins stay.
	BadKeyRotation Reason = "bad-key-rotation"
)

// Drops at our end: a signal of ours that a peer will not get, counted
// against that peer (observe.Rejection.To).
const (
	// BufferAge: it waited for the peer longer than export.buffer.max_age.
	BufferAge Reason = "buffer-age"
	// BufferBytes: what waited for the peer passed export.buffer.max_bytes,
	// and it was among the oldest not yet sent.
	BufferBytes Reason = "buffer-bytes"
	// Undeliverable: the link drops it while the peer hears us (NATS
	// permissions derived from the peer's policy forbid it); the sender
	// gave up on it.
	Undeliverable Reason = "undeliverable"
	// StoreBound: the store discarded it at its bounds
	// (storage.max_age, max_bytes) before the peer's durable export
	// reached it. Counted whether or not the peer's policy would have
	// sent it: the store cannot tell any more.
	StoreBound Reason = "store-bound"
	// DeliveryChanged: it waited in the peer's durable export
	// (unsent or unanswered) when the peer's export.delivery became
	// lossy; that backlog is dropped with the durable consumer, never
	// sent.
	DeliveryChanged Reason = "delivery-changed"
)

// Error is a refusal with its reason and a human explanation that says what
// was wrong and, where possible, how to fix it.
type Error struct {
	Reason Reason
	Detail string
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }

// Errorf returns an *Error with the given reason.
func Errorf(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with reason r whose detail is err's text.
func Wrap(r Reason, err error) error {
	return &Error{Reason: r, Detail: err.Error()}
}

// ReasonOf returns the reason carried by err, or "" when err is not a refusal.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}
