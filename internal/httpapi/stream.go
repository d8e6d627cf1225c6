package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/anfed/anfed/internal/observe"
)

// Reject is one refused signal, as the API reports it.
type Reject struct {
	Time time.Time `json:"time"`
	From string    `json:"from,omitempty"` // peer id or "local"; "" for a drop on the way out
	// To is the peer one of our signals was on its way to when it was
	// dropped at our end (buffer-age, buffer-bytes, undeliverable,
	// store-bound, delivery-changed).
	To     string `json:"to,omitempty"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	// Count is how many signals it stands for, when more than one (a drop
	// of several at once: store-bound, delivery-changed).
	Count uint64 `json:"count,omitempty"`
	// Of the signal, when it could be decoded.
	Type    string `json:"type,omitempty"`
	Subject string `json:"subject,omitempty"`
	Source  string `json:"source,omitempty"`
	ID      string `json:"id,omitempty"`
}

// rejectRing keeps the last rejects; it is an observe.Observer that only
// listens to rejections and never blocks for long.
type rejectRing struct {
	mu     sync.Mutex
	buf    []Reject
	next   int
	full   bool
	notify func(Reject)
}

func newRejectRing(n int) *rejectRing { return &rejectRing{buf: make([]Reject, n)} }

func (r *rejectRing) size() int { return len(r.buf) }

func (r *rejectRing) Accepted(observe.Acceptance) {}
func (r *rejectRing) Crossed(observe.Crossing)    {}

func (r *rejectRing) Rejected(x observe.Rejection) {
	rj := Reject{Time: time.Now().UTC(), From: x.From, To: x.To, Reason: string(x.Reason), Detail: x.Detail}
	if n := x.Signals(); n > 1 {
		rj.Count = n
	}
	if rj.From == "" && rj.To == "" {
		rj.From = observe.Local
	}
	if ev := x.Event; ev != nil {
		rj.Type, rj.Subject, rj.Source, rj.ID = ev.Type, ev.Subject, ev.Source, ev.ID
	}
	r.mu.Lock()
	r.buf[r.next] = rj
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
	if r.notify != nil {
		r.notify(rj)
	}
}

// recent returns up to n rejects, newest first.
func (r *rejectRing) recent(n int) []Reject {
	r.mu.Lock()
	defer r.mu.Unlock()
	have := r.next
	if r.full {
		have = len(r.buf)
	}
	n = min(n, have)
	out := make([]Reject, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

// hub fans events out to the open event streams. A stream that cannot keep
// up misses events (the next state event repairs its picture); the
// pipelines never wait on it.
type hub struct {
	mu      sync.Mutex
	clients map[chan []byte]struct{}
}

func newHub() *hub { return &hub{clients: map[chan []byte]struct{}{}} }

func (h *hub) listeners() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.clients)
}

func (h *hub) add() chan []byte {
	c := make(chan []byte, 64)
	h.mu.Lock()
	h.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

func (h *hub) remove(c chan []byte) {
	h.mu.Lock()
	delete(h.clients, c)
	h.mu.Unlock()
}

func (h *hub) send(ev []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.clients {
		select {
		case c <- ev:
		default:
		}
	}
}

func (h *hub) state(b []byte) { h.send(sse("state", b)) }

func (h *hub) reject(r Reject) {
	if h.listeners() == 0 {
		return
	}
	b, _ := json.Marshal(r) // plain data always marshals
	h.send(sse("reject", b))
}

func sse(event string, data []byte) []byte {
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", event, data)
}

// stream serves server-sent events: "state" (the whole picture: peers,
// conditions) at once and then every tick, "reject" as each happens.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		problem(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	c := s.hub.add()
	defer s.hub.remove(c)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(sse("state", s.state(r.Context(), true))); err != nil {
		return
	}
	fl.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-c:
			if _, err := w.Write(b); err != nil {
				return
			}
		case <-keepalive.C:
			if _, err := w.Write([]byte(": keepalive\n\n")); err != nil {
				return
			}
		}
		fl.Flush()
	}
}
