package schemacheck

import (
	"encoding/binary"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/anfed/anfed/internal/signal"
)

// The compiled validator: a fast path in front of the generic one. At Load
// each class schema, as the library compiled it, becomes a tree of nodes
// that check the raw JSON bytes of data. Its answer is one-sided: true
// means the generic path (decode, checkNumbers, jsonschema) accepts data
// too; false means "invalid, or not sure", and Validate then runs the
// generic path, which alone produces the errors. So it must never accept
// what the generic path refuses, and it refuses (gives up on) whatever it
// does not model exactly: duplicate names, escaped names, invalid UTF-8,
// lone surrogates, numbers checkNumbers refuses, deep nesting, big objects.

// JSON kinds, as bits, for "type".
const (
	kNull uint8 = 1 << iota
	kBool
	kNumber
	kString
	kArray
	kObject
)

// Limits of the fast path; beyond them it gives up and the generic path
// answers.
const (
	fastMaxDepth = 64  // nesting
	fastMaxKeys  = 64  // names in one object (the duplicate check is quadratic)
	fastMaxItems = 512 // items of an array with uniqueItems (pairwise check)
	maxNames     = 64  // names a node's object keywords mention (a bit mask)
)

// node is one compiled schema.
type node struct {
	never bool  // the false schema
	types uint8 // 0: no "type"

	enum     []string // string members; nil: no "enum"
	hasEnum  bool
	constStr *string
	format   *jsonschema.Format
	dateTime bool // format date-time: dateTimePlain accepts without the library

	ref    *node
	anyOf  []*node
	ifN    *node
	thenN  *node
	object *objNode

	minItems, maxItems int // -1: absent
	unique             bool
	items              *node

	minLen, maxLen int // -1: absent
	pattern        jsonschema.Regexp

	minimum, maximum *bound
}

// objNode holds a node's object keywords. Every name they mention has an
// index, so presence is a bit mask.
type objNode struct {
	index      map[string]int
	names      []string // by index: a scan beats the map for a dozen names
	props      []*node  // by index; nil for names that are not properties
	required   uint64
	depReq     []depReq
	additional int // addAny, addNone, addSchema
	addSchema  *node
}

type depReq struct {
	if_  uint64
	then uint64
}

const (
	addAny = iota
	addNone
	addSchema
)

// bound is a minimum or maximum.
type bound struct {
	r *big.Rat
	f float64 // r rounded to the nearest double
	// small: r is an integer of magnitude below 1e15, so a number of at
	// most 15 digits and no exponent whose double equals f equals r.
	small bool
}

// compiler turns library schemas into nodes.
type compiler struct {
	done map[*jsonschema.Schema]*node
}

// compileFast compiles a library schema, or says which keyword it does not
// support.
func compileFast(s *jsonschema.Schema) (*node, error) {
	c := &compiler{done: map[*jsonschema.Schema]*node{}}
	return c.compile(s)
}

// Schema fields the compiler supports, and those it may ignore (annotations
// and identifiers). Any other field that is set makes the schema
// unsupported: a keyword added to a schema later is noticed, not ignored.
var (
	supportedFields = map[string]bool{
		"Bool": true, "Ref": true, "Types": true, "Enum": true, "Const": true,
		"AnyOf": true, "If": true, "Then": true, "Format": true,
		"Required": true, "Properties": true, "AdditionalProperties": true, "DependentRequired": true,
		"MinItems": true, "MaxItems": true, "UniqueItems": true, "Items2020": true,
		"MinLength": true, "MaxLength": true, "Pattern": true,
		"Minimum": true, "Maximum": true,
	}
	ignoredFields = map[string]bool{
		"DraftVersion": true, "Location": true, "ID": true, "Anchor": true,
		"Title": true, "Description": true, "Default": true, "Comment": true,
		"ReadOnly": true, "WriteOnly": true, "Examples": true, "Deprecated": true,
	}
)

