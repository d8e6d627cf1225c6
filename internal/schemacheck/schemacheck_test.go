package schemacheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/anfed/anfed/schemas"
)

// example is one file of schemas/examples.
type example struct {
	file  string
	class string
	valid bool
	event map[string]json.RawMessage
}

func (e example) typ() string { return schemas.Type(e.class) }

func (e example) data() []byte { return e.event["data"] }

var exampleName = regexp.MustCompile(`^([a-z][a-z-]*)\.(valid|invalid)(?:-([2-9]|[1-9][0-9]+))?\.json$`)

func loadExamples(t testing.TB) []example {
	t.Helper()
	entries, err := fs.ReadDir(schemas.FS, "examples")
	require.NoError(t, err)
	var out []example
	for _, ent := range entries {
		m := exampleName.FindStringSubmatch(ent.Name())
		require.NotNil(t, m, "example file %q is not named <class>.valid[-N].json or <class>.invalid[-N].json", ent.Name())
		require.Contains(t, schemas.Classes, m[1], "example %q names an unknown class", ent.Name())
		b, err := schemas.FS.ReadFile(path.Join("examples", ent.Name()))
		require.NoError(t, err)
		var ev map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &ev), ent.Name())
		out = append(out, example{file: ent.Name(), class: m[1], valid: m[2] == "valid", event: ev})
	}
	require.NotEmpty(t, out)
	return out
}

func loadCatalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := Load()
	require.NoError(t, err)
	require.NotNil(t, c)
	return c
}

// invalidExamples says, for every invalid example, why it is invalid and
// where Validate must point.
var invalidExamples = map[string]struct {
	why     string
	pointer string
	message string // substring of DataError.Message
}{
	"performance-deviation.invalid.json":   {"direction is not above/below", "/direction", `value must be one of "above", "below"`},
	"performance-deviation.invalid-2.json": {"window has a start but neither end nor duration", "/window", `matches no alternative: missing property "end"; or missing property "duration"`},
	"congestion.invalid.json":              {"utilisation above 100 percent", "/utilisationPercent", "must be <= 100, got 112"},
	"congestion.invalid-2.json":            {"link kind is not interface/link/interconnect", "/link/kind", `value must be one of "interface", "link", "interconnect"`},
	"fault.invalid.json":                   {"perceivedSeverity is not upper case", "/perceivedSeverity", `value must be one of "CRITICAL", "MAJOR", "MINOR", "WARNING", "INDETERMINATE", "CLEARED"`},
	"fault.invalid-2.json":                 {"a CLEARED alarm without alarmClearedTime", "", `missing property "alarmClearedTime"`},
	"fault.invalid-3.json":                 {"causedBy names a CloudEvent source without its id", "/causedBy", `property "eventId" required when "source" is present`},
	"sla-risk.invalid.json":                {"probability above 1", "/probability", "must be <= 1, got 1.4"},
	"sla-breach.invalid.json":              {"breachStart is not an RFC 3339 date-time", "/breachStart", "is not valid date-time"},
	"maintenance.invalid.json":             {"contact email is not an email address", "/contact/email", "is not valid email"},
	"capacity.invalid.json":                {"negative headroom", "/available", "must be >= 0"},
	"intent-report.invalid.json":           {"no expectations", "/expectations", "must have at least 1 item, got 0"},
	"intent-report.invalid-2.json":         {"conditionMet is a string", "/expectations/1/result/conditionMet", "got string, want boolean"},
	"mitigation.invalid.json":              {"respondsTo is empty", "/respondsTo", "must have at least 1 item, got 0"},
	"mitigation.invalid-2.json":            {"unknown top-level property owner", "", `property "owner" not allowed`},
	"action.invalid.json":                  {"phase is not a step of the lifecycle", "/phase", `value must be one of "proposed", "accepted"`},
	"action.invalid-2.json":                {"a proposal without the duration it asks for", "", `missing property "duration"`},
	"intent.invalid.json":                  {"a proposal without expectations", "", `missing property "expectations"`},
	"intent.invalid-2.json":                {"a negative latency target", "/expectations/0/value", "must be >= 0"},
}

func TestLoad(t *testing.T) {
	c := loadCatalog(t)
	assert.Len(t, c.byType, len(schemas.Classes))
	for _, class := range schemas.Classes {
		assert.Contains(t, c.byType, schemas.Type(class))
	}
}

func TestValidExamples(t *testing.T) {
	c := loadCatalog(t)
	for _, ex := range loadExamples(t) {
		if !ex.valid {
			continue
		}
		t.Run(ex.file, func(t *testing.T) {
			assert.NoError(t, c.Validate(ex.typ(), ex.data()))
		})
	}
}

