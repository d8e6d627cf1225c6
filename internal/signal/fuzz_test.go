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

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/internal/reject"
	"github.com/anfed/anfed/internal/signal"
)

// examples reads the catalog's example events at test time.
func examples(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob("../../schemas/examples/*.json")
	require.NoError(f, err)
	require.NotEmpty(f, files)
	out := make([][]byte, 0, len(files))
	for _, name := range files {
		b, err := os.ReadFile(name)
		require.NoError(f, err)
		out = append(out, b)
	}
	return out
}

// FuzzDecodeStructured: DecodeStructured never panics, refuses only with a
// *reject.Error, and what it accepts is in a normal form: Encode then
// DecodeStructured gives the same Event, and Encode is stable.
func FuzzDecodeStructured(f *testing.F) {
	for _, b := range examples(f) {
		f.Add(b)
	}
	f.Add(fullEvent().Encode())
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `"x"`, `{"specversion":"1.0"}`, `{"specversion":"0.3"}`,
		`{"specversion":"1.0","data":{}}`, `{"specversion":"1.0","data":[]}`, `{"specversion":"1.0","data_base64":"e30="}`,
		`{"specversion":"1.0","x":1,"y":true,"z":null,"w":"s"}`, `{"specversion":"1.0","x":1.5}`,
		`{"specversion":"1.0","X":1}`, `{"specversion":"1.0","severitynumber":"3"}`,
		`{"specversion":"1.0","time":"2026-03-14T09:06:10+02:00"}`, `{"specversion":"1.0","anfedpath":",,"}`,
		`{"specversion":"1.0","anfedtags":",,"}`, `{"specversion":"1.0","anfedtags":"no-export,op-a:gold"}`, `{"specversion":"1.0","anfedtags":""}`,
		`{"specversion":"1.0","anfedtags":1}`, `{"specversion":"1.0","anfedtags":true}`, `{"specversion":"1.0","anfedtags":["a"]}`,
		`{"specversion":"1.0","anfedtags":"a","anfedtags":"b"}`, `{"specversion":"1.0","anfed\u0074ags":"a\u002cb"}`,
		`{"specversion":"1.0","id":"\ud800"}`, `{"specversion":"1.0","\u0069d":"x","id":"y"}`,
		`{"specversion":"1.0","data":{"a":1},"data":{ "b" : 2 }}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := signal.DecodeStructured(body)
		if err != nil {
			checkRefusal(t, ev, err)
			return
		}
		checkNormalForm(t, ev)
		// the event refers to none of the body's bytes
		b := bytes.Clone(body)
		again, err := signal.DecodeStructured(b)
		if err != nil {
			t.Fatalf("decoded once, refused the second time: %v", err)
		}
		for i := range b {
			b[i] ^= 0xff
		}
		if !reflect.DeepEqual(ev, again) {
			t.Fatalf("the event changed with the body it was decoded from:\n%#v\n%#v", ev, again)
		}
	})
}

// FuzzDecodeBinary: the same properties for binary mode. hdr holds one
// "Name: value" header per line.
func FuzzDecodeBinary(f *testing.F) {
	for _, b := range examples(f) {
		hdr, data := toBinary(f, b)
		f.Add(hdr, data)
	}
	var hb strings.Builder
	for k, vs := range binaryHeaders() {
		for _, v := range vs {
			hb.WriteString(k + ": " + v + "\n")
		}
	}
	f.Add(hb.String(), []byte(fullData))
	f.Add("ce-specversion: 1.0", []byte(nil))
	f.Add("CE-SPECVERSION: 1.0\nCe-Id: 1\nce-id: 2\ncontent-type: application/json", []byte(`{}`))
	f.Add("Ce-Specversion: 1.0\nCe-Severitynumber: 17\nCe-Time: 2026-03-14T09:06:10.5+05:30", []byte(`{"a":[1,2]}`))
	f.Add("Ce-Specversion: 0.3", []byte(`{}`))
	f.Add("Ce-Specversion: 1.0\nCe-Vendor_x: 1", []byte(`{}`))
	f.Add("Ce-Specversion: 1.0\nCe-Anfedpath: op-a,,op-b\nce-: x", []byte(`{}`))
	f.Add("Ce-Specversion: 1.0", []byte(`[1]`))
	f.Add("Ce-Specversion: 1.0\nCe-Severitynumber: -2147483648", []byte(`{"a":"\u00e9"}`))
	f.Fuzz(func(t *testing.T, hdrText string, body []byte) {
		hdr := parseHeaders(hdrText)
		if _, err := signal.Decode(hdr, body); err != nil {
			checkRefusal(t, nil, err)
		}
		ev, err := signal.DecodeBinary(hdr, body)
		if err != nil {
			checkRefusal(t, ev, err)
			return
		}
		checkNormalForm(t, ev)
	})
}

func checkRefusal(t *testing.T, ev *signal.Event, err error) {
	t.Helper()
	assert.Nil(t, ev)
	var rerr *reject.Error
	require.ErrorAs(t, err, &rerr, "refusal must be a *reject.Error: %v", err)
	assert.Contains(t, []reject.Reason{reject.Malformed, reject.MissingAttribute, reject.BadAttribute}, rerr.Reason, "%v", err)
	assert.NotEmpty(t, rerr.Detail)
}

// checkNormalForm re-encodes an accepted event and decodes it again.
//
// Two differences are representation, not content, and are normalised
// before comparing: times come back in UTC (same instant), and an absent
// datacontenttype comes back as application/json, which Encode writes
// explicitly (the CloudEvents JSON format's default for a JSON data member).
func checkNormalForm(t *testing.T, ev *signal.Event) {
	t.Helper()
	enc := ev.Encode()
	require.True(t, json.Valid(enc), "Encode produced invalid JSON: %q", enc)
	again, err := signal.DecodeStructured(enc)
	require.NoError(t, err, "re-encoded event refused: %q", enc)
	assert.Equal(t, normal(ev), again, "re-encoded %q", enc)
	assert.Equal(t, string(enc), string(again.Encode()), "Encode not stable")
	assert.Equal(t, reject.ReasonOf(ev.Check()), reject.ReasonOf(again.Check()), "Check changed its mind after re-encoding")
}

func normal(ev *signal.Event) *signal.Event {
	n := *ev
	n.Time = n.Time.UTC()
	n.ExpiryTime = n.ExpiryTime.UTC()
	if n.DataContentType == "" {
		n.DataContentType = signal.ContentType
	}
	return &n
}

func parseHeaders(s string) nats.Header {
	h := nats.Header{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		h[k] = append(h[k], strings.TrimPrefix(v, " "))
	}
	return h
}

// toBinary turns a structured event into binary-mode header text and body.
func toBinary(f *testing.F, b []byte) (string, []byte) {
	f.Helper()
	var m map[string]json.RawMessage
	require.NoError(f, json.Unmarshal(b, &m))
	var hdr strings.Builder
	for k, v := range m {
		if k == "data" {
			continue
		}
		s := string(v)
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		if k == "datacontenttype" {
			hdr.WriteString("Content-Type: " + s + "\n")
			continue
		}
		hdr.WriteString("Ce-" + strings.ToUpper(k[:1]) + k[1:] + ": " + s + "\n")
	}
	return hdr.String(), m["data"]
}
