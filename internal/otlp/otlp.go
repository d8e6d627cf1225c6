// Package otlp records OpenTelemetry spans of what a node did with a
// signal that carries a W3C traceparent (the CloudEvents distributed
// tracing extension), continuing the trace the producer began, and
// exports them to an OTLP/HTTP collector in OTLP's JSON encoding. It is
// an observe.Observer: the pipelines report to it as to any observer and
// never wait on it. Off unless telemetry.otlp.endpoint is set.
//
// No OpenTelemetry SDK: a span here is a few fields made once, when the
// pipeline reports, and OTLP/HTTP JSON is a stable wire format any
// collector reads; the SDK and its exporter would add gRPC, protobuf
// and genproto to the binary for that.
package otlp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/observe"
	"github.com/anfed/anfed/internal/signal"
)

// Bounds of the exporter: spans waiting (past it a span is dropped and
// counted), spans per request, how often it sends, and how long a
// request may take.
const (
	MaxQueued = 8192
	MaxBatch  = 512
	Interval  = time.Second
	Timeout   = 5 * time.Second
)

// Span kinds (OTLP's SpanKind).
const (
	kindInternal = 1
	kindConsumer = 5
)

// Span is one span, in OTLP JSON's field names.
type Span struct {
	TraceID      string `json:"traceId"`
	SpanID       string `json:"spanId"`
	ParentSpanID string `json:"parentSpanId,omitempty"`
	TraceState   string `json:"traceState,omitempty"`
	Name         string `json:"name"`
	Kind         int    `json:"kind"`
	Start        string `json:"startTimeUnixNano"`
	End          string `json:"endTimeUnixNano"`
	Attributes   []KV   `json:"attributes,omitempty"`
	Status       Status `json:"status"`
}

// KV is an attribute with a string value.
type KV struct {
	Key   string `json:"key"`
	Value Value  `json:"value"`
}

// Value is an OTLP AnyValue holding a string.
type Value struct {
	String string `json:"stringValue"`
}

