package bridge

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
)

// TMF642 routes.
const (
	TMF642Base     = "/tmf-api/alarmManagement/v4"
	TMF642Listener = TMF642Base + "/listener/"
	TMF642Hub      = TMF642Base + "/hub"
	tmfProducer    = "tmf642"
)

// TMF642 v4 notification types and the listener resource each is POSTed to.
var tmfEvents = map[string]string{
	"alarmCreateEvent":               "AlarmCreateEvent",
	"alarmAttributeValueChangeEvent": "AlarmAttributeValueChangeEvent",
	"alarmStateChangeEvent":          "AlarmStateChangeEvent",
	"alarmDeleteEvent":               "AlarmDeleteEvent",
}

// tmf642 is the TMF642 bridge, both directions.
type tmf642 struct {
	b       *Bridges
	cfg     *config.TMF642Bridge
	auth    auth
	service string

	// hub (out), and the upstream registrations
	hub      *Hub
	delivery config.TMF642Delivery
	client   *http.Client
	wg       sync.WaitGroup
}

func newTMF642(ctx context.Context, b *Bridges, c *config.TMF642Bridge) (*tmf642, error) {
	a, err := readAuth("anfed TMF642", c.TokenFile, b.d.HTTP.TokenFile, "", "")
	if err != nil {
		return nil, fmt.Errorf("bridges.tmf642: %w", err)
	}
	t := &tmf642{b: b, cfg: c, auth: a, service: c.Service, delivery: c.Delivery.WithDefaults()}
	if t.service == "" {
		t.service = "tmf642"
	}
	t.client = &http.Client{Timeout: time.Duration(t.delivery.Timeout)}
	if err := t.openHub(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *tmf642) mount(mux Mux) {
	for res := range tmfEvents {
		mux.Handle("POST "+TMF642Listener+res, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { t.listen(w, r, res) }))
	}
	mux.Handle("POST "+TMF642Listener+"{event}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !t.auth.check(w, r, t.fail("unauthorized")) {
			return
		}
		t.fail("unknown-event")(w, http.StatusNotFound, fmt.Sprintf("listener/%s: this listener takes alarmCreateEvent, alarmAttributeValueChangeEvent, alarmStateChangeEvent and alarmDeleteEvent (TMF642 v4)", r.PathValue("event")))
	}))
	t.hub.Mount(mux)
}

func (t *tmf642) start(ctx context.Context) {
	t.hub.Start(ctx)
	for _, u := range t.cfg.Upstream {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.upstream(ctx, u)
		}()
	}
}

func (t *tmf642) stop() {
	t.hub.Stop()
	t.wg.Wait()
}

// tmfError is the TMF630 error body.
type tmfError struct {
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Status  string `json:"status"`
}

func (t *tmf642) fail(reason string) func(w http.ResponseWriter, code int, msg string) {
	return func(w http.ResponseWriter, code int, msg string) {
		t.b.metrics.rejected.WithLabelValues("tmf642", reason).Inc()
		WriteJSON(w, code, tmfError{Code: fmt.Sprint(code), Reason: reason, Message: msg, Status: fmt.Sprint(code)})
	}
}

// tmfAlarm is the part of a TMF642 v4 Alarm the bridge reads.
type tmfAlarm struct {
	ID                string    `json:"id"`
	Href              string    `json:"href,omitempty"`
	AlarmType         string    `json:"alarmType"`
	PerceivedSeverity string    `json:"perceivedSeverity"`
	ProbableCause     string    `json:"probableCause"`
	SpecificProblem   string    `json:"specificProblem,omitempty"`
	State             string    `json:"state,omitempty"`
	AlarmedObjectType string    `json:"alarmedObjectType,omitempty"`
	AlarmedObject     *tmfRef   `json:"alarmedObject"`
	SourceSystemID    string    `json:"sourceSystemId,omitempty"`
	AlarmDetails      string    `json:"alarmDetails,omitempty"`
	AlarmRaisedTime   string    `json:"alarmRaisedTime"`
	AlarmReportTime   string    `json:"alarmReportingTime,omitempty"`
	AlarmChangedTime  string    `json:"alarmChangedTime,omitempty"`
	AlarmClearedTime  string    `json:"alarmClearedTime,omitempty"`
	IsRootCause       *bool     `json:"isRootCause,omitempty"`
	ServiceAffecting  *bool     `json:"serviceAffecting,omitempty"`
	AffectedService   []*tmfRef `json:"affectedService,omitempty"`
	CorrelatedAlarm   []*tmfRef `json:"correlatedAlarm,omitempty"`
	ParentAlarm       []*tmfRef `json:"parentAlarm,omitempty"`
}

type tmfRef struct {
	ID           string `json:"id"`
	Href         string `json:"href,omitempty"`
	ReferredType string `json:"@referredType,omitempty"`
}

