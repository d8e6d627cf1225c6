package intent_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/intent"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
)

// listener is a TMF921 listener: it refuses the first notification with
// 503, then keeps each one it is sent.
type listener struct {
	mu      sync.Mutex
	refused int
	got     []map[string]any
	paths   []string
}

func (l *listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refused == 0 {
		l.refused++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	l.got, l.paths = append(l.got, m), append(l.paths, r.URL.Path)
	w.WriteHeader(http.StatusCreated)
}

func (l *listener) events() ([]map[string]any, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.got...), append([]string(nil), l.paths...)
}

// TestIntentHubNotifies: a listener registered on op-a's TMF921 hub with
// query compliance=nonCompliant gets one IntentReportCreateEvent when
// op-b reports op-a's intent notCompliant — after its first refusal (503),
// retried — and none for the compliant report before it; the event's
// report is the one GET .../intentReport/{id} returns. Broken
// registrations are refused naming the field; a restart keeps the
// registration, a DELETE removes it.
func TestIntentHubNotifies(t *testing.T) {
	a, b := pair(t, nil, func(c *config.Config) {
		c.Intents.Accept = []config.IntentAccept{{Services: []string{"vpn-*"}}}
	})
	l := &listener{}
	srv := httptest.NewServer(l)
	t.Cleanup(srv.Close)
	hub := a.url + "/hub"

	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `{"callback":`, "not valid JSON"},
		{"no callback", `{"query":"compliance=degraded"}`, `callback "": want the listener's base URL`},
		{"ftp callback", `{"callback":"ftp://x/y"}`, `callback "ftp://x/y"`},
		{"unknown query key", `{"callback":"` + srv.URL + `","query":"severity=high"}`, `cannot filter on "severity": filter on eventType, intentId, compliance`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, http.MethodPost, hub, bearer, "application/json", []byte(tc.body))
			assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, code, body)
			assert.Contains(t, decode[map[string]string](t, body)["message"], tc.want)
		})
	}
	code, body := do(t, http.MethodPost, hub, "", "application/json", []byte(`{"callback":"`+srv.URL+`"}`))
	require.Equal(t, http.StatusUnauthorized, code, body)

	code, body = do(t, http.MethodPost, hub, bearer, "application/json", []byte(`{"callback":"`+srv.URL+`","query":"compliance=nonCompliant"}`))
	require.Equal(t, http.StatusCreated, code, body)
	reg := decode[map[string]any](t, body)
	code, body = do(t, http.MethodGet, hub, bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode[[]map[string]any](t, body), 1)
	code, body = do(t, http.MethodGet, a.url+"/intent", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Empty(t, decode[[]intent.Intent](t, body), "the hub's registration is no intent")

	create(t, a, edit(t, func(m map[string]any) { m["id"] = "acme-vpn-1" }))
	waitStatus(t, a, "acme-vpn-1", intent.InProgress)
	nc, err := b.n.Connect()
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	require.True(t, nodetest.Publish(t, nc, latency(1, 15, signal.Raised)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.Compliant)
	require.True(t, nodetest.Publish(t, nc, latency(2, 48.2, signal.Updated)).OK())
	waitStatus(t, a, "acme-vpn-1", intent.NotCompliant)

	var got []map[string]any
	var paths []string
	natstest.WaitFor(t, 30*time.Second, func() error {
		if got, paths = l.events(); len(got) != 1 {
			return fmt.Errorf("the listener holds %d notifications, want 1", len(got))
		}
		return nil
	})
	settled(t, a, "tmf921-hub-"+reg["id"].(string))
	got, paths = l.events()
	require.Len(t, got, 1, "only the nonCompliant report passes the query")
	assert.Equal(t, "/listener/intentReportCreateEvent", paths[0])
	assert.Equal(t, intent.IntentReportCreateEvent, got[0]["eventType"])
	rep := got[0]["event"].(map[string]any)["intentReport"].(map[string]any)
	assert.Equal(t, "acme-vpn-1", rep["intent"].(map[string]any)["id"])
	assert.Equal(t, intent.NotCompliant, rep["expression"].(map[string]any)["expressionValue"].(map[string]any)["lifecycleStatus"])
	code, body = do(t, http.MethodGet, rep["href"].(string), bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, rep["id"], decode[intent.Report](t, body).ID, "the notified report is the one the API serves")
	assert.Equal(t, 1, l.refused, "the first attempt was refused, then retried")

	// A restart keeps the registration (in ANFED_INTENTS, beside the
	// intents, never listed as one); DELETE removes it for good.
	a.stop()
	a = start(t, a.cfg)
	hub = a.url + "/hub"
	code, body = do(t, http.MethodGet, hub+"/"+reg["id"].(string), bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	code, body = do(t, http.MethodGet, a.url+"/intent", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Len(t, decode[[]intent.Intent](t, body), 1, "acme-vpn-1 only")
	code, body = do(t, http.MethodDelete, hub+"/"+reg["id"].(string), bearer, "", nil)
	require.Equal(t, http.StatusNoContent, code, body)
	a.stop()
	a = start(t, a.cfg)
	code, body = do(t, http.MethodGet, a.url+"/hub", bearer, "", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Empty(t, decode[[]map[string]any](t, body))
}
