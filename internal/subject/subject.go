// Package subject is the NATS subject scheme of anfed. Subjects carry, in
// separate tokens, what permissions and filters need: the neighbour that sent
// a signal over a link, its origin, its class, its service and its resource.
//
// Inside an operator (operations account):
//
//	an.pub[.anything]                          producers publish here (intake)
//	an.tel[.anything]                          producers publish telemetry here (stream
//	                                           delivery: checked, signed, never stored)
//	an.telsig.<origin>.<class>.<service>.<resource> checked telemetry, local and imported,
//	                                           core NATS only
//	an.sig.<origin>.<class>.<service>.<resource> accepted signals, local and imported
//	an.dlq.<from>.<reason>                     rejected signals, reason in a header
//	an.store.<...>                             where the node writes accepted signals; the
//	                                           store keeps and republishes them as an.sig
//	an.held.<peer>.<hash>                      the latest signal of a condition that flap
//	                                           dampening suppressed, one per condition
//	an.keyheld.<peer>                          signals held for want of their origin's key
//	an.ribin.<peer>.<hash>                     a peer's signals import policy refused (Adj-RIB-In)
//	an.probe                                   the readiness probe's write to the store
//	an.cond.<kind>.<origin>.<class>.<service>.<resource> changes of the condition table
//	an.api.conditions, an.api.peers            the node's request-reply API
//
// On a link (the per-peer account shared by the two ends of a leaf link):
//
//	an.link.<from>.<origin>.<class>.<service>.<resource>
//	an.link.<from>.<from>.probe                a sender's probe
//	an.link.<from>.<from>.advisory             advisories to the peer
//	an.ack.<from>.>                            answers to from's requests
//
// so a NATS permission on "an.link.<peer>.>" alone says who may send, and
// "an.link.<peer>.<peer>.>" that the peer may send only its own signals.
// A consumer picks by class (an.sig.*.fault.>), service (an.sig.*.*.vpn-1.>)
// or origin (an.sig.op-b.>) with one wildcard subject.
package subject

import (
	"errors"
	"fmt"
	"strings"
)

// Fixed subjects and prefixes.
const (
	IntakePrefix = "an.pub"
	Intake       = "an.pub.>"
	// TelemetryIntakePrefix and TelemetryIntake: where producers publish
	// telemetry (export.delivery: stream), an.tel[.anything]. Checked
	// like an.pub, signed, never stored.
	TelemetryIntakePrefix = "an.tel"
	TelemetryIntake       = "an.tel.>"
	// TelemetryPrefix and Telemetry: checked telemetry, ours and our
	// peers', an.telsig.<origin>.<class>.<service>.<resource>, published
	// once on core NATS for local closed loops and the stream senders.
	// Outside an.tel.>, so intake never takes it back.
	TelemetryPrefix = "an.telsig"
	Telemetry       = "an.telsig.>"
	SignalPrefix    = "an.sig"
	Signals         = "an.sig.>"
	DLQPrefix       = "an.dlq"
	StorePrefix     = "an.store"
	Store           = "an.store.>"
	LinkPrefix      = "an.link"
	HeldPrefix      = "an.held"
	Held            = "an.held.>"
	// KeyHeldPrefix and KeyHeld: the signals held for want of their
	// origin's key, an.keyheld.<peer> (store.KeyHeldStream).
	KeyHeldPrefix = "an.keyheld"
	KeyHeld       = "an.keyheld.>"
	// StoreProbe is where the node's readiness probe writes to the store
	// (store.ProbeStream), apart from the signals.
	StoreProbe = "an.probe"
	// RibInPrefix and RibIn: a peer's signals kept before import policy
	// (its Adj-RIB-In): an.ribin.<peer>.<condition hash>.
	RibInPrefix = "an.ribin"
	RibIn       = "an.ribin.>"
	// CondPrefix carries each change of the condition table:
	// an.cond.<kind>.<origin>.<class>.<service>.<resource>, JSON body.
	CondPrefix = "an.cond"
	// APIConditions answers a JSON conditions.Filter with the table.
	APIConditions = "an.api.conditions"
	// APIPeers answers with each peer's link state and backlog.
	APIPeers = "an.api.peers"
	// APIPeerRefresh asks for a refresh with a peer: a JSON
	// {"peer":"op-b","inbound":true,"outbound":false}; both directions
	// when neither is set. It answers {"ok":true} or {"error":"..."}.
	APIPeerRefresh = "an.api.peer.refresh"
	// APIPeerState asks, with a peer's id, the process of the operator
	// that works the peer's link for its view of it (nats.external: the
	// other processes fill their peers view from it).
	APIPeerState = "an.api.peer.state"
	// APIActions answers with the actions the node has seen and the
	// leases that hold as it sees them (internal/coordination).
	APIActions = "an.api.actions"
	// APIActionDecide takes a person's decision on a proposal the
	// node's coordination policy left to one: a JSON
	// {"id":"...","accept":true,"reason":"...","by":"..."}; it answers
	// the action's record or {"error":"..."}.
	APIActionDecide = "an.api.action.decide"
	// APITrace answers a signal's (or a correlation's) id with its
	// causation chain from what the node stored (internal/trace).
	APITrace = "an.api.trace"
	// APIKeysRotate starts a rotation of the node's signing key: a JSON
	// {"overlap":"24h"}. It answers the rotation or {"error":"..."}.
	APIKeysRotate = "an.api.keys.rotate"
	// APIKeys answers with the node's signing keys: ours, our rotation,
	// each peer's pinned keys and its last rotation.
	APIKeys = "an.api.keys"
	// APIAudit answers a query of the audit trail (internal/audit):
	// {"peer":"...","kind":"...","since":"RFC 3339","verify":true}.
	APIAudit = "an.api.audit"
	// AuditPrefix and Audit: the audit trail's records,
	// an.audit.<chain>.<kind>.<peer> (internal/audit).
	AuditPrefix = "an.audit"
	Audit       = "an.audit.>"
	// AckPrefix starts the inboxes of a node's requests on a link.
	AckPrefix = "an.ack"
)

