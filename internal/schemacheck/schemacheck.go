// Package schemacheck is the "schema check" step of a signal's journey: it
// validates the data of a CloudEvent against the JSON Schema of its type, from
// the catalog embedded in package schemas.
package schemacheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/anfed/anfed/internal/signal"
	"github.com/anfed/anfed/schemas"
)

// ErrUnknownType is returned (wrapped) by Validate for a CloudEvent type that
// is not in the catalog.
var ErrUnknownType = errors.New("unknown signal type")

// DataError reports data that is not JSON or does not match the schema of its
// type.
type DataError struct {
	// Type is the CloudEvent type the data was checked against.
	Type string
	// Pointer is the JSON Pointer (RFC 6901) of the offending value in data;
	// "" for the whole document, including when data is not valid JSON.
	Pointer string
	// Message says what is wrong, e.g. `missing property "kpi"`.
	Message string
}

func (e *DataError) Error() string {
	if e.Pointer == "" {
		return fmt.Sprintf("data does not match %s: %s", e.Type, e.Message)
	}
	return fmt.Sprintf("data does not match %s at %s: %s", e.Type, e.Pointer, e.Message)
}

// Catalog holds every class schema, compiled once. It is safe for concurrent
// use.
type Catalog struct {
	byType map[string]*jsonschema.Schema
	// fast holds the compiled validator of each type whose schema it
	// supports; fastErr says why the others have none.
	fast    map[string]*node
	fastErr map[string]error
	types   []string // catalog order, for error hints
	hint    string
}

// Load compiles every schema embedded in package schemas (draft 2020-12,
// format assertions on) and checks that each declares the expected $schema
// and $id.
func Load() (*Catalog, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	for _, class := range schemas.Classes {
		b, err := schemas.FS.ReadFile(schemas.SchemaFile(class))
		if err != nil {
			return nil, fmt.Errorf("schemacheck: schema of class %q: %w", class, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schemacheck: schema of class %q: %w", class, err)
		}
		obj, _ := doc.(map[string]any)
		if got := obj["$schema"]; got != "https://json-schema.org/draft/2020-12/schema" {
			return nil, fmt.Errorf("schemacheck: schema of class %q: $schema is %v, want draft 2020-12", class, got)
		}
		if got, want := obj["$id"], schemas.SchemaURI(class); got != want {
			return nil, fmt.Errorf("schemacheck: schema of class %q: $id is %v, want %s", class, got, want)
		}
		if err := c.AddResource(schemas.SchemaURI(class), doc); err != nil {
			return nil, fmt.Errorf("schemacheck: schema of class %q: %w", class, err)
		}
	}
	cat := &Catalog{
		byType:  make(map[string]*jsonschema.Schema, len(schemas.Classes)),
		fast:    make(map[string]*node, len(schemas.Classes)),
		fastErr: make(map[string]error),
	}
	for _, class := range schemas.Classes {
		sch, err := c.Compile(schemas.SchemaURI(class))
		if err != nil {
			return nil, fmt.Errorf("schemacheck: compile schema of class %q: %w", class, err)
		}
		typ := schemas.Type(class)
		cat.byType[typ] = sch
		if n, err := compileFast(sch); err == nil {
			cat.fast[typ] = n
		} else {
			cat.fastErr[typ] = err // that type takes the generic path only
		}
		cat.types = append(cat.types, typ)
	}
	cat.hint = strings.Join(cat.types, ", ")
	return cat, nil
}

// Validate checks data, the JSON data of a CloudEvent of type eventType,
// against the schema of that type. It returns nil when data matches, an
// error wrapping ErrUnknownType when the catalog has no such type, and a
// *DataError when data is not JSON or does not match.
func (c *Catalog) Validate(eventType string, data []byte) error {
	sch, ok := c.byType[eventType]
	if !ok {
		return fmt.Errorf("%w %q: known types are %s", ErrUnknownType, eventType, c.hint)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return &DataError{Type: eventType, Message: "data is empty, want a JSON object"}
	}
	if n := c.fast[eventType]; n != nil && validFast(n, data) {
		return nil
	}
	return validateGeneric(eventType, sch, data)
}

// ValidFast tells whether the compiled validator alone accepts data as a
// valid eventType: what Validate answers nil to without its generic path.
// False means invalid or not decided there. For tests that check their
// signals take the fast path.
func (c *Catalog) ValidFast(eventType string, data []byte) bool {
	n := c.fast[eventType]
	return n != nil && validFast(n, data)
}

// validateGeneric is the generic path of Validate (after the type and
// emptiness checks): decode, checkNumbers, then the library. It is the
// reference the compiled validator is held to, and the only source of
// errors.
func validateGeneric(eventType string, sch *jsonschema.Schema, data []byte) error {
	// The compiled validator gives up on invalid UTF-8 and lone surrogate
	// escapes; encoding/json and the library would repair them to U+FFFD
	// and could accept the data. Data is forwarded as its bytes: refuse.
	if off, what, bad := signal.BadUnicode(data); bad {
		return &DataError{Type: eventType, Message: fmt.Sprintf("data is not UTF-8 text: at byte %d, %s", off, what)}
	}
	v, ok := decodeFast(data)
	if !ok {
		var err error
		if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
			return &DataError{Type: eventType, Message: "data is not valid JSON: " + jsonErrorText(err)}
		}
	}
	if ptr, msg, bad := checkNumbers(v); bad {
		return &DataError{Type: eventType, Pointer: ptr, Message: msg}
	}
	err := sch.Validate(v)
	if err == nil {
		return nil
	}
	var verr *jsonschema.ValidationError
	if !errors.As(err, &verr) {
		return &DataError{Type: eventType, Message: err.Error()}
	}
	f := mostSpecific(verr)
	return &DataError{Type: eventType, Pointer: f.ptr, Message: f.msg}
}

