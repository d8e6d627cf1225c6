package signal_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// fullData has whitespace, escapes and non-ASCII inside the object: the
// codec must carry it byte for byte, because the origin signature covers it.
const fullData = "{ \"link\" : {\"id\":\"ic-paris-1\",\"kind\":\"interconnect\"} ,\n\t\"trafficClasses\":[ \"AF41\", \"BE\" ],\r\n" +
	"  \"note\":\"a \\\"quoted\\\" \\u00e9 é <&>\",\"utilisationPercent\":97.50 , \"empty\":{ }  }"

// fullEvent sets every field of Event, extensions of every preserved type
// included. Times are UTC: decoding yields UTC.
func fullEvent() *signal.Event {
	return &signal.Event{
		ID:              "c1d2e3f4-0001-4a6b-8c9d-1e2f3a4b5c6d",
		Source:          "anfed://op-a/assurance",
		Type:            "net.anfed.congestion.v1",
		Subject:         "vpn-acme/ic-paris-1",
		Time:            time.Date(2026, 3, 14, 9, 6, 10, 123456789, time.UTC),
		DataContentType: signal.ContentType,
		DataSchema:      "https://anfed.net/schemas/v1/congestion.json",
		Data:            json.RawMessage(fullData),
		Origin:          "op-a",
		State:           signal.Updated,
		Path:            []string{"op-a", "op-b", "op-c"},
		Tags:            []string{"no-export", "op-a:gold", "x.y_z-1"},
		CorrelationID:   "corr-1",
		CausationID:     "cause-1",
		ExpiryTime:      time.Date(2026, 3, 14, 9, 36, 10, 0, time.UTC),
		SeverityText:    "ERROR",
		SeverityNumber:  17,
		Sequence:        "00000000000000000042",
		TraceParent:     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:      "anfed=1,vendor=x",
		DSSEMaterial:    "eyJwYXlsb2FkVHlwZSI6ImFwcGxpY2F0aW9uL2pzb24ifQ==",
		SignedExtAttrs:  "anfedorigin,anfedstate",
		Extensions: map[string]any{
			"vendorx": "kept \"as\" is",
			"count":   int32(7),
			"min":     int32(-2147483648),
			"max":     int32(2147483647),
			"flag":    true,
			"off":     false,
			"empty":   "",
			"x1":      "dots.and spaces/and*",
		},
	}
}

// binaryHeaders is fullEvent in binary mode, with the mixed-case header
// names real clients send. Extensions travel as strings in headers.
func binaryHeaders() nats.Header {
	ev := fullEvent()
	return nats.Header{
		"Ce-Specversion":     {"1.0"},
		"Ce-Id":              {ev.ID},
		"CE-SOURCE":          {ev.Source},
		"ce-type":            {ev.Type},
		"Ce-Subject":         {ev.Subject},
		"Ce-Time":            {"2026-03-14T09:06:10.123456789Z"},
		"Content-Type":       {signal.ContentType},
		"Ce-Dataschema":      {ev.DataSchema},
		"Ce-Anfedorigin":     {ev.Origin},
		"Ce-AnfedState":      {string(ev.State)},
		"Ce-Anfedpath":       {"op-a,op-b,op-c"},
		"Ce-AnfedTags":       {"no-export,op-a:gold,x.y_z-1"},
		"Ce-Correlationid":   {ev.CorrelationID},
		"Ce-Causationid":     {ev.CausationID},
		"Ce-Expirytime":      {"2026-03-14T09:36:10Z"},
		"Ce-Severitytext":    {ev.SeverityText},
		"Ce-Severitynumber":  {"17"},
		"Ce-Sequence":        {ev.Sequence},
		"Ce-Traceparent":     {ev.TraceParent},
		"Ce-Tracestate":      {ev.TraceState},
		"Ce-Dssematerial":    {ev.DSSEMaterial},
		"Ce-Signedextattrs":  {ev.SignedExtAttrs},
		"Ce-Vendorx":         {"kept \"as\" is"},
		"Ce-Count":           {"7"},
		"Ce-Flag":            {"true"},
		"Nats-Msg-Id":        {"not an attribute"},
		"Anfed-Status":       {"accepted"},
		"X-Ce-Decoy":         {"not a ce- header"},
		"Ce-Empty":           {""},
		"Traceparent-Legacy": {"ignored"},
	}
}

