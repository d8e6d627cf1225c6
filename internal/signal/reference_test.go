package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/anfed/anfed/internal/reject"
)

// referenceDecodeStructured is DecodeStructured as it was before the
// single-pass scanner: encoding/json into a map. It is the oracle of
// FuzzDecodeStructuredDifferential. It lets the last of two members of the
// same name win, where DecodeStructured refuses.
func referenceDecodeStructured(body []byte) (*Event, error) {
	if !strictUnicode(body) {
		return nil, reject.Errorf(reject.Malformed, "not strict UTF-8")
	}
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

// escapeRe matches one JSON escape; matched left to right, "\\\\" pairs
// consume each other, so a \u match is a real escape.
var escapeRe = regexp.MustCompile(`\\(u[0-9a-fA-F]{4}|.)`)

// strictUnicode is the oracle of what DecodeStructured and validObject add
// to encoding/json, written apart from them: b is UTF-8 and every \u
// escape of a surrogate is half of a high-low pair.
func strictUnicode(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	ms := escapeRe.FindAllSubmatchIndex(b, -1)
	code := func(k int) rune {
		e := b[ms[k][2]:ms[k][3]]
		if e[0] != 'u' {
			return -1
		}
		r, _ := strconv.ParseUint(string(e[1:]), 16, 32)
		return rune(r)
	}
	for k := 0; k < len(ms); k++ {
		r := code(k)
		if !utf16.IsSurrogate(r) {
			continue
		}
		if r < 0xDC00 && k+1 < len(ms) && ms[k+1][0] == ms[k][1] {
			if lo := code(k + 1); lo >= 0xDC00 && lo <= 0xDFFF {
				k++
				continue
			}
		}
		return false
	}
	return true
}

// hasDuplicateName reports whether body is a JSON object naming a member
// twice, names compared after unescaping.
func hasDuplicateName(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return false
		}
		k, _ := t.(string)
		if seen[k] {
			return true
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return false
		}
	}
	return false
}