// finding is one candidate answer drawn from a jsonschema error tree.
type finding struct {
	loc []string
	ptr string
	msg string
}

// mostSpecific reduces the error tree to one finding: the leaf whose instance
// location is the deepest; ties go to the smallest pointer, then the smallest
// message, so the choice does not depend on map iteration order inside the
// validator. When every alternative of an anyOf/oneOf fails at the location
// of the anyOf/oneOf itself, the alternatives are reported together.
func mostSpecific(e *jsonschema.ValidationError) finding {
	if len(e.Causes) == 0 {
		return finding{loc: e.InstanceLocation, ptr: pointer(e.InstanceLocation), msg: kindText(e.ErrorKind)}
	}
	subs := make([]finding, len(e.Causes))
	for i, c := range e.Causes {
		subs[i] = mostSpecific(c)
	}
	if alternatives(e.ErrorKind) && len(subs) > 1 {
		same := true
		for _, f := range subs {
			same = same && len(f.loc) == len(e.InstanceLocation)
		}
		if same {
			var msgs []string
			for _, f := range subs {
				if !slices.Contains(msgs, f.msg) {
					msgs = append(msgs, f.msg)
				}
			}
			if len(msgs) > 1 {
				return finding{loc: e.InstanceLocation, ptr: pointer(e.InstanceLocation),
					msg: "matches no alternative: " + strings.Join(msgs, "; or ")}
			}
		}
	}
	best := subs[0]
	for _, f := range subs[1:] {
		if better(f, best) {
			best = f
		}
	}
	return best
}

// alternatives tells whether k is an anyOf, or a oneOf that matched nothing.
func alternatives(k jsonschema.ErrorKind) bool {
	switch k := k.(type) {
	case *kind.AnyOf:
		return true
	case *kind.OneOf:
		return k.Subschemas == nil
	}
	return false
}

func better(f, than finding) bool {
	if len(f.loc) != len(than.loc) {
		return len(f.loc) > len(than.loc)
	}
	if f.ptr != than.ptr {
		return f.ptr < than.ptr
	}
	return f.msg < than.msg
}

var printer = message.NewPrinter(language.English)

