package otlp

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseTraceParent(t *testing.T) {
	for tp, want := range map[string]bool{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":       true,
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra": true, // a later version may add fields
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra": false,
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01":       false,
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01":       false,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01":       false,
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01":       false,
		"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01":        false,
		"00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01":       false,
		"": false,
	} {
		_, _, ok := ParseTraceParent(tp)
		assert.Equal(t, want, ok, tp)
	}
}

// collector is an OTLP/HTTP endpoint that keeps what it is sent.
type collector struct {
	mu    sync.Mutex
	spans []Span
	types []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.types = append(c.types, r.Header.Get("Content-Type"))
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
}

func (c *collector) got() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

func attr(s Span, k string) string {
	for _, a := range s.Attributes {
		if a.Key == k {
			return a.Value.String
		}
	}
	return ""
}

// A crossing, a local store and a refusal of signals that carry a
// traceparent become spans of that trace, children of its span; a
// signal without one makes none; Close sends what waits.
func TestExporterSpans(t *testing.T) {
	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	e := New(srv.URL+"/v1/traces", "op-b", zerolog.Nop())
	now := time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return now }
	ev := &signal.Event{ID: "c-1", Source: "anfed://op-a/assurance", Type: "net.anfed.congestion.v1", Subject: "vpn-acme/ic-1", Origin: "op-a",
		Path: []string{"op-a"}, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: "anfed=1"}
	e.Crossed(observe.Crossing{From: "op-a", To: "op-b", Event: ev, Latency: 3 * time.Millisecond})
	e.Accepted(observe.Acceptance{Node: "op-b", Event: ev})
	e.Rejected(observe.Rejection{Node: "op-b", From: "op-a", Reason: reject.SchemaInvalid, Detail: "/data/x: missing", Event: ev})
	e.Crossed(observe.Crossing{From: "op-a", To: "op-b", Event: &signal.Event{ID: "no-trace"}})
	e.Crossed(observe.Crossing{From: "op-a", To: "op-b", Event: ev, Duplicate: true})
	e.Close()
	spans := col.got()
	require.Len(t, spans, 3)
	assert.Equal(t, []string{"application/json"}, col.types)
	link := spans[0]
	assert.Equal(t, "anfed link op-a > op-b", link.Name)
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", link.TraceID)
	assert.Equal(t, "00f067aa0ba902b7", link.ParentSpanID)
	assert.Len(t, link.SpanID, 16)
	assert.Equal(t, "anfed=1", link.TraceState)
	assert.Equal(t, kindConsumer, link.Kind)
	assert.Equal(t, "1796630399997000000", link.Start, "the hop began when op-a sent it")
	assert.Equal(t, "1796630400000000000", link.End)
	assert.Equal(t, "c-1", attr(link, "cloudevents.event_id"))
	assert.Equal(t, "op-b", attr(link, "anfed.operator"))
	assert.Equal(t, "anfed store congestion", spans[1].Name)
	assert.Equal(t, "anfed refused schema-invalid", spans[2].Name)
	assert.Equal(t, Status{Code: 2, Message: "/data/x: missing"}, spans[2].Status)
	assert.NotEqual(t, spans[0].SpanID, spans[1].SpanID)
	assert.Equal(t, Stats{Exported: 3}, e.Stats())
}

// A collector that is away: the spans are counted as failed, the node
// is never held up.
func TestExporterCollectorAway(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) }))
	defer srv.Close()
	e := New(srv.URL, "op-b", zerolog.Nop())
	ev := &signal.Event{ID: "c-1", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	for range 3 {
		e.Accepted(observe.Acceptance{Event: ev})
	}
	e.Close()
	assert.Equal(t, Stats{Failed: 3}, e.Stats())
}
