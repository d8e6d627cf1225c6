package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/otlp"
	"github.com/anfed/anfed/internal/signal"
)

// TestOTLPSpansContinueTraceparent on real nodes: op-a and op-b export
// spans to an OTLP/HTTP collector. A congestion whose producer began
// trace 4bf92f… (span 00f067aa…) gives a span at op-a (stored) and one at
// op-b (the hop from op-a's send to op-b's store), both in that trace and
// children of the producer's span; a signal without a traceparent gives
// none.
func TestOTLPSpansContinueTraceparent(t *testing.T) {
	col := startCollector(t)
	na, _ := pairWith(t, []string{"congestion"}, []string{"congestion"}, func(c *config.Config) {
		c.Telemetry.OTLP = &config.OTLP{Endpoint: col.url}
	})
	pa, err := na.Connect()
	require.NoError(t, err)
	defer pa.Close()
	traced := condEv("op-a", "ot-1", "r1", signal.Raised)
	plain := condEv("op-a", "ot-2", "r2", signal.Raised)
	plain.TraceParent, plain.TraceState = "", ""
	require.True(t, publish(t, pa, traced).OK())
	require.True(t, publish(t, pa, plain).OK())
	byName := map[string]otlp.Span{}
	waitFor(t, 15*time.Second, func() error {
		for _, s := range col.got() {
			byName[s.Name] = s
		}
		if len(byName) < 2 {
			return fmt.Errorf("spans %v", byName)
		}
		return nil
	})
	store, link := byName["anfed store congestion"], byName["anfed link op-a > op-b"]
	for _, s := range []otlp.Span{store, link} {
		assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", s.TraceID, s.Name)
		assert.Equal(t, "00f067aa0ba902b7", s.ParentSpanID, s.Name)
		start, _ := strconv.ParseInt(s.Start, 10, 64)
		end, _ := strconv.ParseInt(s.End, 10, 64)
		assert.LessOrEqual(t, start, end, s.Name)
		assert.WithinDuration(t, time.Now(), time.Unix(0, end), time.Minute, s.Name)
	}
	start, _ := strconv.ParseInt(link.Start, 10, 64)
	end, _ := strconv.ParseInt(link.End, 10, 64)
	assert.Greater(t, end, start, "the hop takes time")
	spans := col.got()
	for _, s := range spans {
		assert.NotEqual(t, "ot-2", spanAttr(s, "cloudevents.event_id"), "no span without a traceparent")
	}
	t.Logf("%d spans; link op-a > op-b took %s", len(spans), time.Duration(end-start))
}

// spanCollector is an OTLP/HTTP collector that keeps the spans it is sent.
type spanCollector struct {
	url   string
	mu    sync.Mutex
	spans []otlp.Span
}

func startCollector(t *testing.T) *spanCollector {
	t.Helper()
	c := &spanCollector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req otlp.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
	}))
	t.Cleanup(srv.Close)
	c.url = srv.URL + "/v1/traces"
	return c
}

func (c *spanCollector) got() []otlp.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]otlp.Span(nil), c.spans...)
}

func spanAttr(s otlp.Span, k string) string {
	for _, a := range s.Attributes {
		if a.Key == k {
			return a.Value.String
		}
	}
	return ""
}

// TestOTLPSpansFollowAnAction: op-b proposes a reroute with the
// traceparent of the congestion that caused it; op-a's accept carries it
// on, so the proposal's hop to op-a, op-a's accept stored there and its
// hop back to op-b are spans of that one trace at two operators.
func TestOTLPSpansFollowAnAction(t *testing.T) {
	col := startCollector(t)
	s := startCoordStar(t, func(c *config.Config) { c.Telemetry.OTLP = &config.OTLP{Endpoint: col.url} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := reroute("b-otel-1", "ic-otel", 10*time.Minute)
	p.TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	a, err := s.clients["op-b"].Propose(ctx, p)
	require.NoError(t, err)
	require.True(t, a.Accepted())
	want := map[string]string{ // span name at operator → the event it is about
		"op-a anfed link op-b > op-a": a.ProposalID,
		"op-a anfed store action":     a.Decisions["op-a"].EventID,
		"op-b anfed link op-a > op-b": a.Decisions["op-a"].EventID,
		"op-b anfed store action":     a.ProposalID,
	}
	waitFor(t, 15*time.Second, func() error {
		seen := map[string]string{}
		for _, sp := range col.got() {
			if sp.TraceID == "0af7651916cd43dd8448eb211c80319c" {
				seen[spanAttr(sp, "anfed.operator")+" "+sp.Name] = spanAttr(sp, "cloudevents.event_id")
			}
		}
		for k, id := range want {
			if seen[k] != id {
				return fmt.Errorf("%s: span of %q, want %q (spans of the trace: %v)", k, seen[k], id, seen)
			}
		}
		return nil
	})
}
