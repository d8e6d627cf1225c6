package bridge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/anfed/anfed/internal/closedloop"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// MaxRegistrations bounds a hub's registrations: each is a durable
// consumer and a delivery loop.
const MaxRegistrations = 256

// Registration is a listener registered on a hub (TMF630 Hub).
type Registration struct {
	ID       string    `json:"id"`
	Callback string    `json:"callback"`
	Query    string    `json:"query,omitempty"`
	Created  time.Time `json:"created"`
}

// registration is a registration and its running delivery.
type registration struct {
	Registration
	query  url.Values
	loop   *closedloop.Loop
	cancel context.CancelFunc
	done   chan struct{}
}

// Notification is what a hub POSTs for one stored signal: Body to
// {callback}/listener/{Resource}; Fields are what a registration's query
// filters on. A nil Notification: the signal is not for listeners.
type Notification struct {
	Body     any
	Resource string
	Fields   map[string]string
}

// HubOptions make a Hub: a TMF630 hub whose registered listeners get the
// stored signals of Filter as the API's notifications, each from its own
// durable consumer, retried with backoff and dead-lettered after
// Delivery.MaxAttempts (the TMF642 hub's delivery, and TMF921's).
type HubOptions struct {
	Name   string // the API's name: consumers are <Name>-hub-<id>, logs say "<Name> hub"
	Bucket string // the JetStream KV bucket of the registrations, made by OpenHub
	// KV, when set, is a bucket the registrations share with others (no
	// bucket is made), under keys Prefix<id>.
	KV        jetstream.KeyValue
	Prefix    string
	Path      string // the hub's route (POST Path, GET/DELETE Path/{id})
	Filter    string // the stored signals delivered
	QueryKeys []string
	// QueryExample is a query shown in errors (perceivedSeverity=CRITICAL,MAJOR).
	QueryExample string
	// Example is a registration body shown in errors.
	Example string
	// Resources says where events go, shown in errors ("{callback}/listener/alarmCreateEvent and its siblings").
	Resources string
	// Notify makes a signal's notification; an error dead-letters it.
	Notify   func(ev *signal.Event) (*Notification, error)
	Delivery config.TMF642Delivery
	// Check checks a request's credentials, answering 401 with fail.
	Check func(w http.ResponseWriter, r *http.Request, fail func(w http.ResponseWriter, code int, msg string)) bool
	// Fail answers a refusal, counted by reason.
	Fail func(reason string) func(w http.ResponseWriter, code int, msg string)
	// Delivered counts deliveries by result: ok, failed, dead-letter, filtered.
	Delivered *prometheus.CounterVec
	Log       zerolog.Logger
}

// Hub is a TMF630 hub over the node's stored signals.
type Hub struct {
	o      HubOptions
	nc     *nats.Conn
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	client *http.Client
	mu     sync.Mutex
	// running is true from Start until its ctx ends or Stop: a
	// registration's delivery starts only then, with a context of its
	// own that end cancels.
	running bool
	regs    map[string]*registration
	wg      sync.WaitGroup
}

// OpenHub opens the registrations' bucket on nc (the operations account).
func OpenHub(ctx context.Context, nc *nats.Conn, o HubOptions) (*Hub, error) {
	o.Delivery = o.Delivery.WithDefaults()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("%s hub: %w", o.Name, err)
	}
	kv := o.KV
	if kv == nil {
		if kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: o.Bucket, Description: "anfed " + o.Name + " hub registrations", Storage: jetstream.FileStorage, MaxBytes: store.KVMaxBytes}); err != nil {
			return nil, fmt.Errorf("%s hub: key-value bucket %s: %w", o.Name, o.Bucket, err)
		}
	}
	return &Hub{o: o, nc: nc, js: js, kv: kv, client: &http.Client{Timeout: time.Duration(o.Delivery.Timeout)}, regs: map[string]*registration{}}, nil
}

