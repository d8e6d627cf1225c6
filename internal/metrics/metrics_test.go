package metrics

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// value is the gathered value of the series name{labels} (counter or
// histogram count); -1 when absent.
func value(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	assert.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	series:
		for _, s := range f.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range s.GetLabel() {
					if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue series
				}
			}
			if h := s.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return s.GetCounter().GetValue()
		}
	}
	return -1
}

func TestObserverCounts(t *testing.T) {
	m := New()
	o := m.Observer()
	ev := &signal.Event{Source: "anfed://op-a/x", ID: "1"}
	o.Crossed(observe.Crossing{From: "op-a", To: "op-b", Event: ev, Latency: 3 * time.Millisecond})
	o.Crossed(observe.Crossing{From: "op-a", To: "op-b", Event: ev, Duplicate: true})
	o.Rejected(observe.Rejection{From: "op-a", Reason: reject.NotImported})
	o.Rejected(observe.Rejection{Reason: reject.SchemaInvalid})                         // a local producer
	o.Rejected(observe.Rejection{To: "op-c", Reason: reject.BufferAge})                 // dropped at our end on its way to op-c
	o.Rejected(observe.Rejection{To: "op-c", Reason: reject.DeliveryChanged, Count: 7}) // a backlog of 7 dropped at once
	o.Accepted(observe.Acceptance{Event: &signal.Event{Source: "anfed://op-b/y", ID: "2"}})
	o.Accepted(observe.Acceptance{Duplicate: true})

	assert.Equal(t, 1.0, value(t, m, "anfed_peer_signals_in_total", "peer", "op-a"), "a duplicate is not counted in")
	assert.Equal(t, 1.0, value(t, m, "anfed_peer_rejected_total", "peer", "op-a", "reason", "not-imported"))
	assert.Equal(t, 1.0, value(t, m, "anfed_peer_rejected_total", "peer", "local", "reason", "schema-invalid"))
	assert.Equal(t, 1.0, value(t, m, "anfed_peer_rejected_total", "peer", "op-c", "reason", "buffer-age"), "a drop on the way out counts against the peer")
	assert.Equal(t, -1.0, value(t, m, "anfed_peer_rejected_total", "peer", "local", "reason", "buffer-age"), "not as a local producer's")
	assert.Equal(t, 7.0, value(t, m, "anfed_peer_rejected_total", "peer", "op-c", "reason", "delivery-changed"), "a drop of several counts each signal")
	assert.Equal(t, map[string]uint64{"buffer-age": 1, "delivery-changed": 7}, m.Counts("op-c").Rejected)
	assert.Equal(t, 1.0, value(t, m, "anfed_local_signals_total", "result", "accepted"))
	assert.Equal(t, 1.0, value(t, m, "anfed_local_signals_total", "result", "duplicate"))
	assert.Equal(t, 1.0, value(t, m, "anfed_peer_import_latency_seconds", "peer", "op-a"))
	c := m.Counts("op-a")
	assert.Equal(t, uint64(1), c.In)
	assert.Equal(t, map[string]uint64{"not-imported": 1}, c.Rejected)
	c.Rejected["x"] = 9 // a copy
	assert.NotContains(t, m.Counts("op-a").Rejected, "x")
	assert.Contains(t, m.storedAt, "anfed://op-a/x 1")
	assert.Contains(t, m.storedAt, "anfed://op-b/y 2")
}

func TestStoredAtIsBounded(t *testing.T) {
	m := New()
	for i := range storedAtCap + 100 {
		m.stored(fmt.Sprintf("s %d", i), time.Now())
	}
	assert.Len(t, m.storedAt, storedAtCap)
	assert.NotContains(t, m.storedAt, "s 99", "the oldest are forgotten first")
	assert.Contains(t, m.storedAt, fmt.Sprintf("s %d", storedAtCap+99))
	assert.True(t, strings.HasPrefix(m.ring[0], "s "))
}
