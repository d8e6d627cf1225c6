package intent_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
)

// alone is op-a with op-b configured as a peer that never connects.
func alone(t *testing.T) *config.Config {
	cfg := baseConfig(t, "op-a")
	cfg.NATS.LeafNodes = &config.Listener{Listen: "127.0.0.1:0"}
	cfg.Peers = []config.Peer{{
		ID: "op-b", Accept: &config.Accept{User: "op-b", Password: "secret-b-123"},
		Export:     config.ExportPolicy{Classes: []string{"fault"}, Services: []string{"*"}},
		SigningKey: keys.Public(t, "op-b"),
	}}
	return cfg
}

// TestIntentAPILifecycle: a TMF921 intent is created, read, listed,
// patched and terminated over HTTP; a node restart keeps it.
func TestIntentAPILifecycle(t *testing.T) {
	cfg := alone(t)
	a := start(t, cfg)

	code, body := do(t, http.MethodPost, a.url+"/intent", bearer, "application/json", sample(t))
	require.Equal(t, http.StatusCreated, code, body)
	in := decode[intent.Intent](t, body)
	assert.Regexp(t, `^int-[0-9a-f]{16}$`, in.ID)
	assert.Equal(t, "http://"+a.hs.Addr()+intent.BasePath+"/intent/"+in.ID, in.Href)
	assert.Equal(t, intent.Acknowledged, in.LifecycleStatus)
	assert.Equal(t, "op-a", in.Owner)
	assert.Equal(t, intent.RoleOwner, in.Role)
	assert.Equal(t, "Intent", in.Type)
	assert.Equal(t, "cross-operator-service", in.IntentSpecification.ID)
	require.Len(t, in.Expression.ExpressionValue.Expectations, 5)
	assert.Equal(t, "vpn-acme", in.Expression.ExpressionValue.Service)
	assert.Equal(t, 2026, in.ValidFor.StartDateTime.Year())

	// A client-chosen id, then a second one with the same id.
	named := edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" })
	code, body = do(t, http.MethodPost, a.url+"/intent", bearer, "application/json", named)
	require.Equal(t, http.StatusCreated, code, body)
	code, body = do(t, http.MethodPost, a.url+"/intent", bearer, "application/json", named)
	require.Equal(t, http.StatusConflict, code, body)
	assert.Contains(t, body, `an intent with id \"acme-vpn-1\" exists`)

	code, body = do(t, http.MethodGet, a.url+"/intent/"+in.ID, bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, in.ID, decode[intent.Intent](t, body).ID)

	code, body = do(t, http.MethodGet, a.url+"/intent", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode[[]intent.Intent](t, body), 2)

	// PATCH (merge patch): the name; then an expectation, which the
	// partner must decide again.
	code, body = do(t, http.MethodPatch, a.url+"/intent/"+in.ID, bearer, "application/merge-patch+json", []byte(`{"name":"acme VPN, renamed"}`))
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "acme VPN, renamed", decode[intent.Intent](t, body).Name)
	code, body = do(t, http.MethodPatch, a.url+"/intent/"+in.ID, bearer, "application/merge-patch+json", []byte(`{"lifecycleStatus":"compliant"}`))
	require.Equal(t, http.StatusBadRequest, code, body)
	assert.Contains(t, body, "lifecycleStatus: set by the node, not by a request")

	// A restart keeps both intents as they were.
	a.stop()
	a = start(t, cfg)
	code, body = do(t, http.MethodGet, a.url+"/intent/"+in.ID, bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	got := decode[intent.Intent](t, body)
	assert.Equal(t, "acme VPN, renamed", got.Name)
	assert.Equal(t, in.CreationDate, got.CreationDate)
	assert.Equal(t, intent.Acknowledged, got.LifecycleStatus)
	code, body = do(t, http.MethodGet, a.url+"/intent?lifecycleStatus=acknowledged", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode[[]intent.Intent](t, body), 2)

	// DELETE terminates (kept, visible), a second DELETE removes.
	code, body = do(t, http.MethodDelete, a.url+"/intent/"+in.ID, bearer, "", nil)
	require.Equal(t, http.StatusAccepted, code, body)
	assert.Equal(t, intent.Terminated, decode[intent.Intent](t, body).LifecycleStatus)
	code, body = do(t, http.MethodPatch, a.url+"/intent/"+in.ID, bearer, "application/merge-patch+json", []byte(`{"name":"again"}`))
	require.Equal(t, http.StatusConflict, code, body)
	assert.Contains(t, body, "is terminated: make a new one")
	code, body = do(t, http.MethodGet, a.url+"/intent?lifecycleStatus=terminated", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode[[]intent.Intent](t, body), 1)
	code, body = do(t, http.MethodDelete, a.url+"/intent/"+in.ID, bearer, "", nil)
	require.Equal(t, http.StatusNoContent, code, body)
	code, body = do(t, http.MethodGet, a.url+"/intent/"+in.ID, bearer, "", nil)
	require.Equal(t, http.StatusNotFound, code, body)
	assert.Contains(t, body, `"reason": "not-found"`)
}