// stringExtensions is fullEvent as binary mode carries it: every
// extension a string.
func binaryEvent() *signal.Event {
	ev := fullEvent()
	ev.Extensions = map[string]any{"vendorx": "kept \"as\" is", "count": "7", "flag": "true", "empty": ""}
	return ev
}

func TestEncodeDecodeStructuredRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		ev   func() *signal.Event
	}{
		{"every field", fullEvent},
		{"required attributes only", func() *signal.Event {
			return &signal.Event{
				ID: "1", Source: "anfed://op-a/p", Type: "net.anfed.fault.v1", Subject: "s/r",
				Time:            time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				DataContentType: signal.ContentType,
				Origin:          "op-a", State: signal.Raised, Data: json.RawMessage(`{}`),
			}
		}},
		{"single hop path", func() *signal.Event {
			ev := fullEvent()
			ev.Path = []string{"op-a"}
			return ev
		}},
		{"no path, no expiry, no extensions, no data", func() *signal.Event {
			ev := fullEvent()
			ev.Path, ev.ExpiryTime, ev.Extensions, ev.Data = nil, time.Time{}, nil, nil
			return ev
		}},
		{"strings needing JSON escapes", func() *signal.Event {
			ev := fullEvent()
			ev.ID = "quote\" backslash\\ nl\n tab\t nul\x00 <html> & é 😀 \u2028"
			ev.Subject = "svc with space/res.with.dots*>%"
			return ev
		}},
		{"data with leading whitespace inside and deep nesting", func() *signal.Event {
			ev := fullEvent()
			ev.Data = json.RawMessage("{\n\n  \"a\": [ [ [ {\"b\" :null} ] ] ],\"c\":-0.0e+10 }")
			return ev
		}},
		{"severity number bounds", func() *signal.Event {
			ev := fullEvent()
			ev.SeverityNumber = 24
			return ev
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.ev()
			enc := want.Encode()
			require.True(t, json.Valid(enc), "Encode produced invalid JSON: %s", enc)

			got, err := signal.DecodeStructured(enc)
			require.NoError(t, err)
			assert.Equal(t, want, got)
			if len(want.Data) > 0 {
				assert.True(t, bytes.HasSuffix(enc, append(append([]byte(`,"data":`), want.Data...), '}')),
					"data must come last, byte for byte: %s", enc)
			}
			assert.Equal(t, enc, got.Encode(), "Encode must be stable across a round trip")
		})
	}
}

func TestEncodeNormalises(t *testing.T) {
	t.Run("times are written in UTC and keep the instant", func(t *testing.T) {
		ev := fullEvent()
		paris := time.FixedZone("CET", 3600)
		ev.Time = time.Date(2026, 3, 14, 10, 6, 10, 5, paris)
		ev.ExpiryTime = time.Date(2026, 3, 14, 4, 36, 10, 0, time.FixedZone("", -5*3600))
		enc := ev.Encode()
		assert.Contains(t, string(enc), `"time":"2026-03-14T09:06:10.000000005Z"`)
		assert.Contains(t, string(enc), `"expirytime":"2026-03-14T09:36:10Z"`)
		got, err := signal.DecodeStructured(enc)
		require.NoError(t, err)
		assert.True(t, ev.Time.Equal(got.Time))
		assert.True(t, ev.ExpiryTime.Equal(got.ExpiryTime))
	})
	t.Run("absent datacontenttype is written as application/json", func(t *testing.T) {
		ev := fullEvent()
		ev.DataContentType = ""
		got, err := signal.DecodeStructured(ev.Encode())
		require.NoError(t, err)
		assert.Equal(t, signal.ContentType, got.DataContentType)
	})
	t.Run("zero severitynumber is absent", func(t *testing.T) {
		ev := fullEvent()
		ev.SeverityNumber = 0
		assert.NotContains(t, string(ev.Encode()), signal.AttrSeverityNumber+`"`)
	})
	t.Run("attributes in fixed order", func(t *testing.T) {
		enc := string(fullEvent().Encode())
		assert.True(t, strings.HasPrefix(enc, `{"specversion":"1.0","id":`), enc)
		last := -1
		for _, name := range []string{"id", "source", "type", "subject", "time", "datacontenttype", "dataschema",
			signal.AttrOrigin, signal.AttrState, signal.AttrPath, signal.AttrTags, signal.AttrExpiryTime, signal.AttrSeverityNumber,
			signal.AttrSignedExtAttrs, "count", "vendorx", "data"} {
			i := strings.Index(enc, `"`+name+`":`)
			require.GreaterOrEqual(t, i, 0, name)
			assert.Greater(t, i, last, "%s out of order in %s", name, enc)
			last = i
		}
	})
}

