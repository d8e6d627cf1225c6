package schemacheck

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

var fastSeeds = []string{
	`{}`, `[]`, `{"a":1,"b":[1,2.5,-0,1e3,1E-3,-1.5e+2],"c":{"d":null,"e":true,"f":false}}`,
	` { "a" : "x" , "a" : "y" } `, `{"s":"tab\t"}`, `{"s":"\u00e9\ud83d\ude00 \"q\" \\ \/"}`,
	`{"s":"é日本"}`, "{\"s\":\"\xff\xfe\"}", `{"s":"\ud800"}`, "{\"s\":\"a\x7fb\"}",
	`{"n":01}`, `{"n":-}`, `{"n":1.}`, `{"n":.5}`, `{"n":1e}`, `{"n":+1}`, `{"a":1,}`, `[1,]`,
	`{"a" 1}`, `{a:1}`, `{"a":1}}`, `{"a":1} x`, `{"a":tru}`, `{"a":nul}`, `"x"`, `12`, ``, ` `,
	`{"a":"\x"}`, "{\"a\":\"\x01\"}", `[[[[[[[[[[]]]]]]]]]]`, `{"a":[{"b":[{"c":"d"}]}]}`,
	`{"big":123456789012345678901234567890,"exp":1e99999999}`, "\t\r\n{}\n",
}

// decodeFast yields exactly what jsonschema.UnmarshalJSON yields, and gives
// up wherever it refuses.
func FuzzDecodeFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	for _, ex := range loadExamples(f) {
		f.Add([]byte(ex.data()))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeFast(data)
		want, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if !ok {
			return // the caller asks jsonschema.UnmarshalJSON
		}
		if err != nil {
			t.Fatalf("%q: decodeFast accepts what encoding/json refuses (%v)", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decodeFast %#v, encoding/json %#v", data, got, want)
		}
	})
}

// The examples, the signals anfed carries, take the fast path.
func TestDecodeFastTakesTheExamples(t *testing.T) {
	for _, ex := range loadExamples(t) {
		_, ok := decodeFast([]byte(ex.data()))
		if !ok {
			t.Errorf("%s: not decoded on the fast path", ex.typ())
		}
	}
}
