package intent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/subject"
)

// hubPrefix is the keys of the TMF921 hub's registrations in the
// intents' bucket: never an operator id, so never an intent's key.
const hubPrefix = "_hub."

// IntentReportCreateEvent is the TMF921 notification the hub sends.
const IntentReportCreateEvent = "IntentReportCreateEvent"

// hubQueryKeys are what a registration's query may filter on.
var hubQueryKeys = []string{"eventType", "intentId", "compliance"}

// openHub makes the TMF921 hub: listeners registered on POST
// {BasePath}/hub get an IntentReportCreateEvent for each report a
// partner sends of one of our intents, with the TMF642 hub's durable
// delivery (bridge.Hub).
func (s *Service) openHub(ctx context.Context, st *kvStore) (*bridge.Hub, error) {
	return bridge.OpenHub(ctx, s.nc, bridge.HubOptions{Name: "tmf921", KV: st.kv, Prefix: hubPrefix, Path: BasePath + "/hub",
		Filter: subject.SignalPrefix + ".*.intent-report.>", QueryKeys: hubQueryKeys, QueryExample: "compliance=nonCompliant,degraded",
		Example:   `{"callback": "https://listener.example/tmf-api/intentManagement/v5", "query": "compliance=nonCompliant,degraded"}`,
		Resources: "{callback}/listener/intentReportCreateEvent",
		Notify:    s.notification, Check: s.check, Fail: s.failer, Delivered: s.delivered, Log: s.log})
}

// reportID is the IntentReport id of a partner's intent-report signal:
// the same in the notification and in GET .../intentReport/{id}.
func reportID(ev *signal.Event) string {
	return strings.ReplaceAll(strings.TrimPrefix(ev.ID, ev.CorrelationID+"."), ".", "-")
}

// notification is the IntentReportCreateEvent of a partner's report of
// one of our intents; nil for any other intent-report (ours, or of
// another operator's intent).
func (s *Service) notification(ev *signal.Event) (*bridge.Notification, error) {
	owner, id, ok := strings.Cut(ev.CorrelationID, ".")
	if !ok || owner != s.self || ev.Origin == s.self || ev.State == signal.Cleared {
		return nil, nil
	}
	var r struct {
		IntentID     string          `json:"intentId"`
		Compliance   string          `json:"compliance"`
		Expectations json.RawMessage `json:"expectations"`
	}
	if err := json.Unmarshal(ev.Data, &r); err != nil {
		return nil, fmt.Errorf("intent-report %s: %w", ev.ID, err)
	}
	if r.IntentID != id {
		return nil, nil
	}
	status := reportedStatus[r.Compliance]
	href := s.href(id)
	rep := Report{ID: reportID(ev), Href: href + "/intentReport/" + reportID(ev), Name: status, CreationDate: ev.Time, Type: "IntentReport",
		Expression: ReportExpression{Type: "JsonLdExpression", ExpressionValue: ReportValues{LifecycleStatus: status, From: ev.Origin, Expectations: r.Expectations}},
		Intent:     EntityRef{ID: id, Href: href, ReferredType: "Intent"}}
	body := map[string]any{"eventId": ev.Origin + ":" + ev.ID, "eventTime": ev.Time.UTC().Format(time.RFC3339Nano), "eventType": IntentReportCreateEvent,
		"@type": IntentReportCreateEvent, "event": map[string]any{"intentReport": rep}}
	return &bridge.Notification{Body: body, Resource: "intentReportCreateEvent",
		Fields: map[string]string{"eventType": IntentReportCreateEvent, "intentId": id, "compliance": r.Compliance}}, nil
}

// reportedStatus is the lifecycleStatus of an intent-report's compliance.
var reportedStatus = map[string]string{"compliant": Compliant, "degraded": Degraded, "nonCompliant": NotCompliant}

// check checks the bearer token (intents.token_file, else
// http.token_file), answering 401 with fail.
func (s *Service) check(w http.ResponseWriter, r *http.Request, fail func(w http.ResponseWriter, code int, msg string)) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok && subtleEqual(strings.TrimSpace(got), s.token) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="anfed intents"`)
	what := "missing bearer token"
	if ok {
		what = "wrong bearer token"
	}
	fail(w, http.StatusUnauthorized, what+": send Authorization: Bearer <the token in the node's intents.token_file, or http.token_file>")
	return false
}

// failer answers a refusal with reason (the hub's Fail).
func (s *Service) failer(reason string) func(w http.ResponseWriter, code int, msg string) {
	return func(w http.ResponseWriter, code int, msg string) { s.fail(w, code, reason, "%s", msg) }
}