func TestDecodeBinary(t *testing.T) {
	structured, err := signal.DecodeStructured(binaryEvent().Encode())
	require.NoError(t, err)

	tests := []struct {
		name  string
		edit  func(h nats.Header)
		body  string
		check func(t *testing.T, ev *signal.Event)
	}{
		{name: "equals structured decode of the same event", body: fullData,
			check: func(t *testing.T, ev *signal.Event) { assert.Equal(t, structured, ev) }},
		{name: "ce-datacontenttype instead of content-type", body: fullData,
			edit: func(h nats.Header) {
				delete(h, "Content-Type")
				h["ce-datacontenttype"] = []string{signal.ContentType}
			},
			check: func(t *testing.T, ev *signal.Event) { assert.Equal(t, structured, ev) }},
		{name: "lower-case content-type", body: fullData,
			edit: func(h nats.Header) {
				delete(h, "Content-Type")
				h["content-type"] = []string{"text/plain"}
			},
			check: func(t *testing.T, ev *signal.Event) { assert.Equal(t, "text/plain", ev.DataContentType) }},
		{name: "first value of a repeated header wins", body: fullData,
			edit:  func(h nats.Header) { h["Ce-Id"] = []string{"first", "second"} },
			check: func(t *testing.T, ev *signal.Event) { assert.Equal(t, "first", ev.ID) }},
		{name: "header with no value is ignored", body: fullData,
			edit:  func(h nats.Header) { h["Ce-Other"] = []string{} },
			check: func(t *testing.T, ev *signal.Event) { assert.NotContains(t, ev.Extensions, "other") }},
		{name: "severitynumber as a string header", body: fullData,
			edit:  func(h nats.Header) { h["Ce-Severitynumber"] = []string{"+24"} },
			check: func(t *testing.T, ev *signal.Event) { assert.Equal(t, 24, ev.SeverityNumber) }},
		{name: "empty body is no data",
			check: func(t *testing.T, ev *signal.Event) { assert.Nil(t, ev.Data) }},
		{name: "empty path header is no path", body: `{}`,
			edit:  func(h nats.Header) { h["Ce-Anfedpath"] = []string{""} },
			check: func(t *testing.T, ev *signal.Event) { assert.Nil(t, ev.Path) }},
		{name: "single-hop path", body: `{}`,
			edit:  func(h nats.Header) { h["Ce-Anfedpath"] = []string{"op-a"} },
			check: func(t *testing.T, ev *signal.Event) { assert.Equal(t, []string{"op-a"}, ev.Path) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := binaryHeaders()
			if tt.edit != nil {
				tt.edit(h)
			}
			var body []byte
			if tt.body != "" {
				body = []byte(tt.body)
			}
			ev, err := signal.DecodeBinary(h, body)
			require.NoError(t, err)
			tt.check(t, ev)

			// Whatever binary mode read survives re-encoding to structured mode.
			again, err := signal.DecodeStructured(ev.Encode())
			require.NoError(t, err)
			assert.Equal(t, ev, again)
		})
	}
}

func TestDecodePicksMode(t *testing.T) {
	structuredBody := binaryEvent().Encode()
	tests := []struct {
		name string
		hdr  nats.Header
		body []byte
	}{
		{"no headers: structured", nil, structuredBody},
		{"unrelated headers: structured", nats.Header{"Nats-Msg-Id": {"x"}, "Content-Type": {signal.StructuredContentType}}, structuredBody},
		{"ce- headers without specversion: structured", nats.Header{"Ce-Id": {"ignored"}, "ce-type": {"ignored"}}, structuredBody},
		{"Ce-Specversion: binary", binaryHeaders(), []byte(fullData)},
		{"ce-specversion: binary", func() nats.Header {
			h := binaryHeaders()
			delete(h, "Ce-Specversion")
			h["ce-specversion"] = []string{"1.0"}
			return h
		}(), []byte(fullData)},
		{"CE-SPECVERSION: binary", func() nats.Header {
			h := binaryHeaders()
			delete(h, "Ce-Specversion")
			h["CE-SPECVERSION"] = []string{"1.0"}
			return h
		}(), []byte(fullData)},
	}
	want, err := signal.DecodeStructured(structuredBody)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := signal.Decode(tt.hdr, tt.body)
			require.NoError(t, err)
			assert.Equal(t, want, got)
		})
	}

	t.Run("binary headers with a structured body are read as binary", func(t *testing.T) {
		got, err := signal.Decode(binaryHeaders(), structuredBody)
		require.NoError(t, err)
		// The whole structured event became the data: proof binary mode read it.
		assert.Equal(t, json.RawMessage(structuredBody), got.Data)
	})
	t.Run("structured body without specversion is refused even with ce- headers", func(t *testing.T) {
		_, err := signal.Decode(nats.Header{"Ce-Id": {"1"}}, []byte(`{"id":"1"}`))
		assert.Equal(t, reject.MissingAttribute, reject.ReasonOf(err))
	})
}