// tmfEvent is a TMF642 v4 notification.
type tmfEvent struct {
	EventID   string `json:"eventId"`
	EventTime string `json:"eventTime"`
	EventType string `json:"eventType"`
	Event     struct {
		Alarm *tmfAlarm `json:"alarm"`
	} `json:"event"`
}

// TMFAnswer is the listener's answer to a stored notification.
type TMFAnswer struct {
	EventID string    `json:"eventId,omitempty"`
	Status  string    `json:"status"` // accepted, duplicate or ignored
	Signal  SignalRef `json:"signal,omitzero"`
	Reason  string    `json:"reason,omitempty"` // why ignored
}

// errEcho marks a notification about an alarm our hub delivered.
var errEcho = errors.New("the alarm's sourceSystemId is anfed://...: an event this or another anfed node delivered from its hub, coming back; not taken again (no loops)")

// anfedSourceSystem prefixes the sourceSystemId of the alarms our hub
// delivers.
const anfedSourceSystem = "anfed://"

// listen takes one TMF642 notification POSTed to listener/<res>.
func (t *tmf642) listen(w http.ResponseWriter, r *http.Request, res string) {
	if !t.auth.check(w, r, t.fail("unauthorized")) {
		return
	}
	body, ok := readBody(w, r, t.fail("malformed"))
	if !ok {
		return
	}
	ev, err := t.mapNotification(res, body)
	if errors.Is(err, errEcho) {
		// An OSS that is both our upstream and our hub's listener sends
		// our own events back: taking them would loop.
		t.b.metrics.ignored.WithLabelValues("tmf642", "echo").Inc()
		WriteJSON(w, http.StatusAccepted, TMFAnswer{Status: "ignored", Reason: err.Error()})
		return
	}
	if err != nil {
		t.fail(failReason(err))(w, codeOf(err), err.Error())
		return
	}
	a := t.b.publishAll(tmfProducer, []*signal.Event{ev})[0]
	if !a.OK() {
		code := a.HTTPStatus()
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		t.fail(a.Reason)(w, code, a.Error)
		return
	}
	t.b.metrics.stored.WithLabelValues("tmf642", a.Status).Inc()
	WriteJSON(w, http.StatusAccepted, TMFAnswer{EventID: ev.ID, Status: a.Status,
		Signal: SignalRef{ID: ev.ID, Subject: ev.Subject, Class: "fault", State: string(ev.State)}})
}

// mapNotification turns a TMF642 notification into a fault signal.
func (t *tmf642) mapNotification(res string, body []byte) (*signal.Event, error) {
	var n tmfEvent
	if err := json.Unmarshal(body, &n); err != nil {
		return nil, malformed(`a TMF642 notification is {"eventId", "eventTime", "eventType", "event": {"alarm": {...}}}: not valid JSON: %v`, err)
	}
	want := tmfEvents[res]
	if n.EventType != "" && n.EventType != want {
		return nil, bad("eventType", "%q POSTed to listener/%s: want %q, or POST it to its own listener resource", n.EventType, res, want)
	}
	a := n.Event.Alarm
	if a == nil {
		return nil, bad("event.alarm", "required: the Alarm the notification is about")
	}
	if strings.HasPrefix(a.SourceSystemID, anfedSourceSystem) {
		return nil, errEcho
	}
	id := n.EventID
	if id == "" {
		// Without an eventId a resent notification is told apart from a
		// new one by its content.
		sum := sha256.Sum256(body)
		id = "sha256-" + hex.EncodeToString(sum[:16])
	}
	at := time.Now().UTC()
	if n.EventTime != "" {
		tm, err := time.Parse(time.RFC3339Nano, n.EventTime)
		if err != nil {
			return nil, bad("eventTime", "%q: want an RFC 3339 time", n.EventTime)
		}
		at = tm
	}
	d, state, subj, err := t.mapAlarm(res, a, at)
	if err != nil {
		return nil, err
	}
	return faultEvent(t.b.d.Node.ID(), tmfProducer, id, subj, at, state, d), nil
}

// tmfAlarmTypes maps TMF642 alarm types to the fault schema's (X.733).
var tmfAlarmTypes = map[string]string{"securityService": "securityServiceOrMechanismViolation"}

