package signal

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/anfed/anfed/internal/reject"
)

// Encode returns the event in structured mode: the CloudEvents JSON format,
// attributes in a fixed order, data last and byte for byte as carried.
func (e *Event) Encode() []byte {
	b := make([]byte, 0, e.encodedSize())
	b = append(b, `{"specversion":"1.0"`...)
	b = AppendJSONField(b, "id", e.ID)
	b = AppendJSONField(b, "source", e.Source)
	b = AppendJSONField(b, "type", e.Type)
	b = AppendJSONField(b, "subject", e.Subject)
	if !e.Time.IsZero() {
		b = appendTime(b, "time", e.Time)
	}
	ct := e.DataContentType
	if ct == "" {
		ct = ContentType
	}
	b = AppendJSONField(b, "datacontenttype", ct)
	b = AppendJSONField(b, "dataschema", e.DataSchema)
	b = AppendJSONField(b, AttrOrigin, e.Origin)
	b = AppendJSONField(b, AttrState, string(e.State))
	b = appendList(b, AttrPath, e.Path)
	b = appendList(b, AttrTags, e.Tags)
	b = AppendJSONField(b, AttrCorrelationID, e.CorrelationID)
	b = AppendJSONField(b, AttrCausationID, e.CausationID)
	if !e.ExpiryTime.IsZero() {
		b = appendTime(b, AttrExpiryTime, e.ExpiryTime)
	}
	b = AppendJSONField(b, AttrSeverityText, e.SeverityText)
	if e.SeverityNumber != 0 {
		b = append(b, `,"`+AttrSeverityNumber+`":`...)
		b = strconv.AppendInt(b, int64(e.SeverityNumber), 10)
	}
	b = AppendJSONField(b, AttrSequence, e.Sequence)
	b = AppendJSONField(b, AttrTraceParent, e.TraceParent)
	b = AppendJSONField(b, AttrTraceState, e.TraceState)
	b = AppendJSONField(b, AttrDSSEMaterial, e.DSSEMaterial)
	b = AppendJSONField(b, AttrSignedExtAttrs, e.SignedExtAttrs)
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

// encodedSize is about what Encode writes, never less unless a value
// needs escapes: Encode's one allocation fits the event (a signed one's
// attributes alone pass 512 bytes).
func (e *Event) encodedSize() int {
	const perAttr = 6     // ,"":""
	n := 64 + len(e.Data) // {"specversion":"1.0"}, ,"data":
	for _, v := range [...]string{e.ID, e.Source, e.Type, e.Subject, e.DataContentType, e.DataSchema, e.Origin,
		string(e.State), e.CorrelationID, e.CausationID, e.SeverityText, e.Sequence, e.TraceParent,
		e.TraceState, e.DSSEMaterial, e.SignedExtAttrs} {
		n += perAttr + 16 + len(v) // 16: the longest attribute name
	}
	n += 2 * (perAttr + len(AttrExpiryTime) + len(time.RFC3339Nano)) // time, expirytime
	n += perAttr + len(AttrSeverityNumber) + 20
	for _, l := range [...][]string{e.Path, e.Tags} {
		n += perAttr + 16
		for _, v := range l {
			n += len(v) + 1
		}
	}
	if len(e.Extensions) > 0 {
		n += 64 * len(e.Extensions)
	}
	return n
}

// appendList is AppendJSONField of the comma list of l.
func appendList(b []byte, name string, l []string) []byte {
	switch len(l) {
	case 0:
		return b
	case 1:
		return AppendJSONField(b, name, l[0])
	}
	for _, v := range l {
		if !plainJSON(v) {
			return AppendJSONField(b, name, strings.Join(l, ","))
		}
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	for i, v := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	return append(b, '"')
}

// AppendJSONField appends the member ,"name":v of a JSON object, v
// quoted as AppendJSONString does, or nothing when v is empty (an
// omitempty string field of encoding/json).
func AppendJSONField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return AppendJSONString(b, v)
}

// appendTime is AppendJSONField of t in UTC as RFC 3339 with nanoseconds,
// formatted in place: digits, '-', ':', '.', 'T' and 'Z' need no escape.
func appendTime(b []byte, name string, t time.Time) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':', '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// AppendJSONString appends v as encoding/json marshals a string: quoted,
// with HTML-safe escapes. Printable ASCII that needs no escape (nearly
// every attribute) is copied as it is, without allocating.
func AppendJSONString(b []byte, v string) []byte {
	if !plainJSON(v) {
		q, _ := json.Marshal(v) // a string always marshals
		return append(b, q...)
	}
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

// plainJSON reports whether v is printable ASCII that encoding/json
// quotes without an escape.
func plainJSON(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Decode reads a signal from a NATS message in either content mode: binary
// when the message carries a ce-specversion header, structured otherwise.
func Decode(hdr nats.Header, body []byte) (*Event, error) {
	for k := range hdr {
		if len(k) == len("ce-specversion") && asciiLower(k) == "ce-specversion" {
			return DecodeBinary(hdr, body)
		}
	}
	return DecodeStructured(body)
}

// DecodeStructured reads a structured-mode CloudEvent (JSON format).
//
// It scans the top-level object once, validating the whole body as
// encoding/json would (the same grammar and nesting limit) while reading
// the attributes. Keys and string values in plain ASCII are read in place;
// any with escapes, control or non-ASCII bytes are unquoted by
// encoding/json, so unescaping is exactly encoding/json's. An attribute
// named twice is refused: which one counts would depend on the reader.
func DecodeStructured(body []byte) (*Event, error) {
	e, ok, err := decodeStructured(body)
	if !ok {
		return nil, malformedBody(body)
	}
	if err != nil {
		return nil, err
	}
	return e, nil
}

// malformedBody explains why body is not a JSON object. It runs only on
// refusal, so the message is encoding/json's own, or where the body is
// not strict UTF-8 (which encoding/json would repair).
func malformedBody(body []byte) error {
	if off, what, bad := BadUnicode(body); bad {
		in := ""
		if name, ok := memberAt(body, off); ok {
			in = fmt.Sprintf("attribute %q: ", name)
		}
		return reject.Errorf(reject.Malformed, "%sat byte %d, %s: a CloudEvent in JSON format is UTF-8 text (RFC 8259), every string and the data included", in, off, what)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return reject.Errorf(reject.Malformed, "not a CloudEvent in JSON format: %v", err)
	}
	return reject.Errorf(reject.Malformed, "not a CloudEvent in JSON format: want a JSON object")
}

// memberAt names the top-level member of JSON object b whose name or
// value holds byte off, if b is a JSON object up to there.
func memberAt(b []byte, off int) (string, bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return "", false
	}
	for i = skipWS(b, i+1); i < len(b) && b[i] == '"'; {
		end, ok := skipString(b, i)
		if !ok {
			return "", false // the name itself: not readable
		}
		name, _, _ := readKey(b, i)
		if i = skipWS(b, end); i >= len(b) || b[i] != ':' {
			return "", false
		}
		end, ok = skipValue(b, skipWS(b, i+1), 2)
		if !ok || off < end {
			return name, end >= off
		}
		if i = skipWS(b, end); i >= len(b) || b[i] != ',' {
			return "", false
		}
		i = skipWS(b, i+1)
	}
	return "", false
}

// decodeStructured returns ok false when b is not a syntactically valid
// JSON object; otherwise the event or the first refusal met. A refusal
// never hides a syntax error later in the body: scanning goes on.
func decodeStructured(b []byte) (*Event, bool, error) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false, nil
	}
	i = skipWS(b, i+1)
	if i >= len(b) {
		return nil, false, nil
	}
	e := &Event{}
	var refusal error
	var seen names
	spec := "" // specversion, read aside from the other attributes
	if b[i] == '}' {
		i++
	} else {
		for {
			if b[i] != '"' {
				return nil, false, nil
			}
			name, next, ok := readKey(b, i)
			if !ok {
				return nil, false, nil
			}
			i = skipWS(b, next)
			if i >= len(b) || b[i] != ':' {
				return nil, false, nil
			}
			i = skipWS(b, i+1)
			if refusal != nil {
				if i, ok = skipValue(b, i, 2); !ok {
					return nil, false, nil
				}
			} else {
				if i, ok, refusal = e.member(b, i, name, &seen, &spec); !ok {
					return nil, false, nil
				}
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return nil, false, nil
			}
			if b[i] == ',' {
				if i = skipWS(b, i+1); i >= len(b) {
					return nil, false, nil
				}
				continue
			}
			if b[i] != '}' {
				return nil, false, nil
			}
			i++
			break
		}
	}
	if skipWS(b, i) != len(b) {
		return nil, false, nil
	}
	if refusal != nil {
		return nil, true, refusal
	}
	if err := checkSpec(spec); err != nil {
		return nil, true, err
	}
	e.own(b)
	return e, true, nil
}

