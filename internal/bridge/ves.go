package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
	"github.com/anfed/anfed/internal/subject"
)

// VES routes (VES Event Listener 7.2).
const (
	VESPath      = "/eventListener/v7"
	VESBatchPath = "/eventListener/v7/eventBatch"
	vesProducer  = "ves"
)

// ves takes VES 7.x events in.
type ves struct {
	b         *Bridges
	cfg       *config.VESBridge
	auth      auth
	service   string
	alarmType string
	kpis      map[string]config.VESKPI // by field

	// mu serialises measurement decisions: whether a KPI's condition is
	// active decides raised, updated or cleared.
	mu     sync.Mutex
	active map[string]bool // subject -> performance-deviation active
	seeded bool
}

func newVES(b *Bridges, c *config.VESBridge) (*ves, error) {
	a, err := readAuth("anfed VES listener", c.TokenFile, b.d.HTTP.TokenFile, c.User, c.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("bridges.ves: %w", err)
	}
	v := &ves{b: b, cfg: c, auth: a, service: c.Service, alarmType: c.AlarmType, kpis: map[string]config.VESKPI{}, active: map[string]bool{}}
	if v.service == "" {
		v.service = "ves"
	}
	if v.alarmType == "" {
		v.alarmType = "communicationsAlarm"
	}
	for _, k := range c.KPIs {
		v.kpis[k.Field] = k
	}
	return v, nil
}

func (v *ves) mount(mux Mux) {
	mux.Handle("POST "+VESPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { v.serve(w, r, false) }))
	mux.Handle("POST "+VESBatchPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { v.serve(w, r, true) }))
}

// vesProblem answers an error in the VES listener's format (requestError
// with a serviceException; the text says what was wrong).
func (v *ves) fail(reason string) func(w http.ResponseWriter, code int, msg string) {
	return func(w http.ResponseWriter, code int, msg string) {
		v.b.metrics.rejected.WithLabelValues("ves", reason).Inc()
		id := "SVC0002"
		if code == http.StatusUnauthorized {
			id = "POL2000"
		}
		WriteJSON(w, code, map[string]any{"requestError": map[string]any{"serviceException": map[string]any{"messageId": id, "text": msg}}})
	}
}

// VESResult is the outcome of one event of a request.
type VESResult struct {
	Index   int    `json:"index"`
	EventID string `json:"eventId,omitempty"`
	// Outcome is accepted (stored), duplicate (stored before), ignored
	// (valid, makes no signal) or rejected.
	Outcome string      `json:"outcome"`
	Signals []SignalRef `json:"signals,omitempty"`
	Reason  string      `json:"reason,omitempty"`
}

// SignalRef names a signal a bridge made.
type SignalRef struct {
	ID      string `json:"id"` // CloudEvent id
	Subject string `json:"subject"`
	Class   string `json:"class"`
	State   string `json:"state"`
}

func classOf(ev *signal.Event) string {
	return strings.TrimSuffix(strings.TrimPrefix(ev.Type, "net.anfed."), ".v1")
}

