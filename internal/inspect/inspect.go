// Package inspect is the schema-check step of the signal's journey: it
// turns a NATS message into a signal, or a refusal with a reason. Intake
// (local producers) and the link receiver (peers) both inspect every signal
// the same way before any policy looks at it.
package inspect

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// DefaultMaxBytes bounds one encoded signal.
const DefaultMaxBytes = 64 << 10

// Inspector checks messages against the CloudEvents contract and the
// signal catalog. It is safe for concurrent use.
type Inspector struct {
	catalog  *schemacheck.Catalog
	maxBytes int
	now      func() time.Time
}

// New returns an Inspector refusing messages larger than maxBytes
// (DefaultMaxBytes when maxBytes <= 0).
func New(catalog *schemacheck.Catalog, maxBytes int) *Inspector {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	return &Inspector{catalog: catalog, maxBytes: maxBytes, now: time.Now}
}

// Decode reads a message in either content mode, refusing oversized ones
// and attributes over their bounds (Bounds).
func (in *Inspector) Decode(hdr nats.Header, body []byte) (*signal.Event, error) {
	if len(body) > in.maxBytes {
		return nil, reject.Errorf(reject.Oversized, "%d bytes is over the %d-byte limit for one signal", len(body), in.maxBytes)
	}
	ev, err := signal.Decode(hdr, body)
	if err != nil {
		return nil, err
	}
	if err := Bounds(ev); err != nil {
		return nil, err // nor its long values to logs
	}
	return ev, nil
}

// Check verifies a decoded signal: required attributes, a known type, a
// matching dataschema and data valid against the class schema.
func (in *Inspector) Check(ev *signal.Event) (class string, err error) {
	if err := ev.Check(); err != nil {
		return "", err
	}
	class, _, ok := schemas.ClassOf(ev.Type)
	if !ok {
		return "", reject.Errorf(reject.UnknownType, "type %q is not in the signal catalog: want net.anfed.<class>.v1 with class one of %v", ev.Type, schemas.Classes)
	}
	if ev.DataSchema != "" && !schemas.IsSchemaURI(ev.DataSchema, class) {
		return "", reject.Errorf(reject.BadAttribute, "dataschema %q does not match type %s: want %s or leave it out", ev.DataSchema, ev.Type, schemas.SchemaURI(class))
	}
	if err := in.catalog.Validate(ev.Type, ev.Data); err != nil {
		var de *schemacheck.DataError
		switch {
		case errors.As(err, &de):
			return "", reject.Wrap(reject.SchemaInvalid, err)
		case errors.Is(err, schemacheck.ErrUnknownType):
			return "", reject.Wrap(reject.UnknownType, err)
		default:
			return "", reject.Wrap(reject.SchemaInvalid, fmt.Errorf("validate: %w", err))
		}
	}
	return class, nil
}

// Live refuses a signal whose condition is already void: its expirytime
// has passed. Nodes apply it on acceptance; file validation does not.
func (in *Inspector) Live(ev *signal.Event) error { return LiveAt(ev, in.now()) }

// LiveAt is Live at the time now (`anfed policy explain` has its own clock).
func LiveAt(ev *signal.Event, now time.Time) error {
	if !ev.ExpiryTime.IsZero() && ev.ExpiryTime.Before(now) {
		return reject.Errorf(reject.Expired, "%s %s has passed: the condition is void", signal.AttrExpiryTime, ev.ExpiryTime.UTC().Format(time.RFC3339))
	}
	return nil
}

// Full decodes and checks a message in one call.
func (in *Inspector) Full(hdr nats.Header, body []byte) (*signal.Event, string, error) {
	ev, err := in.Decode(hdr, body)
	if err != nil {
		return nil, "", err
	}
	class, err := in.Check(ev)
	if err != nil {
		return ev, "", err
	}
	return ev, class, nil
}