// withAttr returns the congestion example with attribute name set to the
// raw JSON value (or removed when value is "").
func withAttr(t *testing.T, name, value string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../schemas/examples/congestion.valid.json")
	require.NoError(t, err)
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &m))
	if value == "" {
		delete(m, name)
	} else {
		m[name] = json.RawMessage(value)
	}
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func TestDecodeStructuredRefuses(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		reason reject.Reason
		names  string // what the error text must mention
	}{
		{"not JSON", []byte(`{"specversion":`), reject.Malformed, "JSON"},
		{"empty body", nil, reject.Malformed, "JSON"},
		{"JSON array", []byte(`[{"specversion":"1.0"}]`), reject.Malformed, "JSON"},
		{"JSON string", []byte(`"1.0"`), reject.Malformed, "JSON"},
		{"JSON null", []byte(`null`), reject.Malformed, "JSON object"},
		{"trailing garbage", append(withAttr(t, "id", `"x"`), '}'), reject.Malformed, "JSON"},
		{"missing specversion", withAttr(t, "specversion", ""), reject.MissingAttribute, "specversion"},
		{"null specversion", withAttr(t, "specversion", "null"), reject.MissingAttribute, "specversion"},
		{"empty specversion", withAttr(t, "specversion", `""`), reject.MissingAttribute, "specversion"},
		{"specversion 0.3", withAttr(t, "specversion", `"0.3"`), reject.BadAttribute, "specversion"},
		{"specversion as number", withAttr(t, "specversion", `1`), reject.BadAttribute, "specversion"},
		{"data_base64", withAttr(t, "data_base64", `"e30="`), reject.BadAttribute, "data_base64"},
		{"data string", withAttr(t, "data", `"{}"`), reject.BadAttribute, "data"},
		{"data array", withAttr(t, "data", `[{}]`), reject.BadAttribute, "data"},
		{"data number", withAttr(t, "data", `1`), reject.BadAttribute, "data"},
		{"data null", withAttr(t, "data", `null`), reject.BadAttribute, "data"},
		{"attribute object", withAttr(t, "vendorx", `{"a":1}`), reject.BadAttribute, "vendorx"},
		{"attribute array", withAttr(t, "vendorx", `["a"]`), reject.BadAttribute, "vendorx"},
		{"known attribute object", withAttr(t, "subject", `{}`), reject.BadAttribute, "subject"},
		{"attribute name with uppercase", withAttr(t, "vendorX", `"x"`), reject.BadAttribute, "vendorX"},
		{"attribute name with underscore", withAttr(t, "vendor_x", `"x"`), reject.BadAttribute, "vendor_x"},
		{"attribute name with dash", withAttr(t, "vendor-x", `"x"`), reject.BadAttribute, "vendor-x"},
		{"empty attribute name", withAttr(t, "", `"x"`), reject.BadAttribute, `""`},
		{"non-integer number", withAttr(t, "vendorx", `1.5`), reject.BadAttribute, "vendorx"},
		{"exponent number", withAttr(t, "vendorx", `1e3`), reject.BadAttribute, "vendorx"},
		{"number above int32", withAttr(t, "vendorx", `2147483648`), reject.BadAttribute, "vendorx"},
		{"number below int32", withAttr(t, "vendorx", `-2147483649`), reject.BadAttribute, "vendorx"},
		{"severitynumber as string", withAttr(t, "severitynumber", `"17"`), reject.BadAttribute, "severitynumber"},
		{"severitynumber as bool", withAttr(t, "severitynumber", `true`), reject.BadAttribute, "severitynumber"},
		{"severitynumber as float", withAttr(t, "severitynumber", `17.0`), reject.BadAttribute, "severitynumber"},
		{"string attribute as bool", withAttr(t, "id", `true`), reject.BadAttribute, "id"},
		{"string attribute as number", withAttr(t, "anfedstate", `1`), reject.BadAttribute, "anfedstate"},
		{"bad time", withAttr(t, "time", `"yesterday"`), reject.BadAttribute, "time"},
		{"time without zone", withAttr(t, "time", `"2026-03-14T09:06:10"`), reject.BadAttribute, "time"},
		{"empty time", withAttr(t, "time", `""`), reject.BadAttribute, "time"},
		{"bad expirytime", withAttr(t, "expirytime", `"2026-13-14T09:06:10Z"`), reject.BadAttribute, "expirytime"},
		{"date-only expirytime", withAttr(t, "expirytime", `"2026-03-14"`), reject.BadAttribute, "expirytime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := signal.DecodeStructured(tt.body)
			require.Error(t, err)
			assert.Nil(t, ev)
			var rerr *reject.Error
			require.ErrorAs(t, err, &rerr)
			assert.Equal(t, tt.reason, reject.ReasonOf(err), "%v", err)
			assert.Contains(t, err.Error(), tt.names)
		})
	}
}