// TestIntentAPIBadInput: broken TMF921 payloads are refused with 400 and
// a TMF630 error naming the JSON field and the fix; nothing is stored;
// requests without the token are refused; a good intent still passes.
func TestIntentAPIBadInput(t *testing.T) {
	a := start(t, alone(t))
	for _, tc := range []struct {
		name, body, want string
	}{
		{"not JSON", `{"name": "x",`, "the JSON ends early"},
		{"bad JSON byte", `{"name": x}`, "not valid JSON at byte 10"},
		{"an array", `[]`, "want a JSON object (a TMF921 Intent), got array"},
		{"empty", ``, "empty body: send a TMF921 Intent as JSON"},
		{"two values", string(sample(t)) + `{}`, "more than one JSON value"},
		{"no name", string(edit(t, func(m map[string]any) { delete(m, "name") })), `name: required`},
		{"wrong @type", string(edit(t, func(m map[string]any) { m["@type"] = "ServiceOrder" })), `@type: "ServiceOrder": want "Intent"`},
		{"unknown field", string(edit(t, func(m map[string]any) { m["priorty"] = "1" })), `priorty: unknown field`},
		{"read-only field", string(edit(t, func(m map[string]any) { m["lifecycleStatus"] = "compliant" })), `lifecycleStatus: set by the node`},
		{"unsupported field", string(edit(t, func(m map[string]any) { m["intentRelationship"] = []any{} })), `intentRelationship: not supported by anfed's TMF921 subset`},
		{"bad id", string(edit(t, func(m map[string]any) { m["id"] = "a.b" })), `id: "a.b": letters, digits`},
		{"no expression type", string(edit(t, func(m map[string]any) { delete(m["expression"].(map[string]any), "@type") })), `expression.@type: required`},
		{"turtle expression", string(edit(t, func(m map[string]any) { m["expression"].(map[string]any)["@type"] = "TurtleExpression" })), `expression.@type: "TurtleExpression" is not supported`},
		{"no expression value", string(edit(t, func(m map[string]any) { delete(m["expression"].(map[string]any), "expressionValue") })), `expression.expressionValue: required`},
		{"missing service", string(edit(t, func(m map[string]any) { delete(ev(m), "service") })), `expression.expressionValue.service: required: the service the intent is about`},
		{"bad service", string(edit(t, func(m map[string]any) { ev(m)["service"] = "vpn.*" })), `expression.expressionValue.service: "vpn.*"`},
		{"missing partner", string(edit(t, func(m map[string]any) { delete(ev(m), "partner") })), `expression.expressionValue.partner: required`},
		{"partner not a peer", string(edit(t, func(m map[string]any) { ev(m)["partner"] = "op-z" })), `expression.expressionValue.partner: "op-z" is not a peer of this node: peers are op-b`},
		{"partner is us", string(edit(t, func(m map[string]any) { ev(m)["partner"] = "op-a" })), `"op-a" is this node's own operator`},
		{"no expectations", string(edit(t, func(m map[string]any) { ev(m)["expectations"] = []any{} })), `expression.expressionValue.expectations: required: at least one expectation`},
		{"unknown expectation", string(edit(t, func(m map[string]any) { exp(m, 0)["metric"] = "latencyy" })), `expression.expressionValue.expectations[0].metric: unknown expectation metric "latencyy": want one of availability, jitter, latency, loss, throughput`},
		{"unknown expectation field", string(edit(t, func(m map[string]any) { exp(m, 0)["target"] = 3 })), `expression.expressionValue.expectations[0].target: unknown field`},
		{"negative latency", string(edit(t, func(m map[string]any) { exp(m, 0)["value"] = -5 })), `expression.expressionValue.expectations[0].value: -5: a latency target cannot be negative`},
		{"latency as a string", string(edit(t, func(m map[string]any) { exp(m, 0)["value"] = "20ms" })), `expression.expressionValue.expectations.value: want a number, got string`},
		{"wrong unit", string(edit(t, func(m map[string]any) { exp(m, 0)["unit"] = "s" })), `expectations[0].unit: "s": latency is in ms`},
		{"wrong direction", string(edit(t, func(m map[string]any) { exp(m, 3)["comparator"] = "<=" })), `expectations[3].comparator: "<=": a availability target bounds it from below, so use >= or >`},
		{"loss over 100", string(edit(t, func(m map[string]any) { exp(m, 2)["value"] = 101 })), `expectations[2].value: 101 %: at most 100`},
		{"duplicate expectation", string(edit(t, func(m map[string]any) { exp(m, 1)["id"] = "lat" })), `expectations[1].id: "lat" is also expectations[0]`},
		{"bad window", string(edit(t, func(m map[string]any) {
			ev(m)["timeWindows"] = []any{map[string]any{"days": []any{"mon"}, "start": "07:00", "end": "06:00"}}
		})), `timeWindows[0].end: 06:00 is not after start 07:00`},
		{"bad day", string(edit(t, func(m map[string]any) {
			ev(m)["timeWindows"] = []any{map[string]any{"days": []any{"monday"}, "start": "07:00", "end": "19:00"}}
		})), `timeWindows[0].days[0]: "monday": want one of mon`},
		{"validFor backwards", string(edit(t, func(m map[string]any) { m["validFor"].(map[string]any)["endDateTime"] = "2026-01-01T00:00:00Z" })), `validFor.endDateTime: 2026-01-01T00:00:00Z is not after startDateTime`},
		{"validFor not a date", string(edit(t, func(m map[string]any) { m["validFor"].(map[string]any)["endDateTime"] = "tomorrow" })), `not RFC 3339`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, http.MethodPost, a.url+"/intent", bearer, "application/json", []byte(tc.body))
			require.Equal(t, http.StatusBadRequest, code, body)
			e := decode[map[string]string](t, body)
			assert.Contains(t, e["message"], tc.want)
			assert.Equal(t, "400", e["code"])
			assert.Equal(t, "Error", e["@type"])
			assert.Contains(t, []string{"bad-field", "malformed"}, e["reason"])
		})
	}
	code, body := do(t, http.MethodPost, a.url+"/intent", "", "application/json", sample(t))
	require.Equal(t, http.StatusUnauthorized, code, body)
	assert.Contains(t, body, "missing bearer token")
	code, body = do(t, http.MethodGet, a.url+"/intent", "Bearer wrong", "", nil)
	require.Equal(t, http.StatusUnauthorized, code, body)
	assert.Contains(t, body, "wrong bearer token")
	code, body = do(t, http.MethodPost, a.url+"/intent", bearer, "text/turtle", sample(t))
	require.Equal(t, http.StatusUnsupportedMediaType, code, body)
	code, body = do(t, http.MethodPost, a.url+"/intent", bearer, "application/json", []byte(strings.Repeat(" ", 300<<10)))
	require.Equal(t, http.StatusRequestEntityTooLarge, code, body)

	// Nothing was stored; a good intent still goes in.
	code, body = do(t, http.MethodGet, a.url+"/intent", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Empty(t, decode[[]intent.Intent](t, body))
	code, body = do(t, http.MethodPost, a.url+"/intent", bearer, "application/json", sample(t))
	require.Equal(t, http.StatusCreated, code, body)
}

