package node_test

import (
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
	var mu sync.Mutex
	var spans []otlp.Span
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req otlp.Request
		require.NoError(t, json.NewDecoder(r.Body).Decode(&req))
		mu.Lock()
		defer mu.Unlock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans = append(spans, ss.Spans...)
			}
		}
	}))
	defer col.Close()
	na, _ := pairWith(t, []string{"congestion"}, []string{"congestion"}, func(c *config.Config) {
		c.Telemetry.OTLP = &config.OTLP{Endpoint: col.URL + "/v1/traces"}
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
		mu.Lock()
		defer mu.Unlock()
		for _, s := range spans {
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
	mu.Lock()
	defer mu.Unlock()
	for _, s := range spans {
		for _, a := range s.Attributes {
			if a.Key == "cloudevents.event_id" {
				assert.NotEqual(t, "ot-2", a.Value.String, "no span without a traceparent")
			}
		}
	}
	t.Logf("%d spans; link op-a > op-b took %s", len(spans), time.Duration(end-start))
}