func TestInvalidExamples(t *testing.T) {
	c := loadCatalog(t)
	seen := map[string]bool{}
	for _, ex := range loadExamples(t) {
		if ex.valid {
			continue
		}
		seen[ex.file] = true
		t.Run(ex.file, func(t *testing.T) {
			want, ok := invalidExamples[ex.file]
			require.True(t, ok, "invalid example %s has no entry in invalidExamples", ex.file)
			err := c.Validate(ex.typ(), ex.data())
			t.Log(err)
			var derr *DataError
			require.ErrorAs(t, err, &derr, "%s: %s", ex.file, want.why)
			assert.Equal(t, ex.typ(), derr.Type)
			assert.Equal(t, want.pointer, derr.Pointer, "%s: %s: %v", ex.file, want.why, err)
			assert.Contains(t, derr.Message, want.message, want.why)
			assert.False(t, errors.Is(err, ErrUnknownType))
		})
	}
	for file := range invalidExamples {
		assert.True(t, seen[file], "invalidExamples lists %s, which is not in schemas/examples", file)
	}
}

func TestDataErrorText(t *testing.T) {
	c := loadCatalog(t)
	tests := []struct {
		typ, data, want string
	}{
		{
			"net.anfed.fault.v1",
			`{"alarmType":"equipmentAlarm","perceivedSeverity":"BAD","probableCause":"x","specificProblem":"y","alarmedObject":{"id":"a","type":"port"},"alarmRaisedTime":"2026-03-14T08:58:41Z"}`,
			`data does not match net.anfed.fault.v1 at /perceivedSeverity: value must be one of "CRITICAL", "MAJOR", "MINOR", "WARNING", "INDETERMINATE", "CLEARED"`,
		},
		{
			"net.anfed.capacity.v1",
			`{"resource":{"id":"ic-1","type":"interconnect"},"unit":"Mbit/s","total":10,"available":5}`,
			`data does not match net.anfed.capacity.v1: missing property "validUntil"`,
		},
		{
			"net.anfed.mitigation.v1",
			`[]`,
			`data does not match net.anfed.mitigation.v1: got array, want object`,
		},
		{
			"net.anfed.sla-breach.v1",
			`{"slaId":`,
			`data does not match net.anfed.sla-breach.v1: data is not valid JSON: unexpected end of input`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			err := c.Validate(tt.typ, []byte(tt.data))
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

func TestUnknownType(t *testing.T) {
	c := loadCatalog(t)
	data := loadExamples(t)[0].data()
	for _, typ := range []string{
		"net.anfed.congestoin.v1",
		"net.anfed.fault.v2",
		"net.anfed.fault",
		"NET.ANFED.FAULT.V1",
		"com.example.fault.v1",
		"",
	} {
		t.Run(typ, func(t *testing.T) {
			err := c.Validate(typ, data)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrUnknownType)
			var derr *DataError
			assert.False(t, errors.As(err, &derr))
			msg := err.Error()
			assert.Contains(t, msg, fmt.Sprintf("unknown signal type %q: known types are ", typ))
			for _, class := range schemas.Classes {
				assert.Contains(t, msg, schemas.Type(class))
			}
		})
	}
	err := c.Validate("net.anfed.congestoin.v1", nil)
	assert.True(t, strings.HasPrefix(err.Error(),
		`unknown signal type "net.anfed.congestoin.v1": known types are net.anfed.performance-deviation.v1, net.anfed.congestion.v1, `), err.Error())
}

func TestMalformedData(t *testing.T) {
	c := loadCatalog(t)
	typ := schemas.Type("fault")
	tests := []struct {
		name, data, message string
	}{
		{"nil", "", "data is empty"},
		{"blank", " \n\t", "data is empty"},
		{"truncated", `{"alarmType":`, "not valid JSON"},
		{"garbage", `not json`, "not valid JSON"},
		{"trailing", `{"alarmType":"equipmentAlarm"} {}`, "not valid JSON"},
		{"bad escape", `{"a":"\q"}`, "not valid JSON"},
		{"array", `[1,2,3]`, "got array, want object"},
		{"string", `"fault"`, "got string, want object"},
		{"null", `null`, "got null, want object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Validate(typ, []byte(tt.data))
			var derr *DataError
			require.ErrorAs(t, err, &derr)
			assert.Equal(t, typ, derr.Type)
			assert.Equal(t, "", derr.Pointer)
			assert.Contains(t, derr.Message, tt.message)
			assert.NotErrorIs(t, err, ErrUnknownType)
		})
	}
}

// TestInvalidUnicodeRefused: data valid against its schema but for an
// invalid UTF-8 byte or a lone surrogate escape in a string — which
// encoding/json and the schema library repair to U+FFFD and accept — is
// refused: the compiled validator gives up on it and the generic path
// says where it is.
func TestInvalidUnicodeRefused(t *testing.T) {
	c := loadCatalog(t)
	typ := schemas.Type("fault")
	data := func(problem string) []byte {
		return []byte(`{"alarmType":"communicationsAlarm","perceivedSeverity":"MAJOR","probableCause":"linkDown","specificProblem":"` + problem +
			`","alarmedObject":{"id":"ic-1","type":"interconnect"},"alarmRaisedTime":"2026-11-25T17:00:00Z"}`)
	}
	require.NoError(t, c.Validate(typ, data(`LOS é \ud83d\ude00`)), "the control is valid")
	for name, tt := range map[string]struct{ problem, message string }{
		"invalid byte":       {"LOS \xff", "at byte 113, byte 0xff is not UTF-8"},
		"encoded surrogate":  {"LOS \xed\xa0\x80", "at byte 113, byte 0xed is not UTF-8"},
		"lone surrogate":     {`LOS \ud800`, `at byte 113, \ud800 is a lone surrogate`},
		"lone low surrogate": {`LOS \udfff!`, `at byte 113, \udfff is a lone surrogate`},
	} {
		t.Run(name, func(t *testing.T) {
			d := data(tt.problem)
			assert.False(t, c.ValidFast(typ, d))
			err := c.Validate(typ, d)
			var derr *DataError
			require.ErrorAs(t, err, &derr)
			assert.Contains(t, derr.Message, tt.message)
		})
	}
}

// TestHugeNumbers: numbers outside the range of a double are rejected before
// the validator sees them (it is slow on 1e999999 and panics on 1e99999999).
func TestHugeNumbers(t *testing.T) {
	c := loadCatalog(t)
	typ := schemas.Type("congestion")
	tests := []struct {
		name, data, pointer, message string
	}{
		{"huge exponent", `{"utilisationPercent": 1e99999999}`, "/utilisationPercent", "number 1e99999999 is outside the range of a double"},
		{"large exponent", `{"utilisationPercent": 1e999999}`, "/utilisationPercent", "outside the range of a double"},
		{"tiny exponent", `{"queueDelayMs": 1E-99999999}`, "/queueDelayMs", "outside the range of a double"},
		{"overflow", `{"queueDelayMs": 2e308}`, "/queueDelayMs", "outside the range of a double"},
		{"nested", `{"link": {"x": [0, -1e500]}}`, "/link/x/1", "outside the range of a double"},
		{"long", `{"queueDelayMs": 1.` + strings.Repeat("1", 100) + `}`, "/queueDelayMs", "more than 64 characters"},
		{"smallest pointer wins", `{"b": 1e999, "a": 1e999, "c": [1e999]}`, "/a", "outside the range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := c.Validate(typ, []byte(tt.data))
			assert.Less(t, time.Since(start), time.Second)
			var derr *DataError
			require.ErrorAs(t, err, &derr)
			assert.Equal(t, tt.pointer, derr.Pointer)
			assert.Contains(t, derr.Message, tt.message)
		})
	}
	// In range: validated normally, and the message stays short.
	err := c.Validate(typ, []byte(`{"link":{"id":"l","kind":"link"},"direction":"both","utilisationPercent":1e300,"packetLossPercent":0,"queueDelayMs":0,"trafficClasses":["BE"]}`))
	assert.EqualError(t, err, "data does not match net.anfed.congestion.v1 at /utilisationPercent: must be <= 100, got 1e+300")
}

