package inspect

import (
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Bounds of a signal's attributes, beyond DefaultMaxBytes for the whole
// signal. Every signal that enters a node (a local producer on an.pub, the
// HTTP ingest, which hands its signals to intake, and a peer's link) is
// decoded by Decode, which checks them before anything else looks at the
// signal: a name that would make a subject over nats-server's control line
// cuts the node's own connection, and an id or source is kept in memory
// for every signal the replay guard remembers. docs/signals.md lists them.
const (
	// MaxNameToken bounds the service and the resource (the two parts of
	// the subject attribute), each percent-encoded as its subject token:
	// 1,024 ASCII letters, digits or safe punctuation, and three bytes for
	// any other byte (so 341 bytes of non-ASCII UTF-8).
	MaxNameToken = subject.MaxToken
	// MaxIDBytes bounds id and source: with each other, they are the
	// deduplication key.
	MaxIDBytes = 256
	// MaxAttrBytes bounds every other string attribute, extensions
	// included (a signature, dssematerial, takes about 400).
	MaxAttrBytes = 1024
	// MaxPath bounds the operators on anfedpath.
	MaxPath = 64
	// MaxExtensions bounds the extension attributes anfed does not know
	// (carried unchanged), and MaxAttrName the length of their names
	// (CloudEvents asks for at most 20).
	MaxExtensions = 32
	MaxAttrName   = 64
)

// Bounds refuses a signal with an attribute over its bound, as
// bad-attribute, with the bound and the attribute's length: the refusal
// never carries the long value itself.
func Bounds(ev *signal.Event) error {
	for _, a := range [...]struct {
		name, v string
		max     int
	}{{"id", ev.ID, MaxIDBytes}, {"source", ev.Source, MaxIDBytes}} {
		if len(a.v) > a.max {
			return reject.Errorf(reject.BadAttribute, "%s is %d bytes: at most %d", a.name, len(a.v), a.max)
		}
	}
	for _, n := range [...]struct{ what, v string }{{"service", ev.Service()}, {"resource", ev.Resource()}} {
		if l := subject.TokenLen(n.v); l > MaxNameToken {
			return reject.Errorf(reject.BadAttribute,
				"subject: the %s is %d bytes, %d once percent-encoded for its subject token: at most %d (ASCII letters, digits and -_~:@+=,/#!&()[]' count one byte, any other byte three)",
				n.what, len(n.v), l, MaxNameToken)
		}
	}
	for _, a := range [...]struct{ name, v string }{
		{"type", ev.Type}, {"datacontenttype", ev.DataContentType}, {"dataschema", ev.DataSchema},
		{signal.AttrOrigin, ev.Origin}, {signal.AttrState, string(ev.State)},
		{signal.AttrCorrelationID, ev.CorrelationID}, {signal.AttrCausationID, ev.CausationID},
		{signal.AttrSeverityText, ev.SeverityText}, {signal.AttrSequence, ev.Sequence},
		{signal.AttrTraceParent, ev.TraceParent}, {signal.AttrTraceState, ev.TraceState},
		{signal.AttrDSSEMaterial, ev.DSSEMaterial}, {signal.AttrSignedExtAttrs, ev.SignedExtAttrs},
	} {
		if len(a.v) > MaxAttrBytes {
			return reject.Errorf(reject.BadAttribute, "%s is %d bytes: at most %d", a.name, len(a.v), MaxAttrBytes)
		}
	}
	if len(ev.Path) > MaxPath {
		return reject.Errorf(reject.BadAttribute, "%s names %d operators: at most %d", signal.AttrPath, len(ev.Path), MaxPath)
	}
	if len(ev.Extensions) > MaxExtensions {
		return reject.Errorf(reject.BadAttribute, "%d extension attributes: at most %d", len(ev.Extensions), MaxExtensions)
	}
	for name, v := range ev.Extensions {
		if len(name) > MaxAttrName {
			return reject.Errorf(reject.BadAttribute, "an extension attribute name is %d bytes: at most %d", len(name), MaxAttrName)
		}
		if s, ok := v.(string); ok && len(s) > MaxAttrBytes {
			return reject.Errorf(reject.BadAttribute, "extension %s is %d bytes: at most %d", name, len(s), MaxAttrBytes)
		}
	}
	return nil
}