func (c *compiler) compile(s *jsonschema.Schema) (*node, error) {
	if n, ok := c.done[s]; ok {
		return n, nil
	}
	n := &node{minItems: -1, maxItems: -1, minLen: -1, maxLen: -1}
	c.done[s] = n
	if s.DraftVersion != 2020 {
		return nil, fmt.Errorf("%s: draft %d, want 2020", s.Location, s.DraftVersion)
	}
	rv := reflect.ValueOf(s).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		if !f.IsExported() || supportedFields[f.Name] || ignoredFields[f.Name] {
			continue
		}
		if !rv.Field(i).IsZero() {
			return nil, fmt.Errorf("%s: keyword %s is not supported by the compiled validator", s.Location, f.Name)
		}
	}
	if s.Bool != nil {
		n.never = !*s.Bool
		return n, nil
	}
	var err error
	sub := func(x *jsonschema.Schema) *node {
		if x == nil || err != nil {
			return nil
		}
		var m *node
		m, err = c.compile(x)
		return m
	}
	if s.Types != nil {
		for _, t := range s.Types.ToStrings() {
			switch t {
			case "null":
				n.types |= kNull
			case "boolean":
				n.types |= kBool
			case "number":
				n.types |= kNumber
			case "string":
				n.types |= kString
			case "array":
				n.types |= kArray
			case "object":
				n.types |= kObject
			default: // "integer" needs the library's isInteger: not modelled
				return nil, fmt.Errorf("%s: type %q is not supported", s.Location, t)
			}
		}
	}
	if s.Enum != nil {
		n.hasEnum = true
		n.enum = []string{}
		for _, v := range s.Enum.Values {
			str, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s: enum member %v is not a string", s.Location, v)
			}
			n.enum = append(n.enum, str)
		}
	}
	if s.Const != nil {
		str, ok := (*s.Const).(string)
		if !ok {
			return nil, fmt.Errorf("%s: const %v is not a string", s.Location, *s.Const)
		}
		n.constStr = &str
	}
	if s.Format != nil {
		if s.Format.Name == "regex" { // the library may use its regexp engine
			return nil, fmt.Errorf("%s: format regex is not supported", s.Location)
		}
		n.format = s.Format
		n.dateTime = s.Format.Name == "date-time"
	}
	n.ref = sub(s.Ref)
	for _, a := range s.AnyOf {
		n.anyOf = append(n.anyOf, sub(a))
	}
	if s.If != nil { // "then" without "if" is ignored, as by the library
		n.ifN = sub(s.If)
		n.thenN = sub(s.Then)
	}
	if err != nil {
		return nil, err
	}
	if len(s.Required) > 0 || len(s.Properties) > 0 || s.AdditionalProperties != nil || len(s.DependentRequired) > 0 {
		o := &objNode{index: map[string]int{}}
		name := func(p string) (int, error) {
			if i, ok := o.index[p]; ok {
				return i, nil
			}
			if len(o.props) == maxNames {
				return 0, fmt.Errorf("%s: more than %d property names", s.Location, maxNames)
			}
			o.index[p] = len(o.props)
			o.names = append(o.names, p)
			o.props = append(o.props, nil)
			return len(o.props) - 1, nil
		}
		for p, ps := range s.Properties {
			i, err := name(p)
			if err != nil {
				return nil, err
			}
			if o.props[i], err = c.compile(ps); err != nil {
				return nil, err
			}
		}
		for _, p := range s.Required {
			i, err := name(p)
			if err != nil {
				return nil, err
			}
			o.required |= 1 << i
		}
		for p, deps := range s.DependentRequired {
			i, err := name(p)
			if err != nil {
				return nil, err
			}
			d := depReq{if_: 1 << i}
			for _, q := range deps {
				j, err := name(q)
				if err != nil {
					return nil, err
				}
				d.then |= 1 << j
			}
			o.depReq = append(o.depReq, d)
		}
		switch a := s.AdditionalProperties.(type) {
		case nil:
		case bool:
			if !a {
				o.additional = addNone
			}
		case *jsonschema.Schema:
			m, err := c.compile(a)
			if err != nil {
				return nil, err
			}
			o.additional, o.addSchema = addSchema, m
		default:
			return nil, fmt.Errorf("%s: additionalProperties of type %T", s.Location, a)
		}
		n.object = o
	}
	if s.MinItems != nil {
		n.minItems = *s.MinItems
	}
	if s.MaxItems != nil {
		n.maxItems = *s.MaxItems
	}
	n.unique = s.UniqueItems
	if s.Items2020 != nil {
		var err error
		if n.items, err = c.compile(s.Items2020); err != nil {
			return nil, err
		}
	}
	if s.MinLength != nil {
		n.minLen = *s.MinLength
	}
	if s.MaxLength != nil {
		n.maxLen = *s.MaxLength
	}
	n.pattern = s.Pattern
	n.minimum = newBound(s.Minimum)
	n.maximum = newBound(s.Maximum)
	return n, nil
}

func newBound(r *big.Rat) *bound {
	if r == nil {
		return nil
	}
	f, _ := r.Float64()
	small := r.IsInt() && r.Num().IsInt64() && r.Num().Int64() < 1e15 && r.Num().Int64() > -1e15
	return &bound{r: r, f: f, small: small}
}

