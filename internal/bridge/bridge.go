// Package bridge connects anfed to the alarm and event APIs operators'
// OSS and ONAP tooling already speak, on the node's HTTP server:
//
//   - TMF642 Alarm Management v4 in: a listener (POST
//     /tmf-api/alarmManagement/v4/listener/alarmCreateEvent, ...) and hubs
//     registered with upstream OSSs (TMF630/TMF688 hub and listener);
//     alarm events become fault signals.
//   - TMF642 out: our own hub (POST /tmf-api/alarmManagement/v4/hub), and
//     delivery of fault signals as TMF642 alarm events to each registered
//     listener, from a durable JetStream consumer per registration.
//   - ONAP VES 7.x in: POST /eventListener/v7 and /eventListener/v7/eventBatch;
//     fault events become fault signals, measurement events
//     performance-deviation signals when a watched KPI crosses its threshold.
//
// Every inbound event goes through the node's intake like any local
// producer's signal: the answer (2xx) comes only once the signal is stored;
// bad input gets a 4xx naming the field and what was expected, counted in
// anfed_bridge_rejected_total. See docs/bridges.md for the mapping tables.
package bridge

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intake"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// Node is what the bridges need of the node.
type Node interface {
	ID() string
	Connect(opts ...nats.Option) (*nats.Conn, error)
}

// Mux is where the bridges' routes are mounted (the node's HTTP server).
type Mux interface {
	Handle(pattern string, h http.Handler)
}

// Deps are what the bridges work with.
type Deps struct {
	Node    Node
	Config  config.Bridges
	HTTP    config.HTTP // its token_file is the default credential
	Metrics prometheus.Registerer
	Log     zerolog.Logger
	// BaseURL is the node's HTTP server's base URL ("http://127.0.0.1:8440"),
	// read when a hub is registered upstream without bridges.tmf642.callback.
	BaseURL func() string
}

// Bridges are the configured bridges of one node.
type Bridges struct {
	d       Deps
	log     zerolog.Logger
	nc      *nats.Conn
	metrics *metrics
	ves     *ves
	tmf     *tmf642
	cancel  context.CancelFunc
}

// New prepares the configured bridges of a started node; Mount their
// routes, then Start them once the HTTP server listens.
func New(ctx context.Context, d Deps) (*Bridges, error) {
	b := &Bridges{d: d, log: d.Log.With().Str("component", "bridge").Logger()}
	if d.Config.TMF642 == nil && d.Config.VES == nil {
		return b, nil
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, err
	}
	b.metrics = m
	nc, err := d.Node.Connect(nats.Name("anfed-bridge"))
	if err != nil {
		return nil, fmt.Errorf("bridge: %w", err)
	}
	b.nc = nc
	if v := d.Config.VES; v != nil {
		if b.ves, err = newVES(b, v); err != nil {
			nc.Close()
			return nil, err
		}
	}
	if t := d.Config.TMF642; t != nil {
		if b.tmf, err = newTMF642(ctx, b, t); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return b, nil
}

// Mount adds the bridges' routes to mux.
func (b *Bridges) Mount(mux Mux) {
	if b.ves != nil {
		b.ves.mount(mux)
	}
	if b.tmf != nil {
		b.tmf.mount(mux)
	}
}

// Start registers hubs upstream and starts deliveries to our hub's
// listeners; they run until Stop.
func (b *Bridges) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	if b.tmf != nil {
		b.tmf.start(ctx)
	}
}

// Stop unregisters hubs upstream, stops deliveries (each resumes where it
// stood on the next start) and closes the bridges' connection.
func (b *Bridges) Stop() {
	if b.cancel != nil {
		b.cancel()
	}
	if b.tmf != nil {
		b.tmf.stop()
	}
	if b.nc != nil {
		b.nc.Close()
	}
}

// credentials a bridge endpoint accepts.
type auth struct {
	realm    string
	token    string // bearer; "" none
	user     string // basic; "" none
	password string
}

func readAuth(realm, tokenFile, defaultTokenFile, user, passwordFile string) (auth, error) {
	a := auth{realm: realm, user: user}
	var err error
	if tokenFile == "" && user == "" {
		tokenFile = defaultTokenFile
	}
	if tokenFile != "" {
		if a.token, err = config.ReadToken(tokenFile); err != nil {
			return a, fmt.Errorf("%s token_file: %w", realm, err)
		}
	}
	if user != "" {
		if a.password, err = config.ReadToken(passwordFile); err != nil {
			return a, fmt.Errorf("%s password_file: %w", realm, err)
		}
	}
	if a.token == "" && a.user == "" {
		return a, fmt.Errorf("%s: no credentials: set its token_file, or http.token_file", realm)
	}
	return a, nil
}