// member reads the value at b[i] of the attribute name into e, or into
// spec for specversion. It returns the index past the value, ok false on a
// syntax error, and the refusal if any.
func (e *Event) member(b []byte, i int, name string, seen *names, spec *string) (int, bool, error) {
	if i >= len(b) {
		return i, false, nil
	}
	c := b[i]
	refuse := func(err error) (int, bool, error) {
		end, ok := skipValue(b, i, 2)
		return end, ok, err
	}
	if !seen.add(name) {
		return refuse(reject.Errorf(reject.Malformed, "attribute %q appears twice: a CloudEvent names each attribute once", name))
	}
	switch name {
	case "data":
		end, ok := skipValue(b, i, 2)
		if !ok {
			return end, false, nil
		}
		if c != '{' {
			return end, true, reject.Errorf(reject.BadAttribute, "data must be a JSON object matching the class schema")
		}
		e.Data = b[i:end] // moved out of b by own
		return end, true, nil
	case "data_base64":
		return refuse(reject.Errorf(reject.BadAttribute, "data_base64 is not accepted: anfed signals carry %s data in \"data\"", ContentType))
	}
	if !validAttrName(name) {
		return refuse(reject.Errorf(reject.BadAttribute, "attribute name %q: CloudEvents attribute names are lowercase letters and digits", name))
	}
	switch c {
	case '"':
		s, end, ok := readValue(b, i)
		if !ok {
			return end, false, nil
		}
		if name == specKey {
			*spec = s
			return end, true, nil
		}
		return end, true, e.set(name, s, false)
	case 't':
		if !hasLit(b, i, "true") {
			return i, false, nil
		}
		return i + 4, true, e.setTyped(name, true)
	case 'f':
		if !hasLit(b, i, "false") {
			return i, false, nil
		}
		return i + 5, true, e.setTyped(name, false)
	case 'n':
		// A null attribute is an absent attribute (CloudEvents JSON format).
		if !hasLit(b, i, "null") {
			return i, false, nil
		}
		return i + 4, true, nil
	case '{', '[':
		return refuse(reject.Errorf(reject.BadAttribute, "attribute %s: CloudEvents attributes are strings, integers or booleans, not JSON objects or arrays", name))
	}
	end, ok := skipNumber(b, i)
	if !ok {
		return end, false, nil
	}
	v := b[i:end]
	n, err := strconv.ParseInt(string(v), 10, 32)
	if err != nil {
		return end, true, reject.Errorf(reject.BadAttribute, "attribute %s: %s is not a 32-bit integer", name, v)
	}
	return end, true, e.setTyped(name, int32(n))
}

