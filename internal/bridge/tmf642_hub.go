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
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/closedloop"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// HubBucket is the JetStream KV bucket (operations account) holding our
// hub's registrations, so that they outlive a restart.
const HubBucket = "ANFED_TMF642_HUB"

// MaxRegistrations bounds our hub's registrations: each is a durable
// consumer and a delivery loop.
const MaxRegistrations = 256

// faultFilter is every stored fault signal, local and imported.
var faultFilter = subject.SignalPrefix + ".*.fault.>"

// Registration is a listener registered on our hub (TMF630 Hub).
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

// hubQueryKeys are the attributes a registration's query may filter on.
var hubQueryKeys = []string{"eventType", "perceivedSeverity", "alarmType", "probableCause", "state", "alarmedObject.id", "alarmedObjectType", "sourceSystemId"}

func parseHubQuery(q string) (url.Values, error) {
	v, err := url.ParseQuery(strings.TrimPrefix(q, "?"))
	if err != nil {
		return nil, fmt.Errorf("query %q: %v", q, err)
	}
	for k := range v {
		if !slices.Contains(hubQueryKeys, k) {
			return nil, fmt.Errorf("query %q: cannot filter on %q: filter on %s (values comma-separated, e.g. perceivedSeverity=CRITICAL,MAJOR)", q, k, strings.Join(hubQueryKeys, ", "))
		}
	}
	return v, nil
}

func (t *tmf642) openHub(ctx context.Context) error {
	js, err := jetstream.New(t.b.nc)
	if err != nil {
		return fmt.Errorf("bridges.tmf642 hub: %w", err)
	}
	t.js = js
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: HubBucket, Description: "anfed TMF642 hub registrations", Storage: jetstream.FileStorage, MaxBytes: store.KVMaxBytes})
	if err != nil {
		return fmt.Errorf("bridges.tmf642 hub: key-value bucket %s: %w", HubBucket, err)
	}
	t.kv = kv
	return nil
}

// startHub starts the delivery of every stored registration.
func (t *tmf642) startHub(ctx context.Context) {
	t.mu.Lock()
	t.ctx = ctx
	t.mu.Unlock()
	keys, err := t.kv.ListKeys(ctx)
	if err != nil {
		t.b.log.Error().Err(err).Msg("tmf642 hub: listing registrations")
		return
	}
	for k := range keys.Keys() {
		e, err := t.kv.Get(ctx, k)
		if err != nil {
			t.b.log.Error().Err(err).Str("id", k).Msg("tmf642 hub: reading a registration")
			continue
		}
		var r Registration
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			t.b.log.Error().Err(err).Str("id", k).Msg("tmf642 hub: a stored registration does not decode; left alone")
			continue
		}
		if err := t.run(r); err != nil {
			t.b.log.Error().Err(err).Str("id", k).Msg("tmf642 hub: starting a delivery")
		}
	}
}

// run starts r's delivery loop and returns once its durable consumer
// exists: every fault stored from then on is delivered.
func (t *tmf642) run(r Registration) error {
	q, err := parseHubQuery(r.Query)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.ctx == nil || t.ctx.Err() != nil {
		t.mu.Unlock()
		return errors.New("the bridge is not running")
	}
	if _, ok := t.regs[r.ID]; ok {
		t.mu.Unlock()
		return nil
	}
	reg := &registration{Registration: r, query: q, done: make(chan struct{})}
	started := make(chan struct{})
	d := t.delivery
	reg.loop = closedloop.New(t.b.nc, closedloop.Options{
		Name: "tmf642-hub-" + r.ID, Filter: faultFilter, MaxInFlight: 32,
		BackOff: backoffs(time.Duration(d.Initial), time.Duration(d.Max)), MaxDeliver: d.MaxAttempts, Jitter: 0.5,
		Log: t.b.log, Started: func() { close(started) },
	}, func(ctx context.Context, ev *signal.Event, dl closedloop.Delivery) error {
		return t.deliver(ctx, reg, ev, dl)
	})
	ctx, cancel := context.WithCancel(t.ctx)
	reg.cancel = cancel
	t.regs[r.ID] = reg
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer close(reg.done)
		if err := reg.loop.Run(ctx); err != nil {
			t.b.log.Error().Err(err).Str("id", r.ID).Msg("tmf642 hub: delivery did not start")
		}
	}()
	t.mu.Unlock()
	select {
	case <-started:
		return nil
	case <-reg.done:
	case <-time.After(30 * time.Second):
		cancel()
		<-reg.done
	}
	t.mu.Lock()
	delete(t.regs, r.ID)
	t.mu.Unlock()
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