func (v *ves) serve(w http.ResponseWriter, r *http.Request, batch bool) {
	if !v.auth.check(w, r, v.fail("unauthorized")) {
		return
	}
	body, ok := readBody(w, r, v.fail("malformed"))
	if !ok {
		return
	}
	var raws []json.RawMessage
	prefix := func(i int) string { return "event" }
	if batch {
		var req struct {
			EventList []json.RawMessage `json:"eventList"`
		}
		if err := strictJSON(body, &req); err != nil || req.EventList == nil {
			v.fail("malformed")(w, http.StatusBadRequest, fmt.Sprintf(`a VES batch is {"eventList": [event, ...]}: %v`, errOr(err, "eventList is missing")))
			return
		}
		raws = req.EventList
		prefix = func(i int) string { return fmt.Sprintf("eventList[%d]", i) }
	} else {
		var req struct {
			Event json.RawMessage `json:"event"`
		}
		if err := strictJSON(body, &req); err != nil || req.Event == nil {
			v.fail("malformed")(w, http.StatusBadRequest, fmt.Sprintf(`a VES request is {"event": {"commonEventHeader": {...}, "faultFields" or "measurementFields": {...}}}: %v`, errOr(err, "event is missing")))
			return
		}
		raws = []json.RawMessage{req.Event}
	}
	if len(raws) == 0 {
		v.fail("malformed")(w, http.StatusBadRequest, "eventList is empty: send at least one event")
		return
	}
	// Every event is mapped before any is stored: a batch with a bad event
	// is refused whole, so that the collector can fix and resend it.
	v.mu.Lock()
	defer v.mu.Unlock()
	results := make([]VESResult, len(raws))
	var evs []*signal.Event
	var at []int
	pending := map[string]bool{} // KPI states decided in this request
	for i, raw := range raws {
		results[i].Index = i
		got, note, err := v.mapEvent(raw, prefix(i), pending)
		if err != nil {
			v.fail(failReason(err))(w, codeOf(err), err.Error())
			return
		}
		if len(got) == 0 {
			results[i].Outcome, results[i].Reason = "ignored", note
			v.b.metrics.ignored.WithLabelValues("ves", ignoredReason(note)).Inc()
			continue
		}
		for _, ev := range got {
			results[i].Signals = append(results[i].Signals, SignalRef{ID: ev.ID, Subject: ev.Subject, Class: classOf(ev), State: string(ev.State)})
			evs = append(evs, ev)
			at = append(at, i)
		}
	}
	answers := v.b.publishAll(vesProducer, evs)
	code := http.StatusAccepted
	for j, a := range answers {
		i := at[j]
		if a.OK() {
			if results[i].Outcome == "" {
				results[i].Outcome = a.Status
			}
			v.b.metrics.stored.WithLabelValues("ves", a.Status).Inc()
			if classOf(evs[j]) == "performance-deviation" {
				v.active[evs[j].Subject] = evs[j].State != signal.Cleared
			}
			continue
		}
		results[i].Outcome, results[i].Reason = "rejected", a.Reason+": "+a.Error
		v.b.metrics.rejected.WithLabelValues("ves", a.Reason).Inc()
		if c := a.HTTPStatus(); code == http.StatusAccepted || c == http.StatusServiceUnavailable {
			code = c
		}
	}
	if code != http.StatusAccepted {
		text := "the node refused or could not store some events: see results; send the request again once fixed (stored events are kept once)"
		WriteJSON(w, code, map[string]any{"requestError": map[string]any{"serviceException": map[string]any{"messageId": "SVC0002", "text": text}}, "results": results})
		return
	}
	WriteJSON(w, http.StatusAccepted, map[string]any{"results": results})
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

func failReason(err error) string {
	if codeOf(err) == http.StatusBadRequest {
		return "malformed"
	}
	return "bad-field"
}

func ignoredReason(note string) string {
	r, _, _ := strings.Cut(note, ":")
	return r
}

// strictJSON decodes b into v, refusing trailing data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fmt.Errorf("%s: want a JSON %s, got %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("not valid JSON: %v", err)
	}
	if dec.More() {
		return fmt.Errorf("not valid JSON: data after the top-level value")
	}
	return nil
}

type vesHeader struct {
	Domain                  string          `json:"domain"`
	EventID                 string          `json:"eventId"`
	EventName               string          `json:"eventName"`
	Sequence                json.RawMessage `json:"sequence"`
	SourceName              string          `json:"sourceName"`
	StartEpochMicrosec      json.RawMessage `json:"startEpochMicrosec"`
	LastEpochMicrosec       json.RawMessage `json:"lastEpochMicrosec"`
	VESEventListenerVersion string          `json:"vesEventListenerVersion"`
}

type vesFault struct {
	AlarmCondition  string `json:"alarmCondition"`
	EventSeverity   string `json:"eventSeverity"`
	EventSourceType string `json:"eventSourceType"`
	SpecificProblem string `json:"specificProblem"`
	AlarmInterfaceA string `json:"alarmInterfaceA"`
}