// names is the set of attribute names met so far in one object.
type names struct {
	small [24]string
	n     int
	big   map[string]struct{}
}

// add reports false when name was already added.
func (s *names) add(name string) bool {
	if s.big != nil {
		if _, dup := s.big[name]; dup {
			return false
		}
		s.big[name] = struct{}{}
		return true
	}
	for _, n := range s.small[:s.n] {
		if n == name {
			return false
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = name
		s.n++
		return true
	}
	s.big = make(map[string]struct{}, 2*len(s.small))
	for _, n := range s.small {
		s.big[n] = struct{}{}
	}
	s.big[name] = struct{}{}
	return true
}

// maxDepth is encoding/json's nesting limit, the outermost value counting 1.
const maxDepth = 10000

// plain marks the bytes a JSON string may hold as they are and that need
// no unquoting: printable ASCII other than '"' and '\\'.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func hasLit(b []byte, i int, lit string) bool {
	return len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit
}

// plainEnd returns the index of the first byte at or after i that is not
// plain. It skips eight plain bytes at a time (the data's long strings),
// then finds the exact byte one at a time.
func plainEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if !Plain8(binary.LittleEndian.Uint64(b[i:])) {
			break
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// Plain8 reports whether all eight bytes of x (little endian) are plain
// JSON string content that needs no look: none below 0x20, none at or
// above 0x80, none '"' or '\\'. (x - n*ones) & ^x & highs is non-zero
// exactly when some byte of x is below n (n <= 0x80). The codec and the
// compiled schema validator skip strings eight bytes at a time with it.
func Plain8(x uint64) bool {
	q := x ^ ('"' * ones)
	bs := x ^ ('\\' * ones)
	bad := x | (x-0x20*ones)&^x | (q-ones)&^q | (bs-ones)&^bs
	return bad&highs == 0
}

// readKey reads the member name whose opening quote is at b[i], and
// returns it and the index past its closing quote.
func readKey(b []byte, i int) (string, int, bool) {
	j := plainEnd(b, i+1)
	if j < len(b) && b[j] == '"' {
		return internName(b[i+1 : j]), j + 1, true
	}
	return unquoteSlow(b, i)
}

// readString reads the string value whose opening quote is at b[i].
func readString(b []byte, i int) (string, int, bool) {
	j := plainEnd(b, i+1)
	if j < len(b) && b[j] == '"' {
		return string(b[i+1 : j]), j + 1, true
	}
	return unquoteSlow(b, i)
}

// readValue is readString, sharing the strings most signals carry
// (specversion, content type, state, severity, the catalog's types) instead
// of allocating each again. Any other plain string is returned in place:
// it aliases b until decodeStructured moves every such string of the event
// into one allocation (own), before the event is returned.
func readValue(b []byte, i int) (string, int, bool) {
	j := plainEnd(b, i+1)
	if j < len(b) && b[j] == '"' {
		if s, ok := common(b[i+1 : j]); ok {
			return s, j + 1, true
		}
		if j == i+1 {
			return "", j + 1, true
		}
		return unsafe.String(&b[i+1], j-i-1), j + 1, true
	}
	return unquoteSlow(b, i)
}

// own moves the event's data and strings that alias b (read in place by
// member and readValue) into one new allocation, so that the event never
// refers to b: the caller may reuse b. The data comes first, capped: an
// append to it copies rather than write over the strings.
func (e *Event) own(b []byte) {
	if len(b) == 0 {
		return
	}
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	hi := lo + uintptr(len(b))
	in := func(s string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		return s != "" && lo <= p && p < hi
	}
	fields := [...]*string{&e.ID, &e.Source, &e.Type, &e.Subject, &e.DataContentType, &e.DataSchema,
		&e.Origin, (*string)(&e.State), &e.CorrelationID, &e.CausationID, &e.SeverityText, &e.Sequence,
		&e.TraceParent, &e.TraceState, &e.DSSEMaterial, &e.SignedExtAttrs}
	data := len(e.Data) > 0 && lo <= uintptr(unsafe.Pointer(unsafe.SliceData(e.Data))) && uintptr(unsafe.Pointer(unsafe.SliceData(e.Data))) < hi
	n := 0
	if data {
		n = len(e.Data)
	}
	for _, f := range fields {
		if in(*f) {
			n += len(*f)
		}
	}
	for _, l := range [...][]string{e.Path, e.Tags} {
		for _, s := range l {
			if in(s) {
				n += len(s)
			}
		}
	}
	for _, v := range e.Extensions {
		if s, ok := v.(string); ok && in(s) {
			n += len(s)
		}
	}
	if n == 0 {
		return
	}
	buf := make([]byte, 0, n) // never grows: the strings below point into it
	if data {
		buf = append(buf, e.Data...)
		e.Data = buf[:len(buf):len(buf)]
	}
	move := func(s string) string {
		if !in(s) {
			return s
		}
		off := len(buf)
		buf = append(buf, s...)
		return unsafe.String(&buf[off], len(s))
	}
	for _, f := range fields {
		*f = move(*f)
	}
	for _, l := range [...][]string{e.Path, e.Tags} {
		for k, s := range l {
			l[k] = move(s)
		}
	}
	for k, v := range e.Extensions {
		if s, ok := v.(string); ok && in(s) {
			e.Extensions[k] = move(s)
		}
	}
}

// common returns the shared copy of a frequent attribute value.
func common(v []byte) (string, bool) {
	switch string(v) { // no allocation: the compiler compares in place
	case "1.0":
		return "1.0", true
	case ContentType:
		return ContentType, true
	case "raised":
		return "raised", true
	case "updated":
		return "updated", true
	case "cleared":
		return "cleared", true
	case "TRACE":
		return "TRACE", true
	case "DEBUG":
		return "DEBUG", true
	case "INFO":
		return "INFO", true
	case "WARN":
		return "WARN", true
	case "ERROR":
		return "ERROR", true
	case "FATAL":
		return "FATAL", true
	case "net.anfed.performance-deviation.v1":
		return "net.anfed.performance-deviation.v1", true
	case "net.anfed.congestion.v1":
		return "net.anfed.congestion.v1", true
	case "net.anfed.fault.v1":
		return "net.anfed.fault.v1", true
	case "net.anfed.sla-risk.v1":
		return "net.anfed.sla-risk.v1", true
	case "net.anfed.sla-breach.v1":
		return "net.anfed.sla-breach.v1", true
	case "net.anfed.maintenance.v1":
		return "net.anfed.maintenance.v1", true
	case "net.anfed.capacity.v1":
		return "net.anfed.capacity.v1", true
	case "net.anfed.intent-report.v1":
		return "net.anfed.intent-report.v1", true
	case "net.anfed.mitigation.v1":
		return "net.anfed.mitigation.v1", true
	}
	return "", false
}

// unquoteSlow hands a string with escapes, control or non-ASCII bytes to
// encoding/json, for its exact unescaping (invalid UTF-8 and lone
// surrogates become U+FFFD).
func unquoteSlow(b []byte, i int) (string, int, bool) {
	end, ok := skipString(b, i)
	if !ok {
		return "", end, false
	}
	var s string
	if err := json.Unmarshal(b[i:end], &s); err != nil {
		return "", end, false
	}
	return s, end, true
}

// internName returns the attribute names anfed knows without allocating.
func internName(k []byte) string {
	switch string(k) {
	case "data":
		return "data"
	case specKey:
		return specKey
	case "id":
		return "id"
	case "source":
		return "source"
	case "type":
		return "type"
	case "subject":
		return "subject"
	case "time":
		return "time"
	case "datacontenttype":
		return "datacontenttype"
	case "dataschema":
		return "dataschema"
	case AttrOrigin:
		return AttrOrigin
	case AttrState:
		return AttrState
	case AttrPath:
		return AttrPath
	case AttrTags:
		return AttrTags
	case AttrCorrelationID:
		return AttrCorrelationID
	case AttrCausationID:
		return AttrCausationID
	case AttrExpiryTime:
		return AttrExpiryTime
	case AttrSeverityText:
		return AttrSeverityText
	case AttrSeverityNumber:
		return AttrSeverityNumber
	case AttrSequence:
		return AttrSequence
	case AttrTraceParent:
		return AttrTraceParent
	case AttrTraceState:
		return AttrTraceState
	case AttrDSSEMaterial:
		return AttrDSSEMaterial
	case AttrSignedExtAttrs:
		return AttrSignedExtAttrs
	}
	return string(k)
}

// skipString returns the index past the string whose opening quote is at
// b[i], checking it as encoding/json does — no control bytes, only JSON's
// escapes — and strictly where encoding/json repairs: invalid UTF-8 and a
// \u escape of a lone surrogate, which it would turn into U+FFFD, are
// refused (BadUnicode says where). A signal's bytes are forwarded as they
// came and its signature covers them: what they say must not depend on
// the reader's repairs.
func skipString(b []byte, i int) (int, bool) {
	i++
	for {
		i = plainEnd(b, i)
		if i >= len(b) {
			return i, false
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				n, ok := escapeLen(b, i)
				if !ok {
					return i, false
				}
				i += n
			default:
				return i, false
			}
		case c < 0x20:
			return i, false
		default: // non-ASCII: carried as is, if it is UTF-8
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, false
			}
			i += size
		}
	}
}

