package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// The signals every row sends are copies of one template: a fault signal
// (TMF642-style alarm) of op-a, padded with affectedService entries to the
// requested encoded size. Each copy differs only in fixed-width digits
// patched in place: a sequence and the publish time (both in the id, so the
// time travels inside the payload and survives signing, storing and
// re-encoding) and the resource of the condition key (1,000 distinct
// conditions, so the condition table and the subjects see realistic keys).

const (
	seqDigits = 12
	tsDigits  = 19
	resDigits = 3
	// Resources is how many distinct conditions the signals cycle over.
	Resources = 1000

	idPrefix = `"id":"b`
)

// template is an encoded signal with the offsets of its patchable digits.
type template struct {
	body                []byte
	seqOff, tsOff, rOff int
	subjects            []string // the link subject per resource (raw rows)
	event               *signal.Event
}

// seq numbers every signal of the process: ids never repeat across rows,
// so no store or replay guard ever takes a bench signal for a duplicate.
var seq atomic.Uint64

func placeholderID() string {
	return "b" + strings.Repeat("0", seqDigits) + "t" + strings.Repeat("0", tsDigits)
}

// newTemplate builds the template of about size encoded bytes (never less
// than the smallest valid signal).
func newTemplate(size int) (*template, error) {
	ev := baseEvent(size)
	base := len(ev.Encode())
	if pad := size - base; pad > 0 {
		ev.Data = padData(ev.Data, pad)
	}
	t := &template{body: ev.Encode(), event: ev}
	i := bytes.Index(t.body, []byte(idPrefix))
	if i < 0 {
		return nil, fmt.Errorf("template: no id in %q", t.body[:min(80, len(t.body))])
	}
	t.seqOff = i + len(idPrefix)
	t.tsOff = t.seqOff + seqDigits + 1
	j := bytes.Index(t.body, []byte(`"subject":"vpn-acme/r`))
	if j < 0 {
		return nil, fmt.Errorf("template: no subject")
	}
	t.rOff = j + len(`"subject":"vpn-acme/r`)
	for r := range Resources {
		t.subjects = append(t.subjects, fmt.Sprintf("an.link.op-a.op-a.fault.vpn-acme.r%0*d", resDigits, r))
	}
	return t, nil
}

// baseEvent is the richest signal that fits in size: every attribute a real
// fault carries, or only the required ones for small sizes.
func baseEvent(size int) *signal.Event {
	ev := &signal.Event{
		ID: placeholderID(), Source: "anfed://op-a/bench", Type: "net.anfed.fault.v1",
		Subject: "vpn-acme/r" + strings.Repeat("0", resDigits), Time: time.Date(2026, 11, 25, 17, 0, 0, 0, time.UTC),
		DataContentType: "application/json",
		Origin:          "op-a", State: signal.Raised,
		Data: json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"lossOfSignal","specificProblem":"LOS","alarmedObject":{"id":"ic-1","type":"port"},"alarmRaisedTime":"2026-11-25T17:00:00Z","affectedService":[{"id":"vpn-acme"}]}`),
	}
	full := *ev
	full.CorrelationID, full.CausationID = "ALM-7731", "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"
	full.SeverityText, full.SeverityNumber = "ERROR", 17
	full.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	full.Data = json.RawMessage(`{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"lossOfSignal","specificProblem":"LOS on 100GE port et-0/0/3 facing op-b","alarmedObject":{"id":"par-pe-2:et-0/0/3","type":"port"},"alarmRaisedTime":"2026-11-25T16:59:58Z","isRootCause":false,"causedBy":{"id":"ALM-7731","origin":"op-b","source":"anfed://op-b/assurance","eventId":"0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"},"correlatedAlarm":[{"id":"ALM-20260314-0113"},{"id":"ALM-20260314-0114"}],"serviceAffecting":true,"affectedService":[{"id":"vpn-acme"},{"id":"vpn-globex","href":"https://api.op-a.example/tmf-api/serviceInventory/v4/service/vpn-globex"}]}`)
	if len(full.Encode()) <= size {
		return &full
	}
	return ev
}

// padData adds affectedService entries to data (whose last bytes are
// `]}`) to make it pad bytes longer, exactly when pad allows an entry.
func padData(data json.RawMessage, pad int) json.RawMessage {
	const overhead = len(`,{"id":""}`)
	head := bytes.Clone(data[:len(data)-2])
	for n := 0; pad > overhead; n++ {
		l := min(pad-overhead, 250) // schema: id up to 256, 256 entries
		id := fmt.Sprintf("svc-%04d-", n)
		if l < len(id) {
			id = id[:l]
		}
		id += strings.Repeat("x", l-len(id))
		head = append(head, `,{"id":"`+id+`"}`...)
		pad -= overhead + l
	}
	return append(head, ']', '}')
}

// resourceSubjects are prefix.r<resource>, one per resource: where the
// stream rows publish a signal about that resource.
func resourceSubjects(prefix string) []string {
	subjects := make([]string, Resources)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("%s.r%0*d", prefix, resDigits, i)
	}
	return subjects
}

// putDigits writes v in decimal, zero-padded, into b (len(b) digits).
func putDigits(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
}

// stamp is a copy of the template ready to send: it patches a new sequence,
// resource and the current time into buf and returns the sequence.
func (t *template) stamp(buf []byte) (uint64, int) {
	s := seq.Add(1)
	r := int(s % Resources)
	putDigits(buf[t.seqOff:t.seqOff+seqDigits], s)
	putDigits(buf[t.rOff:t.rOff+resDigits], uint64(r))
	putDigits(buf[t.tsOff:t.tsOff+tsDigits], uint64(time.Now().UnixNano()))
	return s, r
}

// sentAt reads the publish time a signal carries in its id (0: none).
func sentAt(body []byte) int64 {
	i := bytes.Index(body, []byte(idPrefix))
	if i < 0 {
		return 0
	}
	i += len(idPrefix) + seqDigits + 1
	if i+tsDigits > len(body) {
		return 0
	}
	var v int64
	for _, c := range body[i : i+tsDigits] {
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + int64(c-'0')
	}
	return v
}
