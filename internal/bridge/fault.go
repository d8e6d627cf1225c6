package bridge

import (
	"encoding/json"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// faultData is the data of a fault signal (schemas/fault.v1.json).
type faultData struct {
	AlarmType         string       `json:"alarmType"`
	PerceivedSeverity string       `json:"perceivedSeverity"`
	ProbableCause     string       `json:"probableCause"`
	SpecificProblem   string       `json:"specificProblem"`
	AlarmedObject     resourceRef  `json:"alarmedObject"`
	AlarmRaisedTime   string       `json:"alarmRaisedTime"`
	AlarmClearedTime  string       `json:"alarmClearedTime,omitempty"`
	IsRootCause       *bool        `json:"isRootCause,omitempty"`
	CorrelatedAlarm   []alarmRef   `json:"correlatedAlarm,omitempty"`
	ParentAlarm       []alarmRef   `json:"parentAlarm,omitempty"`
	CausedBy          *alarmRef    `json:"causedBy,omitempty"`
	ServiceAffecting  *bool        `json:"serviceAffecting,omitempty"`
	AffectedService   []serviceRef `json:"affectedService,omitempty"`
}

type resourceRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Href string `json:"href,omitempty"`
}

type alarmRef struct {
	ID      string `json:"id"`
	Origin  string `json:"origin,omitempty"`
	Source  string `json:"source,omitempty"`
	EventID string `json:"eventId,omitempty"`
}

type serviceRef struct {
	ID   string `json:"id"`
	Href string `json:"href,omitempty"`
}

// x733Types are the alarm types of the fault schema.
var x733Types = map[string]bool{
	"communicationsAlarm": true, "processingErrorAlarm": true, "environmentalAlarm": true, "qualityOfServiceAlarm": true,
	"equipmentAlarm": true, "integrityViolation": true, "operationalViolation": true, "physicalViolation": true,
	"securityServiceOrMechanismViolation": true, "timeDomainViolation": true,
}

// severities maps a perceived severity to the severity extension
// (docs/signals.md, Severity).
var severities = map[string]struct {
	text string
	num  int
}{
	"CRITICAL": {"FATAL", 21}, "MAJOR": {"ERROR", 17}, "MINOR": {"WARN", 13}, "WARNING": {"WARN", 13},
	"INDETERMINATE": {"INFO", 9}, "CLEARED": {"INFO", 9},
}

// faultEvent is a fault signal from this node.
func faultEvent(self, producer, id, subj string, at time.Time, state signal.State, d *faultData) *signal.Event {
	data, _ := json.Marshal(d) // plain data always marshals
	sev := severities[d.PerceivedSeverity]
	return &signal.Event{
		ID: id, Source: "anfed://" + self + "/" + producer, Type: "net.anfed.fault.v1", Subject: subj,
		Time: at.UTC(), DataContentType: signal.ContentType, Origin: self, State: state,
		SeverityText: sev.text, SeverityNumber: sev.num, Data: data,
	}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