func exampleBodies(tb testing.TB) [][]byte {
	tb.Helper()
	files, err := filepath.Glob("../../schemas/examples/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no examples: %v", err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeStructuredDifferential: DecodeStructured agrees with the
// encoding/json implementation it replaced on every body, except that it
// refuses a body naming a member twice.
func FuzzDecodeStructuredDifferential(f *testing.F) {
	for _, b := range exampleBodies(f) {
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
		f.Add(append(bytes.Clone(b), " x"...))
		f.Add(bytes.ReplaceAll(b, []byte(":"), []byte(" \t\r\n:\n ")))
		f.Add(bytes.ReplaceAll(b, []byte(","), []byte("\n,\t")))
		f.Add(bytes.ReplaceAll(b, []byte(`"id"`), []byte(`"\u0069d"`)))
	}
	deep := func(n int, open, close string) string {
		return `{"specversion":"1.0","data":{"a":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}}`
	}
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
		// Escapes and non-ASCII in names and values.
		`{"spec\u0076ersion":"1.0","id":"a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00"}`,
		`{"specversion":"1.0","id":"\udc00\ud800x","x\u0000":1}`,
		"{\"specversion\":\"1.0\",\"id\":\"\xff\xfe\",\"\xc3\xa9\":1}",
		"{\"specversion\":\"1.0\",\"id\":\"a\x01b\"}", "{\"specversion\":\"1.0\",\"id\":\"a\x7fb\"}",
		`{"specversion":"1.0","id":"\x"}`, `{"specversion":"1.0","id":"\u12"}`, `{"specversion":"1.0","id":"\u12g4"}`,
		// Nested strings holding brackets and quotes.
		`{"specversion":"1.0","data":{"a":"}","b":"{[","c":"\"}\\","d":["]",{"e":"\\\""}]}}`,
		`{"specversion":"1.0","vendorx":{"a":"}"}}`, `{"specversion":"1.0","vendorx":["]"]}`,
		`{"specversion":"1.0","vendorx":{"a":}}`, `{"specversion":"1.0","vendorx":[1,]}`, `{"specversion":"1.0","data":{"a":1,}}`,
		// Deep nesting, at and beyond encoding/json's limit.
		deep(9997, "[", "]"), deep(9998, "[", "]"), deep(9999, "[", "]"), deep(20, `{"a":`, "}"),
		`{"specversion":"1.0","vendorx":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
		// White space everywhere, and where it may not be.
		" \t\r\n{ \t\r\n\"specversion\" \t\r\n: \t\r\n\"1.0\" \t\r\n, \"x\" : 1 \t\r\n} \t\r\n",
		"\v{\"specversion\":\"1.0\"}", "{\"specversion\":\"1.0\"}\u00a0", "\ufeff{\"specversion\":\"1.0\"}",
		// Trailing garbage and truncation.
		`{"specversion":"1.0"}}`, `{"specversion":"1.0"} {}`, `{"specversion":"1.0"}x`, `{"specversion":"1.0"`,
		`{"specversion":"1.0",`, `{"specversion":"1.0",}`, `{"specversion"`, `{"specversion":`, `{`, `{"`, `{,}`,
		`{"specversion":"1.0" "x":1}`, `{"specversion"::"1.0"}`, `{'specversion':'1.0'}`,
		// Numbers and literals.
		`{"specversion":"1.0","x":01}`, `{"specversion":"1.0","x":-0}`, `{"specversion":"1.0","x":1e3}`,
		`{"specversion":"1.0","x":2147483648}`, `{"specversion":"1.0","x":-2147483648}`, `{"specversion":"1.0","x":-}`,
		`{"specversion":"1.0","x":1.}`, `{"specversion":"1.0","x":.5}`, `{"specversion":"1.0","x":1e}`, `{"specversion":"1.0","x":1E+}`,
		`{"specversion":"1.0","x":+1}`, `{"specversion":"1.0","x":0x10}`, `{"specversion":"1.0","x":1_0}`, `{"specversion":"1.0","x":-0.0e-0}`,
		`{"specversion":"1.0","severitynumber":-0}`, `{"specversion":"1.0","severitynumber":17}`, `{"specversion":"1.0","severitynumber":NaN}`,
		`{"specversion":"1.0","x":tru}`, `{"specversion":"1.0","x":truex}`, `{"specversion":"1.0","x":nul}`, `{"specversion":"1.0","x":False}`,
		`{"specversion":null}`, `{"specversion":""}`, `{"specversion":1}`, `{"specversion":true}`,
		`{"specversion":"1.0","X":1,"x":}`, `{"specversion":"1.0","data":"{}","x":[}`,
		`{"specversion":"1.0","id":null,"id":"x"}`, `{"data_base64":1,"X":{"a":[1,2,{"b":"\u00"}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := DecodeStructured(body)
		want, wantErr := referenceDecodeStructured(body)
		if gotErr != nil {
			if got != nil {
				t.Fatalf("refused with an event: %v", gotErr)
			}
			var rerr *reject.Error
			if !errors.As(gotErr, &rerr) || rerr.Detail == "" {
				t.Fatalf("refusal is not a *reject.Error with a detail: %v", gotErr)
			}
		}
		if hasDuplicateName(body) {
			if gotErr == nil {
				t.Fatalf("accepted a body naming a member twice: %q", body)
			}
			return
		}
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("body %q:\nnew: %v\nreference: %v", body, gotErr, wantErr)
		}
		if gotErr != nil {
			if g, w := reject.ReasonOf(gotErr), reject.ReasonOf(wantErr); g != w {
				t.Fatalf("body %q: reason %s, reference %s\nnew: %v\nreference: %v", body, g, w, gotErr, wantErr)
			}
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("body %q:\nnew:       %#v\nreference: %#v", body, got, want)
		}
		if g, w := got.Encode(), want.Encode(); !bytes.Equal(g, w) {
			t.Fatalf("body %q: Encode\nnew:       %s\nreference: %s", body, g, w)
		}
		if !got.Time.Equal(want.Time) || !got.ExpiryTime.Equal(want.ExpiryTime) {
			t.Fatalf("body %q: times differ", body)
		}
		if len(got.Data) > 0 && len(body) > 0 && &got.Data[0] == &body[skipWS(body, 0)] {
			t.Fatal("data aliases the body")
		}
	})
}

// FuzzValidObject: validObject is json.Valid and strict UTF-8 (no invalid
// byte, no lone surrogate escape) for bodies starting with '{' and not
// ending in white space; BadUnicode finds a problem exactly when the body is
// not strict UTF-8.
func FuzzValidObject(f *testing.F) {
	for _, b := range exampleBodies(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"a":[1,-0.5e+3,true,false,null,"\u00e9\"",{}]}`))
	f.Add([]byte(`{"a":"` + "\xff\x01" + `"}`))
	f.Add([]byte(`{"a":"\ud800","b":"\udc00","c":"\ud83d\ude00","d":"\\ud800","e":"\ud800\u0041"}`))
	f.Add([]byte("{\"a\":\"\xed\xa0\x80\",\"b\":\"\xc3\"}"))
	f.Add([]byte("{" + strings.Repeat(`"a":[`, 5000) + strings.Repeat("]", 5000) + "}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		want := len(b) > 0 && b[0] == '{' && json.Valid(b) && strictUnicode(b) && len(bytes.TrimRight(b, " \t\r\n")) == len(b)
		if got := validObject(b); got != want {
			t.Fatalf("validObject(%q) = %v, json.Valid and strict UTF-8 say %v", b, got, want)
		}
		if _, _, bad := BadUnicode(b); json.Valid(b) && bad == strictUnicode(b) {
			t.Fatalf("BadUnicode(%q) = %v, the oracle disagrees", b, bad)
		}
	})
}

func TestValidObjectDepth(t *testing.T) {
	for _, n := range []int{9999, 10000, 10001} {
		b := []byte(strings.Repeat("[", n-1) + strings.Repeat("]", n-1))
		b = append(append([]byte("{\"a\":"), b...), '}')
		if got, want := validObject(b), json.Valid(b); got != want {
			t.Errorf("depth %d: validObject %v, json.Valid %v", n, got, want)
		}
	}
}

func TestDecodeStructuredRefusesDuplicateName(t *testing.T) {
	for _, body := range []string{
		`{"specversion":"1.0","\u0069d":"x","id":"y"}`,
		`{"specversion":"1.0","id":null,"id":"y"}`,
		`{"specversion":"1.0","data":{},"data":{}}`,
		`{"specversion":"1.0","specversion":"1.0"}`,
	} {
		_, err := DecodeStructured([]byte(body))
		if reject.ReasonOf(err) != reject.Malformed || !strings.Contains(err.Error(), "appears twice") {
			t.Errorf("%s: %v", body, err)
		}
	}
	// Many extensions: the name set outgrows its array.
	var b strings.Builder
	b.WriteString(`{"specversion":"1.0"`)
	for i := range 40 {
		b.WriteString(`,"x` + strconv.Itoa(i) + `":1`)
	}
	ev, err := DecodeStructured([]byte(b.String() + `}`))
	if err != nil || len(ev.Extensions) != 40 {
		t.Fatalf("40 extensions: %v", err)
	}
	if _, err := DecodeStructured([]byte(b.String() + `,"x3":2}`)); reject.ReasonOf(err) != reject.Malformed {
		t.Fatalf("duplicate among 40: %v", err)
	}
}

func BenchmarkDecodeStructured(b *testing.B) {
	body, err := os.ReadFile("../../schemas/examples/fault.valid.json")
	if err != nil {
		b.Fatal(err)
	}
	for _, impl := range []struct {
		name   string
		decode func([]byte) (*Event, error)
	}{{"new", DecodeStructured}, {"reference", referenceDecodeStructured}} {
		b.Run(impl.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := impl.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// plainEnd's eight-bytes-at-a-time skip finds the same byte as a scan of
// one byte at a time: each byte value at each offset of plain runs, and
// random bodies.
func TestPlainEndAgreesWithByteScan(t *testing.T) {
	slow := func(b []byte, i int) int {
		for i < len(b) && plain[b[i]] {
			i++
		}
		return i
	}
	for c := range 256 {
		for n := range 20 {
			for at := range n {
				b := bytes.Repeat([]byte{'a'}, n)
				b[at] = byte(c)
				for i := range min(n, 3) {
					if got, want := plainEnd(b, i), slow(b, i); got != want {
						t.Fatalf("byte %#x at %d of %d from %d: %d, want %d", c, at, n, i, got, want)
					}
				}
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, r.IntN(40))
		for k := range b {
			b[k] = byte(0x20 + r.IntN(0x60))
			if r.IntN(30) == 0 {
				b[k] = byte(r.IntN(256))
			}
		}
		i := r.IntN(len(b) + 1)
		if got, want := plainEnd(b, i), slow(b, i); got != want {
			t.Fatalf("%q from %d: %d, want %d", b, i, got, want)
		}
	}
}