// tok is one value of the scanned document. Objects are followed by their
// names and values, alternating; arrays by their items.
type tok struct {
	kind       uint8
	esc        bool  // a string with escapes
	ascii      bool  // a string of ASCII bytes only
	start, end int32 // string: between the quotes; number: its text
	next       int32 // index of the token after this value (and its members)
	n          int32 // members: pairs of an object, items of an array
}

// scanner checks a document's syntax into a tape, then runs the nodes over
// it. One is reused through a pool.
type scanner struct {
	b      []byte
	i      int
	tape   []tok
	buf    []byte // a decoded string
	uniq   []byte // the decoded items of an array, for uniqueItems
	uoff   []int
	giveUp bool // a node met something it does not model: not valid
	depth  int
}

var scanners = sync.Pool{New: func() any { return &scanner{tape: make([]tok, 0, 64)} }}

// validFast tells whether data is valid for root, on the fast path. False
// means invalid or not sure.
func validFast(root *node, data []byte) bool {
	if len(data) >= 1<<30 {
		return false
	}
	s := scanners.Get().(*scanner)
	s.b, s.i, s.tape, s.giveUp, s.depth = data, 0, s.tape[:0], false, 0
	ok := s.document() && s.valid(root, 0) && !s.giveUp
	s.b = nil
	if cap(s.tape) <= 4096 && cap(s.buf) <= 1<<16 && cap(s.uniq) <= 1<<16 {
		scanners.Put(s)
	}
	return ok
}

func (s *scanner) document() bool {
	s.ws()
	if !s.value(0) {
		return false
	}
	s.ws()
	return s.i == len(s.b)
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth + 1)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		return s.str()
	case c == 't':
		return s.lit("true", kBool)
	case c == 'f':
		return s.lit("false", kBool)
	case c == 'n':
		return s.lit("null", kNull)
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) lit(l string, kind uint8) bool {
	if len(s.b)-s.i < len(l) || string(s.b[s.i:s.i+len(l)]) != l {
		return false
	}
	s.tape = append(s.tape, tok{kind: kind, start: int32(s.i), end: int32(s.i + len(l)), next: int32(len(s.tape) + 1)})
	s.i += len(l)
	return true
}

func (s *scanner) object(depth int) bool {
	if depth > fastMaxDepth {
		return false
	}
	at := len(s.tape)
	s.tape = append(s.tape, tok{kind: kObject})
	s.i++ // {
	s.ws()
	n := 0
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
	} else {
		for {
			if s.i >= len(s.b) || s.b[s.i] != '"' || !s.str() {
				return false
			}
			key := s.tape[len(s.tape)-1]
			if key.esc || n == fastMaxKeys {
				return false // compare escaped names decoded: the generic path
			}
			name := s.b[key.start:key.end]
			for k, j := at+1, 0; j < n; j++ { // a repeated name: the generic path
				if string(s.b[s.tape[k].start:s.tape[k].end]) == string(name) {
					return false
				}
				k = int(s.tape[k+1].next)
			}
			s.ws()
			if s.i >= len(s.b) || s.b[s.i] != ':' {
				return false
			}
			s.i++
			s.ws()
			if !s.value(depth) {
				return false
			}
			n++
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			if s.b[s.i] == ',' {
				s.i++
				s.ws()
				continue
			}
			if s.b[s.i] != '}' {
				return false
			}
			s.i++
			break
		}
	}
	s.tape[at].n = int32(n)
	s.tape[at].next = int32(len(s.tape))
	return true
}

func (s *scanner) array(depth int) bool {
	if depth > fastMaxDepth {
		return false
	}
	at := len(s.tape)
	s.tape = append(s.tape, tok{kind: kArray})
	s.i++ // [
	s.ws()
	n := 0
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
	} else {
		for {
			if !s.value(depth) {
				return false
			}
			n++
			s.ws()
			if s.i >= len(s.b) {
				return false
			}
			if s.b[s.i] == ',' {
				s.i++
				s.ws()
				continue
			}
			if s.b[s.i] != ']' {
				return false
			}
			s.i++
			break
		}
	}
	s.tape[at].n = int32(n)
	s.tape[at].next = int32(len(s.tape))
	return true
}