// TestIntentAPIBadRequests: the requests around an intent that the API
// refuses besides a broken POST body — a PATCH that changes the id or the
// partner, breaks an expectation or names an unknown field, a PATCH of
// another media type, unknown list filters, and ids, reports and
// registrations that do not exist — each with its status and a TMF630
// body saying what to fix; the intent is unchanged after.
func TestIntentAPIBadRequests(t *testing.T) {
	a := start(t, alone(t))
	in := create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	url := a.url + "/intent/acme-vpn-1"
	expr := func(f func(m map[string]any)) string {
		b := edit(t, func(m map[string]any) { f(m) })
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m))
		return string(mustJSON(t, map[string]any{"expression": m["expression"]}))
	}
	for _, tc := range []struct {
		name, method, url, ctype, body string
		code                           int
		want                           string
	}{
		{"patch the id", http.MethodPatch, url, "application/merge-patch+json", `{"id":"other"}`, 400, "id: an intent's id does not change"},
		{"patch the partner", http.MethodPatch, url, "application/merge-patch+json", expr(func(m map[string]any) { ev(m)["partner"] = "op-c" }), 400,
			`expression.expressionValue.partner: an intent's partner does not change: terminate it (DELETE) and make a new one for op-c`},
		{"patch a negative target", http.MethodPatch, url, "application/merge-patch+json", expr(func(m map[string]any) { exp(m, 0)["value"] = -1 }), 400,
			"expression.expressionValue.expectations[0].value: -1: a latency target cannot be negative"},
		{"patch an unknown field", http.MethodPatch, url, "application/merge-patch+json", `{"nmae":"x"}`, 400, "nmae: unknown field"},
		{"patch a read-only field", http.MethodPatch, url, "application/merge-patch+json", `{"creationDate":"2026-01-01T00:00:00Z"}`, 400, "creationDate: set by the node"},
		{"patch as text", http.MethodPatch, url, "text/plain", `{"name":"x"}`, 415, `Content-Type "text/plain": send application/merge-patch+json or application/json`},
		{"patch not JSON", http.MethodPatch, url, "application/merge-patch+json", `{"name":`, 400, "the JSON ends early"},
		{"patch a missing intent", http.MethodPatch, a.url + "/intent/nope", "application/merge-patch+json", `{"name":"x"}`, 404, `no intent "nope" on this node`},
		{"get a malformed id", http.MethodGet, a.url + "/intent/a..b", "", "", 404, `no intent "a..b": ids are letters, digits, - and _`},
		{"list with an unknown filter", http.MethodGet, a.url + "/intent?status=compliant", "", "", 400, `unknown query parameter "status"`},
		{"a missing report", http.MethodGet, url + "/intentReport/r1", "", "", 404, `intent acme-vpn-1 has no report "r1"`},
		{"delete a missing intent", http.MethodDelete, a.url + "/intent/nope", "", "", 404, `no intent "nope" on this node`},
		{"a missing registration", http.MethodGet, a.url + "/hub/0123456789abcdef", "", "", 404, `no hub registration "0123456789abcdef"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			code, out := do(t, tc.method, tc.url, bearer, tc.ctype, body)
			require.Equal(t, tc.code, code, out)
			e := decode[map[string]string](t, out)
			assert.Contains(t, e["message"], tc.want)
			assert.Equal(t, "Error", e["@type"])
		})
	}
	code, body := do(t, http.MethodGet, url, bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	got := decode[intent.Intent](t, body)
	assert.Equal(t, in.Name, got.Name)
	assert.Equal(t, in.LastUpdate, got.LastUpdate, "no refused request changed it")
	assert.Equal(t, 20.0, got.Expression.ExpressionValue.Expectations[0].Value)
}