func TestPointerEscaping(t *testing.T) {
	assert.Equal(t, "", pointer(nil))
	assert.Equal(t, "/a~1b/c~0d/0", pointer([]string{"a/b", "c~d", "0"}))
}

// TestDeterministicErrors: the validator walks objects in map order; the
// chosen error and its text must not depend on it.
func TestDeterministicErrors(t *testing.T) {
	c := loadCatalog(t)
	data := []byte(`{"action":"Reroute","status":"done","respondsTo":[],"target":{"id":"x"},"expectedEffect":"","zeta":1,"alpha":2,"mid":3}`)
	first := c.Validate(schemas.Type("mitigation"), data)
	require.Error(t, first)
	for range 200 {
		assert.Equal(t, first.Error(), c.Validate(schemas.Type("mitigation"), data).Error())
	}
	all := []byte(`{"action":"reroute","status":"completed","respondsTo":[{"source":"anfed://op-a/x","id":"1"}],"target":{"id":"x","type":"y"},"expectedEffect":"e","zeta":1,"alpha":2,"mid":3}`)
	err := c.Validate(schemas.Type("mitigation"), all)
	require.Error(t, err)
	assert.Equal(t, `data does not match net.anfed.mitigation.v1: properties "alpha", "mid", "zeta" not allowed`, err.Error())
}

