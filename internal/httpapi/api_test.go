package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/conditions"
	"github.com/anfed/anfed/internal/httpapi"
	"github.com/anfed/anfed/internal/natstest"
)

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, body := get(t, url)
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), v), body)
}

func TestAPIPeersConditionsRejects(t *testing.T) {
	a, b, _ := pair(t)
	for i := range 3 {
		publish(t, a, event("op-a", "congestion", fmt.Sprintf("vpn-acme/ic-%d", i), congestionData))
	}
	publish(t, a, event("op-a", "congestion", "vpn-other/ic-1", congestionData))
	publish(t, a, event("op-a", "fault", "vpn-acme/ic-9", faultData)) // B does not import faults
	var peers []httpapi.Peer
	natstest.WaitFor(t, 10*time.Second, func() error {
		getJSON(t, b.url+"/v1/peers", &peers)
		// The condition table fills from the store, after the counters.
		if len(peers) != 1 || peers[0].Counters.In < 4 || peers[0].Counters.Rejected["not-imported"] < 1 || peers[0].Conditions < 4 {
			return fmt.Errorf("peers: %+v", peers)
		}
		return nil
	})
	p := peers[0]
	assert.Equal(t, "op-a", p.ID)
	assert.Equal(t, "Operator A", p.Name)
	assert.Equal(t, "dial", p.Direction)
	assert.True(t, p.Up)
	assert.False(t, p.Since.IsZero())
	assert.Equal(t, 4, p.Conditions)
	assert.Equal(t, uint64(4), p.Counters.In)
	getJSON(t, a.url+"/v1/peers", &peers)
	require.Len(t, peers, 1)
	assert.Equal(t, "op-b", peers[0].ID)
	assert.GreaterOrEqual(t, peers[0].Counters.Out, uint64(5), "4 congestions and a fault put on the link")

	var cs []conditions.Condition
	getJSON(t, b.url+"/v1/conditions", &cs)
	assert.Len(t, cs, 4)
	getJSON(t, b.url+"/v1/conditions?peer=op-a&class=congestion&service=vpn-acme", &cs)
	assert.Len(t, cs, 3)
	for _, c := range cs {
		assert.Equal(t, "op-a", c.Peer)
		assert.Equal(t, "congestion", c.Class)
		assert.True(t, strings.HasPrefix(c.Subject, "vpn-acme/"), c.Subject)
	}
	getJSON(t, b.url+"/v1/conditions?service=vpn-other", &cs)
	assert.Len(t, cs, 1)
	// The keys are snake_case, as /v1/peers'; no expiry is no key (not
	// 0001-01-01T00:00:00Z).
	var raw []map[string]any
	getJSON(t, b.url+"/v1/conditions?service=vpn-other", &raw)
	require.Len(t, raw, 1)
	for k := range raw[0] {
		assert.Regexp(t, `^[a-z][a-z_]*$`, k)
	}
	for _, k := range []string{"peer", "origin", "class", "subject", "status", "state", "source", "id", "severity", "raised", "updated"} {
		assert.Contains(t, raw[0], k)
	}
	assert.NotContains(t, raw[0], "expiry", "the signal has no expiry")
	assert.Equal(t, "op-a", raw[0]["peer"])
	assert.EqualValues(t, 13, raw[0]["severity"])
	getJSON(t, b.url+"/v1/conditions?peer=op-z", &cs)
	assert.Empty(t, cs)
	code, body := get(t, b.url+"/v1/conditions?colour=red")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, `unknown query parameter \"colour\": filter with peer, origin, class, service`)

	var rejects []httpapi.Reject
	getJSON(t, b.url+"/v1/rejects", &rejects)
	require.NotEmpty(t, rejects)
	r := rejects[0]
	assert.Equal(t, "op-a", r.From)
	assert.Equal(t, "not-imported", r.Reason)
	assert.Equal(t, "net.anfed.fault.v1", r.Type)
	assert.Equal(t, "vpn-acme/ic-9", r.Subject)
	assert.NotEmpty(t, r.Detail)
	code, body = get(t, b.url+"/v1/rejects?limit=zero")
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "want a positive number")
	code, body = get(t, b.url+"/v1/nothing")
	assert.Equal(t, http.StatusNotFound, code)
	assert.Contains(t, body, "see docs/operations.md")
}

const token = "test-token-0123456789abcdef"

func post(t *testing.T, url string, hdr map[string]string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func answer(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &m), body)
	return m
}

