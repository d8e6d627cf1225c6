package signal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/reject"
)

// Encode returns the event in structured mode: the CloudEvents JSON format,
// attributes in a fixed order, data last and byte for byte as carried.
func (e *Event) Encode() []byte {
	b := make([]byte, 0, 512+len(e.Data))
	b = append(b, `{"specversion":"1.0"`...)
	b = appendStr(b, "id", e.ID)
	b = appendStr(b, "source", e.Source)
	b = appendStr(b, "type", e.Type)
	b = appendStr(b, "subject", e.Subject)
	if !e.Time.IsZero() {
		b = appendStr(b, "time", e.Time.UTC().Format(time.RFC3339Nano))
	}
	ct := e.DataContentType
	if ct == "" {
		ct = ContentType
	}
	b = appendStr(b, "datacontenttype", ct)
	b = appendStr(b, "dataschema", e.DataSchema)
	b = appendStr(b, AttrOrigin, e.Origin)
	b = appendStr(b, AttrState, string(e.State))
	b = appendStr(b, AttrPath, strings.Join(e.Path, ","))
	b = appendStr(b, AttrCorrelationID, e.CorrelationID)
	b = appendStr(b, AttrCausationID, e.CausationID)
	if !e.ExpiryTime.IsZero() {
		b = appendStr(b, AttrExpiryTime, e.ExpiryTime.UTC().Format(time.RFC3339Nano))
	}
	b = appendStr(b, AttrSeverityText, e.SeverityText)
	if e.SeverityNumber != 0 {
		b = append(b, `,"`+AttrSeverityNumber+`":`...)
		b = strconv.AppendInt(b, int64(e.SeverityNumber), 10)
	}
	b = appendStr(b, AttrSequence, e.Sequence)
	b = appendStr(b, AttrTraceParent, e.TraceParent)
	b = appendStr(b, AttrTraceState, e.TraceState)
	b = appendStr(b, AttrDSSEMaterial, e.DSSEMaterial)
	b = appendStr(b, AttrSignedExtAttrs, e.SignedExtAttrs)
	if len(e.Extensions) > 0 {
		names := make([]string, 0, len(e.Extensions))
		for k := range e.Extensions {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			v, _ := json.Marshal(e.Extensions[k])
			b = append(b, ',')
			b = strconv.AppendQuote(b, k) // names are [a-z0-9]+: quoting is plain
			b = append(b, ':')
			b = append(b, v...)
		}
	}
	if len(e.Data) > 0 {
		b = append(b, `,"data":`...)
		b = append(b, e.Data...)
	}
	return append(b, '}')
}

func appendStr(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	q, _ := json.Marshal(v) // a string always marshals
	return append(b, q...)
}

// Decode reads a signal from a NATS message in either content mode: binary
// when the message carries a ce-specversion header, structured otherwise.
func Decode(hdr nats.Header, body []byte) (*Event, error) {
	for k := range hdr {
		if asciiLower(k) == "ce-specversion" {
			return DecodeBinary(hdr, body)
		}
	}
	return DecodeStructured(body)
}

// DecodeStructured reads a structured-mode CloudEvent (JSON format).
func DecodeStructured(body []byte) (*Event, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, reject.Errorf(reject.Malformed, "not a CloudEvent in JSON format: %v", err)
	}
	if raw == nil {
		return nil, reject.Errorf(reject.Malformed, "not a CloudEvent in JSON format: want a JSON object")
	}
	e := &Event{}
	for name, v := range raw {
		switch name {
		case "data":
			if len(v) == 0 || v[0] != '{' {
				return nil, reject.Errorf(reject.BadAttribute, "data must be a JSON object matching the class schema")
			}
			e.Data = v
			continue
		case "data_base64":
			return nil, reject.Errorf(reject.BadAttribute, "data_base64 is not accepted: anfed signals carry %s data in \"data\"", ContentType)
		}
		if !validAttrName(name) {
			return nil, reject.Errorf(reject.BadAttribute, "attribute name %q: CloudEvents attribute names are lowercase letters and digits", name)
		}
		switch v[0] {
		case '"':
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, reject.Errorf(reject.Malformed, "attribute %s: %v", name, err)
			}
			if err := e.set(name, s, false); err != nil {
				return nil, err
			}
		case 't', 'f':
			if err := e.setTyped(name, string(v) == "true"); err != nil {
				return nil, err
			}
		case 'n':
			// A null attribute is an absent attribute (CloudEvents JSON format).
		case '{', '[':
			return nil, reject.Errorf(reject.BadAttribute, "attribute %s: CloudEvents attributes are strings, integers or booleans, not JSON objects or arrays", name)
		default:
			n, err := strconv.ParseInt(string(v), 10, 32)
			if err != nil {
				return nil, reject.Errorf(reject.BadAttribute, "attribute %s: %s is not a 32-bit integer", name, v)
			}
			if err := e.setTyped(name, int32(n)); err != nil {
				return nil, err
			}
		}
	}
	if err := checkSpecVersion(raw["specversion"] != nil, e); err != nil {
		return nil, err
	}
	return e, nil
}

// specversion is kept aside while decoding, in the extension map under
// this key, and checked once all attributes are read.
const specKey = "specversion"

func checkSpecVersion(present bool, e *Event) error {
	v, _ := e.Extensions[specKey].(string)
	delete(e.Extensions, specKey)
	if len(e.Extensions) == 0 {
		e.Extensions = nil
	}
	if !present || v == "" {
		return reject.Errorf(reject.MissingAttribute, "specversion is required: \"1.0\"")
	}
	if v != SpecVersion {
		return reject.Errorf(reject.BadAttribute, "specversion %q: anfed speaks CloudEvents 1.0", v)
	}
	return nil
}

