package schemacheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/schemas"
)

// generic is the verdict of the generic path alone.
func generic(c *Catalog, typ string, data []byte) bool {
	if len(bytes.TrimSpace(data)) == 0 {
		return false
	}
	return validateGeneric(typ, c.byType[typ], data) == nil
}

// Every class of the catalog compiles: a keyword the compiled validator
// does not support, added to a schema, fails here (its class would quietly
// take the slow path otherwise).
func TestCompiledCoversTheCatalog(t *testing.T) {
	c := loadCatalog(t)
	for typ, err := range c.fastErr {
		t.Errorf("%s has no compiled validator: %v", typ, err)
	}
	for _, class := range schemas.Classes {
		assert.NotNil(t, c.fast[schemas.Type(class)], class)
	}
}

// The compiled validator accepts every valid example itself, and none of
// the invalid ones.
func TestCompiledTakesTheExamples(t *testing.T) {
	c := loadCatalog(t)
	for _, ex := range loadExamples(t) {
		assert.Equal(t, ex.valid, c.ValidFast(ex.typ(), ex.data()), ex.file)
		assert.Equal(t, ex.valid, generic(c, ex.typ(), ex.data()), ex.file)
	}
}

// A schema with a keyword outside the supported set does not compile.
func TestCompiledRefusesUnsupportedKeywords(t *testing.T) {
	for _, sch := range []string{
		`{"type":"integer"}`,
		`{"multipleOf":2}`,
		`{"patternProperties":{"^a":{"type":"string"}}}`,
		`{"properties":{"a":{"not":{"type":"string"}}}}`,
		`{"items":{"oneOf":[{"type":"string"}]}}`,
		`{"enum":[1,2]}`,
		`{"const":{"a":1}}`,
		`{"$defs":{"x":{"exclusiveMinimum":0}},"properties":{"a":{"$ref":"#/$defs/x"}}}`,
		`{"unevaluatedProperties":false}`,
		`{"if":{"required":["a"]},"then":{"required":["b"]},"else":{"required":["c"]}}`,
		`{"format":"regex"}`,
		`{"prefixItems":[{"type":"string"}]}`,
		`{"minProperties":1}`,
		`{"dependentSchemas":{"a":{"required":["b"]}}}`,
	} {
		s := compileSchema(t, sch)
		_, err := compileFast(s)
		assert.Error(t, err, sch)
	}
	// and the supported ones, a bare annotation included, do
	for _, sch := range []string{
		`{"title":"t","description":"d","examples":["x"],"$comment":"c"}`,
		`{"type":["string","null"],"enum":["a","b"],"minLength":1}`,
		`{"anyOf":[{"required":["a"]},{"required":["b"]}],"additionalProperties":{"type":"string"}}`,
	} {
		s := compileSchema(t, sch)
		_, err := compileFast(s)
		assert.NoError(t, err, sch)
	}
}

func compileSchema(t *testing.T, sch string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(sch))
	require.NoError(t, err)
	require.NoError(t, c.AddResource("https://example.net/s.json", doc))
	s, err := c.Compile("https://example.net/s.json")
	require.NoError(t, err)
	return s
}