// str scans a string. It refuses what encoding/json refuses (control
// characters, bad escapes) and also what it would repair (invalid UTF-8,
// lone surrogates, both become U+FFFD): those go to the generic path.
func (s *scanner) str() bool {
	b := s.b
	start := s.i + 1
	esc, ascii := false, true
	j := start
	for {
		// eight bytes at a time over printable ASCII without '"' or '\\'
		for j+8 <= len(b) && signal.Plain8(binary.LittleEndian.Uint64(b[j:])) {
			j += 8
		}
		if j >= len(b) {
			return false
		}
		c := b[j]
		switch {
		case c == '"':
			s.tape = append(s.tape, tok{kind: kString, esc: esc, ascii: ascii, start: int32(start), end: int32(j), next: int32(len(s.tape) + 1)})
			s.i = j + 1
			return true
		case c == '\\':
			esc = true
			if j+1 >= len(b) {
				return false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				r, ok := hex4(b, j+2)
				if !ok {
					return false
				}
				j += 6
				switch {
				case r >= 0xDC00 && r <= 0xDFFF:
					return false // a lone low surrogate
				case r >= 0xD800 && r <= 0xDBFF:
					if j+1 >= len(b) || b[j] != '\\' || b[j+1] != 'u' {
						return false
					}
					lo, ok := hex4(b, j+2)
					if !ok || lo < 0xDC00 || lo > 0xDFFF {
						return false
					}
					j += 6
				}
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < 0x80:
			j++
		default:
			ascii = false
			r, size := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			j += size
		}
	}
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// number scans a JSON number and refuses those checkNumbers refuses.
func (s *scanner) number() bool {
	b, start := s.b, s.i
	i, ok := numberEnd(b, start)
	if !ok {
		return false
	}
	if _, bad := numberProblem(unsafeString(b[start:i])); bad {
		return false
	}
	s.tape = append(s.tape, tok{kind: kNumber, start: int32(start), end: int32(i), next: int32(len(s.tape) + 1)})
	s.i = i
	return true
}

func unsafeString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// text returns a string token's value, decoded (into s.buf when it has
// escapes: valid until the next call).
func (s *scanner) text(t *tok) []byte {
	raw := s.b[t.start:t.end]
	if !t.esc {
		return raw
	}
	out := s.buf[:0]
	for j := 0; j < len(raw); {
		c := raw[j]
		if c != '\\' {
			out = append(out, c)
			j++
			continue
		}
		switch raw[j+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(raw, j+2)
			if r >= 0xD800 && r <= 0xDBFF {
				lo, _ := hex4(raw, j+8)
				r = (r-0xD800)<<10 | (lo - 0xDC00) + 0x10000
				j += 6
			}
			out = utf8.AppendRune(out, r)
			j += 6
			continue
		default: // " \ /
			out = append(out, raw[j+1])
		}
		j += 2
	}
	s.buf = out
	return out
}

// valid runs node n over the value at tape index t.
func (s *scanner) valid(n *node, t int) bool {
	if n.never {
		return false
	}
	if s.depth > 4*fastMaxDepth { // a $ref loop that consumes nothing
		s.giveUp = true
		return false
	}
	s.depth++
	ok := s.validNode(n, t)
	s.depth--
	return ok
}

func (s *scanner) validNode(n *node, t int) bool {
	tk := &s.tape[t]
	if n.types != 0 && n.types&tk.kind == 0 {
		return false
	}
	if tk.kind == kString {
		if !s.validString(n, tk) {
			return false
		}
	} else if n.hasEnum || n.constStr != nil {
		return false // string members only
	} else if n.format != nil {
		s.giveUp = true // the library asks the format about non-strings too
		return false
	}
	if n.ref != nil && !s.valid(n.ref, t) {
		return false
	}
	if len(n.anyOf) > 0 {
		any := false
		for _, a := range n.anyOf {
			if s.valid(a, t) {
				any = true
				break
			}
		}
		if !any {
			return false
		}
	}
	if n.ifN != nil && s.valid(n.ifN, t) && n.thenN != nil && !s.valid(n.thenN, t) {
		return false
	}
	switch tk.kind {
	case kObject:
		if n.object != nil && !s.validObject(n.object, t) {
			return false
		}
	case kArray:
		if !s.validArray(n, t) {
			return false
		}
	case kNumber:
		num := s.b[tk.start:tk.end]
		if n.minimum != nil && s.cmp(num, n.minimum) < 0 {
			return false
		}
		if n.maximum != nil && s.cmp(num, n.maximum) > 0 {
			return false
		}
	}
	return true
}

func (s *scanner) validString(n *node, tk *tok) bool {
	v := s.text(tk)
	if n.hasEnum {
		found := false
		for _, e := range n.enum {
			if e == string(v) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if n.constStr != nil && *n.constStr != string(v) {
		return false
	}
	if n.minLen >= 0 || n.maxLen >= 0 {
		l := len(v) // a plain ASCII string: one rune a byte
		if !tk.ascii || tk.esc {
			l = utf8.RuneCount(v)
		}
		if n.minLen >= 0 && l < n.minLen || n.maxLen >= 0 && l > n.maxLen {
			return false
		}
	}
	if n.pattern != nil && !n.pattern.MatchString(unsafeString(v)) {
		return false
	}
	if n.format != nil && !(n.dateTime && dateTimePlain(v)) && n.format.Validate(unsafeString(v)) != nil {
		return false
	}
	return true
}

func (s *scanner) validObject(o *objNode, t int) bool {
	var seen uint64
	k := t + 1
	for j := int32(0); j < s.tape[t].n; j++ {
		key := &s.tape[k]
		v := k + 1
		k = int(s.tape[v].next)
		name := unsafeString(s.b[key.start:key.end])
		i, ok := 0, false
		for x, nm := range o.names {
			if len(nm) == len(name) && nm == name {
				i, ok = x, true
				break
			}
		}
		if ok {
			seen |= 1 << i
			if p := o.props[i]; p != nil {
				if !s.valid(p, v) {
					return false
				}
				continue
			}
		}
		switch o.additional {
		case addNone:
			return false
		case addSchema:
			if !s.valid(o.addSchema, v) {
				return false
			}
		}
	}
	if seen&o.required != o.required {
		return false
	}
	for _, d := range o.depReq {
		if seen&d.if_ != 0 && seen&d.then != d.then {
			return false
		}
	}
	return true
}

func (s *scanner) validArray(n *node, t int) bool {
	count := int(s.tape[t].n)
	if n.minItems >= 0 && count < n.minItems || n.maxItems >= 0 && count > n.maxItems {
		return false
	}
	if n.unique && count > 1 {
		if count > fastMaxItems {
			s.giveUp = true
			return false
		}
		// Strings only: equal JSON strings are equal decoded strings. Other
		// items (1 and 1.0 are equal) go to the generic path.
		s.uniq, s.uoff = s.uniq[:0], s.uoff[:0]
		for j, k := 0, t+1; j < count; j, k = j+1, int(s.tape[k].next) {
			it := &s.tape[k]
			if it.kind != kString {
				s.giveUp = true
				return false
			}
			from := len(s.uniq)
			s.uniq = append(s.uniq, s.text(it)...)
			v := s.uniq[from:]
			for p, start := range s.uoff { // the items before this one
				end := from
				if p+1 < len(s.uoff) {
					end = s.uoff[p+1]
				}
				if string(s.uniq[start:end]) == string(v) {
					return false
				}
			}
			s.uoff = append(s.uoff, from)
		}
	}
	if n.items != nil {
		for j, k := 0, t+1; j < count; j, k = j+1, int(s.tape[k].next) {
			if !s.valid(n.items, k) {
				return false
			}
		}
	}
	return true
}

// cmp compares the JSON number num with b exactly, as the library does
// (both as big.Rat), through doubles where they decide it: rounding to the
// nearest double is monotonic, so different doubles order the numbers.
func (s *scanner) cmp(num []byte, b *bound) int {
	f, err := strconv.ParseFloat(unsafeString(num), 64)
	if err == nil {
		switch {
		case f < b.f:
			return -1
		case f > b.f:
			return 1
		}
		if b.small && shortDecimal(num) {
			return 0
		}
	}
	r, ok := new(big.Rat).SetString(string(num))
	if !ok {
		s.giveUp = true
		return 0
	}
	return r.Cmp(b.r)
}

// shortDecimal: num has no exponent and at most 15 digits, so it is exactly
// the decimal its double prints as with 15 significant digits: two such
// numbers with the same double are equal.
func shortDecimal(num []byte) bool {
	d := 0
	for _, c := range num {
		switch {
		case c >= '0' && c <= '9':
			d++
		case c == 'e' || c == 'E':
			return false
		}
	}
	return d <= 15
}

// dateTimePlain accepts the date-times the library's format accepts that
// signals carry: yyyy-mm-ddThh:mm:ss[.fraction]Z, a valid date, seconds
// up to 59. It answers false for anything else (leap seconds, offsets,
// lowercase letters, invalid values), which the library then judges.
func dateTimePlain(v []byte) bool {
	if len(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[len(v)-1] != 'Z' {
		return false
	}
	for _, k := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if v[k] < '0' || v[k] > '9' {
			return false
		}
	}
	num := func(k int) int { return int(v[k]-'0')*10 + int(v[k+1]-'0') }
	year, month, day := num(0)*100+num(2), num(5), num(8)
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) || num(11) > 23 || num(14) > 59 || num(17) > 59 {
		return false
	}
	frac := v[19 : len(v)-1]
	if len(frac) == 0 {
		return true
	}
	if len(frac) < 2 || frac[0] != '.' {
		return false
	}
	for _, c := range frac[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