// deliver POSTs one fault signal to reg's listener as a TMF642 event.
func (t *tmf642) deliver(ctx context.Context, reg *registration, ev *signal.Event, dl closedloop.Delivery) error {
	if dl.Current && ev.State == signal.Cleared {
		// The current state: a condition already cleared is not news.
		return nil
	}
	n, res, err := tmfNotification(ev)
	if err != nil {
		t.b.metrics.delivered.WithLabelValues("dead-letter").Inc()
		return closedloop.Poison(err)
	}
	if !matches(reg.query, n) {
		t.b.metrics.delivered.WithLabelValues("filtered").Inc()
		return nil
	}
	body, _ := json.Marshal(n)
	target := strings.TrimSuffix(reg.Callback, "/") + "/listener/" + res
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return closedloop.Poison(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		return t.failed(ctx, reg, dl, fmt.Errorf("POST %s: %w", target, err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		t.b.metrics.delivered.WithLabelValues("ok").Inc()
		return nil
	case c >= 400 && c < 500 && c != http.StatusRequestTimeout && c != http.StatusTooManyRequests:
		// The listener refuses this event: resending it will not help.
		t.b.metrics.delivered.WithLabelValues("dead-letter").Inc()
		t.b.log.Warn().Str("registration", reg.ID).Str("url", target).Int("status", c).Str("signal", ev.ID).Msg("tmf642 hub: the listener refused an event; dead-lettered")
		return closedloop.Poison(fmt.Errorf("POST %s: %s", target, resp.Status))
	default:
		return t.failed(ctx, reg, dl, fmt.Errorf("POST %s: %s", target, resp.Status))
	}
}

func (t *tmf642) failed(ctx context.Context, reg *registration, dl closedloop.Delivery, err error) error {
	if ctx.Err() != nil {
		return err // stopping: the next run delivers it; not a failure of the listener
	}
	if int(dl.NumDelivered) >= t.delivery.MaxAttempts {
		t.b.metrics.delivered.WithLabelValues("dead-letter").Inc()
		t.b.log.Warn().Err(err).Str("registration", reg.ID).Uint64("attempts", dl.NumDelivered).Msg("tmf642 hub: giving up on an event; dead-lettered")
	} else {
		t.b.metrics.delivered.WithLabelValues("failed").Inc()
	}
	return err
}

// matches reports whether notification n passes query q: every key's
// value is one of its comma-separated alternatives.
func matches(q url.Values, n *tmfEvent) bool {
	a := n.Event.Alarm
	for k, vs := range q {
		var got string
		switch k {
		case "eventType":
			got = n.EventType
		case "perceivedSeverity":
			got = a.PerceivedSeverity
		case "alarmType":
			got = a.AlarmType
		case "probableCause":
			got = a.ProbableCause
		case "state":
			got = a.State
		case "alarmedObject.id":
			got = a.AlarmedObject.ID
		case "alarmedObjectType":
			got = a.AlarmedObjectType
		case "sourceSystemId":
			got = a.SourceSystemID
		}
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

// tmfNotification turns a fault signal into a TMF642 notification and
// the listener resource it goes to.
func tmfNotification(ev *signal.Event) (*tmfEvent, string, error) {
	var d faultData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return nil, "", fmt.Errorf("fault data does not decode: %w", err)
	}
	a := &tmfAlarm{
		ID: ev.Origin + ":" + ev.Subject, AlarmType: d.AlarmType, PerceivedSeverity: d.PerceivedSeverity,
		ProbableCause: d.ProbableCause, SpecificProblem: d.SpecificProblem, State: string(ev.State),
		AlarmedObjectType: d.AlarmedObject.Type,
		AlarmedObject:     &tmfRef{ID: d.AlarmedObject.ID, Href: d.AlarmedObject.Href, ReferredType: d.AlarmedObject.Type},
		SourceSystemID:    anfedSourceSystem + ev.Origin, AlarmDetails: "anfed signal " + ev.Source + " " + ev.ID,
		AlarmRaisedTime: d.AlarmRaisedTime, AlarmReportTime: rfc3339(ev.Time), AlarmChangedTime: rfc3339(ev.Time),
		AlarmClearedTime: d.AlarmClearedTime, IsRootCause: d.IsRootCause, ServiceAffecting: d.ServiceAffecting,
	}
	for _, s := range d.AffectedService {
		a.AffectedService = append(a.AffectedService, &tmfRef{ID: s.ID, Href: s.Href})
	}
	for _, r := range d.CorrelatedAlarm {
		a.CorrelatedAlarm = append(a.CorrelatedAlarm, &tmfRef{ID: r.ID})
	}
	for _, r := range d.ParentAlarm {
		a.ParentAlarm = append(a.ParentAlarm, &tmfRef{ID: r.ID})
	}
	res := "alarmCreateEvent"
	switch ev.State {
	case signal.Updated:
		res = "alarmAttributeValueChangeEvent"
	case signal.Cleared:
		res = "alarmStateChangeEvent"
		a.PerceivedSeverity = "CLEARED"
		if a.AlarmClearedTime == "" {
			a.AlarmClearedTime = rfc3339(ev.Time)
		}
	}
	n := &tmfEvent{EventID: ev.Origin + ":" + ev.ID, EventTime: rfc3339(ev.Time), EventType: tmfEvents[res]}
	n.Event.Alarm = a
	return n, res, nil
}

// register is POST /hub: a listener asks for our fault signals.
func (t *tmf642) register(w http.ResponseWriter, r *http.Request) {
	if !t.auth.check(w, r, t.fail("unauthorized")) {
		return
	}
	body, ok := readBody(w, r, t.fail("malformed"))
	if !ok {
		return
	}
	var req struct {
		Callback string `json:"callback"`
		Query    string `json:"query"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		t.fail("malformed")(w, http.StatusBadRequest, fmt.Sprintf(`a hub registration is {"callback": "https://listener.example/tmf-api/alarmManagement/v4", "query": "perceivedSeverity=CRITICAL"}: not valid JSON: %v`, err))
		return
	}
	u, err := url.Parse(req.Callback)
	if req.Callback == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.fail("bad-field")(w, http.StatusUnprocessableEntity, fmt.Sprintf("callback %q: want the listener's base URL, http:// or https:// with a host; events are POSTed to {callback}/listener/alarmCreateEvent and its siblings", req.Callback))
		return
	}
	if _, err := parseHubQuery(req.Query); err != nil {
		t.fail("bad-field")(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	t.mu.Lock()
	n := len(t.regs)
	t.mu.Unlock()
	if n >= MaxRegistrations {
		t.fail("too-many-registrations")(w, http.StatusConflict, fmt.Sprintf("the hub holds %d registrations, its limit: DELETE /hub/{id} the ones no longer listened to", n))
		return
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	reg := Registration{ID: hex.EncodeToString(idb[:]), Callback: req.Callback, Query: req.Query, Created: time.Now().UTC()}
	val, _ := json.Marshal(reg)
	if _, err := t.kv.Create(r.Context(), reg.ID, val); err != nil {
		t.fail("unavailable")(w, http.StatusServiceUnavailable, fmt.Sprintf("the registration could not be stored (%v): try again", err))
		return
	}
	if err := t.run(reg); err != nil {
		_ = t.kv.Delete(context.WithoutCancel(r.Context()), reg.ID)
		t.fail("unavailable")(w, http.StatusServiceUnavailable, fmt.Sprintf("the delivery could not start (%v): try again", err))
		return
	}
	t.b.log.Info().Str("id", reg.ID).Str("callback", reg.Callback).Str("query", reg.Query).Msg("tmf642 hub: listener registered")
	w.Header().Set("Location", TMF642Hub+"/"+reg.ID)
	WriteJSON(w, http.StatusCreated, reg)
}

func (t *tmf642) listRegistrations(w http.ResponseWriter, r *http.Request) {
	if !t.auth.check(w, r, t.fail("unauthorized")) {
		return
	}
	t.mu.Lock()
	out := make([]Registration, 0, len(t.regs))
	for _, reg := range t.regs {
		out = append(out, reg.Registration)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	WriteJSON(w, http.StatusOK, out)
}

func (t *tmf642) getRegistration(w http.ResponseWriter, r *http.Request) {
	if !t.auth.check(w, r, t.fail("unauthorized")) {
		return
	}
	t.mu.Lock()
	reg, ok := t.regs[r.PathValue("id")]
	t.mu.Unlock()
	if !ok {
		t.fail("not-found")(w, http.StatusNotFound, fmt.Sprintf("no hub registration %q", r.PathValue("id")))
		return
	}
	WriteJSON(w, http.StatusOK, reg.Registration)
}

// unregister is DELETE /hub/{id}: the delivery stops and its consumer and
// registration are deleted.
func (t *tmf642) unregister(w http.ResponseWriter, r *http.Request) {
	if !t.auth.check(w, r, t.fail("unauthorized")) {
		return
	}
	id := r.PathValue("id")
	t.mu.Lock()
	reg, ok := t.regs[id]
	delete(t.regs, id)
	t.mu.Unlock()
	if !ok {
		t.fail("not-found")(w, http.StatusNotFound, fmt.Sprintf("no hub registration %q", id))
		return
	}
	reg.cancel()
	<-reg.done
	ctx := context.WithoutCancel(r.Context())
	if err := t.js.DeleteConsumer(ctx, store.SignalStream, "tmf642-hub-"+id); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.b.log.Warn().Err(err).Str("id", id).Msg("tmf642 hub: deleting the delivery's consumer")
	}
	if err := t.kv.Delete(ctx, id); err != nil {
		t.b.log.Warn().Err(err).Str("id", id).Msg("tmf642 hub: deleting the registration")
	}
	t.b.log.Info().Str("id", id).Msg("tmf642 hub: listener unregistered")
	w.WriteHeader(http.StatusNoContent)
}