// check reports whether r carries the credentials; it answers 401 when not.
func (a auth) check(w http.ResponseWriter, r *http.Request, fail func(w http.ResponseWriter, code int, msg string)) bool {
	h := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(h, "Bearer "); ok && a.token != "" &&
		subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(a.token)) == 1 {
		return true
	}
	if u, p, ok := r.BasicAuth(); ok && a.user != "" &&
		subtle.ConstantTimeCompare([]byte(u), []byte(a.user)) == 1 && subtle.ConstantTimeCompare([]byte(p), []byte(a.password)) == 1 {
		return true
	}
	var want []string
	if a.token != "" {
		w.Header().Add("WWW-Authenticate", `Bearer realm="`+a.realm+`"`)
		want = append(want, "Authorization: Bearer <token>")
	}
	if a.user != "" {
		w.Header().Add("WWW-Authenticate", `Basic realm="`+a.realm+`"`)
		want = append(want, "HTTP basic auth with the configured user and password")
	}
	what := "missing credentials"
	if h != "" {
		what = "wrong credentials"
	}
	fail(w, http.StatusUnauthorized, fmt.Sprintf("%s: send %s (see bridges in the node's policy file)", what, strings.Join(want, " or ")))
	return false
}

// maxBody bounds a bridge request body.
const maxBody = 4 << 20

// readBody reads a JSON request body, answering 413 or 400 when it cannot.
func readBody(w http.ResponseWriter, r *http.Request, fail func(w http.ResponseWriter, code int, msg string)) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over the %d-byte limit: send fewer events per request", maxBody))
		} else {
			fail(w, http.StatusBadRequest, "reading the request body: "+err.Error())
		}
		return nil, false
	}
	return b, true
}

// badInput is a payload the bridge cannot map: Field names where, Want
// what was expected.
type badInput struct {
	Code  int // 400: not the JSON expected; 422: a field's value is wrong
	Field string
	Msg   string
}

func (e *badInput) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func bad(field, format string, args ...any) error {
	return &badInput{Code: http.StatusUnprocessableEntity, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func malformed(format string, args ...any) error {
	return &badInput{Code: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// codeOf is the HTTP status of a mapping error.
func codeOf(err error) int {
	var b *badInput
	if errors.As(err, &b) {
		return b.Code
	}
	return http.StatusBadRequest
}

// publishAll hands events to intake (subject an.pub.<from>), in order,
// all before the first answer is awaited, and returns the answers.
func (b *Bridges) publishAll(from string, evs []*signal.Event) []signal.Answer {
	subj := subject.IntakePrefix + "." + from
	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		msgs[i] = &nats.Msg{Subject: subj, Data: ev.Encode()}
	}
	return intake.RequestAll(b.nc, msgs, 10*time.Second)
}

// metrics count what the bridges did.
type metrics struct {
	stored    *prometheus.CounterVec // bridge, result
	rejected  *prometheus.CounterVec // bridge, reason
	ignored   *prometheus.CounterVec // bridge, reason
	delivered *prometheus.CounterVec // result: ok, retry, dead-letter, filtered
	upstream  *prometheus.GaugeVec   // url: 1 registered, 0 not
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anfed", Subsystem: "bridge", Name: "signals_total",
			Help: "Events taken in by a bridge and stored as signals (result=accepted) or already stored (result=duplicate)."}, []string{"bridge", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anfed", Subsystem: "bridge", Name: "rejected_total",
			Help: "Requests or events a bridge refused with a 4xx or 5xx, by reason (unauthorized, malformed, bad-field, or intake's reason)."}, []string{"bridge", "reason"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anfed", Subsystem: "bridge", Name: "ignored_total",
			Help: "Valid events a bridge acknowledged without making a signal: a VES domain not bridged, a measurement without a watched KPI or within its thresholds."}, []string{"bridge", "reason"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anfed", Subsystem: "bridge", Name: "tmf642_deliveries_total",
			Help: "Fault signals POSTed to TMF642 hub listeners, by result: ok, failed (retried later), dead-letter (gave up), filtered (the registration's query left it out)."}, []string{"result"}),
		upstream: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "anfed", Subsystem: "bridge", Name: "tmf642_upstream_registered",
			Help: "1 when the node's hub registration with the upstream TMF642 OSS is in place, 0 while it is being (re)tried."}, []string{"url"}),
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	for _, c := range []prometheus.Collector{m.stored, m.rejected, m.ignored, m.delivered, m.upstream} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("bridge metrics: %w", err)
		}
	}
	return m, nil
}

// WriteJSON answers v as JSON (indented), with code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// epochMicros turns VES microseconds since the epoch into a time.
func epochMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }
