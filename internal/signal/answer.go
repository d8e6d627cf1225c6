package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/nats-io/nats.go"
	"math"
	"net/http"
	"strconv"

	"github.com/anfed/anfed/internal/reject"
)

// Answer is what a node replies to a signal sent with a reply subject, by a
// local producer to intake or by a peer over a link. It is JSON, so any NATS
// client can read it; the status is also in the Anfed-Status header.
type Answer struct {
	// Status is accepted, duplicate (accepted earlier; nothing to do) or
	// rejected.
	Status  string `json:"status"`
	Subject string `json:"subject,omitempty"` // where an accepted signal was stored
	Reason  string `json:"reason,omitempty"`  // why a signal was rejected
	Error   string `json:"error,omitempty"`   // what was wrong and how to fix it
	// Last is, in the answer to a link probe, the last link sequence the
	// receiver decided.
	Last uint64 `json:"last,omitempty"`
}

// Answer statuses.
const (
	StatusAccepted  = "accepted"
	StatusDuplicate = "duplicate"
	StatusRejected  = "rejected"
	// StatusAlive answers a link probe.
	StatusAlive = "alive"
)

// HeaderStatus carries Answer.Status.
const HeaderStatus = "Anfed-Status"

// AnswerMsg is the message that answers on reply: ans, its status also
// in HeaderStatus. The header map of the usual statuses is made once and
// shared (NATS only reads it; do not change it): answers are one per
// signal.
func AnswerMsg(reply string, ans Answer) *nats.Msg {
	m := answerMsg(reply, ans, nil)
	return &m
}

// answerMsg is AnswerMsg with its JSON appended to b.
func answerMsg(reply string, ans Answer, b []byte) nats.Msg {
	h, ok := statusHeaders[ans.Status]
	if !ok {
		h = nats.Header{HeaderStatus: []string{ans.Status}}
	}
	if b == nil {
		return nats.Msg{Subject: reply, Header: h, Data: ans.Encode()}
	}
	return nats.Msg{Subject: reply, Header: h, Data: ans.AppendTo(b)}
}

// answerRoom is what PublishAnswer and RespondAnswer keep on the stack
// for an answer's JSON; a longer one (a refusal's text) grows onto the
// heap.
const answerRoom = 256

// PublishAnswer publishes AnswerMsg(reply, ans) on nc. The message and
// its JSON are built on the stack: PublishMsg copies them into the
// connection's buffer before it returns.
func PublishAnswer(nc *nats.Conn, reply string, ans Answer) error {
	var buf [answerRoom]byte
	m := answerMsg(reply, ans, buf[:0])
	return nc.PublishMsg(&m)
}

// RespondAnswer is PublishAnswer on the reply subject of m, through m's
// subscription's connection (nats.Msg.RespondMsg).
func RespondAnswer(m *nats.Msg, ans Answer) error {
	var buf [answerRoom]byte
	r := answerMsg(m.Reply, ans, buf[:0])
	return m.RespondMsg(&r)
}

// statusHeaders are the answers' headers by status; never written to.
var statusHeaders = func() map[string]nats.Header {
	m := map[string]nats.Header{}
	for _, st := range []string{StatusAccepted, StatusDuplicate, StatusRejected, StatusAlive} {
		m[st] = nats.Header{HeaderStatus: []string{st}}
	}
	return m
}()

// OK reports whether the signal is stored at the receiver.
func (a Answer) OK() bool { return a.Status == StatusAccepted || a.Status == StatusDuplicate }

// Err returns nil for an accepted signal and an error naming the reason otherwise.
func (a Answer) Err() error {
	if a.OK() {
		return nil
	}
	return fmt.Errorf("signal %s: %s: %s", a.Status, a.Reason, a.Error)
}

// Encode returns the answer as JSON, as encoding/json marshals it.
func (a Answer) Encode() []byte {
	return a.AppendTo(make([]byte, 0, 80+len(a.Subject)+len(a.Reason)+len(a.Error)))
}

