package audit

import (
	"strconv"
	"time"

	"github.com/anfed/anfed/internal/signal"
)

// appendJSON appends r as encoding/json marshals it (json.Marshal(r)),
// without reflection, for the writer's path: a record per signal sent.
// ok is false for what it does not write exactly like encoding/json (a
// time json.Marshal refuses: a year of more than four digits, an odd
// zone offset): the
// caller then uses encoding/json, the reference (FuzzAppendJSON holds
// the two to the same bytes).
func appendJSON(b []byte, r *Record) (_ []byte, ok bool) {
	if y := r.Time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := r.Time.Zone(); off%60 != 0 || off <= -24*3600 || off >= 24*3600 {
		return b, false // json.Marshal refuses an offset it cannot write as ±hh:mm
	}
	b = append(b, `{"chain":`...)
	b = signal.AppendJSONString(b, r.Chain)
	b = append(b, `,"n":`...)
	b = strconv.AppendUint(b, r.N, 10)
	b = signal.AppendJSONField(b, "prev", r.Prev)
	b = append(b, `,"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","node":`...)
	b = signal.AppendJSONString(b, r.Node)
	b = append(b, `,"kind":`...)
	b = signal.AppendJSONString(b, r.Kind)
	b = append(b, `,"peer":`...)
	b = signal.AppendJSONString(b, r.Peer)
	b = append(b, `,"signal":`...)
	b = signal.AppendJSONString(b, r.Signal)
	b = signal.AppendJSONField(b, "source", r.Source)
	b = signal.AppendJSONField(b, "type", r.Type)
	b = signal.AppendJSONField(b, "subject", r.Subject)
	b = signal.AppendJSONField(b, "digest", r.Digest)
	if r.Size != 0 {
		b = append(b, `,"size":`...)
		b = strconv.AppendInt(b, int64(r.Size), 10)
	}
	if len(r.Redacted) > 0 {
		b = append(b, `,"redacted":[`...)
		for i, p := range r.Redacted {
			if i > 0 {
				b = append(b, ',')
			}
			b = signal.AppendJSONString(b, p)
		}
		b = append(b, ']')
	}
	b = signal.AppendJSONField(b, "rule", r.Rule)
	b = signal.AppendJSONField(b, "action", r.Action)
	b = signal.AppendJSONField(b, "phase", r.Phase)
	b = signal.AppendJSONField(b, "decided_by", r.DecidedBy)
	b = signal.AppendJSONField(b, "reason", r.Reason)
	b = append(b, `,"hash":`...)
	b = signal.AppendJSONString(b, r.Hash)
	return append(b, '}'), true
}