// mapEvent turns one VES event into a signal; nil with a note when the
// event is valid but makes none.
func (v *ves) mapEvent(raw json.RawMessage, at string, pending map[string]bool) ([]*signal.Event, string, error) {
	var e struct {
		Header      *vesHeader                 `json:"commonEventHeader"`
		Fault       *vesFault                  `json:"faultFields"`
		Measurement map[string]json.RawMessage `json:"measurementFields"`
	}
	if err := strictJSON(raw, &e); err != nil {
		return nil, "", malformed("%s: want a VES event object with commonEventHeader: %v", at, err)
	}
	h := e.Header
	if h == nil {
		return nil, "", bad(at+".commonEventHeader", "required")
	}
	hp := at + ".commonEventHeader"
	if ver := h.VESEventListenerVersion; ver != "" && !strings.HasPrefix(ver, "7.") {
		return nil, "", bad(hp+".vesEventListenerVersion", "%q: this listener speaks VES 7.x (7.2.1)", ver)
	}
	if h.EventID == "" {
		return nil, "", bad(hp+".eventId", "required: the event's id")
	}
	if h.SourceName == "" {
		return nil, "", bad(hp+".sourceName", "required: the entity the event is about")
	}
	seq := int64(0)
	if len(h.Sequence) > 0 {
		n, err := strconv.ParseInt(string(h.Sequence), 10, 64)
		if err != nil || n < 0 {
			return nil, "", bad(hp+".sequence", "%q: want a non-negative integer", h.Sequence)
		}
		seq = n
	}
	last, err := micros(h.LastEpochMicrosec)
	if err != nil {
		return nil, "", bad(hp+".lastEpochMicrosec", "%v", err)
	}
	start := last
	if len(h.StartEpochMicrosec) > 0 {
		if start, err = micros(h.StartEpochMicrosec); err != nil {
			return nil, "", bad(hp+".startEpochMicrosec", "%v", err)
		}
	}
	id := h.SourceName + "/" + h.EventID + "/" + strconv.FormatInt(seq, 10)
	switch h.Domain {
	case "fault":
		if e.Fault == nil {
			return nil, "", bad(at+".faultFields", "required for domain fault")
		}
		ev, err := v.fault(h, e.Fault, at+".faultFields", id, seq, start, last)
		if err != nil {
			return nil, "", err
		}
		return []*signal.Event{ev}, "", nil
	case "measurement":
		if e.Measurement == nil {
			return nil, "", bad(at+".measurementFields", "required for domain measurement")
		}
		return v.measurement(h, e.Measurement, at+".measurementFields", id, start, last, pending)
	case "":
		return nil, "", bad(hp+".domain", "required: fault, measurement, ...")
	}
	return nil, "domain-not-bridged: domain " + h.Domain + " makes no signal (fault and measurement do)", nil
}

