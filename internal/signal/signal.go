// Package signal is the CloudEvents contract of anfed: the Event a signal
// is, how it is encoded on NATS (structured mode) and decoded (structured
// and binary mode), and the attributes every signal must carry.
package signal

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/reject"
)

// SpecVersion is the CloudEvents version anfed speaks.
const SpecVersion = "1.0"

// ContentType is the only data content type anfed accepts.
const ContentType = "application/json"

// StructuredContentType is the content type of a structured-mode message.
const StructuredContentType = "application/cloudevents+json"

// State is a condition's lifecycle state.
type State string

// The lifecycle states.
const (
	Raised  State = "raised"
	Updated State = "updated"
	Cleared State = "cleared"
)

// Valid reports whether s is a known state.
func (s State) Valid() bool { return s == Raised || s == Updated || s == Cleared }

// Attribute names of the extensions anfed uses. Standard CloudEvents
// extensions are used wherever one exists; anfed* only where none does.
const (
	AttrOrigin         = "anfedorigin"    // the origin operator id (signed)
	AttrState          = "anfedstate"     // raised, updated or cleared (signed)
	AttrPath           = "anfedpath"      // operators crossed, comma list (not signed)
	AttrTags           = "anfedtags"      // tags, like BGP communities, comma list (not signed)
	AttrCorrelationID  = "correlationid"  // correlation extension
	AttrCausationID    = "causationid"    // correlation extension
	AttrExpiryTime     = "expirytime"     // expirytime extension
	AttrSeverityText   = "severitytext"   // severity extension
	AttrSeverityNumber = "severitynumber" // severity extension
	AttrSequence       = "sequence"       // sequence extension
	AttrTraceParent    = "traceparent"    // distributed tracing extension
	AttrTraceState     = "tracestate"     // distributed tracing extension
	AttrDSSEMaterial   = "dssematerial"   // verifiability extension
	AttrSignedExtAttrs = "signedextattrs" // verifiability extension
)

// Event is one signal: a CloudEvent 1.0 with anfed's attributes as fields.
// Data holds the exact bytes of the JSON data: every hop forwards them
// unchanged, because the origin signature covers them.
type Event struct {
	ID              string
	Source          string
	Type            string
	Subject         string
	Time            time.Time
	DataContentType string
	DataSchema      string
	Data            json.RawMessage

	Origin string
	State  State
	Path   []string
	// Tags are like BGP communities (RFC 1997, RFC 8092): tokens a
	// producer, a sender or a receiver attaches, matched by policy. Like
	// the path they are hop-by-hop claims, not covered by the origin's
	// signature: each operator may set them on export and import.
	Tags           []string
	CorrelationID  string
	CausationID    string
	ExpiryTime     time.Time // zero: no expiry
	SeverityText   string
	SeverityNumber int // 0: absent (the severity extension's numbers start at 1)
	Sequence       string
	TraceParent    string
	TraceState     string
	DSSEMaterial   string
	SignedExtAttrs string

	// Extensions holds any other extension attribute, preserved as
	// string, int32 or bool.
	Extensions map[string]any
}

// Clone is a copy of e that a hop may change as the senders change
// their copies — the path appended to, the tags, the data and the
// signature replaced — while e stays as it is: the path and the tags
// are capped, so that an append copies them, and the extensions are
// copied; the strings and the data's bytes, which nothing writes in
// place, are shared.
func (e *Event) Clone() *Event {
	c := *e
	c.Path = slices.Clip(e.Path)
	c.Tags = slices.Clip(e.Tags)
	if e.Extensions != nil {
		c.Extensions = maps.Clone(e.Extensions)
	}
	return &c
}

// Service and Resource split Subject ("<service>/<resource>").
func (e *Event) Service() string {
	s, _, _ := strings.Cut(e.Subject, "/")
	return s
}

// Resource is the part of Subject after the first '/'.
func (e *Event) Resource() string {
	_, r, _ := strings.Cut(e.Subject, "/")
	return r
}

// Key is the deduplication key: source and id.
func (e *Event) Key() string { return e.Source + " " + e.ID }

// OnPath reports whether operator id is on the event's path.
func (e *Event) OnPath(id string) bool {
	for _, p := range e.Path {
		if p == id {
			return true
		}
	}
	return false
}

// SourceOrigin returns the operator id in an anfed://<operator>/<producer> source.
func SourceOrigin(source string) (string, bool) {
	rest, ok := strings.CutPrefix(source, "anfed://")
	if !ok {
		return "", false
	}
	op, prod, ok := strings.Cut(rest, "/")
	if !ok || op == "" || prod == "" {
		return "", false
	}
	return op, true
}

