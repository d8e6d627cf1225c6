package bridge

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// HubBucket is the JetStream KV bucket (operations account) holding our
// hub's registrations, so that they outlive a restart.
const HubBucket = "ANFED_TMF642_HUB"

// faultFilter is every stored fault signal, local and imported.
var faultFilter = subject.SignalPrefix + ".*.fault.>"

// hubQueryKeys are the attributes a registration's query may filter on.
var hubQueryKeys = []string{"eventType", "perceivedSeverity", "alarmType", "probableCause", "state", "alarmedObject.id", "alarmedObjectType", "sourceSystemId"}

func (t *tmf642) openHub(ctx context.Context) error {
	h, err := OpenHub(ctx, t.b.nc, HubOptions{Name: "tmf642", Bucket: HubBucket, Path: TMF642Hub, Filter: faultFilter, QueryKeys: hubQueryKeys, QueryExample: "perceivedSeverity=CRITICAL,MAJOR",
		Example:   `{"callback": "https://listener.example/tmf-api/alarmManagement/v4", "query": "perceivedSeverity=CRITICAL"}`,
		Resources: "{callback}/listener/alarmCreateEvent and its siblings",
		Notify:    tmfNotification, Delivery: t.delivery, Check: t.auth.check, Fail: t.fail, Delivered: t.b.metrics.delivered, Log: t.b.log})
	if err != nil {
		return fmt.Errorf("bridges.tmf642: %w", err)
	}
	t.hub = h
	return nil
}

// tmfNotification turns a fault signal into a TMF642 notification and
// the listener resource it goes to.
func tmfNotification(ev *signal.Event) (*Notification, error) {
	var d faultData
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		return nil, fmt.Errorf("fault data does not decode: %w", err)
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
	fields := map[string]string{"eventType": n.EventType, "perceivedSeverity": a.PerceivedSeverity, "alarmType": a.AlarmType, "probableCause": a.ProbableCause,
		"state": a.State, "alarmedObject.id": a.AlarmedObject.ID, "alarmedObjectType": a.AlarmedObjectType, "sourceSystemId": a.SourceSystemID}
	return &Notification{Body: n, Resource: res, Fields: fields}, nil
}