// DecodeBinary reads a binary-mode CloudEvent from NATS headers (ce-
// prefix, content-type) and a body holding the data.
func DecodeBinary(hdr nats.Header, body []byte) (*Event, error) {
	e := &Event{}
	present := false
	contentType, ceType := "", ""
	for k, vs := range hdr {
		lk := asciiLower(k)
		if len(vs) > 0 && !utf8.ValidString(vs[0]) {
			return nil, reject.Errorf(reject.BadAttribute, "header %s: value is not valid UTF-8", k)
		}
		if lk == "content-type" && len(vs) > 0 {
			contentType = vs[0]
			continue
		}
		name, ok := strings.CutPrefix(lk, "ce-")
		if !ok || len(vs) == 0 {
			continue
		}
		if !validAttrName(name) {
			return nil, reject.Errorf(reject.BadAttribute, "header %s: CloudEvents attribute names are lowercase letters and digits", k)
		}
		if name == "data" || name == "data_base64" {
			return nil, reject.Errorf(reject.BadAttribute, "header %s: in binary mode the data is the message body", k)
		}
		if name == "datacontenttype" {
			ceType = vs[0]
			continue
		}
		if name == specKey {
			present = true
		}
		if err := e.set(name, vs[0], true); err != nil {
			return nil, err
		}
	}
	if err := checkSpecVersion(present, e); err != nil {
		return nil, err
	}
	switch {
	case contentType != "" && ceType != "" && contentType != ceType:
		return nil, reject.Errorf(reject.BadAttribute, "content-type %q and ce-datacontenttype %q disagree: send content-type only", contentType, ceType)
	case contentType != "":
		e.DataContentType = contentType
	default:
		e.DataContentType = ceType
	}
	if len(body) > 0 {
		// Only JSON's own white space may surround the object, and it is
		// not part of the data: structured mode cannot carry it, and the
		// signature covers the data's bytes.
		t := bytes.Trim(body, " \t\r\n")
		if len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			return nil, reject.Errorf(reject.BadAttribute, "data must be a JSON object matching the class schema")
		}
		e.Data = t
	}
	return e, nil
}

// asciiLower lowercases ASCII letters only: header names are ASCII, and
// Unicode case folding would let look-alike letters through.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

func validAttrName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// set assigns a string-valued attribute. fromHeader says the value came
// from a binary-mode header, where integers travel as strings.
func (e *Event) set(name, v string, fromHeader bool) error {
	var err error
	switch name {
	case "id":
		e.ID = v
	case "source":
		e.Source = v
	case "type":
		e.Type = v
	case "subject":
		e.Subject = v
	case "time":
		e.Time, err = parseTime(name, v)
	case "datacontenttype":
		e.DataContentType = v
	case "dataschema":
		e.DataSchema = v
	case AttrOrigin:
		e.Origin = v
	case AttrState:
		e.State = State(v)
	case AttrPath:
		e.Path = nil
		if v != "" {
			e.Path = strings.Split(v, ",")
		}
	case AttrCorrelationID:
		e.CorrelationID = v
	case AttrCausationID:
		e.CausationID = v
	case AttrExpiryTime:
		e.ExpiryTime, err = parseTime(name, v)
	case AttrSeverityText:
		e.SeverityText = v
	case AttrSeverityNumber:
		if !fromHeader {
			return reject.Errorf(reject.BadAttribute, "%s must be a JSON integer, not a string", name)
		}
		var n int64
		n, err = strconv.ParseInt(v, 10, 32)
		if err != nil {
			return reject.Errorf(reject.BadAttribute, "%s %q: want an integer 1..24", name, v)
		}
		e.SeverityNumber = int(n)
	case AttrSequence:
		e.Sequence = v
	case AttrTraceParent:
		e.TraceParent = v
	case AttrTraceState:
		e.TraceState = v
	case AttrDSSEMaterial:
		e.DSSEMaterial = v
	case AttrSignedExtAttrs:
		e.SignedExtAttrs = v
	default:
		if e.Extensions == nil {
			e.Extensions = make(map[string]any)
		}
		e.Extensions[name] = v
	}
	return err
}

// setTyped assigns a non-string JSON attribute value (int32 or bool).
func (e *Event) setTyped(name string, v any) error {
	switch name {
	case AttrSeverityNumber:
		n, ok := v.(int32)
		if !ok {
			return reject.Errorf(reject.BadAttribute, "%s must be an integer 1..24", name)
		}
		e.SeverityNumber = int(n)
		return nil
	case "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", specKey,
		AttrOrigin, AttrState, AttrPath, AttrCorrelationID, AttrCausationID, AttrExpiryTime,
		AttrSeverityText, AttrSequence, AttrTraceParent, AttrTraceState, AttrDSSEMaterial, AttrSignedExtAttrs:
		return reject.Errorf(reject.BadAttribute, "attribute %s must be a string", name)
	}
	if e.Extensions == nil {
		e.Extensions = make(map[string]any)
	}
	e.Extensions[name] = v
	return nil
}

func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, reject.Errorf(reject.BadAttribute, "%s %q: want an RFC 3339 timestamp such as 2026-11-25T17:00:00Z", name, v)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, reject.Errorf(reject.BadAttribute, "%s %q: in UTC its year is %d, outside 0001..9999", name, v, y)
	}
	return t, nil
}

// String is a short description for logs.
func (e *Event) String() string {
	return fmt.Sprintf("%s %s %s/%s", e.Type, e.State, e.Source, e.ID)
}