// Mount adds the hub's routes to mux.
func (h *Hub) Mount(mux Mux) {
	mux.Handle("POST "+h.o.Path, http.HandlerFunc(h.register))
	mux.Handle("GET "+h.o.Path, http.HandlerFunc(h.list))
	mux.Handle("GET "+h.o.Path+"/{id}", http.HandlerFunc(h.get))
	mux.Handle("DELETE "+h.o.Path+"/{id}", http.HandlerFunc(h.unregister))
}

func (h *Hub) parseQuery(q string) (url.Values, error) {
	v, err := url.ParseQuery(strings.TrimPrefix(q, "?"))
	if err != nil {
		return nil, fmt.Errorf("query %q: %v", q, err)
	}
	for k := range v {
		if !slices.Contains(h.o.QueryKeys, k) {
			return nil, fmt.Errorf("query %q: cannot filter on %q: filter on %s (values comma-separated, e.g. %s)", q, k, strings.Join(h.o.QueryKeys, ", "), h.o.QueryExample)
		}
	}
	return v, nil
}

// Start starts the delivery of every stored registration; deliveries
// run until ctx ends (then Stop waits for them).
func (h *Hub) Start(ctx context.Context) {
	h.mu.Lock()
	h.running = true
	h.mu.Unlock()
	context.AfterFunc(ctx, h.end)
	keys, err := h.kv.ListKeys(ctx)
	if err != nil {
		h.o.Log.Error().Err(err).Msgf("%s hub: listing registrations", h.o.Name)
		return
	}
	for k := range keys.Keys() {
		if !strings.HasPrefix(k, h.o.Prefix) {
			continue
		}
		e, err := h.kv.Get(ctx, k)
		if err != nil {
			h.o.Log.Error().Err(err).Str("id", k).Msgf("%s hub: reading a registration", h.o.Name)
			continue
		}
		var r Registration
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			h.o.Log.Error().Err(err).Str("id", k).Msgf("%s hub: a stored registration does not decode; left alone", h.o.Name)
			continue
		}
		if err := h.run(r); err != nil {
			h.o.Log.Error().Err(err).Str("id", k).Msgf("%s hub: starting a delivery", h.o.Name)
		}
	}
}

// end ends the deliveries: those running and those registered later.
func (h *Hub) end() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = false
	for _, reg := range h.regs {
		reg.cancel()
	}
}

// Stop ends the deliveries (as the end of Start's ctx does) and waits
// for them.
func (h *Hub) Stop() {
	h.end()
	h.wg.Wait()
}

func (h *Hub) consumer(id string) string { return h.o.Name + "-hub-" + id }

// run starts r's delivery loop and returns once its durable consumer
// exists: every signal stored from then on is delivered.
func (h *Hub) run(r Registration) error {
	q, err := h.parseQuery(r.Query)
	if err != nil {
		return err
	}
	h.mu.Lock()
	if !h.running {
		h.mu.Unlock()
		return errors.New("the hub is not running")
	}
	if _, ok := h.regs[r.ID]; ok {
		h.mu.Unlock()
		return nil
	}
	reg := &registration{Registration: r, query: q, done: make(chan struct{})}
	started := make(chan struct{})
	d := h.o.Delivery
	reg.loop = closedloop.New(h.nc, closedloop.Options{
		Name: h.consumer(r.ID), Filter: h.o.Filter, MaxInFlight: 32,
		BackOff: backoffs(time.Duration(d.Initial), time.Duration(d.Max)), MaxDeliver: d.MaxAttempts, Jitter: 0.5,
		Log: h.o.Log, Started: func() { close(started) },
	}, func(ctx context.Context, ev *signal.Event, dl closedloop.Delivery) error {
		return h.deliver(ctx, reg, ev, dl)
	})
	ctx, cancel := context.WithCancel(context.Background()) // end or unregister cancels it
	reg.cancel = cancel
	h.regs[r.ID] = reg
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer close(reg.done)
		if err := reg.loop.Run(ctx); err != nil {
			h.o.Log.Error().Err(err).Str("id", r.ID).Msgf("%s hub: delivery did not start", h.o.Name)
		}
	}()
	h.mu.Unlock()
	select {
	case <-started:
		return nil
	case <-reg.done:
	case <-time.After(30 * time.Second):
		cancel()
		<-reg.done
	}
	h.mu.Lock()
	delete(h.regs, r.ID)
	h.mu.Unlock()
	return errors.New("its durable consumer could not be created")
}

