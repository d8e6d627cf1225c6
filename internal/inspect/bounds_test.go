package inspect_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/inspect"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/schemacheck"
	"github.com/anfed/anfed/internal/signal"
)

func okEvent() *signal.Event {
	return &signal.Event{
		ID: "e-1", Source: "anfed://op-a/assurance", Type: "net.anfed.fault.v1",
		Subject: "vpn-acme/ic-paris-1", Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		Origin: "op-a", State: signal.Raised,
		Data: json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"linkDown","specificProblem":"LOS","alarmedObject":{"id":"ic-paris-1","type":"interconnect"},"alarmRaisedTime":"2026-11-25T17:00:00Z"}`),
	}
}

// TestBounds: each attribute at its bound passes, one byte (or one
// element) over is refused as bad-attribute by Decode, whatever the
// content mode, with the bound and the length and without the value.
func TestBounds(t *testing.T) {
	cat, err := schemacheck.Load()
	require.NoError(t, err)
	insp := inspect.New(cat, 0)
	over := func(n int) string { return strings.Repeat("x", n+1) }
	many := func(n int) []string {
		p := make([]string, n+1)
		for i := range p {
			p[i] = "op-x"
		}
		return p
	}
	tests := []struct {
		name string
		edit func(*signal.Event)
		want string
	}{
		{"id", func(e *signal.Event) { e.ID = over(inspect.MaxIDBytes) }, "id is 257 bytes: at most 256"},
		{"source", func(e *signal.Event) { e.Source = "anfed://op-a/" + over(inspect.MaxIDBytes) }, "source is 270 bytes: at most 256"},
		{"ASCII service", func(e *signal.Event) { e.Subject = over(inspect.MaxNameToken) + "/r" }, "the service is 1025 bytes, 1025 once percent-encoded"},
		{"escaped resource", func(e *signal.Event) { e.Subject = "s/" + strings.Repeat(" ", 342) }, "the resource is 342 bytes, 1026 once percent-encoded"},
		{"non-ASCII resource", func(e *signal.Event) { e.Subject = "s/" + strings.Repeat("日", 114) }, "the resource is 342 bytes, 1026 once percent-encoded"},
		{"type", func(e *signal.Event) { e.Type = over(inspect.MaxAttrBytes) }, "type is 1025 bytes: at most 1024"},
		{"traceparent", func(e *signal.Event) { e.TraceParent = over(inspect.MaxAttrBytes) }, "traceparent is 1025 bytes"},
		{"dssematerial", func(e *signal.Event) { e.DSSEMaterial = over(inspect.MaxAttrBytes) }, "dssematerial is 1025 bytes"},
		{"extension value", func(e *signal.Event) { e.Extensions = map[string]any{"vendorx": over(inspect.MaxAttrBytes)} }, "extension vendorx is 1025 bytes"},
		{"extension name", func(e *signal.Event) { e.Extensions = map[string]any{over(inspect.MaxAttrName): "v"} }, "name is 65 bytes: at most 64"},
		{"extensions", func(e *signal.Event) {
			e.Extensions = map[string]any{}
			for i := range inspect.MaxExtensions + 1 {
				e.Extensions["x"+strings.Repeat("y", i)] = true
			}
		}, "33 extension attributes: at most 32"},
		{"path", func(e *signal.Event) { e.Path = many(inspect.MaxPath) }, "anfedpath names 65 operators: at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := okEvent()
			tt.edit(ev)
			for mode, decode := range map[string]func() (*signal.Event, error){
				"structured": func() (*signal.Event, error) { return insp.Decode(nil, ev.Encode()) },
				"binary":     func() (*signal.Event, error) { return insp.Decode(binaryHeaders(t, ev), ev.Data) },
			} {
				got, err := decode()
				require.Error(t, err, mode)
				assert.Nil(t, got, "%s: a refused signal's long values go nowhere", mode)
				assert.Equal(t, reject.BadAttribute, reject.ReasonOf(err), mode)
				assert.Contains(t, err.Error(), tt.want, mode)
				assert.Less(t, len(err.Error()), 400, mode)
			}
		})
	}
	t.Run("at the bounds", func(t *testing.T) {
		ev := okEvent()
		ev.ID = strings.Repeat("i", inspect.MaxIDBytes)
		ev.Subject = strings.Repeat("s", inspect.MaxNameToken) + "/" + strings.Repeat("日", inspect.MaxNameToken/9)
		ev.CorrelationID = strings.Repeat("c", inspect.MaxAttrBytes)
		ev.Path = many(inspect.MaxPath - 1)
		_, err := insp.Decode(nil, ev.Encode())
		require.NoError(t, err)
	})
}

// binaryHeaders is ev's attributes as binary-mode NATS headers.
func binaryHeaders(t *testing.T, ev *signal.Event) map[string][]string {
	t.Helper()
	var attrs map[string]any
	require.NoError(t, json.Unmarshal(ev.Encode(), &attrs))
	h := map[string][]string{"content-type": {signal.ContentType}}
	for k, v := range attrs {
		if k == "data" || k == "datacontenttype" {
			continue
		}
		h["ce-"+k] = []string{fmt.Sprint(v)} // strings, booleans and small integers
	}
	return h
}