func TestConcurrentValidate(t *testing.T) {
	c := loadCatalog(t)
	exs := loadExamples(t)
	const goroutines, rounds = 32, 20
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				ex := exs[(g+r)%len(exs)]
				err := c.Validate(ex.typ(), ex.data())
				if (err == nil) != ex.valid {
					errs <- fmt.Sprintf("%s: valid=%v, got %v", ex.file, ex.valid, err)
					return
				}
				if err := c.Validate("net.anfed.nope.v1", ex.data()); !errors.Is(err, ErrUnknownType) {
					errs <- fmt.Sprintf("unknown type: got %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestCatalogFiles: no stray schema, and every class has its schema and at
// least one valid and one invalid example.
func TestCatalogFiles(t *testing.T) {
	entries, err := fs.ReadDir(schemas.FS, ".")
	require.NoError(t, err)
	var files []string
	for _, ent := range entries {
		if !ent.IsDir() {
			files = append(files, ent.Name())
		}
	}
	for _, f := range files {
		class, ok := strings.CutSuffix(f, ".v1.json")
		assert.True(t, ok && slices.Contains(schemas.Classes, class), "schemas/%s is not the schema of a class in schemas.Classes", f)
	}
	for _, class := range schemas.Classes {
		assert.Contains(t, files, schemas.SchemaFile(class))
	}
	assert.Len(t, files, len(schemas.Classes))

	valid, invalid := map[string]int{}, map[string]int{}
	for _, ex := range loadExamples(t) {
		if ex.valid {
			valid[ex.class]++
		} else {
			invalid[ex.class]++
		}
	}
	for _, class := range schemas.Classes {
		assert.Positive(t, valid[class], "class %s has no valid example", class)
		assert.Positive(t, invalid[class], "class %s has no invalid example", class)
	}
}

// Envelope attributes an example may carry: CloudEvents core attributes and
// the extensions listed in DESIGN.md, nothing else.
var envelopeAttrs = []string{
	"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data",
	"dssematerial", "signedextattrs", "correlationid", "causationid", "expirytime",
	"severitytext", "severitynumber", "sequence", "traceparent", "tracestate",
	"anfedorigin", "anfedstate", "anfedpath",
}

var severityNumber = map[string]int{"INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21}

// perceivedToSeverity is the TMF642 perceivedSeverity mapping of docs/signals.md.
var perceivedToSeverity = map[string]string{
	"CRITICAL": "FATAL", "MAJOR": "ERROR", "MINOR": "WARN", "WARNING": "WARN",
	"INDETERMINATE": "INFO", "CLEARED": "INFO",
}

var (
	sourceRe  = regexp.MustCompile(`^anfed://([a-z][a-z0-9-]{0,31})/\S+$`)
	subjectRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._:-]*/[a-z0-9][a-z0-9._:-]*$`)
)

func TestExampleEnvelopes(t *testing.T) {
	for _, ex := range loadExamples(t) {
		t.Run(ex.file, func(t *testing.T) {
			str := func(k string) string {
				var s string
				raw, ok := ex.event[k]
				require.True(t, ok, "missing attribute %s", k)
				require.NoError(t, json.Unmarshal(raw, &s), "attribute %s is not a string", k)
				return s
			}
			for k := range ex.event {
				assert.Contains(t, envelopeAttrs, k, "attribute %s is neither a CloudEvents core attribute nor a DESIGN.md extension", k)
			}
			assert.Equal(t, "1.0", str("specversion"))
			assert.NotEmpty(t, str("id"))
			m := sourceRe.FindStringSubmatch(str("source"))
			require.NotNil(t, m, "source %q", str("source"))
			assert.Equal(t, m[1], str("anfedorigin"), "anfedorigin must be the source's operator")
			assert.Equal(t, ex.typ(), str("type"))
			assert.Regexp(t, subjectRe, str("subject"))
			_, err := time.Parse(time.RFC3339, str("time"))
			assert.NoError(t, err)
			assert.Equal(t, "application/json", str("datacontenttype"))
			assert.Equal(t, schemas.SchemaURI(ex.class), str("dataschema"))
			assert.Contains(t, []string{"raised", "updated", "cleared"}, str("anfedstate"))
			text := str("severitytext")
			var num int
			require.NoError(t, json.Unmarshal(ex.event["severitynumber"], &num))
			want, ok := severityNumber[text]
			assert.True(t, ok, "severitytext %q", text)
			assert.Equal(t, want, num, "severitynumber of %s", text)
			var data map[string]any
			require.NoError(t, json.Unmarshal(ex.data(), &data), "data must be a JSON object")
			if ex.class == "fault" && ex.valid {
				ps, _ := data["perceivedSeverity"].(string)
				assert.Equal(t, perceivedToSeverity[ps], text, "severitytext of a %s alarm", ps)
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	c := loadCatalog(b)
	var ex example
	for _, e := range loadExamples(b) {
		if e.file == "fault.valid.json" {
			ex = e
		}
	}
	typ, data := ex.typ(), ex.data()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := c.Validate(typ, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