func TestDecodeBinaryRefuses(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(h nats.Header)
		body   string
		reason reject.Reason
		names  string
	}{
		{"missing specversion", func(h nats.Header) { delete(h, "Ce-Specversion") }, fullData, reject.MissingAttribute, "specversion"},
		{"empty specversion", func(h nats.Header) { h["Ce-Specversion"] = []string{""} }, fullData, reject.MissingAttribute, "specversion"},
		{"specversion 0.3", func(h nats.Header) { h["Ce-Specversion"] = []string{"0.3"} }, fullData, reject.BadAttribute, "specversion"},
		{"header name with underscore", func(h nats.Header) { h["Ce-Vendor_X"] = []string{"x"} }, fullData, reject.BadAttribute, "Ce-Vendor_X"},
		{"bare ce- header", func(h nats.Header) { h["ce-"] = []string{"x"} }, fullData, reject.BadAttribute, "ce-"},
		{"bad time", func(h nats.Header) { h["Ce-Time"] = []string{"now"} }, fullData, reject.BadAttribute, "time"},
		{"bad expirytime", func(h nats.Header) { h["Ce-Expirytime"] = []string{"soon"} }, fullData, reject.BadAttribute, "expirytime"},
		{"severitynumber not a number", func(h nats.Header) { h["Ce-Severitynumber"] = []string{"high"} }, fullData, reject.BadAttribute, "severitynumber"},
		{"severitynumber above int32", func(h nats.Header) { h["Ce-Severitynumber"] = []string{"2147483648"} }, fullData, reject.BadAttribute, "severitynumber"},
		{"body not JSON", nil, `{"a":`, reject.BadAttribute, "data"},
		{"body a JSON array", nil, `[{}]`, reject.BadAttribute, "data"},
		{"body a JSON string", nil, `"{}"`, reject.BadAttribute, "data"},
		{"body only whitespace", nil, " \n\t", reject.BadAttribute, "data"},
		{"body with trailing garbage", nil, `{} {}`, reject.BadAttribute, "data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := binaryHeaders()
			if tt.edit != nil {
				tt.edit(h)
			}
			ev, err := signal.DecodeBinary(h, []byte(tt.body))
			require.Error(t, err)
			assert.Nil(t, ev)
			var rerr *reject.Error
			require.ErrorAs(t, err, &rerr)
			assert.Equal(t, tt.reason, reject.ReasonOf(err), "%v", err)
			assert.Contains(t, err.Error(), tt.names)
		})
	}
}

// The design: "The signature covers the bytes of data: every hop forwards
// them unchanged ... it survives re-encoding between modes". JSON white
// space around a binary-mode body is not part of the data (structured mode
// cannot carry it); any other space makes the body not JSON.
func TestDecodeBinaryDataSurvivesReencoding(t *testing.T) {
	for _, body := range []string{"\v{\"a\":1}", "{\"a\":1}\u00a0"} {
		_, err := signal.DecodeBinary(binaryHeaders(), []byte(body))
		assert.Equal(t, reject.BadAttribute, reject.ReasonOf(err), strconv.Quote(body))
	}
	for _, body := range []string{"{\"a\":1}\n", " {\"a\":1}", "\r\n{\"a\":1}\t"} {
		t.Run(strconv.Quote(body), func(t *testing.T) {
			ev, err := signal.DecodeBinary(binaryHeaders(), []byte(body))
			require.NoError(t, err)
			assert.Equal(t, `{"a":1}`, string(ev.Data))
			again, err := signal.DecodeStructured(ev.Encode())
			require.NoError(t, err)
			assert.Equal(t, string(ev.Data), string(again.Data))
		})
	}
}

