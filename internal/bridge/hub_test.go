package bridge_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/bridge"
	"github.com/anfed/anfed/internal/config"
	"github.com/anfed/anfed/internal/natstest"
	"github.com/anfed/anfed/internal/nodetest"
	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/internal/store"
)

// tmfListener is a TMF642 listener on 127.0.0.1 that answers 503 to its
// first failFirst POSTs (or status to all of them, when set), can be taken
// down and brought back on the same port, and keeps each event once (by
// eventId: deliveries are at least once).
type tmfListenerSrv struct {
	t         *testing.T
	addr      string
	mu        sync.Mutex
	failFirst int
	status    int
	posts     int
	seen      map[string]bool
	byAlarm   map[string][]string // alarm id -> eventTypes in arrival order
	srv       *http.Server
	done      chan struct{}
}

func newTMFListener(t *testing.T, failFirst int) *tmfListenerSrv {
	l := &tmfListenerSrv{t: t, failFirst: failFirst, seen: map[string]bool{}, byAlarm: map[string][]string{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l.addr = ln.Addr().String()
	l.serve(ln)
	t.Cleanup(l.down)
	return l
}

func (l *tmfListenerSrv) url() string { return "http://" + l.addr + "/tmf-api/alarmManagement/v4" }

func (l *tmfListenerSrv) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /tmf-api/alarmManagement/v4/listener/{event}", func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.posts++
		if l.status != 0 {
			w.WriteHeader(l.status)
			return
		}
		if l.posts <= l.failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var ev struct {
			EventID   string `json:"eventId"`
			EventType string `json:"eventType"`
			Event     struct {
				Alarm struct {
					ID string `json:"id"`
				} `json:"alarm"`
			} `json:"event"`
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil || ev.EventID == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if !l.seen[ev.EventID] {
			l.seen[ev.EventID] = true
			l.byAlarm[ev.Event.Alarm.ID] = append(l.byAlarm[ev.Event.Alarm.ID], ev.EventType)
		}
		w.WriteHeader(http.StatusCreated)
	})
	l.srv = &http.Server{Handler: mux}
	l.done = make(chan struct{})
	go func() {
		defer close(l.done)
		_ = l.srv.Serve(ln)
	}()
}

func (l *tmfListenerSrv) down() {
	if l.srv == nil {
		return
	}
	_ = l.srv.Close()
	<-l.done
	l.srv = nil
}

func (l *tmfListenerSrv) up() {
	var ln net.Listener
	natstest.WaitFor(l.t, 10*time.Second, func() (err error) {
		ln, err = net.Listen("tcp", l.addr)
		return err
	})
	l.serve(ln)
}

func (l *tmfListenerSrv) snapshot() (posts int, byAlarm map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byAlarm = map[string][]string{}
	for k, v := range l.byAlarm {
		byAlarm[k] = append([]string(nil), v...)
	}
	return l.posts, byAlarm
}