// Bounds of the subjects this package builds. nats-server closes a client
// connection whose protocol line ("PUB <subject> <reply> <size>") passes
// its max_control_line, 4,096 bytes by default: a subject over it would
// cut the node's own store connection. A leaf connection may send lines
// sixteen times longer, so a peer can hand the node a link subject that
// the node could not publish again. Service and resource names are bounded
// at intake (internal/inspect) by MaxToken; Signal and Link refuse to
// build anything longer as a second line.
const (
	// MaxToken is the most bytes a service or resource token may take,
	// percent-encoded (Token): 1,024 ASCII letters, digits or safe
	// punctuation, or 341 bytes of non-ASCII UTF-8 (each byte is three).
	MaxToken = 1024
	// MaxSubject is the most bytes of a subject Signal or Link builds: the
	// longest a signal within MaxToken makes is 2,145 (an.link, two
	// 32-byte operator ids, the longest class); the rest of the 4,096-byte
	// control line is room for a reply subject and the sizes.
	MaxSubject = 3072
)

// ErrTooLong is returned by Signal and Link for a key whose subject would
// be over the bounds.
var ErrTooLong = errors.New("subject over its bound")

// Cond is the subject of a change of kind to the condition k.
func Cond(kind string, k Key) string {
	return CondPrefix + "." + kind + "." + k.Origin + "." + k.Class + "." + Token(k.Service) + "." + Token(k.Resource)
}

// Ack is the inbox prefix a node uses for requests on a link: the peer
// may publish only below it (an.ack.<self>.>).
func Ack(self string) string { return AckPrefix + "." + self }

// Probe is where a sender asks the receiver whether it hears it; it lies
// inside the narrowest permission a peer has on the link.
func Probe(from string) string { return LinkPrefix + "." + from + "." + from + ".probe" }

// Session is where from's node sends its session messages
// (internal/session) to its peer, inside the same permission as its
// probes.
func Session(from string) string { return LinkPrefix + "." + from + "." + from + ".session" }

// Advisory is where from's node sends advisories to its peer, inside the
// same permission as its probes.
func Advisory(from string) string { return LinkPrefix + "." + from + "." + from + ".advisory" }

// Key is what a subject says of a signal.
type Key struct {
	Origin   string
	Class    string
	Service  string
	Resource string
}

// Signal is the operations-account subject of an accepted signal, or
// ErrTooLong.
func Signal(k Key) (string, error) { return keyed(SignalPrefix, k) }

// keyed is k's subject under prefix, or ErrTooLong.
func keyed(prefix string, k Key) (string, error) {
	svc, res, err := names(k)
	if err != nil {
		return "", err
	}
	// One concatenation: one allocation.
	return bounded(prefix + "." + k.Origin + "." + k.Class + "." + svc + "." + res)
}

// TelemetrySignal is the operations-account subject of checked
// telemetry, or ErrTooLong: Signal's tokens under TelemetryPrefix.
func TelemetrySignal(k Key) (string, error) { return keyed(TelemetryPrefix, k) }

// Link is the link subject of a signal sent by from, or ErrTooLong.
func Link(from string, k Key) (string, error) {
	svc, res, err := names(k)
	if err != nil {
		return "", err
	}
	return bounded(LinkPrefix + "." + from + "." + k.Origin + "." + k.Class + "." + svc + "." + res)
}

// names are k's service and resource tokens, each within MaxToken.
func names(k Key) (svc, res string, err error) {
	if n := TokenLen(k.Service); n > MaxToken {
		return "", "", fmt.Errorf("%w: the service token is %d bytes percent-encoded, more than %d", ErrTooLong, n, MaxToken)
	}
	if n := TokenLen(k.Resource); n > MaxToken {
		return "", "", fmt.Errorf("%w: the resource token is %d bytes percent-encoded, more than %d", ErrTooLong, n, MaxToken)
	}
	return Token(k.Service), Token(k.Resource), nil
}

func bounded(s string) (string, error) {
	if len(s) > MaxSubject {
		return "", fmt.Errorf("%w: %d bytes, more than %d", ErrTooLong, len(s), MaxSubject)
	}
	return s, nil
}