// Status is a span's status: 0 unset, 2 error.
type Status struct {
	Code    int    `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// ParseTraceParent reads a W3C traceparent (version 00): the trace id
// and the parent span id, in lower-case hex. ok is false for anything
// else, or for all-zero ids.
func ParseTraceParent(tp string) (traceID, parentID string, ok bool) {
	p := strings.Split(tp, "-")
	if len(p) < 4 || len(p[0]) != 2 || p[0] == "ff" || len(p[1]) != 32 || len(p[2]) != 16 || len(p[3]) != 2 {
		return "", "", false
	}
	if p[0] == "00" && len(p) != 4 {
		return "", "", false
	}
	for _, s := range p[:4] {
		if _, err := hex.DecodeString(s); err != nil || strings.ToLower(s) != s {
			return "", "", false
		}
	}
	if strings.Trim(p[1], "0") == "" || strings.Trim(p[2], "0") == "" {
		return "", "", false
	}
	return p[1], p[2], true
}

// Exporter makes the spans and sends them; Close sends what is left.
type Exporter struct {
	endpoint string
	self     string
	client   *http.Client
	log      zerolog.Logger
	now      func() time.Time

	mu     sync.Mutex
	queue  []Span
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool

	exported, dropped, failed atomic.Uint64
}

// New returns an exporter of self's spans to endpoint (an OTLP/HTTP
// traces URL, e.g. http://collector:4318/v1/traces) and starts it.
func New(endpoint, self string, log zerolog.Logger) *Exporter {
	e := &Exporter{endpoint: endpoint, self: self, client: &http.Client{Timeout: Timeout}, log: log.With().Str("component", "otlp").Logger(),
		now: time.Now, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

// Stats are the exporter's counts: spans sent, dropped (the queue was
// full or the exporter closed) and lost with a request that failed.
type Stats struct{ Exported, Dropped, Failed uint64 }

// Stats reports the exporter's counts.
func (e *Exporter) Stats() Stats {
	return Stats{Exported: e.exported.Load(), Dropped: e.dropped.Load(), Failed: e.failed.Load()}
}

// Accepted: a local producer's signal stored here: a span at the moment
// it was stored, child of the producer's span.
func (e *Exporter) Accepted(a observe.Acceptance) {
	if a.Duplicate {
		return
	}
	now := e.now()
	e.add(a.Event, "anfed store "+className(a.Event), kindInternal, now, now, Status{},
		KV{"anfed.from", Value{observe.Local}})
}

// Crossed: a peer's signal stored here: a span from the moment the peer
// sent it to the moment we stored it, the hop across the border.
func (e *Exporter) Crossed(c observe.Crossing) {
	if c.Duplicate {
		return
	}
	end := e.now()
	e.add(c.Event, "anfed link "+c.From+" > "+c.To, kindConsumer, end.Add(-c.Latency), end, Status{},
		KV{"anfed.from", Value{c.From}}, KV{"anfed.path", Value{strings.Join(c.Event.Path, ",")}})
}

// Rejected: a signal refused here (or dropped on its way to a peer): a
// span with an error status naming the reason.
func (e *Exporter) Rejected(r observe.Rejection) {
	if r.Event == nil {
		return
	}
	now := e.now()
	from := r.From
	if from == "" {
		from = e.self
	}
	attrs := []KV{{"anfed.from", Value{from}}, {"anfed.reason", Value{string(r.Reason)}}}
	if r.To != "" {
		attrs = append(attrs, KV{"anfed.to", Value{r.To}})
	}
	e.add(r.Event, "anfed refused "+string(r.Reason), kindInternal, now, now, Status{Code: 2, Message: r.Detail}, attrs...)
}

func className(ev *signal.Event) string {
	t := strings.TrimPrefix(ev.Type, "net.anfed.")
	if i := strings.LastIndexByte(t, '.'); i > 0 {
		return t[:i]
	}
	return t
}

// add queues a span of ev, if it carries a traceparent.
func (e *Exporter) add(ev *signal.Event, name string, kind int, start, end time.Time, st Status, attrs ...KV) {
	if ev == nil || e.closed.Load() {
		return
	}
	traceID, parent, ok := ParseTraceParent(ev.TraceParent)
	if !ok {
		return
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	sp := Span{TraceID: traceID, SpanID: hex.EncodeToString(id[:]), ParentSpanID: parent, TraceState: ev.TraceState,
		Name: name, Kind: kind, Start: strconv.FormatInt(start.UnixNano(), 10), End: strconv.FormatInt(end.UnixNano(), 10), Status: st,
		Attributes: append([]KV{{"anfed.operator", Value{e.self}}, {"cloudevents.event_id", Value{ev.ID}}, {"cloudevents.event_source", Value{ev.Source}},
			{"cloudevents.event_type", Value{ev.Type}}, {"cloudevents.event_subject", Value{ev.Subject}}, {"anfed.origin", Value{ev.Origin}}}, attrs...)}
	e.mu.Lock()
	if len(e.queue) >= MaxQueued {
		e.mu.Unlock()
		e.dropped.Add(1)
		return
	}
	e.queue = append(e.queue, sp)
	full := len(e.queue) >= MaxBatch
	e.mu.Unlock()
	if full {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *Exporter) run() {
	defer close(e.done)
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-e.wake:
		case <-e.stop:
			// What is queued, in a few requests at most: a collector
			// that is away must not hold the node's stop for long.
			for i := 0; i < 3 && e.send() > 0; i++ {
			}
			e.mu.Lock()
			e.dropped.Add(uint64(len(e.queue)))
			e.queue = nil
			e.mu.Unlock()
			return
		}
		for e.send() >= MaxBatch {
		}
	}
}

// send posts up to MaxBatch queued spans; it returns how many it took.
func (e *Exporter) send() int {
	e.mu.Lock()
	n := min(len(e.queue), MaxBatch)
	batch := append([]Span(nil), e.queue[:n]...)
	e.queue = append(e.queue[:0], e.queue[n:]...)
	e.mu.Unlock()
	if n == 0 {
		return 0
	}
	if err := e.post(batch); err != nil {
		e.failed.Add(uint64(n))
		e.log.Warn().Err(err).Int("spans", n).Uint64("failed", e.failed.Load()).Msg("otlp: spans not exported (telemetry.otlp.endpoint)")
		return n
	}
	e.exported.Add(uint64(n))
	return n
}

// Request is OTLP's ExportTraceServiceRequest in JSON, the part we fill.
type Request struct {
	ResourceSpans []ResourceSpans `json:"resourceSpans"`
}

// ResourceSpans are one resource's spans.
type ResourceSpans struct {
	Resource   Resource     `json:"resource"`
	ScopeSpans []ScopeSpans `json:"scopeSpans"`
}

// Resource describes the node.
type Resource struct {
	Attributes []KV `json:"attributes"`
}

// ScopeSpans are one instrumentation scope's spans.
type ScopeSpans struct {
	Scope Scope  `json:"scope"`
	Spans []Span `json:"spans"`
}

// Scope names the instrumentation.
type Scope struct {
	Name string `json:"name"`
}

func (e *Exporter) post(spans []Span) error {
	body, err := json.Marshal(Request{ResourceSpans: []ResourceSpans{{
		Resource:   Resource{Attributes: []KV{{"service.name", Value{"anfed"}}, {"service.instance.id", Value{e.self}}}},
		ScopeSpans: []ScopeSpans{{Scope: Scope{Name: "github.com/anfed/anfed"}, Spans: spans}},
	}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("collector answered %s", resp.Status)
	}
	return nil
}

// Close sends what is queued (up to 3 requests, each bounded by
// Timeout; the rest counted as dropped) and ends the exporter; spans
// reported later are not kept.
func (e *Exporter) Close() {
	if e.closed.Swap(true) {
		return
	}
	close(e.stop)
	<-e.done
}