func TestIngestModesAndAnswers(t *testing.T) {
	s := serve(t, baseConfig(t, "op-a"), writeToken(t, token))
	url := s.url + "/v1/events"
	auth := "Bearer " + token
	structured := map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents+json"}

	// Authentication.
	ev := event("op-a", "congestion", "vpn-acme/ic-1", congestionData)
	code, hdr, body := post(t, url, map[string]string{"Content-Type": "application/cloudevents+json"}, ev.Encode())
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
	assert.Contains(t, body, "missing bearer token")
	code, _, body = post(t, url, map[string]string{"Authorization": "Bearer nope", "Content-Type": "application/cloudevents+json"}, ev.Encode())
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Contains(t, body, "wrong bearer token")

	// Structured mode: 202 once stored, and the condition is in the table.
	code, _, body = post(t, url, structured, ev.Encode())
	require.Equal(t, http.StatusAccepted, code, body)
	assert.Equal(t, "accepted", answer(t, body)["status"])
	var cs []conditions.Condition
	natstest.WaitFor(t, 5*time.Second, func() error {
		getJSON(t, s.url+"/v1/conditions?peer=local", &cs)
		if len(cs) != 1 || cs[0].Subject != "vpn-acme/ic-1" {
			return fmt.Errorf("conditions: %+v", cs)
		}
		return nil
	})
	// The same again is a duplicate: still 202, nothing stored twice.
	code, _, body = post(t, url, structured, ev.Encode())
	require.Equal(t, http.StatusAccepted, code, body)
	assert.Equal(t, "duplicate", answer(t, body)["status"])

	// Binary mode: attributes in ce- headers, the data as the body.
	bin := event("op-a", "congestion", "vpn-acme/ic-2", congestionData)
	code, _, body = post(t, url, map[string]string{
		"Authorization": auth, "Content-Type": "application/json; charset=utf-8",
		"ce-specversion": "1.0", "ce-id": bin.ID, "ce-source": bin.Source, "ce-type": bin.Type,
		"ce-subject": bin.Subject, "ce-time": bin.Time.Format(time.RFC3339Nano),
		"ce-anfedorigin": "op-a", "ce-anfedstate": "raised", "ce-severitytext": "WARN%20HIGH",
	}, []byte(congestionData))
	require.Equal(t, http.StatusAccepted, code, body)
	assert.Equal(t, "accepted", answer(t, body)["status"])

	// Refusals carry the reason and how to fix it.
	bad := event("op-a", "congestion", "vpn-acme/ic-3", `{"link":{"id":"x","kind":"interconnect"}}`)
	code, _, body = post(t, url, structured, bad.Encode())
	assert.Equal(t, http.StatusUnprocessableEntity, code, body)
	assert.Equal(t, "schema-invalid", answer(t, body)["reason"])
	code, _, body = post(t, url, structured, []byte(`{"specversion":"1.0",`))
	assert.Equal(t, http.StatusBadRequest, code, body)
	assert.Equal(t, "malformed", answer(t, body)["reason"])
	foreign := event("op-x", "congestion", "vpn-acme/ic-4", congestionData)
	code, _, body = post(t, url, structured, foreign.Encode())
	assert.Equal(t, http.StatusForbidden, code, body)
	assert.Equal(t, "wrong-origin", answer(t, body)["reason"])
	code, _, body = post(t, url, map[string]string{"Authorization": auth, "Content-Type": "text/plain"}, []byte("hello"))
	assert.Equal(t, http.StatusUnsupportedMediaType, code)
	assert.Contains(t, body, "send structured mode")
	code, _, body = post(t, url, structured, bytes.Repeat([]byte("x"), 2<<20))
	assert.Equal(t, http.StatusRequestEntityTooLarge, code)
	assert.Contains(t, body, "byte limit")

	// Batch mode: one result per event, in order, under 207.
	b1 := event("op-a", "congestion", "vpn-acme/ic-5", congestionData)
	batch := fmt.Sprintf(`[%s, %s, %s, 42]`, b1.Encode(), bad.Encode(), ev.Encode())
	code, _, body = post(t, url, map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents-batch+json"}, []byte(batch))
	require.Equal(t, http.StatusMultiStatus, code, body)
	var ba httpapi.BatchAnswer
	require.NoError(t, json.Unmarshal([]byte(body), &ba), body)
	require.Len(t, ba.Results, 4)
	assert.Equal(t, 2, ba.Accepted)
	assert.Equal(t, 2, ba.Rejected)
	for i, want := range []struct {
		http   int
		status string
	}{{202, "accepted"}, {422, "rejected"}, {202, "duplicate"}, {400, "rejected"}} {
		assert.Equal(t, i, ba.Results[i].Index)
		assert.Equal(t, want.http, ba.Results[i].HTTP, "event %d: %+v", i, ba.Results[i])
		assert.Equal(t, want.status, ba.Results[i].Status, "event %d", i)
	}
	assert.Equal(t, b1.ID, ba.Results[0].ID)
	assert.Equal(t, "schema-invalid", ba.Results[1].Reason)
	code, _, body = post(t, url, map[string]string{"Authorization": auth, "Content-Type": "application/cloudevents-batch+json"}, []byte(`{"not":"an array"}`))
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "a batch is a JSON array")

	// The rejects are in the API too, from local.
	var rejects []httpapi.Reject
	getJSON(t, s.url+"/v1/rejects", &rejects)
	reasons := map[string]bool{}
	for _, r := range rejects {
		assert.Equal(t, "local", r.From)
		reasons[r.Reason] = true
	}
	for _, r := range []string{"schema-invalid", "malformed", "wrong-origin"} {
		assert.True(t, reasons[r], "reject %s listed: %v", r, reasons)
	}
}

func TestIngestOffWithoutToken(t *testing.T) {
	s := serve(t, baseConfig(t, "op-a"), "")
	code, _, body := post(t, s.url+"/v1/events", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/cloudevents+json"}, []byte(`{}`))
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "set http.token_file")
}