// LinkFrom is the wildcard subject of everything from sends on a link.
func LinkFrom(from string) string { return LinkPrefix + "." + from + ".>" }

// DLQ is the dead-letter subject for a signal from "from" (a peer id, or
// "local" for local producers) refused for reason.
func DLQ(from, reason string) string {
	return DLQPrefix + "." + Token(from) + "." + Token(reason)
}

// ParseSignal parses an an.sig subject (or an an.telsig one: the same
// tokens).
func ParseSignal(s string) (Key, error) {
	var buf [6]string
	t := split(buf[:0], s)
	if len(t) != 6 || t[0] != "an" || t[1] != "sig" && t[1] != "telsig" {
		return Key{}, fmt.Errorf("subject %s: want an.sig.<origin>.<class>.<service>.<resource> (or an.telsig.…)", short(s))
	}
	return parseKey(s, t[2:])
}

// ParseLink parses an an.link subject and returns the sender and the key.
func ParseLink(s string) (from string, k Key, err error) {
	var buf [7]string
	t := split(buf[:0], s)
	if len(t) != 7 || t[0] != "an" || t[1] != "link" {
		return "", Key{}, fmt.Errorf("subject %s: want an.link.<from>.<origin>.<class>.<service>.<resource>", short(s))
	}
	k, err = parseKey(s, t[3:])
	return t[2], k, err
}

// split is strings.Split(s, ".") into t's room, without allocating when
// it fits; past cap(t)+1 tokens it stops, which the callers refuse as a
// wrong count.
func split(t []string, s string) []string {
	for len(t) < cap(t) {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return append(t, s)
		}
		t = append(t, s[:i])
		s = s[i+1:]
	}
	return append(t, s) // one too many: refused by length
}

func parseKey(s string, t []string) (Key, error) {
	if len(s) > MaxSubject {
		return Key{}, fmt.Errorf("subject of %d bytes: %w (%d)", len(s), ErrTooLong, MaxSubject)
	}
	for i, what := range [...]string{"service", "resource"} {
		if len(t[2+i]) > MaxToken {
			return Key{}, fmt.Errorf("subject of %d bytes: its %s token is %d bytes, more than %d", len(s), what, len(t[2+i]), MaxToken)
		}
	}
	svc, err := Untoken(t[2])
	if err != nil {
		return Key{}, fmt.Errorf("subject %s: service: %w", short(s), err)
	}
	res, err := Untoken(t[3])
	if err != nil {
		return Key{}, fmt.Errorf("subject %s: resource: %w", short(s), err)
	}
	for _, x := range []string{t[0], t[1], svc, res} {
		if x == "" {
			return Key{}, fmt.Errorf("subject %s: empty token", short(s))
		}
	}
	for _, x := range t[:2] {
		if !plainToken(x) {
			return Key{}, fmt.Errorf("subject %s: origin and class are lowercase letters, digits and '-', not %s", short(s), short(x))
		}
	}
	return Key{Origin: t[0], Class: t[1], Service: svc, Resource: res}, nil
}

// short quotes s for an error message, cut to its first 128 bytes: a
// subject from a peer may be 64 KiB long, and errors end up in logs and
// dead-letter headers.
func short(s string) string {
	const n = 128
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:n], len(s))
}

// plainToken reports whether t is an operator id or class token: a-z, 0-9
// and '-' (so never a wildcard).
func plainToken(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// tokenSafe reports whether b may stand as itself in a subject token. The
// rest, including '.', '*', '>', '%', '$', spaces and non-ASCII bytes, is
// percent-encoded so that a service or resource name can never add a token
// or a wildcard.
func tokenSafe(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '-', '_', '~', ':', '@', '+', '=', ',', '/', '#', '!', '&', '(', ')', '[', ']', '\'':
		return true
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

// TokenLen is len(Token(s)), without building the token.
func TokenLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !tokenSafe(s[i]) {
			n += 2
		}
	}
	return n
}

// Token encodes s as one subject token.
func Token(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !tokenSafe(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenSafe(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// Untoken decodes a token made by Token.
func Untoken(t string) (string, error) {
	if !strings.Contains(t, "%") {
		for i := 0; i < len(t); i++ {
			if !tokenSafe(t[i]) {
				return "", fmt.Errorf("byte %q at %d must be percent-encoded", t[i], i)
			}
		}
		return t, nil
	}
	var b strings.Builder
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == '%' {
			if i+2 >= len(t) {
				return "", fmt.Errorf("truncated escape at %d", i)
			}
			hi, lo := unhex(t[i+1]), unhex(t[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("bad escape %q at %d: want %%XX with uppercase hex digits", t[i:i+3], i)
			}
			c := byte(hi<<4 | lo)
			if tokenSafe(c) {
				// One name, one token: a safe byte is never escaped.
				return "", fmt.Errorf("escape %q at %d stands for %q, which is written as itself", t[i:i+3], i, c)
			}
			b.WriteByte(c)
			i += 2
			continue
		}
		if !tokenSafe(c) {
			return "", fmt.Errorf("byte %q at %d must be percent-encoded", c, i)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