// A few schemas outside the catalog, for what it does not exercise: on
// each datum the compiled and generic verdicts agree, but on those listed
// in gaveUp, where the compiled validator gives up on purpose and must
// answer false.
func TestCompiledSmallSchemas(t *testing.T) {
	cases := []struct {
		schema string
		data   []string
		gaveUp []string
	}{
		{`{"type":"number","minimum":0.1,"maximum":1e2}`, []string{
			`0.1`, `0.10`, `1e-1`, `0.09999999999999999999`, `0.1000000000000000000001`, `100`, `1E2`,
			`100.000000000000000001`, `99.9999999999999999`, `-0`, `1e2`, `0.1e0`}, nil},
		{`{"type":"array","uniqueItems":true}`, []string{`["a","b"]`, `["a","a"]`, `["a","\u0061"]`, `[]`, `["a"]`},
			[]string{`[1,1.0]`, `[1,2]`, `[{"a":1},{"a":1}]`, `[{"a":1},{"a":2}]`}},
		{`{"type":"object","required":["a"],"additionalProperties":{"type":"string","maxLength":2}}`, []string{
			`{"a":"xy"}`, `{"a":"xyz"}`, `{"a":"é日"}`, `{"a":"é日本"}`, `{"a":"\u00e9\ud83d\ude00"}`, `{"b":"x"}`, `{"a":1}`}, nil},
		{`{"properties":{"a":{"type":"string"}}}`, []string{`{"a":"x"}`, `{"a":1}`, `{"b":1}`},
			[]string{`{"\u0061":1}`, `{"\u0061":"x"}`}},
		{`{"enum":["a","b"]}`, []string{`"a"`, `"\u0062"`, `"c"`, `1`, `null`}, nil},
		{`{"const":"a"}`, []string{`"a"`, `"b"`, `1`, `{"a":1}`}, nil},
		{`{"type":"string","format":"date-time"}`, []string{
			`"2026-11-25T17:00:00Z"`, `"2026-11-25T17:00:00"`, `"2026-02-30T17:00:00Z"`, `1`}, nil},
		{`{"format":"date-time"}`, []string{`"2026-11-25T17:00:00Z"`, `"x"`}, []string{`1`, `{}`}},
		{`{"if":{"properties":{"s":{"const":"X"}},"required":["s"]},"then":{"required":["t"]}}`, []string{
			`{"s":"X"}`, `{"s":"X","t":1}`, `{"s":"Y"}`, `{}`}, []string{`{"s":"X","s":"Y"}`, `{"s":"Y","s":"X"}`}},
	}
	for _, tc := range cases {
		s := compileSchema(t, tc.schema)
		n, err := compileFast(s)
		require.NoError(t, err, tc.schema)
		for _, d := range append(slices.Clone(tc.data), tc.gaveUp...) {
			want := validateGeneric("t", s, []byte(d)) == nil
			got := validFast(n, []byte(d))
			switch {
			case got && !want:
				t.Errorf("%s: %s: compiled accepts what the generic path refuses", tc.schema, d)
			case slices.Contains(tc.gaveUp, d):
				assert.False(t, got, "%s: %s: compiled should give up", tc.schema, d)
			default:
				assert.Equal(t, want, got, "%s: %s: compiled and generic verdicts", tc.schema, d)
			}
		}
	}
}

// jv is a JSON value that keeps the order of names, for mutating examples.
type jv struct {
	kind byte // 'o' object, 'a' array, 's' string, 'r' other scalar
	keys []string
	vals []*jv
	str  string // 's': the decoded string; 'r': the JSON text
}

func parseJV(t testing.TB, data []byte) *jv {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var read func() *jv
	read = func() *jv {
		tk, err := d.Token()
		require.NoError(t, err)
		switch tk := tk.(type) {
		case json.Delim:
			if tk == '{' {
				v := &jv{kind: 'o'}
				for d.More() {
					k, err := d.Token()
					require.NoError(t, err)
					v.keys = append(v.keys, k.(string))
					v.vals = append(v.vals, read())
				}
				_, err := d.Token()
				require.NoError(t, err)
				return v
			}
			v := &jv{kind: 'a'}
			for d.More() {
				v.vals = append(v.vals, read())
			}
			_, err := d.Token()
			require.NoError(t, err)
			return v
		case string:
			return &jv{kind: 's', str: tk}
		case json.Number:
			return &jv{kind: 'r', str: tk.String()}
		case bool:
			return &jv{kind: 'r', str: fmt.Sprint(tk)}
		default:
			return &jv{kind: 'r', str: "null"}
		}
	}
	v := read()
	_, err := d.Token()
	require.ErrorIs(t, err, io.EOF)
	return v
}

func quoteJSON(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(buf.String(), "\n")
}

// write renders v, with over[x] as the text of value x where set.
func (v *jv) write(sb *strings.Builder, over map[*jv]string) {
	if o, ok := over[v]; ok {
		sb.WriteString(o)
		return
	}
	switch v.kind {
	case 'o':
		sb.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(quoteJSON(k))
			sb.WriteByte(':')
			v.vals[i].write(sb, over)
		}
		sb.WriteByte('}')
	case 'a':
		sb.WriteByte('[')
		for i, x := range v.vals {
			if i > 0 {
				sb.WriteByte(',')
			}
			x.write(sb, over)
		}
		sb.WriteByte(']')
	case 's':
		sb.WriteString(quoteJSON(v.str))
	default:
		sb.WriteString(v.str)
	}
}