// backoffs is the exponential schedule from initial, doubling, capped at max.
func backoffs(initial, max time.Duration) []time.Duration {
	var out []time.Duration
	for d := initial; ; d *= 2 {
		if d >= max {
			return append(out, max)
		}
		out = append(out, d)
	}
}

// deliver POSTs one stored signal to reg's listener as a notification.
func (h *Hub) deliver(ctx context.Context, reg *registration, ev *signal.Event, dl closedloop.Delivery) error {
	if dl.Current && ev.State == signal.Cleared {
		// The current state: a condition already cleared is not news.
		return nil
	}
	n, err := h.o.Notify(ev)
	if err != nil {
		h.o.Delivered.WithLabelValues("dead-letter").Inc()
		return closedloop.Poison(err)
	}
	if n == nil || !matches(reg.query, n.Fields) {
		h.o.Delivered.WithLabelValues("filtered").Inc()
		return nil
	}
	body, _ := json.Marshal(n.Body)
	target := strings.TrimSuffix(reg.Callback, "/") + "/listener/" + n.Resource
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return closedloop.Poison(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return h.failed(ctx, reg, dl, fmt.Errorf("POST %s: %w", target, err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		h.o.Delivered.WithLabelValues("ok").Inc()
		return nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		// The listener refuses this event: resending it will not help.
		h.o.Delivered.WithLabelValues("dead-letter").Inc()
		h.o.Log.Warn().Str("registration", reg.ID).Str("url", target).Int("status", c).Str("signal", ev.ID).Msgf("%s hub: the listener refused an event; dead-lettered", h.o.Name)
		return closedloop.Poison(fmt.Errorf("POST %s: %s", target, resp.Status))
	default:
		return h.failed(ctx, reg, dl, fmt.Errorf("POST %s: %s", target, resp.Status))
	}
}

func (h *Hub) failed(ctx context.Context, reg *registration, dl closedloop.Delivery, err error) error {
	if ctx.Err() != nil {
		return err // stopping: the next run delivers it; not a failure of the listener
	}
	if int(dl.NumDelivered) >= h.o.Delivery.MaxAttempts {
		h.o.Delivered.WithLabelValues("dead-letter").Inc()
		h.o.Log.Warn().Err(err).Str("registration", reg.ID).Uint64("attempts", dl.NumDelivered).Msgf("%s hub: giving up on an event; dead-lettered", h.o.Name)
	} else {
		h.o.Delivered.WithLabelValues("failed").Inc()
	}
	return err
}

// matches reports whether a notification's fields pass query q: every
// key's value is one of its comma-separated alternatives.
func matches(q url.Values, fields map[string]string) bool {
	for k, vs := range q {
		got := fields[k]
		ok := false
		for _, v := range vs {
			for _, alt := range strings.Split(v, ",") {
				if strings.EqualFold(strings.TrimSpace(alt), got) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// register is POST {hub}: a listener asks for the notifications.
func (h *Hub) register(w http.ResponseWriter, r *http.Request) {
	if !h.o.Check(w, r, h.o.Fail("unauthorized")) {
		return
	}
	body, ok := readBody(w, r, h.o.Fail("malformed"))
	if !ok {
		return
	}
	var req struct {
		Callback string `json:"callback"`
		Query    string `json:"query"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		h.o.Fail("malformed")(w, http.StatusBadRequest, fmt.Sprintf(`a hub registration is %s: not valid JSON: %v`, h.o.Example, err))
		return
	}
	u, err := url.Parse(req.Callback)
	if req.Callback == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		h.o.Fail("bad-field")(w, http.StatusUnprocessableEntity, fmt.Sprintf("callback %q: want the listener's base URL, http:// or https:// with a host; events are POSTed to %s", req.Callback, h.o.Resources))
		return
	}
	if _, err := h.parseQuery(req.Query); err != nil {
		h.o.Fail("bad-field")(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	h.mu.Lock()
	n := len(h.regs)
	h.mu.Unlock()
	if n >= MaxRegistrations {
		h.o.Fail("too-many-registrations")(w, http.StatusConflict, fmt.Sprintf("the hub holds %d registrations, its limit: DELETE %s/{id} the ones no longer listened to", n, h.o.Path))
		return
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	reg := Registration{ID: hex.EncodeToString(idb[:]), Callback: req.Callback, Query: req.Query, Created: time.Now().UTC()}
	val, _ := json.Marshal(reg)
	if _, err := h.kv.Create(r.Context(), h.o.Prefix+reg.ID, val); err != nil {
		h.o.Fail("unavailable")(w, http.StatusServiceUnavailable, fmt.Sprintf("the registration could not be stored (%v): try again", err))
		return
	}
	if err := h.run(reg); err != nil {
		_ = h.kv.Delete(context.WithoutCancel(r.Context()), h.o.Prefix+reg.ID)
		h.o.Fail("unavailable")(w, http.StatusServiceUnavailable, fmt.Sprintf("the delivery could not start (%v): try again", err))
		return
	}
	h.o.Log.Info().Str("id", reg.ID).Str("callback", reg.Callback).Str("query", reg.Query).Msgf("%s hub: listener registered", h.o.Name)
	w.Header().Set("Location", h.o.Path+"/"+reg.ID)
	WriteJSON(w, http.StatusCreated, reg)
}

func (h *Hub) list(w http.ResponseWriter, r *http.Request) {
	if !h.o.Check(w, r, h.o.Fail("unauthorized")) {
		return
	}
	h.mu.Lock()
	out := make([]Registration, 0, len(h.regs))
	for _, reg := range h.regs {
		out = append(out, reg.Registration)
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	WriteJSON(w, http.StatusOK, out)
}

func (h *Hub) get(w http.ResponseWriter, r *http.Request) {
	if !h.o.Check(w, r, h.o.Fail("unauthorized")) {
		return
	}
	h.mu.Lock()
	reg, ok := h.regs[r.PathValue("id")]
	h.mu.Unlock()
	if !ok {
		h.o.Fail("not-found")(w, http.StatusNotFound, fmt.Sprintf("no hub registration %q", r.PathValue("id")))
		return
	}
	WriteJSON(w, http.StatusOK, reg.Registration)
}

// unregister is DELETE {hub}/{id}: the delivery stops and its consumer
// and registration are deleted.
func (h *Hub) unregister(w http.ResponseWriter, r *http.Request) {
	if !h.o.Check(w, r, h.o.Fail("unauthorized")) {
		return
	}
	id := r.PathValue("id")
	h.mu.Lock()
	reg, ok := h.regs[id]
	delete(h.regs, id)
	h.mu.Unlock()
	if !ok {
		h.o.Fail("not-found")(w, http.StatusNotFound, fmt.Sprintf("no hub registration %q", id))
		return
	}
	reg.cancel()
	<-reg.done
	ctx := context.WithoutCancel(r.Context())
	if err := h.js.DeleteConsumer(ctx, store.SignalStream, h.consumer(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		h.o.Log.Warn().Err(err).Str("id", id).Msgf("%s hub: deleting the delivery's consumer", h.o.Name)
	}
	if err := h.kv.Delete(ctx, h.o.Prefix+id); err != nil {
		h.o.Log.Warn().Err(err).Str("id", id).Msgf("%s hub: deleting the registration", h.o.Name)
	}
	h.o.Log.Info().Str("id", id).Msgf("%s hub: listener unregistered", h.o.Name)
	w.WriteHeader(http.StatusNoContent)
}