// Header values are bytes; CloudEvents attributes are Unicode strings.
// DecodeBinary accepts invalid UTF-8, and Encode (json.Marshal) silently
// turns it into U+FFFD, so id and source — the dedup key — change when
// the event is re-encoded.
func TestDecodeBinaryAttributeSurvivesReencoding(t *testing.T) {
	h := binaryHeaders()
	h["Ce-Id"] = []string{"id-\xff\xfe"}
	ev, err := signal.DecodeBinary(h, []byte(fullData))
	if err != nil {
		assert.Equal(t, reject.BadAttribute, reject.ReasonOf(err))
		return
	}
	again, err := signal.DecodeStructured(ev.Encode())
	require.NoError(t, err)
	assert.Equal(t, ev.ID, again.ID)
}

// A ce-data header becomes an extension named "data"; Encode then writes
// two "data" members, and the structured decode either refuses the event
// (no body) or silently drops the extension (with a body).
func TestDecodeBinaryRefusesDataHeader(t *testing.T) {
	for name, body := range map[string]string{"no body": "", "with body": fullData} {
		t.Run(name, func(t *testing.T) {
			h := binaryHeaders()
			h["Ce-Data"] = []string{"x"}
			ev, err := signal.DecodeBinary(h, []byte(body))
			if err != nil {
				assert.Equal(t, reject.BadAttribute, reject.ReasonOf(err))
				return
			}
			again, err := signal.DecodeStructured(ev.Encode())
			require.NoError(t, err)
			assert.Equal(t, ev, again)
		})
	}
}

// A timestamp with an offset near year 0 or 9999 is accepted, but its UTC
// form, which Encode writes, falls outside RFC 3339's four-digit years and
// is refused by the decoder: the node would emit an event nobody can read.
func TestDecodeTimeNearYearBounds(t *testing.T) {
	for _, attr := range []string{"time", "expirytime"} {
		for _, v := range []string{"9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"} {
			t.Run(attr+" "+v, func(t *testing.T) {
				ev, err := signal.DecodeStructured(withAttr(t, attr, strconv.Quote(v)))
				if err != nil {
					assert.Equal(t, reject.BadAttribute, reject.ReasonOf(err))
					return
				}
				_, err = signal.DecodeStructured(ev.Encode())
				assert.NoError(t, err)
			})
		}
	}
}

func TestDecodeExamples(t *testing.T) {
	files, err := filepath.Glob("../../schemas/examples/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			require.NoError(t, err)
			ev, err := signal.DecodeStructured(b)
			require.NoError(t, err)

			var raw map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(b, &raw))
			assert.Equal(t, string(raw["data"]), string(ev.Data), "data bytes kept as written")
			if strings.Contains(f, ".valid") {
				assert.NoError(t, ev.Check())
			}
			again, err := signal.DecodeStructured(ev.Encode())
			require.NoError(t, err)
			assert.Equal(t, ev, again)
		})
	}
}

// A structured event refers to none of the body's bytes (strings are read
// in place, then moved): overwriting the body after decoding changes
// nothing in the event. fullEvent sets every string attribute (checked by
// reflection, so that a new one is not left out of the move).
func TestDecodeStructuredOwnsItsStrings(t *testing.T) {
	full := fullEvent()
	v := reflect.ValueOf(full).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			require.NotEmpty(t, f.String(), "fullEvent leaves %s empty", v.Type().Field(i).Name)
		}
	}
	for _, body := range [][]byte{
		full.Encode(),
		[]byte(`{"specversion":"1.0","id":"x","anfedpath":"op-a,op-b","anfedtags":"t1","vendorx":"v","anfedstate":"weird","type":"t.y.p.e"}`),
	} {
		want, err := signal.DecodeStructured(body)
		require.NoError(t, err)
		b := bytes.Clone(body)
		ev, err := signal.DecodeStructured(b)
		require.NoError(t, err)
		for i := range b {
			b[i] = '#'
		}
		require.Equal(t, want, ev)
	}
}

