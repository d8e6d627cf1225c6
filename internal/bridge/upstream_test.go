package bridge_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
)

// fakeOSS is an upstream OSS's TMF642 hub on 127.0.0.1: it refuses the
// first failFirst registrations with 503, then records the callback.
type fakeOSS struct {
	mu         sync.Mutex
	failFirst  int
	attempts   int
	auth       []string
	callback   string
	query      string
	registered bool
	deleted    []string
	url        string
}

func startOSS(t *testing.T, failFirst int) *fakeOSS {
	o := &fakeOSS{failFirst: failFirst}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /oss/tmf-api/alarmManagement/v4/hub", func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.attempts++
		o.auth = append(o.auth, r.Header.Get("Authorization"))
		if o.attempts <= o.failFirst {
			http.Error(w, `{"code":"503","reason":"busy"}`, http.StatusServiceUnavailable)
			return
		}
		var req struct{ Callback, Query string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		o.callback, o.query, o.registered = req.Callback, req.Query, true
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": "hub-42", "callback": req.Callback, "query": req.Query})
	})
	mux.HandleFunc("DELETE /oss/tmf-api/alarmManagement/v4/hub/{id}", func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.deleted = append(o.deleted, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	o.url = "http://" + ln.Addr().String() + "/oss/tmf-api/alarmManagement/v4"
	return o
}

// The node registers a hub with an upstream OSS, retrying while the OSS
// refuses; the OSS's notifications to the callback become fault signals
// that cross to the peer; on shutdown the node unregisters.
func TestTMF642UpstreamHub(t *testing.T) {
	oss := startOSS(t, 2)
	a, b := pair(t, config.Bridges{TMF642: &config.TMF642Bridge{Upstream: []config.TMF642Upstream{{
		URL: oss.url, TokenFile: writeFile(t, "oss.token", "oss-token-0123456789"), Query: "perceivedSeverity=CRITICAL,MAJOR"}}}}, nil)
	natstest.WaitFor(t, 30*time.Second, func() error {
		oss.mu.Lock()
		defer oss.mu.Unlock()
		if !oss.registered {
			return errors.New("not registered")
		}
		return nil
	})
	oss.mu.Lock()
	callback, query, attempts, auth := oss.callback, oss.query, oss.attempts, oss.auth
	oss.mu.Unlock()
	assert.Equal(t, a.url+"/tmf-api/alarmManagement/v4", callback)
	assert.Equal(t, "perceivedSeverity=CRITICAL,MAJOR", query)
	assert.Equal(t, 3, attempts, "two refusals, then registered")
	assert.Equal(t, "Bearer oss-token-0123456789", auth[0])
	assert.Equal(t, 1.0, nodetest.Scrape(t, a.url)[`anfed_bridge_tmf642_upstream_registered{url="`+oss.url+`"}`])

	// The OSS notifies the callback.
	code, body := post(t, callback+"/listener/alarmCreateEvent", bearer, sample(t, "tmf642-alarm-create.json"))
	require.Equal(t, http.StatusAccepted, code, body)
	condition(t, b, "op-a", "fault", "vpn-acme/par-pe-2:et-0/0/3/ALM-7731", true)

	a.stop()
	oss.mu.Lock()
	defer oss.mu.Unlock()
	assert.Equal(t, []string{"hub-42"}, oss.deleted, "unregistered on shutdown")
}