// publishFault has s's intake store a fault of s's operator on subj.
func publishFault(t *testing.T, s *site, subj, id string, state signal.State) {
	t.Helper()
	sev, cleared := "MAJOR", ""
	if state == signal.Updated {
		sev = "CRITICAL"
	}
	if state == signal.Cleared {
		sev, cleared = "CLEARED", `,"alarmClearedTime":"2026-11-25T17:10:00Z"`
	}
	ev := &signal.Event{
		ID: id, Source: "anfed://" + s.n.ID() + "/assurance", Type: "net.anfed.fault.v1", Subject: subj,
		Time: time.Now().UTC().Truncate(time.Millisecond), Origin: s.n.ID(), State: state, SeverityText: "ERROR", SeverityNumber: 17,
		Data: json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"` + sev + `","probableCause":"lossOfSignal","specificProblem":"LOS","alarmedObject":{"id":"` + subj + `","type":"port"},"alarmRaisedTime":"2026-11-25T17:00:00Z"` + cleared + `}`),
	}
	nc, err := s.n.Connect()
	require.NoError(t, err)
	defer nc.Close()
	m, err := nc.Request("an.pub", ev.Encode(), 10*time.Second)
	require.NoError(t, err)
	a, err := signal.ParseAnswer(m.Data)
	require.NoError(t, err)
	require.True(t, a.OK(), "%+v", a)
}

func register(t *testing.T, s *site, body string) (int, bridge.Registration, string) {
	t.Helper()
	code, resp := post(t, s.url+bridge.TMF642Hub, bearer, []byte(body))
	var r bridge.Registration
	if code == http.StatusCreated {
		decode(t, resp, &r)
	}
	return code, r, resp
}

func hubBridges() config.Bridges {
	return config.Bridges{TMF642: &config.TMF642Bridge{Delivery: config.TMF642Delivery{
		Initial: config.Duration(50 * time.Millisecond), Max: config.Duration(400 * time.Millisecond), MaxAttempts: 100000}}}
}

var lifecycle = []string{"AlarmCreateEvent", "AlarmAttributeValueChangeEvent", "AlarmStateChangeEvent"}

// Fault signals, imported from a peer and local, reach a listener
// registered on our hub as TMF642 events: each once (the listener keeps
// an event once by eventId) and in order per alarm, although the listener
// fails its first POSTs, is down for a while, and the node restarts.
func TestTMF642HubDeliversDurably(t *testing.T) {
	a, b := pair(t, config.Bridges{}, func(c *config.Config) { c.Bridges = hubBridges() })
	lst := newTMFListener(t, 3)
	code, reg, body := register(t, b, `{"callback": "`+lst.url()+`"}`)
	require.Equal(t, http.StatusCreated, code, body)

	alarms := map[string]bool{}
	raiseUpdateClear := func(s *site, subj string) {
		for i, st := range []signal.State{signal.Raised, signal.Updated, signal.Cleared} {
			publishFault(t, s, subj, fmt.Sprintf("%s-%d", subj, i), st)
		}
		alarms[s.n.ID()+":"+subj] = true
	}
	raiseUpdateClear(a, "vpn-acme/port-1")
	raiseUpdateClear(b, "vpn-acme/port-local")

	lst.down() // the listener goes away for a while
	raiseUpdateClear(a, "vpn-acme/port-2")
	raiseUpdateClear(b, "vpn-acme/port-local-2")
	time.Sleep(time.Second) // deliveries fail and back off meanwhile
	lst.up()

	// The node restarts while the listener holds only part of it.
	waitDelivered(t, lst, alarms, 1)
	b.stop()
	raiseUpdateClear(a, "vpn-acme/port-3") // held by A's sender until B is back
	b = start(t, b.cfg)
	natstest.WaitFor(t, 20*time.Second, func() error {
		if !b.n.LinkUp("op-a") {
			return errors.New("link down")
		}
		return nil
	})
	raiseUpdateClear(b, "vpn-acme/port-local-3")

	byAlarm := waitDelivered(t, lst, alarms, 3)
	for id := range alarms {
		assert.Equal(t, lifecycle, byAlarm[id], "alarm %s: every event once, in order", id)
	}
	posts, _ := lst.snapshot()
	t.Logf("listener: %d alarms, %d events kept, %d POSTs (3 answered 503, others while it was down failed to connect)", len(alarms), 3*len(alarms), posts)

	// The registration survived the restart.
	req, _ := http.NewRequest(http.MethodGet, b.url+bridge.TMF642Hub+"/"+reg.ID, nil)
	req.Header.Set("Authorization", bearer)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// waitDelivered waits until the listener holds, for every alarm, at
// least min events (3: the whole lifecycle).
func waitDelivered(t *testing.T, l *tmfListenerSrv, alarms map[string]bool, min int) map[string][]string {
	t.Helper()
	var got map[string][]string
	natstest.WaitFor(t, 60*time.Second, func() error {
		_, got = l.snapshot()
		for id := range alarms {
			if len(got[id]) < min {
				return fmt.Errorf("alarm %s: %d of %d events", id, len(got[id]), min)
			}
		}
		return nil
	})
	return got
}

// A listener that refuses an event (4xx) or keeps failing past
// max_attempts gets it dead-lettered: counted, logged, stored on
// an.dlq.loop-tmf642-hub-<id>.<reason>, and the events after it go on.
func TestTMF642HubDeadLetters(t *testing.T) {
	cfg := baseConfig(t, "op-a")
	cfg.Bridges = hubBridges()
	cfg.Bridges.TMF642.Delivery.MaxAttempts = 3
	s := start(t, cfg)

	refuse := newTMFListener(t, 0)
	refuse.status = http.StatusBadRequest
	failing := newTMFListener(t, 0)
	failing.status = http.StatusBadGateway
	_, r1, _ := register(t, s, `{"callback": "`+refuse.url()+`"}`)
	_, r2, _ := register(t, s, `{"callback": "`+failing.url()+`"}`)
	publishFault(t, s, "vpn-acme/port-9", "p9-0", signal.Raised)

	js, err := jetstream.New(natsConn(t, s))
	require.NoError(t, err)
	dlq := func(id string) map[string]uint64 {
		st, err := js.Stream(context.Background(), store.DLQStream)
		require.NoError(t, err)
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter("an.dlq.loop-tmf642-hub-"+id+".>"))
		require.NoError(t, err)
		return info.State.Subjects
	}
	natstest.WaitFor(t, 30*time.Second, func() error {
		if len(dlq(r1.ID)) == 0 || len(dlq(r2.ID)) == 0 {
			return errors.New("no dead letters yet")
		}
		return nil
	})
	assert.Equal(t, map[string]uint64{"an.dlq.loop-tmf642-hub-" + r1.ID + ".poison": 1}, dlq(r1.ID))
	assert.Equal(t, map[string]uint64{"an.dlq.loop-tmf642-hub-" + r2.ID + ".max-deliver": 1}, dlq(r2.ID))
	posts, _ := failing.snapshot()
	assert.Equal(t, 3, posts, "max_attempts 3")
	posts, _ = refuse.snapshot()
	assert.Equal(t, 1, posts, "a 400 is not retried")
	assert.Equal(t, 2.0, nodetest.Scrape(t, s.url)[`anfed_bridge_tmf642_deliveries_total{result="dead-letter"}`])
}

// Hub registrations: bad ones get a 4xx naming the field; a deleted one
// stops and loses its consumer.
func TestTMF642HubRegistrations(t *testing.T) {
	cfg := baseConfig(t, "op-a")
	cfg.Bridges = hubBridges()
	s := start(t, cfg)
	for _, tc := range []struct{ body, want string }{
		{`{"query": "a=b"}`, `callback "": want the listener's base URL`},
		{`{"callback": "ftp://x/y"}`, `callback "ftp://x/y"`},
		{`{"callback": "http://127.0.0.1:1", "query": "colour=red"}`, `cannot filter on "colour"`},
	} {
		code, _, body := register(t, s, tc.body)
		assert.Equal(t, http.StatusUnprocessableEntity, code, body)
		var e struct{ Message string }
		decode(t, body, &e)
		assert.Contains(t, e.Message, tc.want)
	}
	code, _, body := register(t, s, `{"callback": `)
	assert.Equal(t, http.StatusBadRequest, code, body)

	lst := newTMFListener(t, 0)
	code, reg, body := register(t, s, `{"callback": "`+lst.url()+`", "query": "perceivedSeverity=CRITICAL"}`)
	require.Equal(t, http.StatusCreated, code, body)
	publishFault(t, s, "vpn-acme/port-1", "q-0", signal.Raised)  // MAJOR: filtered out
	publishFault(t, s, "vpn-acme/port-1", "q-1", signal.Updated) // CRITICAL
	natstest.WaitFor(t, 20*time.Second, func() error {
		if _, got := lst.snapshot(); len(got["op-a:vpn-acme/port-1"]) != 1 {
			return fmt.Errorf("got %v", got)
		}
		return nil
	})
	assert.Equal(t, 1.0, nodetest.Scrape(t, s.url)[`anfed_bridge_tmf642_deliveries_total{result="filtered"}`])

	del := func(id string) int {
		req, _ := http.NewRequest(http.MethodDelete, s.url+bridge.TMF642Hub+"/"+id, nil)
		req.Header.Set("Authorization", bearer)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusNotFound, del("nope"))
	assert.Equal(t, http.StatusNoContent, del(reg.ID))
	js, err := jetstream.New(natsConn(t, s))
	require.NoError(t, err)
	_, err = js.Consumer(context.Background(), store.SignalStream, "tmf642-hub-"+reg.ID)
	assert.ErrorIs(t, err, jetstream.ErrConsumerNotFound)
	publishFault(t, s, "vpn-acme/port-1", "q-2", signal.Updated)
	_, got := lst.snapshot()
	assert.Len(t, got["op-a:vpn-acme/port-1"], 1, "nothing after the delete")
	assert.True(t, strings.HasPrefix(reg.Callback, "http://127.0.0.1:"))
}