func (t *tmf642) mapAlarm(res string, a *tmfAlarm, at time.Time) (*faultData, signal.State, string, error) {
	const p = "event.alarm."
	if a.ID == "" {
		return nil, "", "", bad(p+"id", "required: the alarm's id at the OSS, the same in all its notifications")
	}
	typ := a.AlarmType
	if m, ok := tmfAlarmTypes[typ]; ok {
		typ = m
	}
	if !x733Types[typ] {
		return nil, "", "", bad(p+"alarmType", "%q: want one of communicationsAlarm, processingErrorAlarm, environmentalAlarm, qualityOfServiceAlarm, equipmentAlarm, integrityViolation, operationalViolation, physicalViolation, securityService, timeDomainViolation", a.AlarmType)
	}
	sev := strings.ToUpper(a.PerceivedSeverity)
	if _, ok := severities[sev]; !ok {
		return nil, "", "", bad(p+"perceivedSeverity", "%q: want critical, major, minor, warning, indeterminate or cleared", a.PerceivedSeverity)
	}
	if a.ProbableCause == "" {
		return nil, "", "", bad(p+"probableCause", "required: the X.733 probable cause, e.g. lossOfSignal")
	}
	if a.AlarmedObject == nil || a.AlarmedObject.ID == "" {
		return nil, "", "", bad(p+"alarmedObject.id", "required: the id of the resource that raised the alarm")
	}
	raised, err := tmfTime(p+"alarmRaisedTime", a.AlarmRaisedTime, true)
	if err != nil {
		return nil, "", "", err
	}
	cleared, err := tmfTime(p+"alarmClearedTime", a.AlarmClearedTime, false)
	if err != nil {
		return nil, "", "", err
	}
	objType := a.AlarmedObjectType
	if objType == "" {
		objType = a.AlarmedObject.ReferredType
	}
	if objType == "" {
		objType = "ManagedEntity"
	}
	d := &faultData{
		AlarmType: typ, PerceivedSeverity: sev, ProbableCause: truncate(a.ProbableCause, 128),
		SpecificProblem: truncate(a.SpecificProblem, 1024),
		AlarmedObject:   resourceRef{ID: truncate(a.AlarmedObject.ID, 256), Type: truncate(objType, 64), Href: uriOrEmpty(a.AlarmedObject.Href)},
		AlarmRaisedTime: rfc3339(raised), IsRootCause: a.IsRootCause, ServiceAffecting: a.ServiceAffecting,
	}
	if d.SpecificProblem == "" {
		d.SpecificProblem = d.ProbableCause
	}
	if len(a.AffectedService) > 256 || len(a.CorrelatedAlarm) > 256 || len(a.ParentAlarm) > 64 {
		return nil, "", "", bad(p+"affectedService", "at most 256 affected services, 256 correlated and 64 parent alarms")
	}
	for i, s := range a.AffectedService {
		if s == nil || s.ID == "" || len(s.ID) > 256 {
			return nil, "", "", bad(fmt.Sprintf("%saffectedService[%d].id", p, i), "required, at most 256 bytes")
		}
		d.AffectedService = append(d.AffectedService, serviceRef{ID: s.ID, Href: uriOrEmpty(s.Href)})
	}
	refs := func(name string, in []*tmfRef) ([]alarmRef, error) {
		var out []alarmRef
		for i, r := range in {
			if r == nil || r.ID == "" || len(r.ID) > 256 {
				return nil, bad(fmt.Sprintf("%s%s[%d].id", p, name, i), "required, at most 256 bytes")
			}
			out = append(out, alarmRef{ID: r.ID})
		}
		return out, nil
	}
	if d.CorrelatedAlarm, err = refs("correlatedAlarm", a.CorrelatedAlarm); err != nil {
		return nil, "", "", err
	}
	if d.ParentAlarm, err = refs("parentAlarm", a.ParentAlarm); err != nil {
		return nil, "", "", err
	}
	clearedNow := sev == "CLEARED" || strings.EqualFold(a.State, "cleared") || !cleared.IsZero()
	var state signal.State
	switch res {
	case "alarmCreateEvent":
		state = signal.Raised
		if clearedNow {
			state = signal.Cleared
		}
	case "alarmAttributeValueChangeEvent", "alarmStateChangeEvent":
		state = signal.Updated
		if clearedNow {
			state = signal.Cleared
		}
	case "alarmDeleteEvent":
		state = signal.Cleared
	}
	if state == signal.Cleared {
		if cleared.IsZero() {
			cleared = at
		}
		d.AlarmClearedTime = rfc3339(cleared)
	}
	svc := t.service
	if len(d.AffectedService) > 0 {
		svc = d.AffectedService[0].ID
	}
	return d, state, svc + "/" + a.AlarmedObject.ID + "/" + a.ID, nil
}

func tmfTime(field, v string, required bool) (time.Time, error) {
	if v == "" {
		if required {
			return time.Time{}, bad(field, "required: an RFC 3339 time")
		}
		return time.Time{}, nil
	}
	tm, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, bad(field, "%q: want an RFC 3339 time, e.g. 2026-03-14T08:58:41Z", v)
	}
	return tm, nil
}

// uriOrEmpty keeps an absolute URI (the schema's format: uri) and drops
// anything else, such as a relative href.
func uriOrEmpty(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || len(s) > 2048 {
		return ""
	}
	return s
}