// Check verifies the attributes every anfed signal must carry, beyond what
// decoding already checked. It returns a *reject.Error saying what is wrong
// and how to fix it.
func (e *Event) Check() error {
	switch {
	case e.ID == "":
		return reject.Errorf(reject.MissingAttribute, "id is required: a unique id per source, e.g. a UUID")
	case e.Source == "":
		return reject.Errorf(reject.MissingAttribute, "source is required: anfed://<operator-id>/<producer>")
	case e.Type == "":
		return reject.Errorf(reject.MissingAttribute, "type is required: net.anfed.<class>.v<N>")
	case e.Subject == "":
		return reject.Errorf(reject.MissingAttribute, "subject is required: <service>/<resource>")
	case e.Time.IsZero():
		return reject.Errorf(reject.MissingAttribute, "time is required: when the condition was observed, RFC 3339")
	case e.Origin == "":
		return reject.Errorf(reject.MissingAttribute, "%s is required: the origin operator id", AttrOrigin)
	case e.State == "":
		return reject.Errorf(reject.MissingAttribute, "%s is required: raised, updated or cleared", AttrState)
	}
	if !e.State.Valid() {
		return reject.Errorf(reject.BadAttribute, "%s %q: want raised, updated or cleared", AttrState, e.State)
	}
	if e.DataContentType != "" && e.DataContentType != ContentType {
		return reject.Errorf(reject.BadAttribute, "datacontenttype %q: anfed signals carry %s data", e.DataContentType, ContentType)
	}
	svc, res, ok := strings.Cut(e.Subject, "/")
	if !ok || svc == "" || res == "" {
		return reject.Errorf(reject.BadAttribute, "subject %q: want <service>/<resource>, both non-empty", e.Subject)
	}
	op, ok := SourceOrigin(e.Source)
	if !ok {
		return reject.Errorf(reject.BadAttribute, "source %q: want anfed://<operator-id>/<producer>", e.Source)
	}
	if op != e.Origin {
		return reject.Errorf(reject.WrongOrigin, "source %q names operator %q but %s is %q", e.Source, op, AttrOrigin, e.Origin)
	}
	if !ValidOperatorID(e.Origin) {
		return reject.Errorf(reject.BadAttribute, "%s %q: want ^[a-z][a-z0-9-]{0,31}$", AttrOrigin, e.Origin)
	}
	for _, p := range e.Path {
		if !ValidOperatorID(p) {
			return reject.Errorf(reject.BadAttribute, "%s element %q: want operator ids, ^[a-z][a-z0-9-]{0,31}$", AttrPath, p)
		}
	}
	if err := CheckTags(e.Tags); err != nil {
		return err
	}
	if e.SeverityNumber < 0 || e.SeverityNumber > 24 {
		return reject.Errorf(reject.BadAttribute, "%s %d: want 1..24 (severity extension)", AttrSeverityNumber, e.SeverityNumber)
	}
	if len(e.Data) == 0 {
		return reject.Errorf(reject.MissingAttribute, "data is required: a JSON object matching the class schema")
	}
	return nil
}

// Well-known tags (RFC 1997's NO_EXPORT and NO_ADVERTISE, for signals).
const (
	// TagNoExport: the operator that receives the signal keeps and uses
	// it, and relays it to no peer. A sender sets it on export to mean
	// "do not pass on"; on our own signals it does not stop our export.
	TagNoExport = "no-export"
	// TagNoAdvertise: the operator that holds the signal exports it to
	// no peer. A producer sets it to keep a signal local.
	TagNoAdvertise = "no-advertise"
)

// Bounds of a signal's tags.
const (
	MaxTags   = 32
	MaxTagLen = 64
)

// TagSyntax describes a valid tag, for error messages and hints.
const TagSyntax = `1 to 64 characters: a lowercase letter or digit, then lowercase letters, digits, ".", "_", ":" or "-" (e.g. no-export, op-a:gold)`

// ValidTag reports whether t is a valid tag.
func ValidTag(t string) bool {
	if len(t) == 0 || len(t) > MaxTagLen {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '.' || c == '_' || c == ':' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// CheckTags returns a *reject.Error when tags are not valid: too many, a
// token of bad syntax, or one given twice.
func CheckTags(tags []string) error {
	if len(tags) > MaxTags {
		return reject.Errorf(reject.BadAttribute, "%s holds %d tags: at most %d", AttrTags, len(tags), MaxTags)
	}
	for i, t := range tags {
		if !ValidTag(t) {
			return reject.Errorf(reject.BadAttribute, "%s element %q: a tag is %s", AttrTags, t, TagSyntax)
		}
		for _, u := range tags[:i] {
			if u == t {
				return reject.Errorf(reject.BadAttribute, "%s names %q twice", AttrTags, t)
			}
		}
	}
	return nil
}

// Retag returns tags without remove and with add (each once, in order),
// or an error when that is more than MaxTags. tags is not changed.
func Retag(tags, remove, add []string) ([]string, error) {
	if len(remove) == 0 && len(add) == 0 {
		return tags, nil
	}
	out := make([]string, 0, len(tags)+len(add))
	for _, t := range tags {
		if !slices.Contains(remove, t) {
			out = append(out, t)
		}
	}
	for _, t := range add {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) > MaxTags {
		return tags, fmt.Errorf("the signal would carry %d tags, more than %d", len(out), MaxTags)
	}
	if len(out) == 0 {
		out = nil
	}
	return out, nil
}

// HasTag reports whether the event carries tag t.
func (e *Event) HasTag(t string) bool {
	for _, x := range e.Tags {
		if x == t {
			return true
		}
	}
	return false
}

// HasAnyTag reports whether the event carries at least one of tags.
func (e *Event) HasAnyTag(tags []string) bool {
	for _, t := range tags {
		if e.HasTag(t) {
			return true
		}
	}
	return false
}

// ValidOperatorID reports whether id is a valid operator id.
func ValidOperatorID(id string) bool {
	if len(id) == 0 || len(id) > 32 || id[0] < 'a' || id[0] > 'z' {
		return false
	}
	for i := 1; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