// escapeLen is the length of the \u escape at b[i]: 6, or 12 for a
// surrogate pair; ok false for bad hex digits or a lone surrogate.
func escapeLen(b []byte, i int) (int, bool) {
	r, ok := hex4(b, i+2)
	switch {
	case !ok || 0xDC00 <= r && r <= 0xDFFF: // a lone low surrogate
		return 0, false
	case 0xD800 <= r && r <= 0xDBFF:
		if len(b)-i < 12 || b[i+6] != '\\' || b[i+7] != 'u' {
			return 0, false
		}
		lo, ok := hex4(b, i+8)
		if !ok || lo < 0xDC00 || lo > 0xDFFF {
			return 0, false
		}
		return 12, true
	}
	return 6, true
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		if !isHex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// BadUnicode reports where JSON text b is not strict UTF-8: at byte off, a
// byte sequence that is not UTF-8, or a \u escape of a lone surrogate
// (what says which). encoding/json accepts both and repairs them to
// U+FFFD; anfed refuses them in signals and their data.
func BadUnicode(b []byte) (off int, what string, bad bool) {
	in := false
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c >= 0x80:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return i, fmt.Sprintf("byte %#02x is not UTF-8", c), true
			}
			i += size
		case !in:
			in = c == '"'
			i++
		case c == '"':
			in = false
			i++
		case c == '\\' && i+1 < len(b) && b[i+1] == 'u':
			n, ok := escapeLen(b, i)
			if !ok {
				if _, hexOK := hex4(b, i+2); hexOK {
					return i, fmt.Sprintf("%s is a lone surrogate, which encodes no character", b[i:i+6]), true
				}
				i += 2 // a bad escape: not a Unicode matter
				continue
			}
			i += n
		case c == '\\':
			i += 2
		default:
			i++
		}
	}
	return 0, "", false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipNumber returns the index past the JSON number at b[i].
func skipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return i, false
	}
	switch {
	case b[i] == '0':
		i++
	case '1' <= b[i] && b[i] <= '9':
		i = skipDigits(b, i+1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := skipDigits(b, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := skipDigits(b, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}

// skipValue returns the index past the JSON value at b[i], checking it
// exactly as encoding/json does. depth is the nesting level an object or
// array at b[i] would have, the outermost value being 1.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '{':
		if depth > maxDepth {
			return i, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = skipString(b, i); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) || b[i] != ':' {
				return i, false
			}
			if i, ok = skipValue(b, skipWS(b, i+1), depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case '[':
		if depth > maxDepth {
			return i, false
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = skipValue(b, i, depth+1); !ok {
				return i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, false
			}
			switch b[i] {
			case ',':
				i = skipWS(b, i+1)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case '"':
		return skipString(b, i)
	case 't':
		return i + 4, hasLit(b, i, "true")
	case 'f':
		return i + 5, hasLit(b, i, "false")
	case 'n':
		return i + 4, hasLit(b, i, "null")
	}
	return skipNumber(b, i)
}

// validObject reports whether b is exactly one JSON object, without
// surrounding white space, valid as json.Valid would have it.
func validObject(b []byte) bool {
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	end, ok := skipValue(b, 0, 1)
	return ok && end == len(b)
}

// specversion is kept aside while decoding (binary mode: in the extension
// map under this key), and checked once all attributes are read.
const specKey = "specversion"

func checkSpecVersion(present bool, e *Event) error {
	v, _ := e.Extensions[specKey].(string)
	delete(e.Extensions, specKey)
	if len(e.Extensions) == 0 {
		e.Extensions = nil
	}
	if !present {
		v = ""
	}
	return checkSpec(v)
}

// checkSpec checks the specversion read, "" when absent.
func checkSpec(v string) error {
	if v == "" {
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
		var buf [64]byte
		lk := lowerHeader(&buf, k)
		if len(vs) > 0 && !utf8.ValidString(vs[0]) {
			return nil, reject.Errorf(reject.BadAttribute, "header %s: value is not valid UTF-8", k)
		}
		if string(lk) == "content-type" && len(vs) > 0 {
			contentType = vs[0]
			continue
		}
		rest, ok := bytes.CutPrefix(lk, []byte("ce-"))
		if !ok || len(vs) == 0 {
			continue
		}
		name := internName(rest)
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
		if !validObject(t) {
			if off, what, bad := BadUnicode(body); bad {
				return nil, reject.Errorf(reject.Malformed, "data (the message body) at byte %d, %s: JSON data is UTF-8 text (RFC 8259)", off, what)
			}
			return nil, reject.Errorf(reject.BadAttribute, "data must be a JSON object matching the class schema")
		}
		e.Data = t
	}
	return e, nil
}

// lowerHeader is asciiLower into buf when k fits, so that reading a
// header name allocates nothing.
func lowerHeader(buf *[64]byte, k string) []byte {
	if len(k) > len(buf) {
		return []byte(asciiLower(k))
	}
	b := buf[:copy(buf[:], k)]
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return b
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
	case AttrTags:
		e.Tags = nil
		if v != "" {
			e.Tags = strings.Split(v, ",")
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
		AttrOrigin, AttrState, AttrPath, AttrTags, AttrCorrelationID, AttrCausationID, AttrExpiryTime,
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