func (v *jv) text() string {
	var sb strings.Builder
	v.write(&sb, nil)
	return sb.String()
}

func (v *jv) all(f func(*jv)) {
	f(v)
	for _, x := range v.vals {
		x.all(f)
	}
}

// A mutation is a variant of an example. The compiled validator gives up
// (answers false) on some on purpose: for those, mayDiffer is set and the
// test asserts that it did answer false.
type mutation struct {
	what      string
	data      string
	mayDiffer bool
}

// schemaStrings collects every string value of the catalog's schemas
// (enum and const members, names): candidates that hit enum boundaries.
func schemaStrings(t testing.TB) []string {
	set := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k != "description" && k != "title" && k != "pattern" {
					walk(x)
				}
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		case string:
			if !strings.HasPrefix(v, "#") && !strings.HasPrefix(v, "http") {
				set[v] = true
			}
		}
	}
	for _, class := range schemas.Classes {
		b, err := schemas.FS.ReadFile(schemas.SchemaFile(class))
		require.NoError(t, err)
		var doc any
		require.NoError(t, json.Unmarshal(b, &doc))
		walk(doc)
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

var (
	wrongTypes = []string{`1`, `"x"`, `true`, `false`, `null`, `[]`, `{}`, `0`, `-1`, `1.5`, `["x"]`, `{"id":"x"}`}
	numbers    = []string{`-1`, `-0`, `0`, `0.0`, `-0.0`, `0e0`, `1`, `1.0`, `1E0`, `100`, `100.0`, `1e2`, `1E2`, `1e+2`,
		`10000e-2`, `100.00000000000000001`, `99.999999999999999999`, `100.0000000000001`, `1.00000000000000000000001`,
		`0.99999999999999999999`, `0.5`, `1.4`, `101`, `42.5`, `1e308`, `-1e308`, `2e308`, `1e400`, `1e-400`, `-1e-400`,
		`1e401`, `5e-324`, `2e-324`, `123456789012345678901234567890`, `1` + strings.Repeat("0", 70),
		`-0.0000000000000000000000001`, `0.0000000000000000000000001`, `1e-5`, `-1e-5`, `01`, `1.`, `.5`, `+1`, `-`, `1e`}
	strs = []string{``, ` `, `a`, `A`, `-`, `_`, `x y`, `anfed://`, `anfed://a/`, `anfed://a/b`, `anfed://A/b`,
		`anfed://a/b c`, `anfed://a-/b`, `+123456`, `+1234567`, `+1234567890123456`, `123456789`,
		`2026-11-25T17:00:00Z`, `2026-11-25T17:00:00.123+01:00`, `2026-11-25T17:00:00`, `2026-13-01T00:00:00Z`,
		`2026-02-30T00:00:00Z`, `2026-11-25t17:00:00z`, `2026-11-25T23:59:60Z`, `2026-11-25T17:00:60Z`,
		`P1D`, `PT1H`, `PT1.5S`, `P`, `PT`, `P1H`, `P1W`, `P1Y2M3DT4H5M6S`, `not a uri`, `https://example.net/x`,
		`https://example.net/x y`, `http://[::1`, `http://[::1]/`, `http://::1/`, `mailto:x@example.net`, `/relative`,
		`a@b`, `a@`, `@b`, `a@b.c`, `noc@op-a.example.net`, `x@[127.0.0.1]`, `a b@c`, "tab\tin", "nl\nin", "é", "日本",
		"😀", "\u2028", "\x7f", "a\u0000b"}
	lengths = []int{1, 2, 8, 16, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 2047, 2048, 2049}
)

// escapeAll writes s with every character as a \u escape (a valid JSON
// string that decodes to s).
func escapeAll(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		if r > 0xFFFF {
			r -= 0x10000
			fmt.Fprintf(&sb, `\u%04x\u%04X`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
			continue
		}
		fmt.Fprintf(&sb, `\u%04x`, r)
	}
	sb.WriteByte('"')
	return sb.String()
}

func mutations(t testing.TB, root *jv, enumStrs []string) []mutation {
	var out []mutation
	add := func(what string, over map[*jv]string, mayDiffer bool) {
		var sb strings.Builder
		root.write(&sb, over)
		out = append(out, mutation{what: what, data: sb.String(), mayDiffer: mayDiffer})
	}
	var nodes []*jv
	root.all(func(v *jv) { nodes = append(nodes, v) })
	for ni, v := range nodes {
		at := func(s string) map[*jv]string { return map[*jv]string{v: s} }
		if ni > 0 {
			for _, w := range wrongTypes {
				add("type "+w, at(w), false)
			}
		}
		switch v.kind {
		case 's':
			s := v.str
			cands := append(slices.Clone(strs), enumStrs...)
			for _, c := range cands {
				add("string", at(quoteJSON(c)), false)
			}
			add("lower", at(quoteJSON(strings.ToLower(s))), false)
			add("upper", at(quoteJSON(strings.ToUpper(s))), false)
			add("space", at(quoteJSON(" "+s)), false)
			add("suffix space", at(quoteJSON(s+" ")), false)
			add("suffix nl", at(quoteJSON(s+"\n")), false)
			add("escaped", at(escapeAll(s)), false)
			add("escaped slash", at(strings.ReplaceAll(quoteJSON(s), "/", `\/`)), false)
			if s != "" {
				add("escaped first", at(escapeAll(s[:1])[:7]+quoteJSON(s[1:])[1:]), false)
				add("drop first", at(quoteJSON(s[1:])), false)
				add("drop last", at(quoteJSON(s[:len(s)-1])), false)
			}
			n := utf8.RuneCountInString(s)
			for _, l := range lengths {
				if l > n {
					add(fmt.Sprintf("pad a %d", l), at(quoteJSON(s+strings.Repeat("a", l-n))), false)
					add(fmt.Sprintf("pad é %d", l), at(quoteJSON(s+strings.Repeat("é", l-n))), false)
					add(fmt.Sprintf("pad 😀 %d escaped", l), at(escapeAll(s+strings.Repeat("😀", l-n))), false)
					add(fmt.Sprintf("only é %d", l), at(quoteJSON(strings.Repeat("é", l))), false)
				} else {
					add(fmt.Sprintf("cut %d", l), at(quoteJSON(string([]rune(s)[:l]))), false)
				}
			}
			add("invalid utf-8", at(`"`+s+"\xff"+`"`), true)
			add("invalid utf-8 surrogate", at(`"`+s+"\xed\xa0\x80"+`"`), true)
			add("lone surrogate", at(`"`+s+`\ud800"`), true)
			add("lone low surrogate", at(`"`+s+`\udc00x"`), true)
			add("bad escape", at(`"`+s+`\x"`), false)
			add("short escape", at(`"`+s+`\u12"`), false)
			add("control char", at(`"`+s+"\x01"+`"`), false)
			add("unterminated", at(`"`+s), false)
		case 'r':
			for _, num := range numbers {
				add("number "+num, at(num), false)
			}
		case 'o':
			for i, k := range v.keys {
				var sb strings.Builder
				sb.WriteByte('{')
				first := true
				for j := range v.keys {
					if j == i {
						continue
					}
					if !first {
						sb.WriteByte(',')
					}
					first = false
					sb.WriteString(quoteJSON(v.keys[j]) + ":" + v.vals[j].text())
				}
				sb.WriteByte('}')
				add("drop "+k, at(sb.String()), false)
				body := v.text()
				member := quoteJSON(k) + ":" + v.vals[i].text()
				add("duplicate "+k, at(body[:len(body)-1]+","+member+"}"), true)
				add("duplicate "+k+" first wrong", at(`{`+quoteJSON(k)+`:{"zz":[]},`+body[1:]), true)
				add("duplicate "+k+" last wrong", at(body[:len(body)-1]+","+quoteJSON(k)+`:{"zz":[]}}`), true)
				add("escaped name "+k, at(strings.Replace(body, quoteJSON(k), escapeAll(k), 1)), true)
				add("extra escaped name "+k, at(body[:len(body)-1]+","+escapeAll(k)+":"+v.vals[i].text()+"}"), true)
				for _, e := range enumStrs {
					if e == v.vals[i].str {
						continue
					}
					add("duplicate "+k+" enum", at(body[:len(body)-1]+","+quoteJSON(k)+":"+quoteJSON(e)+"}"), true)
				}
			}
			body := v.text()
			sep := ","
			if len(v.keys) == 0 {
				sep = ""
			}
			add("extra", at(body[:len(body)-1]+sep+`"zzz":1}`), false)
			add("extra empty name", at(body[:len(body)-1]+sep+`"":1}`), false)
			for _, e := range enumStrs {
				add("extra "+e, at(body[:len(body)-1]+sep+quoteJSON(e)+`:"x"}`), slices.Contains(v.keys, e))
			}
			add("trailing comma", at(body[:len(body)-1]+",}"), false)
			add("empty", at(`{}`), false)
			add("spaced", at(strings.ReplaceAll(strings.ReplaceAll(body, ",", " ,\n\t"), ":", " : ")), false)
		case 'a':
			add("empty", at(`[]`), false)
			if len(v.vals) > 0 {
				first := v.vals[0].text()
				body := v.text()
				add("repeat first", at(body[:len(body)-1]+","+first+"]"), false)
				for _, n := range []int{63, 64, 65, 255, 256, 257} {
					add(fmt.Sprintf("%d items", n), at("["+strings.TrimSuffix(strings.Repeat(first+",", n), ",")+"]"), false)
				}
				add("trailing comma", at(body[:len(body)-1]+",]"), false)
				if v.vals[0].kind == 's' {
					var items []string
					for i := range 300 {
						items = append(items, quoteJSON(fmt.Sprintf("%s%d", v.vals[0].str, i)))
					}
					for _, n := range []int{2, 63, 64, 65, 256, 257} {
						add(fmt.Sprintf("%d distinct", n), at("["+strings.Join(items[:n], ",")+"]"), false)
					}
					add("repeat escaped", at(body[:len(body)-1]+","+escapeAll(v.vals[0].str)+"]"), false)
				}
			}
		}
	}
	doc := root.text()
	for _, d := range []string{doc + " x", doc + "\n", "\t" + doc, doc[:len(doc)-1], doc + "}", doc + "{}",
		"\ufeff" + doc, doc + "\u00a0", "[" + doc + "]", `null`, `"x"`, `1`, `[]`, `{}`, `{"a":1}{}`} {
		out = append(out, mutation{what: "document", data: d})
	}
	return out
}

// Mutations of every valid example, over every class: the compiled
// verdict equals the generic one, except where the compiled validator
// gives up on purpose (and then it answers false); and it never accepts
// what the generic path refuses.
func TestCompiledAgreesOnMutations(t *testing.T) {
	c := loadCatalog(t)
	enumStrs := schemaStrings(t)
	type counts struct{ total, bothValid, bothInvalid, gaveUp, gaveUpGenericValid int }
	per := map[string]*counts{}
	var sum counts
	for _, ex := range loadExamples(t) {
		if !ex.valid {
			continue
		}
		cn := per[ex.class]
		if cn == nil {
			cn = &counts{}
			per[ex.class] = cn
		}
		root := parseJV(t, ex.data())
		for _, m := range mutations(t, root, enumStrs) {
			typ, data := ex.typ(), []byte(m.data)
			want := generic(c, typ, data)
			got := c.ValidFast(typ, data)
			cn.total++
			switch {
			case got && !want:
				t.Errorf("%s %s: compiled accepts what the generic path refuses: %s", ex.file, m.what, m.data)
			case m.mayDiffer:
				if got {
					t.Errorf("%s %s: compiled should give up: %s", ex.file, m.what, m.data)
				}
				cn.gaveUp++
				if want {
					cn.gaveUpGenericValid++
				}
			case got != want:
				t.Errorf("%s %s: compiled %v, generic %v: %s", ex.file, m.what, got, want, m.data)
			case got:
				cn.bothValid++
			default:
				cn.bothInvalid++
			}
		}
	}
	for _, class := range schemas.Classes {
		cn := per[class]
		require.NotNil(t, cn, class)
		t.Logf("%-22s %6d mutations: %5d valid in both, %6d invalid in both, %5d given up (%d of them valid)",
			class, cn.total, cn.bothValid, cn.bothInvalid, cn.gaveUp, cn.gaveUpGenericValid)
		assert.Positive(t, cn.bothValid, class)
		assert.Positive(t, cn.bothInvalid, class)
		sum.total += cn.total
		sum.bothValid += cn.bothValid
		sum.bothInvalid += cn.bothInvalid
		sum.gaveUp += cn.gaveUp
		sum.gaveUpGenericValid += cn.gaveUpGenericValid
	}
	t.Logf("%-22s %6d mutations: %5d valid in both, %6d invalid in both, %5d given up (%d of them valid)",
		"all", sum.total, sum.bothValid, sum.bothInvalid, sum.gaveUp, sum.gaveUpGenericValid)
}

// The compiled validator never accepts what the generic path refuses.
// (The other direction, a valid signal it gives up on, is only slower; it
// is counted by TestCompiledAgreesOnMutations, not here.)
func FuzzCompiledAgreesWithGeneric(f *testing.F) {
	for _, ex := range loadExamples(f) {
		f.Add(uint8(slices.Index(schemas.Classes, ex.class)), []byte(ex.data()))
	}
	f.Add(uint8(2), []byte(`{"perceivedSeverity":"CLEARED","perceivedSeverity":"MAJOR"}`))
	f.Add(uint8(1), []byte(`{"utilisationPercent":100.00000000000000001}`))
	c := loadCatalog(f)
	f.Fuzz(func(t *testing.T, class uint8, data []byte) {
		typ := schemas.Type(schemas.Classes[int(class)%len(schemas.Classes)])
		if !c.ValidFast(typ, data) {
			return
		}
		if err := c.Validate(typ, data); err != nil || !generic(c, typ, data) {
			t.Fatalf("%s %q: compiled accepts what the generic path refuses: %v", typ, data, err)
		}
	})
}

func BenchmarkValidateClasses(b *testing.B) {
	c := loadCatalog(b)
	for _, ex := range loadExamples(b) {
		if !ex.valid {
			continue
		}
		typ, data := ex.typ(), ex.data()
		b.Run(strings.TrimSuffix(ex.file, ".json"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Validate(typ, data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(strings.TrimSuffix(ex.file, ".json")+"/generic", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := validateGeneric(typ, c.byType[typ], data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// dateTimePlain accepts only what the library's date-time format accepts,
// and accepts the date-times signals carry.
func TestDateTimePlain(t *testing.T) {
	format := compileSchema(t, `{"format":"date-time"}`).Format
	require.NotNil(t, format)
	for _, v := range []string{"2026-11-25T17:00:00Z", "2026-11-25T17:00:00.123456789Z", "2024-02-29T23:59:59.5Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"} {
		assert.True(t, dateTimePlain([]byte(v)), v)
		assert.NoError(t, format.Validate(v), v)
	}
	for _, v := range []string{
		"2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-01-00T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T23:59:60Z", "2026-01-01T00:00:00.Z",
		"2026-01-01t00:00:00Z", "2026-01-01T00:00:00z", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:00", "2026-1-01T00:00:00Z",
		"2026-01-01T00:00:0aZ", "+026-01-01T00:00:00Z", "2026-01-01T00:00:00.1aZ", "2026-01-01 00:00:00Z",
	} {
		assert.False(t, dateTimePlain([]byte(v)), v) // the library judges these
	}
}

// Whatever dateTimePlain accepts, the library's date-time format accepts.
func FuzzDateTimePlain(f *testing.F) {
	for _, v := range []string{"2026-11-25T17:00:00Z", "2024-02-29T23:59:59.5Z", "2025-02-29T00:00:00Z", "2026-01-01T23:59:60Z", "0000-02-29T00:00:00Z"} {
		f.Add(v)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(`{"format":"date-time"}`))
	require.NoError(f, err)
	require.NoError(f, c.AddResource("https://example.net/s.json", doc))
	s, err := c.Compile("https://example.net/s.json")
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, v string) {
		if dateTimePlain([]byte(v)) {
			if err := s.Format.Validate(v); err != nil {
				t.Fatalf("%q: dateTimePlain accepts, the library says %v", v, err)
			}
		}
	})
}