// AppendTo appends Encode's JSON to b.
func (a Answer) AppendTo(b []byte) []byte {
	b = append(b, `{"status":`...)
	b = AppendJSONString(b, a.Status)
	for _, f := range [...]struct{ name, v string }{{"subject", a.Subject}, {"reason", a.Reason}, {"error", a.Error}} {
		if f.v != "" {
			b = append(b, `,"`...)
			b = append(b, f.name...)
			b = append(b, `":`...)
			b = AppendJSONString(b, f.v)
		}
	}
	if a.Last != 0 {
		b = append(b, `,"last":`...)
		b = strconv.AppendUint(b, a.Last, 10)
	}
	return append(b, '}')
}

// ParseAnswer reads an answer.
func ParseAnswer(b []byte) (Answer, error) {
	a, ok := readAnswer(b)
	if !ok {
		var err error
		if a, err = unmarshalAnswer(b); err != nil {
			return a, fmt.Errorf("answer %q: %w", b, err)
		}
	}
	switch a.Status {
	case StatusAccepted, StatusDuplicate, StatusRejected, StatusAlive:
		return a, nil
	}
	return a, fmt.Errorf("answer %q: unknown status %q", b, a.Status)
}

// HTTPStatus is the HTTP status an HTTP front of intake (the CloudEvents
// ingest, the bridges) answers for a: 202 once stored, 503 when the node
// did not answer, 429 rate-limited, 413 oversized, 422 for data the
// catalog refuses, 403 for an origin the sender may not use, 400 for the
// rest.
func (a Answer) HTTPStatus() int {
	if a.OK() {
		return http.StatusAccepted
	}
	switch reject.Reason(a.Reason) {
	case reject.Unavailable:
		return http.StatusServiceUnavailable
	case reject.RateLimited:
		return http.StatusTooManyRequests
	case reject.Oversized:
		return http.StatusRequestEntityTooLarge
	case reject.UnknownType, reject.SchemaInvalid:
		return http.StatusUnprocessableEntity
	case reject.WrongOrigin, reject.Revoked:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

// unmarshalAnswer reads an answer with encoding/json.
func unmarshalAnswer(b []byte) (a Answer, err error) {
	err = json.Unmarshal(b, &a)
	return a, err
}

// readAnswer reads an answer as Encode writes it (its fields in that
// order, strings of printable ASCII with nothing escaped) without
// encoding/json; ok is false for anything else, which encoding/json, the
// reference, reads (FuzzParseAnswer holds the two to the same answer).
func readAnswer(b []byte) (a Answer, ok bool) {
	var v []byte
	if v, b, ok = answerField(b, `{"status":"`); !ok {
		return a, false
	}
	switch string(v) { // the statuses without a copy
	case StatusAccepted:
		a.Status = StatusAccepted
	case StatusDuplicate:
		a.Status = StatusDuplicate
	case StatusRejected:
		a.Status = StatusRejected
	case StatusAlive:
		a.Status = StatusAlive
	default:
		a.Status = string(v)
	}
	if v, rest, ok := answerField(b, `,"subject":"`); ok {
		a.Subject, b = string(v), rest
	}
	if v, rest, ok := answerField(b, `,"reason":"`); ok {
		a.Reason, b = string(v), rest
	}
	if v, rest, ok := answerField(b, `,"error":"`); ok {
		a.Error, b = string(v), rest
	}
	if rest, ok := bytes.CutPrefix(b, []byte(`,"last":`)); ok {
		n := 0
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			n++
		}
		if n == 0 || n > 1 && rest[0] == '0' {
			return a, false
		}
		var last uint64
		for _, c := range rest[:n] {
			d := uint64(c - '0')
			if last > (math.MaxUint64-d)/10 {
				return a, false // overflows: encoding/json says so
			}
			last = last*10 + d
		}
		a.Last, b = last, rest[n:]
	}
	return a, string(b) == "}"
}

// answerField reads lit, a plain string's content and its closing quote.
func answerField(b []byte, lit string) (v, rest []byte, ok bool) {
	rest, ok = bytes.CutPrefix(b, []byte(lit))
	if !ok {
		return nil, b, false
	}
	for i, c := range rest {
		if c == '"' {
			return rest[:i], rest[i+1:], true
		}
		if c < 0x20 || c > 0x7e || c == '\\' {
			break
		}
	}
	return nil, b, false
}