// TestDecodeRefusesInvalidUnicode: invalid UTF-8 and lone surrogate
// escapes, which encoding/json would repair to U+FFFD, are refused as
// malformed wherever they are — id, an extension, the data — in both
// modes, with the attribute and the byte offset; a surrogate pair passes.
func TestDecodeRefusesInvalidUnicode(t *testing.T) {
	body := func(id, data string) []byte {
		return []byte(`{"specversion":"1.0","id":"` + id + `","source":"anfed://op-a/p","vendorx":"v","data":` + data + `}`)
	}
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"invalid byte in id", body("a\xffb", `{}`), `attribute "id": at byte 28, byte 0xff is not UTF-8`},
		{"truncated sequence in id", body("a\xc3", `{}`), `attribute "id": at byte 28, byte 0xc3 is not UTF-8`},
		{"encoded surrogate in id", body("\xed\xa0\x80", `{}`), `attribute "id": at byte 27, byte 0xed is not UTF-8`},
		{"lone high surrogate in id", body(`\ud800`, `{}`), `attribute "id": at byte 27, \ud800 is a lone surrogate`},
		{"lone low surrogate in id", body(`x\udc00`, `{}`), `attribute "id": at byte 28, \udc00 is a lone surrogate`},
		{"high then not low", body(`\ud800\u0041`, `{}`), `\ud800 is a lone surrogate`},
		{"invalid byte in an extension", []byte(`{"specversion":"1.0","vendorx":"` + "\xfe" + `"}`), `attribute "vendorx": at byte 32, byte 0xfe is not UTF-8`},
		{"invalid byte in data", body("1", `{"a":{"b":"`+"\x80"+`"}}`), `attribute "data": at byte 88, byte 0x80 is not UTF-8`},
		{"lone surrogate in data", body("1", `{"a":["\udbff"]}`), `attribute "data": at byte 84, \udbff is a lone surrogate`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := signal.DecodeStructured(tt.body)
			require.Error(t, err)
			assert.Nil(t, ev)
			assert.Equal(t, reject.Malformed, reject.ReasonOf(err))
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	t.Run("binary-mode data", func(t *testing.T) {
		for data, want := range map[string]string{
			`{"a":"` + "\xff" + `"}`: "data (the message body) at byte 6, byte 0xff is not UTF-8",
			`{"a":"\ud800"}`:         `data (the message body) at byte 6, \ud800 is a lone surrogate`,
		} {
			_, err := signal.DecodeBinary(binaryHeaders(), []byte(data))
			assert.Equal(t, reject.Malformed, reject.ReasonOf(err), "%v", err)
			assert.ErrorContains(t, err, want)
		}
	})
	t.Run("a surrogate pair and plain UTF-8 pass", func(t *testing.T) {
		ev, err := signal.DecodeStructured(body(`\ud83d\ude00 é`, `{"a":"\uD83D\uDE00 日本"}`))
		require.NoError(t, err)
		assert.Equal(t, "😀 é", ev.ID)
	})
}

// Encode makes one allocation for an event whose values need no
// escapes, however long its attributes (a signed event's pass 512
// bytes): the buffer is sized from the event.
func TestEncodeAllocatesOnce(t *testing.T) {
	ev := fullEvent()
	ev.Extensions = nil
	ev.DSSEMaterial = strings.Repeat("eyJwYXlsb2Fk", 60)
	ev.Data = json.RawMessage(`{"note":"` + strings.Repeat("x", 900) + `"}`)
	assert.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _ = ev.Encode() }))
}

// A decoded event owns its data and strings: the body may be reused at
// once. Both take one allocation with the event's own.
func TestDecodeStructuredOwnsItsBytes(t *testing.T) {
	ev := fullEvent()
	ev.Extensions, ev.Path, ev.Tags = nil, nil, nil
	body := ev.Encode()
	got, err := signal.DecodeStructured(body)
	require.NoError(t, err)
	for i := range body {
		body[i] = 'x'
	}
	assert.Equal(t, ev, got)
	body = ev.Encode()
	assert.Equal(t, 2.0, testing.AllocsPerRun(100, func() { _, _ = signal.DecodeStructured(body) }), "the event and one buffer")
	// the data is capped: appending to it does not write over the strings
	got, err = signal.DecodeStructured(body)
	require.NoError(t, err)
	_ = append(got.Data, "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"...)
	assert.Equal(t, ev.ID, got.ID)
}