// kindText renders an error kind. The common kinds get a message of our own,
// with values quoted as JSON and lists in a stable order; the others fall back
// to the library's English text.
func kindText(k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.Required:
		return "missing " + plural(len(k.Missing), "property", "properties") + " " + quoteAll(k.Missing)
	case *kind.AdditionalProperties:
		props := slices.Clone(k.Properties)
		slices.Sort(props)
		return plural(len(props), "property", "properties") + " " + quoteAll(props) + " not allowed"
	case *kind.DependentRequired:
		return plural(len(k.Missing), "property", "properties") + " " + quoteAll(k.Missing) +
			" required when " + jsonText(k.Prop) + " is present"
	case *kind.Enum:
		want := make([]string, len(k.Want))
		for i, w := range k.Want {
			want[i] = jsonText(w)
		}
		if len(want) == 1 {
			return "value must be " + want[0]
		}
		return "value must be one of " + strings.Join(want, ", ")
	case *kind.Const:
		return "value must be " + jsonText(k.Want)
	case *kind.Type:
		return fmt.Sprintf("got %s, want %s", k.Got, strings.Join(k.Want, " or "))
	case *kind.Minimum:
		return fmt.Sprintf("must be >= %s, got %s", ratText(k.Want), ratText(k.Got))
	case *kind.Maximum:
		return fmt.Sprintf("must be <= %s, got %s", ratText(k.Want), ratText(k.Got))
	case *kind.ExclusiveMinimum:
		return fmt.Sprintf("must be > %s, got %s", ratText(k.Want), ratText(k.Got))
	case *kind.ExclusiveMaximum:
		return fmt.Sprintf("must be < %s, got %s", ratText(k.Want), ratText(k.Got))
	case *kind.MinItems:
		return fmt.Sprintf("must have at least %d %s, got %d", k.Want, plural(k.Want, "item", "items"), k.Got)
	case *kind.MaxItems:
		return fmt.Sprintf("must have at most %d %s, got %d", k.Want, plural(k.Want, "item", "items"), k.Got)
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %d %s long, got %d", k.Want, plural(k.Want, "character", "characters"), k.Got)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %d %s long, got %d", k.Want, plural(k.Want, "character", "characters"), k.Got)
	case *kind.Pattern:
		return fmt.Sprintf("%s does not match pattern %s", jsonText(k.Got), jsonText(k.Want))
	case *kind.Format:
		return fmt.Sprintf("%s is not valid %s: %v", jsonText(k.Got), k.Want, k.Err)
	case *kind.UniqueItems:
		return fmt.Sprintf("items at %d and %d are equal", k.Duplicates[0], k.Duplicates[1])
	}
	return k.LocalizedString(printer)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = jsonText(s)
	}
	return strings.Join(q, ", ")
}

// jsonText renders a value as JSON, without HTML escaping ("<=" stays "<=").
func jsonText(v any) string {
	switch v.(type) {
	case []any, map[string]any:
		return "value"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func ratText(r *big.Rat) string {
	if r == nil {
		return "?"
	}
	if r.IsInt() && r.Num().IsInt64() {
		return r.Num().String()
	}
	return new(big.Float).SetPrec(64).SetRat(r).Text('g', -1)
}

// Limits on JSON numbers. The validator turns every number it checks into a
// big.Rat: an exponent such as 1e999999 costs it time and memory, and one such
// as 1e99999999 makes it panic (jsonschema v6.0.3). Signals only need numbers
// that fit an IEEE 754 double, the interoperable range of RFC 8259 section 6.
const (
	maxNumberLen      = 64
	maxNumberExponent = 400
)

// checkNumbers finds a number in v that is outside the limits above. When
// there are several, it reports the one with the smallest pointer, so the
// answer does not depend on map iteration order.
func checkNumbers(v any) (ptr, msg string, bad bool) {
	var path []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case json.Number:
			if m, ok := numberProblem(string(v)); ok {
				p := pointer(path)
				if !bad || p < ptr {
					ptr, msg, bad = p, m, true
				}
			}
		case map[string]any:
			for k, x := range v {
				path = append(path, k)
				walk(x)
				path = path[:len(path)-1]
			}
		case []any:
			for i, x := range v {
				path = append(path, strconv.Itoa(i))
				walk(x)
				path = path[:len(path)-1]
			}
		}
	}
	walk(v)
	return ptr, msg, bad
}

func numberProblem(n string) (string, bool) {
	if len(n) > maxNumberLen {
		return fmt.Sprintf("number %s… has more than %d characters", n[:16], maxNumberLen), true
	}
	if i := strings.IndexAny(n, "eE"); i >= 0 {
		exp, err := strconv.Atoi(n[i+1:])
		if err != nil || exp > maxNumberExponent || exp < -maxNumberExponent {
			return fmt.Sprintf("number %s is outside the range of a double", n), true
		}
	}
	if _, err := strconv.ParseFloat(n, 64); err != nil {
		return fmt.Sprintf("number %s is outside the range of a double", n), true
	}
	return "", false
}

// pointer builds an RFC 6901 JSON Pointer from reference tokens.
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		t = strings.ReplaceAll(t, "/", "~1")
		sb.WriteString(t)
	}
	return sb.String()
}

func jsonErrorText(err error) string {
	var serr *json.SyntaxError
	if errors.As(err, &serr) {
		return fmt.Sprintf("%s (at byte %d)", serr.Error(), serr.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}