func micros(n json.RawMessage) (time.Time, error) {
	if len(n) == 0 {
		return time.Time{}, fmt.Errorf("required: microseconds since the epoch")
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f <= 0 || f > 1e17 {
		return time.Time{}, fmt.Errorf("%s: want microseconds since the epoch, a number such as 1700000000000000", n)
	}
	return epochMicros(int64(f)), nil
}

var vesSeverities = map[string]string{"CRITICAL": "CRITICAL", "MAJOR": "MAJOR", "MINOR": "MINOR", "WARNING": "WARNING", "NORMAL": "CLEARED"}

func (v *ves) fault(h *vesHeader, f *vesFault, fp, id string, seq int64, start, last time.Time) (*signal.Event, error) {
	sev, ok := vesSeverities[f.EventSeverity]
	if !ok {
		return nil, bad(fp+".eventSeverity", "%q: want CRITICAL, MAJOR, MINOR, WARNING or NORMAL (NORMAL clears the alarm)", f.EventSeverity)
	}
	if f.AlarmCondition == "" {
		return nil, bad(fp+".alarmCondition", "required: the alarm's condition, e.g. linkDown")
	}
	if f.SpecificProblem == "" {
		return nil, bad(fp+".specificProblem", "required: a short description of the problem")
	}
	if f.EventSourceType == "" {
		return nil, bad(fp+".eventSourceType", "required: the kind of entity, e.g. router, o-du")
	}
	obj := h.SourceName
	if f.AlarmInterfaceA != "" {
		obj += ":" + f.AlarmInterfaceA
	}
	d := &faultData{
		AlarmType: v.alarmType, PerceivedSeverity: sev, ProbableCause: truncate(f.AlarmCondition, 128),
		SpecificProblem: truncate(f.SpecificProblem, 1024), AlarmedObject: resourceRef{ID: truncate(obj, 256), Type: truncate(f.EventSourceType, 64)},
		AlarmRaisedTime: rfc3339(start),
	}
	state := signal.Raised
	switch {
	case sev == "CLEARED":
		state = signal.Cleared
		d.AlarmClearedTime = rfc3339(last)
	case seq > 0:
		state = signal.Updated
	}
	subj := v.service + "/" + h.SourceName + "/" + f.AlarmCondition
	return faultEvent(v.b.d.Node.ID(), vesProducer, id, subj, last, state, d), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// perfData is the data of a performance-deviation signal.
type perfData struct {
	KPI              string  `json:"kpi"`
	Unit             string  `json:"unit"`
	ObservedValue    float64 `json:"observedValue"`
	ExpectedValue    float64 `json:"expectedValue"`
	Threshold        float64 `json:"threshold"`
	DeviationPercent float64 `json:"deviationPercent"`
	Direction        string  `json:"direction"`
	Window           struct {
		Start    string `json:"start,omitempty"`
		End      string `json:"end,omitempty"`
		Duration string `json:"duration,omitempty"`
	} `json:"window"`
	MeasurementPoint string `json:"measurementPoint,omitempty"`
}

// measurement turns each watched KPI of a measurement event into a
// performance-deviation signal: raised when the value crosses its
// threshold, updated while it stays across, cleared when it is back; a KPI
// within its threshold and not raised makes none.
func (v *ves) measurement(h *vesHeader, m map[string]json.RawMessage, mp, id string, start, last time.Time, pending map[string]bool) ([]*signal.Event, string, error) {
	window := struct{ start, end, duration string }{}
	if iv, ok := m["measurementInterval"]; ok {
		var n json.Number
		if err := json.Unmarshal(iv, &n); err != nil {
			return nil, "", bad(mp+".measurementInterval", "want a number of seconds")
		}
		f, err := n.Float64()
		if err != nil || f <= 0 {
			return nil, "", bad(mp+".measurementInterval", "%s: want a positive number of seconds", n)
		}
		// An RFC 3339 duration has whole seconds only.
		window.duration = fmt.Sprintf("PT%sS", strconv.FormatFloat(math.Ceil(min(f, 1e12)), 'f', 0, 64))
	} else if start.Before(last) {
		window.start, window.end = rfc3339(start), rfc3339(last)
	} else {
		return nil, "", bad(mp+".measurementInterval", "required unless startEpochMicrosec is before lastEpochMicrosec: the measurement window")
	}
	values, err := vesValues(m, mp)
	if err != nil {
		return nil, "", err
	}
	v.seed()
	watched := false
	var out []*signal.Event
	for _, k := range v.cfg.KPIs {
		val, ok := values[k.Field]
		if !ok {
			continue
		}
		watched = true
		crossed := val > k.Threshold
		if k.Crossing == "below" {
			crossed = val < k.Threshold
		}
		subj := v.service + "/" + h.SourceName + "/" + k.KPI
		was, decided := pending[subj]
		if !decided {
			was = v.active[subj]
		}
		var state signal.State
		switch {
		case crossed && !was:
			state = signal.Raised
		case crossed:
			state = signal.Updated
		case was:
			state = signal.Cleared
		default:
			continue
		}
		pending[subj] = state != signal.Cleared
		d := perfData{KPI: k.KPI, Unit: k.Unit, ObservedValue: val, ExpectedValue: k.Expected, Threshold: k.Threshold,
			Direction: "above", MeasurementPoint: truncate(h.SourceName, 256)}
		if val < k.Expected {
			d.Direction = "below"
		}
		if k.Expected != 0 {
			d.DeviationPercent = math.Abs(val-k.Expected) / math.Abs(k.Expected) * 100
		} else if val != 0 {
			d.DeviationPercent = 100
		}
		if math.IsInf(d.DeviationPercent, 0) {
			d.DeviationPercent = math.MaxFloat64
		}
		d.Window.Start, d.Window.End, d.Window.Duration = window.start, window.end, window.duration
		data, _ := json.Marshal(d)
		sev := signal.Event{SeverityText: "WARN", SeverityNumber: 13}
		if state == signal.Cleared {
			sev = signal.Event{SeverityText: "INFO", SeverityNumber: 9}
		}
		self := v.b.d.Node.ID()
		out = append(out, &signal.Event{
			ID: id + "/" + k.KPI, Source: "anfed://" + self + "/" + vesProducer, Type: "net.anfed.performance-deviation.v1",
			Subject: subj, Time: last, DataContentType: signal.ContentType, Origin: self, State: state,
			SeverityText: sev.SeverityText, SeverityNumber: sev.SeverityNumber, Data: data,
		})
	}
	if len(out) > 0 {
		return out, "", nil
	}
	if !watched {
		return nil, "no-watched-kpi: the measurement carries none of the fields in bridges.ves.kpis", nil
	}
	return nil, "within-threshold: every watched KPI is within its threshold and none was raised", nil
}

// seed reads, once, which performance-deviation conditions this bridge
// raised and has not cleared, from the last stored signal of each of its
// subjects, so that a restarted node clears what it raised before. v.mu
// is held.
func (v *ves) seed() {
	if v.seeded {
		return
	}
	v.seeded = true
	self := v.b.d.Node.ID()
	filter := subject.SignalPrefix + "." + self + ".performance-deviation." + subject.Token(v.service) + ".>"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := func() error {
		js, err := jetstream.New(v.b.nc)
		if err != nil {
			return err
		}
		_, err = store.LastPerSubject(ctx, js, store.SignalStream, filter, func(m jetstream.Msg) {
			ev, err := signal.DecodeStructured(m.Data())
			if err == nil && ev.Source == "anfed://"+self+"/"+vesProducer {
				v.active[ev.Subject] = ev.State != signal.Cleared
			}
		})
		return err
	}()
	if err != nil {
		// Without it a KPI raised before the restart is cleared only when
		// it crosses and comes back again.
		v.b.log.Warn().Err(err).Msg("ves: reading the performance deviations raised before; going on without")
		v.seeded = false
	}
}

// vesValues reads the numeric values of a measurementFields object, by the
// names bridges.ves.kpis use.
func vesValues(m map[string]json.RawMessage, mp string) (map[string]float64, error) {
	out := map[string]float64{}
	for k, raw := range m {
		switch k {
		case "additionalMeasurements":
			var ams []struct {
				Name    string            `json:"name"`
				HashMap map[string]string `json:"hashMap"`
			}
			if err := json.Unmarshal(raw, &ams); err != nil {
				return nil, bad(mp+".additionalMeasurements", "want a list of {name, hashMap: {key: \"number\"}}: %v", err)
			}
			for _, am := range ams {
				for hk, hv := range am.HashMap {
					f, err := strconv.ParseFloat(strings.TrimSpace(hv), 64)
					if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
						continue // VES hashMaps carry text too; only finite numbers can be watched
					}
					out[am.Name+"/"+hk] = f
				}
			}
		case "additionalFields":
			var af map[string]string
			if err := json.Unmarshal(raw, &af); err != nil {
				return nil, bad(mp+".additionalFields", "want an object of string values: %v", err)
			}
			for ak, av := range af {
				if f, err := strconv.ParseFloat(strings.TrimSpace(av), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
					out["additionalFields/"+ak] = f
				}
			}
		default:
			var n json.Number
			if json.Unmarshal(raw, &n) == nil {
				if f, err := n.Float64(); err == nil {
					out[k] = f
				}
			}
		}
	}
	return out, nil
}
